"""`pgprep synth` throughput: images per second at 256 (and 64) px with --jobs 2.

    python benchmarks/run_all.py --only synth          # 200 items (quick)
    python benchmarks/run_all.py --only synth --full   # 1,000 items, the issue's target (< 60 s)
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from pgprep.synth import synthesize
from pgprep.synth.writer import render_item


def _cpu_ms_per_image(size: int, items: int = 20) -> float:
    """Single-process CPU time per image: what the machine can do when nobody else runs."""
    with tempfile.TemporaryDirectory() as tmp:
        t0, n = time.process_time(), 0
        for i in range(items):
            n += len(render_item(Path(tmp), 0, i, size))
        return 1000 * (time.process_time() - t0) / n


def run(quick: bool) -> list[dict]:
    os.environ.setdefault("PGKIT_NO_PROGRESS", "1")
    items = 200 if quick else 1000
    rows = []
    for size in (256, 64):
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            res = synthesize(os.path.join(tmp, "root"), items=items, seed=0, size=size, jobs=2)
            wall = time.perf_counter() - t0
        rate = res["images"] / wall
        rows.append({"benchmark": f"synth {items} items @{size}px, --jobs 2", "value": round(rate, 1),
                     "unit": "images/s",
                     "note": f"{res['images']} images in {wall:.1f} s; 1,000 items ~ {wall * 1000 / items:.0f} s"})
        rows.append({"benchmark": f"synth CPU per image @{size}px", "value": round(_cpu_ms_per_image(size), 2),
                     "unit": "ms", "note": "one process, render + encode + write"})
    return rows


if __name__ == "__main__":
    for r in run(quick=True):
        print(r)
