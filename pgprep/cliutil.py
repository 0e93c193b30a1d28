"""CLI conventions shared by `pgprep` and `pgtrain`.

- errors: library code raises PgkitError; `PgkitGroup` turns it (and any other exception)
  into one line on stderr and exit code 1. `--debug` shows the traceback instead.
- progress bars go to stderr (tqdm) with a known total, so stdout stays parseable.
- tables: `echo_table` prints a plain aligned table (also valid markdown).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Sequence

import click

from pgprep.errors import PgkitError


class PgkitGroup(click.Group):
    """A click group that maps failures to one-line messages and exit code 1."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except BrokenPipeError:  # `pgprep inspect ... | head`: the reader left; stop quietly
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            sys.exit(141)
        except Exception as exc:  # noqa: BLE001 - the CLI is the one place that catches all
            if ctx.meta.get("pgkit.debug") or os.environ.get("PGKIT_DEBUG"):
                raise
            click.echo(f"error: {one_line(exc)}", err=True)
            sys.exit(1)


def one_line(exc: BaseException) -> str:
    if isinstance(exc, PgkitError):
        msg = str(exc)
    elif isinstance(exc, OSError) and exc.filename:
        msg = f"{exc.filename}: {exc.strerror or exc}"
    else:
        msg = f"{type(exc).__name__}: {exc}"
    return " ".join(msg.split()) + ("" if isinstance(exc, PgkitError) else " (rerun with --debug for the traceback)")


def debug_option(f):
    """`--debug`: show Python tracebacks instead of one-line errors."""

    def _set(ctx: click.Context, _param, value):
        if value:
            ctx.meta["pgkit.debug"] = True
        return value

    return click.option(
        "--debug", is_flag=True, expose_value=False, is_eager=True, callback=_set,
        help="Show the full Python traceback on errors.",
    )(f)


def progress(iterable: Iterable | None = None, *, total: int | None = None, desc: str = "",
             unit: str = "it", disable: bool | None = None):
    """A tqdm bar on stderr; silent when PGKIT_NO_PROGRESS is set."""
    from tqdm.auto import tqdm

    if disable is None:
        disable = bool(os.environ.get("PGKIT_NO_PROGRESS"))
    return tqdm(iterable, total=total, desc=desc, unit=unit, file=sys.stderr, disable=disable,
                dynamic_ncols=True, leave=False)


def format_table(rows: Sequence[Sequence], headers: Sequence[str]) -> str:
    """Markdown-style table with aligned columns."""
    cells = [[str(h) for h in headers]] + [["" if v is None else _fmt(v) for v in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + " |"  # noqa: E731
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(cells[0]), sep] + [line(r) for r in cells[1:]])


def echo_table(rows: Sequence[Sequence], headers: Sequence[str]) -> None:
    click.echo(format_table(rows, headers))


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e4 else f"{v:,.0f}"
    return str(v)


class LazyGroup(PgkitGroup):
    """Commands live in their stage modules and are imported on first use.

    `lazy` maps a command name to ("module:attr", "one-line help"); `--help` of the group lists
    the help lines without importing anything (pgtrain's modules import torch).
    """

    def __init__(self, *args, lazy: dict[str, tuple[str, str]] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy or {})

    def format_commands(self, ctx, formatter):
        rows = [(name, help_) for name, (_, help_) in self.lazy.items()]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def list_commands(self, ctx):
        return list(self.lazy) + sorted(set(super().list_commands(ctx)) - set(self.lazy))

    def get_command(self, ctx, name):
        if name in self.lazy:
            import importlib

            module, attr = self.lazy[name][0].split(":")
            return getattr(importlib.import_module(module), attr)
        return super().get_command(ctx, name)
