"""Throughput of `pgprep filter` (images/s, header check vs full decode) on a synthetic set.
The BlazePose estimator (`pgprep pose`), measured here until issue 20, has its own
benchmarks/bench_pose.py (same 60-image set, with its accuracy figures).

    python benchmarks/bench_filter.py            # quick: 150 items
    python benchmarks/bench_filter.py --full     # the issue's size: 2,000 items
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("PGKIT_NO_PROGRESS", "1")


def run(quick: bool) -> list[dict]:
    from pgprep.filter import run_filter
    from pgprep.synth import synthesize

    items = 150 if quick else 2000
    jobs = os.cpu_count() or 1
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "root"
        synthesize(root, items=items, seed=0, size=256, jobs=jobs)
        n = sum(1 for _ in (root / "img").rglob("*.jpg"))
        for check in ("header", "decode"):
            t0 = time.perf_counter()
            counts = run_filter(root, root / "pose" / "openpose", Path(tmp) / f"work-{check}",
                                check=check, jobs=jobs, force=True)
            dt = time.perf_counter() - t0
            rows.append({"benchmark": f"filter ({check} check, {jobs} jobs)", "value": round(n / dt, 1),
                         "unit": "images/s",
                         "note": f"{n} images of {items} items, 256x256, {counts['kept']} kept"})
    return rows


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from pgprep.cliutil import format_table

    res = run(quick="--full" not in sys.argv)
    print(format_table([[r["benchmark"], r["value"], r["unit"], r["note"]] for r in res],
                       ["benchmark", "value", "unit", "note"]))
