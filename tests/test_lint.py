"""The code base passes ruff with the configuration in pyproject.toml (CI runs this too)."""

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_ruff_is_clean():
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (pip install -e '.[test]')")
    r = subprocess.run([ruff, "check", "--no-cache", str(REPO)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-3000:]
