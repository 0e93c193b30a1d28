"""CLI conventions: --help/--version on both tools, python -m, one-line errors, exit codes."""

import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from pgprep import __version__
from pgprep.cli import COMMANDS as PREP_COMMANDS
from pgprep.cli import main as pgprep_main
from pgprep.cliutil import PgkitGroup, debug_option, format_table
from pgprep.errors import PgkitError
from pgtrain.cli import COMMANDS as TRAIN_COMMANDS
from pgtrain.cli import main as pgtrain_main


@pytest.mark.parametrize("main", [pgprep_main, pgtrain_main])
def test_version_and_help(main):
    r = CliRunner().invoke(main, ["--version"])
    assert r.exit_code == 0 and __version__ in r.output
    r = CliRunner().invoke(main, ["--help"])
    assert r.exit_code == 0
    commands = PREP_COMMANDS if main is pgprep_main else TRAIN_COMMANDS
    for name in commands:
        assert name in r.output


@pytest.mark.parametrize(("tool", "commands"), [("pgprep", PREP_COMMANDS), ("pgtrain", TRAIN_COMMANDS)])
def test_every_command_has_help_with_an_example(tool, commands):
    main = pgprep_main if tool == "pgprep" else pgtrain_main
    for name in commands:
        r = CliRunner().invoke(main, [name, "--help"])
        assert r.exit_code == 0, (name, r.output)
        assert f"{tool} {name}" in r.output or "Usage" in r.output
        assert len(r.output.splitlines()) > 5, name


@pytest.mark.parametrize("module", ["pgprep", "pgtrain"])
def test_python_m_entry_points(module):
    r = subprocess.run([sys.executable, "-m", module, "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and __version__ in r.stdout


@click.group(cls=PgkitGroup)
@debug_option
def demo_group():
    pass


@demo_group.command()
@debug_option
@click.argument("path")
def boom(path):
    raise PgkitError(path, "broken in a specific way")


@demo_group.command()
def crash():
    raise ZeroDivisionError("x")


def test_errors_are_one_line_exit_1_and_traceback_only_with_debug():
    r = CliRunner().invoke(demo_group, ["boom", "some/file.json"])
    assert r.exit_code == 1
    assert r.output.strip() == "error: some/file.json: broken in a specific way"
    r = CliRunner().invoke(demo_group, ["crash"])
    assert r.exit_code == 1 and "ZeroDivisionError" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(demo_group, ["boom", "f", "--debug"])
    assert isinstance(r.exception, PgkitError)


def test_usage_error_is_exit_2():
    r = CliRunner().invoke(pgprep_main, ["no-such-command"])
    assert r.exit_code == 2


def test_format_table_aligns():
    t = format_table([["a", 1], ["bbb", 2.5]], ["name", "n"]).splitlines()
    assert t[0] == "| name | n   |"
    assert t[1].startswith("|------|")
    assert t[3] == "| bbb  | 2.5 |"
