"""`pgprep pose` (BlazePose): images/s on 2 cores and, per variant of the doubt-driven passes,
every accuracy figure we have, on synthetic sets (docs/pose.md has the table and its reading).

    python benchmarks/bench_pose.py               # quick: speed of the default and of the old
                                                  # behaviour on the 60-image set + accuracy of both
    python benchmarks/bench_pose.py --tradeoff    # all variants (refine x second pass, threads
                                                  # x workers), speed repeated, accuracy table
    ... --speed-only | --accuracy-only            # one half of it

Speed set: the first 60 images (sorted) of `synthesize(items=150, seed=0, size=256)`, the set
of benchmarks/RESULTS.md since issue 9. Times include model load: "warm pool" runs after a
loky pool of the same size exists (as bench_filter measured it before issue 20, after the
filter had started the workers), "cold" is a fresh `python -m pgprep pose` process (Python
start, imports, worker start-up, model load). Accuracy sets: `--items 80 --seed 5` (335
images), `--items 60 --seed 0` (259) and the hard cases `--items 120 --seed 3 --hard-cases
0.5` (long gowns, knee dresses, frames cut just above the knees), 256 px: person recall and
mean joint error (of the true body height) on `person` images, two-person images found as
two, and the decisions of `pgprep filter` (default rules) against the truth: distractors
(not a single complete person) rejected, good images rejected.
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
ACCURACY_SETS = {"seed 5": {"items": 80, "seed": 5, "size": 256}, "seed 0": {"items": 60, "seed": 0, "size": 256},
                 "hard": {"items": 120, "seed": 3, "size": 256, "hard_cases": 0.5}}  # benchmarks/filter_hard_cases.py
VARIANTS = {  # name: (refine, second_pass)
    "default: refine auto, second pass auto": ("auto", "auto"),
    "old (0.1.0): always, always": ("always", "always"),
    "refine never, second auto": ("never", "auto"),
    "refine auto, second never": ("auto", "never"),
    "never, never": ("never", "never"),
}
QUICK_VARIANTS = ("default: refine auto, second pass auto", "old (0.1.0): always, always")


def speed(root: Path, tmp: Path, refine: str, second_pass: str, jobs: int, threads: int = 1,
          cold: bool = False, backend: str = "loky") -> tuple[float, dict]:
    """images/s of one `pgprep pose` run on the first SPEED_IMAGES images, model load included;
    counts["cpu_s"]: the CPU seconds of a cold run (the process and its workers) or of a
    one-job run (in this process); not measurable for warm loky workers, which outlive the call."""
    import resource
    import shutil

    from pgprep.estimate import estimate_poses

    out = tmp / f"speed-{refine}-{second_pass}-{jobs}-{threads}-{cold}-{backend}"
    shutil.rmtree(out, ignore_errors=True)
    who = resource.RUSAGE_CHILDREN if cold else resource.RUSAGE_SELF
    cpu0, t0 = resource.getrusage(who), time.perf_counter()
    if cold:
        subprocess.run([sys.executable, "-m", "pgprep", "pose", str(root), "-o", str(out), "--jobs", str(jobs),
                        "--threads", str(threads), "--refine", refine, "--second-pass", second_pass,
                        "--backend", backend, "--limit", str(SPEED_IMAGES)], check=True, capture_output=True)
        counts = {"done": SPEED_IMAGES}
    else:
        counts = estimate_poses(root, out, jobs=jobs, threads=threads, refine=refine, second_pass=second_pass,
                                backend=backend, limit=SPEED_IMAGES)
    wall, cpu1 = time.perf_counter() - t0, resource.getrusage(who)
    if cold or jobs == 1:
        counts["cpu_s"] = cpu1.ru_utime - cpu0.ru_utime + cpu1.ru_stime - cpu0.ru_stime
    return counts["done"] / wall, counts


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
    distractor = ~((truth["complete"] == 1) & (truth["persons"] == 1))  # long gowns, knee dresses are good
    is_rej = truth["image"].isin(rejected)
    return {"recall": float(np.mean(found)), "error": float(np.mean(errors)), "two": f"{pairs[0]}/{pairs[1]}",
            "caught": f"{int((is_rej & distractor).sum())}/{int(distractor.sum())}",
            "lost": f"{int((is_rej & ~distractor).sum())}/{int((~distractor).sum())}"}


def passes(root: Path, refine: str, second_pass: str) -> dict:
    """How often the doubt signals fire: refinement runs per first landmark run, second passes
    per image, model runs per image; and per truth kind (`by_kind`: images, % with a
    refinement run, % with a second pass) for the "when it triggers" table of docs/pose.md."""
    import pandas as pd

    from pgprep.estimate import BlazePose
    from pgprep.geometry import read_rgb

    model = BlazePose(refine=refine, second_pass=second_pass)
    truth = pd.read_csv(root / "truth.csv")
    by_kind: dict[str, list[int]] = {}
    for image, kind in zip(truth["image"], truth["kind"], strict=True):
        before = dict(model.runs)
        model(read_rgb(root / image))
        k = by_kind.setdefault(kind, [0, 0, 0])
        k[0] += 1
        k[1] += model.runs["refined"] > before["refined"]
        k[2] += model.runs["second_pass"] > before["second_pass"]
    r, n = model.runs, len(truth)
    return {"refined": r["refined"] / max(1, r["landmarks"] - r["refined"]), "second": r["second_pass"] / n,
            "det_per_image": r["detector"] / n, "lmk_per_image": r["landmarks"] / n,
            "by_kind": {k: (v[0], v[1] / v[0], v[2] / v[0]) for k, v in by_kind.items()}}


def run(quick: bool = True, tradeoff: bool = False, repeats: int = 3, speed_rows: bool = True,
        accuracy_rows: bool = True) -> list[dict]:
    from pgprep.synth import synthesize

    jobs = os.cpu_count() or 1
    names = list(VARIANTS) if tradeoff else list(QUICK_VARIANTS)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        root = tmp / "speed"
        synthesize(root, jobs=jobs, **SPEED_SET)
        warm_pool(jobs)
        rates, cold, one = {}, {}, {}
        for _ in range(repeats if speed_rows else 0):  # interleaved, so that a burst of load elsewhere hits every variant
            for name in names:
                refine, second = VARIANTS[name]
                rates.setdefault(name, []).append(speed(root, tmp, refine, second, jobs))
                cold.setdefault(name, []).append(speed(root, tmp, refine, second, jobs, cold=True))
                one.setdefault(name, []).append(speed(root, tmp, refine, second, 1))
        for name in names if speed_rows else ():
            cpu_one = min(x[1]["cpu_s"] for x in one[name])
            cpu_cold = min(x[1]["cpu_s"] for x in cold[name])
            r, c = [x[0] for x in rates[name]], [x[0] for x in cold[name]]
            # CPU time is what the other sessions' load inflates least: images per CPU-second x cores
            # bounds what free cores would do (perfect parallelism)
            projected = (f"; 1 job in-process: best {max(x[0] for x in one[name]):.1f}, CPU {cpu_one:.2f} s = "
                         f"{jobs * SPEED_IMAGES / cpu_one:.0f} images/s on {jobs} free cores")
            rows.append({"benchmark": f"pose BlazePose {name}, {jobs} jobs", "value": round(max(r), 1),
                         "unit": "images/s",
                         "note": f"{SPEED_IMAGES} images 256x256 incl. model load; best of {len(r)} "
                                 f"(spread {min(r):.1f}-{max(r):.1f}){projected}; cold `pgprep pose` process: best "
                                 f"{max(c):.1f} (spread {min(c):.1f}-{max(c):.1f}), CPU {cpu_cold:.2f} s = "
                                 f"{jobs * SPEED_IMAGES / cpu_cold:.0f} images/s on {jobs} free cores"})
        if tradeoff and speed_rows:
            grid = [("loky", 1, 1), ("loky", 1, 2), ("loky", jobs, 1), ("loky", jobs, 2)]
            rates = {}
            for _ in range(repeats):
                for backend, jobs_, threads in grid:
                    rates.setdefault((backend, jobs_, threads), []).append(
                        speed(root, tmp, "auto", "auto", jobs_, threads, backend=backend)[0])
            for (backend, jobs_, threads), r in rates.items():
                rows.append({"benchmark": f"pose default, {backend}: {jobs_} workers x {threads} interpreter threads",
                             "value": round(max(r), 1), "unit": "images/s",
                             "note": f"best of {len(r)} (spread {min(r):.1f}-{max(r):.1f})"})
        for set_name, spec in ACCURACY_SETS.items() if accuracy_rows else ():
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
                p = passes(aroot, refine, second) if tradeoff or not quick else None
                fired = (f"; refined {p['refined']:.1%} of landmark runs, second pass on {p['second']:.1%}"
                         f" of images, {p['det_per_image']:.2f} detector + {p['lmk_per_image']:.2f} landmark"
                         f" runs/image; by kind (images, refined, second pass): "
                         + ", ".join(f"{k} {n} {a:.0%} {b:.0%}" for k, (n, a, b) in p["by_kind"].items())
                         if p else "")
                rows.append({"benchmark": f"pose accuracy {set_name}, {name}", "value": round(a["error"], 4),
                             "unit": "joint err",
                             "note": f"person recall {a['recall']:.3f}, two-person as two {a['two']}, filter "
                                     f"rejects {a['caught']} distractors and {a['lost']} persons{fired}"})
    return rows


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from pgprep.cliutil import format_table

    res = run(quick="--full" not in sys.argv, tradeoff="--tradeoff" in sys.argv,
              speed_rows="--accuracy-only" not in sys.argv, accuracy_rows="--speed-only" not in sys.argv)
    print(format_table([[r["benchmark"], r["value"], r["unit"], r["note"]] for r in res],
                       ["benchmark", "value", "unit", "note"]))
