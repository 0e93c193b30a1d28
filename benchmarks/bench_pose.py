"""`pgprep pose` (BlazePose): images/s on 2 cores and, per variant of the doubt-driven passes,
every accuracy figure we have, on synthetic sets (docs/pose.md has the table and its reading).

    python benchmarks/bench_pose.py               # quick: speed of the default and of the old
                                                  # behaviour on the 60-image set + accuracy of both
    python benchmarks/bench_pose.py --tradeoff    # all variants (refine x second pass, threads
                                                  # x workers), speed repeated, accuracy table

Speed set: the first 60 images (sorted) of `synthesize(items=150, seed=0, size=256)`, the set
of benchmarks/RESULTS.md since issue 9. Times include model load: "warm pool" runs after a
loky pool of the same size exists (as bench_filter measured it before issue 20, after the
filter had started the workers), "cold" is a fresh `python -m pgprep pose` process (Python
start, imports, worker start-up, model load). Accuracy sets: `--items 80 --seed 5` (335
images) and `--items 60 --seed 0` (259), 256 px: person recall and mean joint error (of the
true body height) on single persons, two-person images found as two, and the decisions of
`pgprep filter` (default rules) against the truth: distractors rejected, persons rejected.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("PGKIT_NO_PROGRESS", "1")

SPEED_SET = {"items": 150, "seed": 0, "size": 256}
SPEED_IMAGES = 60
ACCURACY_SETS = {"seed 5": {"items": 80, "seed": 5, "size": 256}, "seed 0": {"items": 60, "seed": 0, "size": 256}}
VARIANTS = {  # name: (refine, second_pass)
    "default (auto, auto)": ("auto", "auto"),
    "old: always, always": ("always", "always"),
    "refine never, second auto": ("never", "auto"),
    "refine auto, second never": ("auto", "never"),
    "never, never": ("never", "never"),
}
QUICK_VARIANTS = ("default (auto, auto)", "old: always, always")


def speed(root: Path, tmp: Path, refine: str, second_pass: str, jobs: int, threads: int = 1,
          cold: bool = False) -> tuple[float, dict]:
    """images/s of one `pgprep pose` run on the first SPEED_IMAGES images, model load included."""
    import shutil

    from pgprep.estimate import estimate_poses

    out = tmp / f"speed-{refine}-{second_pass}-{jobs}-{threads}-{cold}"
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    if cold:
        subprocess.run([sys.executable, "-m", "pgprep", "pose", str(root), "-o", str(out), "--jobs", str(jobs),
                        "--threads", str(threads), "--refine", refine, "--second-pass", second_pass,
                        "--limit", str(SPEED_IMAGES)], check=True, capture_output=True)
        counts = {"done": SPEED_IMAGES}
    else:
        counts = estimate_poses(root, out, jobs=jobs, threads=threads, refine=refine, second_pass=second_pass,
                                limit=SPEED_IMAGES)
    return counts["done"] / (time.perf_counter() - t0), counts


def warm_pool(jobs: int) -> None:
    """Start the loky workers (and their imports) the way a preceding stage would."""
    from pgprep.parallel import run_jobs

    if jobs > 1:
        list(run_jobs(_import_pose, range(jobs), jobs=jobs))


def _import_pose(_):
    import ai_edge_litert.interpreter  # noqa: F401
    import cv2  # noqa: F401


def accuracy(root: Path, poses: Path, work: Path) -> dict:
    """The figures of tests/test_estimate.py's slow test, on every image, plus `pgprep filter`'s decisions."""
    import numpy as np
    import pandas as pd

    from pgprep import formats, skeleton
    from pgprep.filter import run_filter

    truth = pd.read_csv(root / "truth.csv")
    true_kp = skeleton.frame_columns(truth)
    found, errors, pairs = [], [], [0, 0]
    for i, row in truth.iterrows():
        people = formats.read_openpose_json(poses / formats.openpose_json_name(row.image.removeprefix("img/")))
        if row.kind == "two_people":
            pairs[0] += len(people) == 2
            pairs[1] += 1
        if row.kind != "person":
            continue
        t = true_kp[i]
        ok = skeleton.present(t)
        found.append(len(people) > 0)
        if people:
            both = ok & skeleton.present(people[0])
            errors.append(np.linalg.norm(people[0][both, :2] - t[both, :2], axis=1).mean() / np.ptp(t[ok, 1]))
    run_filter(root, poses, work, jobs=1, force=True)
    rejected = set(pd.read_csv(work / "rejects.csv")["image"])
    distractor = truth["kind"] != "person"
    is_rej = truth["image"].isin(rejected)
    return {"recall": float(np.mean(found)), "error": float(np.mean(errors)), "two": f"{pairs[0]}/{pairs[1]}",
            "caught": f"{int((is_rej & distractor).sum())}/{int(distractor.sum())}",
            "lost": f"{int((is_rej & ~distractor).sum())}/{int((~distractor).sum())}"}


def passes(root: Path, refine: str, second_pass: str) -> dict:
    """How often the doubt signals fire: refinement runs per landmark run, second passes per image."""
    from pgprep.estimate import BlazePose, list_images
    from pgprep.geometry import read_rgb

    model = BlazePose(refine=refine, second_pass=second_pass)
    images = list_images(root)
    for rel in images:
        model(read_rgb(root / "img" / rel))
    r = model.runs
    first_runs = r["landmarks"] - r["refined"]
    return {"refined": r["refined"] / max(1, first_runs), "second": r["second_pass"] / len(images),
            "det_per_image": r["detector"] / len(images), "lmk_per_image": r["landmarks"] / len(images)}


def run(quick: bool = True, tradeoff: bool = False, repeats: int = 3) -> list[dict]:
    from pgprep.synth import synthesize

    jobs = os.cpu_count() or 1
    names = list(VARIANTS) if tradeoff else list(QUICK_VARIANTS)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        root = tmp / "speed"
        synthesize(root, jobs=jobs, **SPEED_SET)
        warm_pool(jobs)
        for name in names:
            refine, second = VARIANTS[name]
            rates = [speed(root, tmp, refine, second, jobs)[0] for _ in range(repeats)]
            cold = [speed(root, tmp, refine, second, jobs, cold=True)[0] for _ in range(repeats if tradeoff else 1)]
            rows.append({"benchmark": f"pose BlazePose {name}, {jobs} jobs", "value": round(max(rates), 1),
                         "unit": "images/s",
                         "note": f"{SPEED_IMAGES} images 256x256 incl. model load, warm pool; best of {repeats} "
                                 f"(spread {min(rates):.1f}-{max(rates):.1f}); cold process {max(cold):.1f}"})
        if tradeoff:
            warm_pool(1)
            for jobs_, threads in ((1, 1), (1, 2), (jobs, 1), (jobs, 2)):
                rates = [speed(root, tmp, "auto", "auto", jobs_, threads)[0] for _ in range(repeats)]
                rows.append({"benchmark": f"pose default, {jobs_} workers x {threads} threads", "value":
                             round(max(rates), 1), "unit": "images/s",
                             "note": f"best of {repeats} (spread {min(rates):.1f}-{max(rates):.1f})"})
        for set_name, spec in ACCURACY_SETS.items():
            if quick and not tradeoff and set_name != "seed 5":
                continue
            aroot = tmp / set_name.replace(" ", "")
            synthesize(aroot, jobs=jobs, **spec)
            for name in names:
                refine, second = VARIANTS[name]
                poses = tmp / f"poses-{set_name}-{refine}-{second}".replace(" ", "")
                from pgprep.estimate import estimate_poses

                estimate_poses(aroot, poses, jobs=jobs, refine=refine, second_pass=second)
                a = accuracy(aroot, poses, tmp / "work")
                p = passes(aroot, refine, second) if tradeoff else None
                fired = (f"; refined {p['refined']:.1%} of landmark runs, second pass on {p['second']:.1%}"
                         f" of images, {p['det_per_image']:.2f} detector + {p['lmk_per_image']:.2f} landmark"
                         f" runs/image" if p else "")
                rows.append({"benchmark": f"pose accuracy {set_name}, {name}", "value": round(a["error"], 4),
                             "unit": "joint err",
                             "note": f"person recall {a['recall']:.3f}, two-person as two {a['two']}, filter "
                                     f"rejects {a['caught']} distractors and {a['lost']} persons{fired}"})
    return rows


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from pgprep.cliutil import format_table

    res = run(quick="--full" not in sys.argv, tradeoff="--tradeoff" in sys.argv)
    print(format_table([[r["benchmark"], r["value"], r["unit"], r["note"]] for r in res],
                       ["benchmark", "value", "unit", "note"]))
