"""pgprep.parallel: workers stop when their parent dies (issue 12, case 15)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

from pgprep.parallel import run_jobs

PARENT = textwrap.dedent("""
    import os, sys, time
    from pgprep.parallel import run_jobs

    out = sys.argv[1]

    def work(i):  # a slow chunk: one output file per record
        for k in range(60):
            open(os.path.join(out, f"w{i}-{k:03d}-{os.getpid()}"), "w").close()
            time.sleep(0.05)
        return i

    for _ in run_jobs(work, range(2), jobs=2):
        pass
""")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in state


def test_workers_stop_writing_soon_after_the_parent_is_killed(tmp_path):
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(tmp_path)])
    try:
        deadline = time.monotonic() + 60
        while len(list(tmp_path.iterdir())) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(list(tmp_path.iterdir())) >= 4, "workers did not start"
    finally:
        parent.kill()  # SIGKILL: the parent cannot tell its workers anything
        parent.wait()
    time.sleep(0.6)
    n = len(list(tmp_path.iterdir()))
    time.sleep(1.0)
    assert len(list(tmp_path.iterdir())) == n  # nobody writes any more
    assert n < 2 * 60  # and the chunks were not finished
    pids = {int(p.name.split("-")[2]) for p in tmp_path.iterdir()}
    assert pids and not any(_alive(pid) for pid in pids)


def test_results_in_order_and_in_process_for_one_job():
    assert list(run_jobs(abs, [-3, 2, -1], jobs=2)) == [3, 2, 1]
    assert list(run_jobs(str, [1, 2], jobs=1)) == ["1", "2"]
