"""Throughput of `pgprep filter` (images/s, header check vs full decode) and of the BlazePose
estimator (`pgprep pose`, images/s), on a synthetic set.

    python benchmarks/bench_filter.py            # quick: 150 items, estimator on 60 images
    python benchmarks/bench_filter.py --full     # the issue's size: 2,000 items, estimator on 400
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("PGKIT_NO_PROGRESS", "1")


def run(quick: bool) -> list[dict]:
    from pgprep.estimate import estimate_poses
    from pgprep.filter import run_filter
    from pgprep.synth import synthesize

    items = 150 if quick else 2000
    est_images = 60 if quick else 400
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
        t0 = time.perf_counter()
        c = estimate_poses(root, Path(tmp) / "poses", jobs=jobs, limit=est_images)
        dt = time.perf_counter() - t0
        rows.append({"benchmark": f"pose estimator BlazePose full ({jobs} jobs)",
                     "value": round(c["done"] / dt, 1), "unit": "images/s",
                     "note": f"{c['done']} images 256x256 incl. model load; {c['people']} people found"})
    return rows


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from pgprep.cliutil import format_table

    res = run(quick="--full" not in sys.argv)
    print(format_table([[r["benchmark"], r["value"], r["unit"], r["note"]] for r in res],
                       ["benchmark", "value", "unit", "note"]))
