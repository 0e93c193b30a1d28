"""Market-1501 end to end on the synthetic Market: time per stage, pairs per rule, and how
well BlazePose (`pgprep pose`) finds 128x64 pedestrians (docs/market.md).

    python benchmarks/bench_market.py                       # 100 identities, all stages
    python benchmarks/bench_market.py --identities 300 --pose --keep /tmp/market-bench

Stages run as the CLI runs them (one process each, PGKIT_NO_PROGRESS=1); wall times include
Python start-up (~1-2 s for pgtrain: torch import). `--pose` also runs BlazePose on every box
and scores it against truth.csv: person recall (boxes of one whole pedestrian where BlazePose
reports a person), mean / median joint error in px over the joints both have, joint recall,
and how many boxes the filter keeps with BlazePose's keypoints instead of the synthetic
detector's.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def _run(args: list[str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    r = subprocess.run(args, capture_output=True, text=True, env={**os.environ, "PGKIT_NO_PROGRESS": "1"})
    if r.returncode:
        sys.exit(f"failed: {' '.join(args)}\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    return time.perf_counter() - t0, r.stdout


def pose_quality(root: Path, poses: Path) -> dict:
    """BlazePose against the truth: person recall, joint error (px), joint recall."""
    from pgprep import skeleton
    from pgprep.formats import openpose_json_name, read_openpose_json

    truth = pd.read_csv(root / "truth.csv", dtype={"item_id": str})
    whole = truth[truth["kind"] == "person"]
    found, errs, joints_true, joints_found = 0, [], 0, 0
    for r in whole.itertuples():
        path = poses / openpose_json_name(r.image)
        people = read_openpose_json(path) if path.is_file() else []
        t = skeleton.from_columns(r._asdict())
        joints_true += int(skeleton.present(t).sum())
        if not people:
            continue
        found += 1
        # the detection nearest the true skeleton is the pedestrian's
        best = min(people, key=lambda p: _mean_err(t, p)[0])
        e, n = _mean_err(t, best)
        joints_found += n
        both = skeleton.present(t) & skeleton.present(best)
        errs += np.hypot(*(t[both, :2] - best[both, :2]).T).tolist()
    return {"boxes": len(whole), "person_recall": found / max(1, len(whole)),
            "joint_recall": joints_found / max(1, joints_true),
            "mean_joint_error_px": float(np.mean(errs)) if errs else float("nan"),
            "median_joint_error_px": float(np.median(errs)) if errs else float("nan")}


def _mean_err(t: np.ndarray, p: np.ndarray) -> tuple[float, int]:
    from pgprep import skeleton

    both = skeleton.present(t) & skeleton.present(p)
    if not both.any():
        return float("inf"), 0
    return float(np.hypot(*(t[both, :2] - p[both, :2]).T).mean()), int(both.sum())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--identities", type=int, default=100)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--pose", action="store_true", help="also run and score BlazePose (needs pgkit[pose])")
    ap.add_argument("--keep", type=Path, default=None, help="work in this directory and keep it")
    a = ap.parse_args()
    base = a.keep or Path(tempfile.mkdtemp(prefix="bench-market-"))
    if a.keep and base.exists():
        shutil.rmtree(base)
    base.mkdir(parents=True)
    root, work, shards, run = base / "market", base / "work", base / "shards", base / "run"
    pg, pt = [sys.executable, "-m", "pgprep"], [sys.executable, "-m", "pgtrain"]
    times, pairs = {}, {}
    times["synth"], out = _run([*pg, "synth", str(root), "--kind", "market", "--items", str(a.identities),
                                "--jobs", str(a.jobs)])
    print(out.strip())
    times["filter"], out = _run([*pg, "filter", str(root), "--poses", str(root / "pose" / "openpose"),
                                 "-o", str(work)])
    print(out.strip())
    for rule in ("pgkit", "patn", "pg2-market"):  # pg2-market last: it is what gets packed
        times[f"pairs --rule {rule}"], out = _run([*pg, "pairs", str(work), "--rule", rule, "--force"])
        s = json.loads((work / ".pgkit" / "pairs.json").read_text())["summary"]
        pairs[rule] = {sp: {k: s[sp][k] for k in ("images", "items", "candidate_pairs", "pairs")}
                       for sp in ("train", "test")}
    times["masks"], out = _run([*pg, "masks", str(work), "--jobs", str(a.jobs)])
    times["pack"], out = _run([*pg, "pack", str(work), "-o", str(shards), "--jobs", str(a.jobs)])
    times["fit (pg2, width 8, 40+20 steps, batch 8)"], out = _run(
        [*pt, "fit", str(shards), "-o", str(run), "--preset", "pg2", "--channels", "8", "--steps1", "40",
         "--steps2", "20", "--batch-size", "8", "--device", "cpu"])
    times["eval (200 test pairs)"], out = _run([*pt, "eval", str(run), "--data", str(shards), "--limit", "200",
                                                 "--device", "cpu"])
    print(out.strip())
    result = {"identities": a.identities, "seconds": {k: round(v, 2) for k, v in times.items()}, "pairs": pairs}
    if a.pose:
        poses = base / "blazepose"
        t, _ = _run([*pg, "pose", str(root), "-o", str(poses), "--jobs", str(a.jobs)])
        result["seconds"]["pose (BlazePose)"] = round(t, 2)
        result["blazepose"] = pose_quality(root, poses)
        _, out = _run([*pg, "filter", str(root), "--poses", str(poses), "-o", str(base / "work-blazepose")])
        kept = len(pd.read_csv(base / "work-blazepose" / "images.csv"))
        result["blazepose"]["kept_by_filter"] = kept
        result["blazepose"]["kept_by_filter_synthetic_detector"] = len(pd.read_csv(work / "images.csv"))
    print(json.dumps(result, indent=1))
    if not a.keep:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
