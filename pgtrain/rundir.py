"""The run directory's integrity: one `fit` at a time, no stale temporary files, no silent
change of training data on `--resume`, and write failures (a full disk) named by their file.

- `RUN/.lock` is held with `fcntl.flock` for the whole `fit` (rank 0 under torchrun). The
  kernel drops the lock when the process ends, however it ends (also `kill -9`), so a killed
  run never blocks the next one.
- With the lock held, temporary files that pgkit's atomic writer (`pgprep.atomic`) left
  behind in RUN and RUN/checkpoints when a run was killed mid-write are removed: only names of
  the form `.<name>.<8 random characters>.tmp` whose <name> is one pgkit writes there.
- `--resume` compares the data it is given with the data the checkpoint was trained on: the
  resolved SHARDS path and the sha256 of SHARDS/index.json. Either differing stops the run
  unless `allow_new_data` (`--allow-new-data`).
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import click

from pgprep.atomic import file_sha256, temp_target
from pgprep.errors import PgkitError

LOCK_NAME = ".lock"
_OWN_NAMES = {  # directory (relative to RUN) -> final names `fit` writes there atomically
    # (not eval.json & co.: `pgtrain eval` may be writing those while a fit runs)
    ".": re.compile(r"^(options\.json|stats\.jsonl)$"),
    "checkpoints": re.compile(r"^(last|stage1)\.pt$"),  # exactly the two fit writes (loop.fit's save)
    "samples": re.compile(r"^step-\d+\.png$"),
}
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


@contextlib.contextmanager
def writing(path: str | os.PathLike) -> Iterator[None]:
    """Turn an OSError while writing `path` (full disk, quota, permissions) into a PgkitError
    naming the file; a full disk says how to continue."""
    try:
        yield
    except OSError as exc:
        if isinstance(exc, PgkitError):
            raise
        what = exc.strerror or str(exc)
        hint = ("; free some space, then rerun with --resume (nothing half-written is kept "
                "under a final name)") if exc.errno in _DISK_FULL else ""
        raise PgkitError(path, f"cannot write: {what}{hint}") from None


class RunLock:
    """An exclusive, non-blocking flock on RUN/.lock; `release()` (or process exit) drops it."""

    def __init__(self, run: str | os.PathLike):
        import fcntl

        self.run = Path(run)
        self.created = not self.run.exists()
        self.run.mkdir(parents=True, exist_ok=True)
        self.path = self.run / LOCK_NAME
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(self.fd)
            self.fd = None
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                holder = _read_pid(self.path)
                raise PgkitError(self.run, "another `pgtrain fit` is training into this run "
                                 f"(it holds {self.path}{f', pid {holder}' if holder else ''}); "
                                 "wait for it to finish or stop it, or choose another -o") from None
            raise PgkitError(self.path, f"cannot lock the run directory ({exc.strerror})") from None
        os.ftruncate(self.fd, 0)
        os.write(self.fd, f"{os.getpid()}\n".encode())

    def release(self) -> None:
        if self.fd is None:
            return
        import fcntl

        # A run that never got going (bad SHARDS, refused options) leaves no directory behind.
        if self.created and {p.name for p in self.run.iterdir()} == {LOCK_NAME}:
            with contextlib.suppress(OSError):
                self.path.unlink()
                self.run.rmdir()
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
        self.fd = None

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _read_pid(path: Path) -> str | None:
    try:
        text = path.read_text(errors="replace").strip()
    except OSError:
        return None
    return text if text.isdigit() else None


def clean_stale_temps(run: str | os.PathLike) -> list[Path]:
    """Remove the temporary files a killed run's atomic writes left in RUN, RUN/checkpoints and
    RUN/samples (call only with the run lock held: then no writer of this run is alive).
    Returns the removed paths."""
    removed = []
    for sub, own in _OWN_NAMES.items():
        folder = Path(run) / sub
        if not folder.is_dir():
            continue
        for p in folder.iterdir():
            target = temp_target(p.name)
            if target and own.match(target) and p.is_file() and not p.is_symlink():
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
                    removed.append(p)
    return sorted(removed)


def check_fresh_run(run: str | os.PathLike) -> None:
    """A new run (no checkpoint yet) replaces RUN/options.json and RUN/stats.jsonl: refuse when
    they are not `pgtrain fit`'s own (a killed fit's are: its options.json has a preset)."""
    options, stats = Path(run) / "options.json", Path(run) / "stats.jsonl"
    if options.exists():
        try:
            doc = json.loads(options.read_text())
        except (OSError, ValueError):
            doc = None
        if not (isinstance(doc, dict) and "preset" in doc and "image_size" in doc):
            raise PgkitError(options, "not written by `pgtrain fit`, and a new run would replace it; "
                                      "choose another -o")
    elif stats.exists():
        raise PgkitError(stats, "not written by `pgtrain fit` (no options.json beside it), and a new "
                                "run would replace it; choose another -o")


def data_identity(shards) -> dict:
    """{"shards_resolved": absolute path, "shards_index_sha256": sha256 of index.json} of a shard
    directory ({} for a Dataset object or a directory without an index)."""
    if not isinstance(shards, (str, os.PathLike)):
        return {}
    index = Path(shards) / "index.json"
    out = {"shards_resolved": str(Path(shards).resolve())}
    if index.is_file():
        out["shards_index_sha256"] = file_sha256(index)
    return out


def check_same_data(run: str | os.PathLike, saved: dict, current: dict, allow_new_data: bool) -> str | None:
    """Compare the data a checkpoint was trained on (`saved` options) with `current`
    (`data_identity`). Returns a note when the data changed and `allow_new_data`; raises
    PgkitError when it changed and not; None when it is the same (or unknown)."""
    changes = []
    old_path, new_path = saved.get("shards_resolved"), current.get("shards_resolved")
    if old_path and new_path and old_path != new_path:
        changes.append(f"SHARDS was {old_path}, now {new_path}")
    old_sha, new_sha = saved.get("shards_index_sha256"), current.get("shards_index_sha256")
    if old_sha and new_sha and old_sha != new_sha:
        changes.append(f"index.json changed (sha256 {old_sha[:12]}… -> {new_sha[:12]}…)")
    if not changes:
        return None
    if not allow_new_data:
        raise PgkitError(run, "--resume with other training data than the checkpoint's: "
                         + "; ".join(changes) + ". Pass the same SHARDS, or --allow-new-data "
                         "to continue on this data on purpose")
    return "continuing on new data (--allow-new-data): " + "; ".join(changes)


# ---------------------------------------------------------------- numeric options

@dataclass(frozen=True)
class Range:
    """A closed or half-open interval a numeric option must lie in (always finite)."""

    lo: float
    hi: float
    whole: bool = False     # a whole number (steps, widths, seed ...)
    lo_open: bool = False
    hi_open: bool = False

    def holds(self, v) -> bool:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return False
        if self.whole and not isinstance(v, int):
            return False
        above = v > self.lo if self.lo_open else v >= self.lo
        below = v < self.hi if self.hi_open else v <= self.hi
        return above and below and math.isfinite(v)  # range first: 10**400 is no float

    def __str__(self) -> str:
        if self.whole:
            return f"a whole number in {int(self.lo)}..{int(self.hi)}"
        return f"a finite number in {'(' if self.lo_open else '['}{self.lo:g}, {self.hi:g}{')' if self.hi_open else ']'}"


# Every numeric option of `pgtrain fit`, checked at the command line (a usage error naming the
# option) and on every resolved Options and checkpoint before anything is written or built.
OPTION_RANGES: dict[str, Range] = {
    "steps1": Range(0, 1e9, whole=True), "steps2": Range(0, 1e9, whole=True),
    "batch_size": Range(1, 65536, whole=True),
    "channels": Range(1, 1024, whole=True), "d_channels": Range(1, 1024, whole=True),
    "fc_dim": Range(1, 4096, whole=True),
    "lr": Range(0, 1, lo_open=True), "lr2": Range(0, 1, lo_open=True), "lr_d": Range(0, 1, lo_open=True),
    "beta1": Range(0, 1, hi_open=True), "beta2": Range(0, 1, hi_open=True),  # Adam needs beta < 1
    "diffmap_init": Range(0, 10),          # 1 = PG²'s Glorot scale
    "l1_weight": Range(0, 1e6), "adv_weight": Range(0, 1e6), "gp": Range(0, 1e6),
    "clip": Range(0, 100),                 # 0 = off
    "critic_steps": Range(1, 1000, whole=True),
    "seed": Range(0, 2**32 - 1, whole=True),  # numpy's seed range
    "workers": Range(0, 256, whole=True),
    "log_every": Range(1, 1e9, whole=True), "sample_every": Range(1, 1e9, whole=True),
    "ckpt_every": Range(1, 1e9, whole=True), "sample_count": Range(1, 64, whole=True),
}


def check_options(options: dict, where: str | os.PathLike | None = None) -> None:
    """PgkitError naming `where` (a checkpoint, options.json; None for the command line) at the
    first numeric option outside OPTION_RANGES (None means "the default" and passes), or when
    `options` is not a dict."""
    if not isinstance(options, dict):
        raise PgkitError(where, f"its options must be an object (a dict), got {type(options).__name__}")
    for name, rng in OPTION_RANGES.items():
        v = options.get(name)
        if v is not None and not rng.holds(v):
            raise PgkitError(where, f"option {name} must be {rng}, got {_short(v)}")
    betas = options.get("betas2")
    if betas is not None and not (isinstance(betas, (list, tuple)) and len(betas) == 2
                                  and all(OPTION_RANGES["beta1"].holds(b) for b in betas)):
        raise PgkitError(where, f"option betas2 must be two numbers in [0, 1), got {_short(betas)}")


def _short(v) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:60] + "..."


class OptionType(click.ParamType):
    """A click type for one numeric fit option: finite and inside OPTION_RANGES[name], so
    `--lr nan` or `--beta1 2` is a usage error (exit 2) naming the option, before any file."""

    def __init__(self, name: str):
        self.key = name
        self.range = OPTION_RANGES[name]
        self.name = "integer" if self.range.whole else "float"

    def convert(self, value, param, ctx):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            v = value
        else:
            text = str(value).strip()
            try:
                v = int(text) if self.range.whole else float(text)
            except ValueError:
                self.fail(f"{value!r} is not {self.range}", param, ctx)
        if not self.range.holds(v):
            self.fail(f"{_short(value)} is not {self.range}", param, ctx)
        return v
