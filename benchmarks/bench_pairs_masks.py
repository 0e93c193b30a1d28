"""Pairs build time, masks/s, and the vectorised pose-map renderer against a naive loop.

    python benchmarks/bench_pairs_masks.py           # quick: 200 items
    python benchmarks/bench_pairs_masks.py --full    # 2,000 items (about 13,000 images)

The manifest is DeepFashion-shaped (256x256, 6-7 images per item like In-shop's 52,712 images
of 7,982 items, 80% of the items on the train side) with random standing poses; pairs and
masks read nothing but images.csv, so no images are rendered.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pgprep import skeleton as sk  # noqa: E402
from pgprep.geometry import pose_maps  # noqa: E402

SIZE = 256


def random_pose(rng: np.random.Generator) -> np.ndarray:
    """A standing person at a random place, scale and limb swing in a 256x256 frame."""
    s = rng.uniform(0.8, 1.2)
    cx, top = rng.uniform(100, 156), rng.uniform(10, 30)
    kp = sk.empty()

    def put(name, x, y):
        kp[sk.J[name]] = (x, y, rng.uniform(0.3, 1.0))

    put("nose", cx, top + 16 * s)
    put("neck", cx, top + 40 * s)
    for side, d in (("r", -1), ("l", 1)):
        sx = cx + d * 24 * s
        put(f"{side}_shoulder", sx, top + 40 * s)
        a = rng.uniform(0.1, 1.2)
        ex, ey = sx + d * 32 * s * np.sin(a), top + 40 * s + 32 * s * np.cos(a)
        put(f"{side}_elbow", ex, ey)
        b = a + rng.uniform(-0.6, 0.6)
        put(f"{side}_wrist", ex + d * 30 * s * np.sin(b), ey + 30 * s * np.cos(b))
        hx = cx + d * 16 * s
        put(f"{side}_hip", hx, top + 120 * s)
        k = rng.uniform(-0.1, 0.35)
        kx, ky = hx + d * 40 * s * np.sin(k), top + 120 * s + 40 * s * np.cos(k)
        put(f"{side}_knee", kx, min(ky, 250))
        put(f"{side}_ankle", kx, min(ky + 40 * s, 254))
        put(f"{side}_eye", cx + d * 6 * s, top + 12 * s)
        put(f"{side}_ear", cx + d * 12 * s, top + 16 * s)
    return kp


def make_work(work: Path, items: int, seed: int = 0) -> int:
    rng = np.random.default_rng(seed)
    work.mkdir(parents=True, exist_ok=True)
    (work / "work.json").write_text(json.dumps({"root": str(work), "image_size": [SIZE, SIZE]}))
    recs = []
    for i in range(items):
        item = f"id_{i:08d}"
        split = "train" if rng.random() < 0.8 else "test"
        for k in range(int(rng.integers(4, 10))):
            recs.append({"image": f"img/WOMEN/Dresses/{item}/{k + 1:02d}_1_front.jpg", "item_id": item,
                         "split": split, "status": "train" if split == "train" else "query",
                         "width": SIZE, "height": SIZE, "persons": 1, **sk.to_columns(random_pose(rng))})
    pd.DataFrame(recs).to_csv(work / "images.csv", index=False)
    return len(recs)


def naive_pose_maps(kp: np.ndarray, size, kind: str, radius=4.0, sigma=6.0) -> np.ndarray:
    """What public pose-transfer code does: a full-image numpy pass per joint."""
    h, w = size
    xx, yy = np.meshgrid(np.arange(w), np.arange(h))
    out = np.full((18, h, w), -1.0, np.float32)
    for j in range(18):
        if kp[j, 2] <= 0:
            continue
        d2 = (yy - kp[j, 1]) ** 2 + (xx - kp[j, 0]) ** 2
        if kind == "disk":
            out[j] = np.where(d2 <= radius * radius, 1.0, -1.0)
        else:
            out[j] = 2.0 * np.exp(-d2 / (2 * sigma * sigma)) - 1.0
    return out


def _best_time(fn, repeat: int, number: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - t) / number)
    return best


def run(quick: bool) -> list[dict]:
    from pgprep.masks import run_masks
    from pgprep.pairs import run_pairs

    os.environ.setdefault("PGKIT_NO_PROGRESS", "1")
    items = 200 if quick else 2000
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "work"
        n_images = make_work(work, items)
        t = time.perf_counter()
        s = run_pairs(work, seed=0)
        t_pairs = time.perf_counter() - t
        n_pairs = s["train"]["pairs"] + s["test"]["pairs"]
        rows.append({"benchmark": "pairs build", "value": round(t_pairs, 3), "unit": "s",
                     "note": f"{items} items, {n_images} images -> {n_pairs} pairs (flips on)"})
        for jobs in (1, None):
            t = time.perf_counter()
            run_masks(work, jobs=jobs, force=True)
            dt = time.perf_counter() - t
            rows.append({"benchmark": f"masks, jobs={jobs or os.cpu_count()}",
                         "value": round(n_images / dt, 1), "unit": "masks/s",
                         "note": f"{n_images} masks 256x256, PNG written"})
    rng = np.random.default_rng(1)
    kp = random_pose(rng)
    kp[sk.J["l_ear"]] = (-1, -1, 0)
    for kind in ("disk", "gaussian"):
        np.testing.assert_allclose(pose_maps(kp, (SIZE, SIZE), kind), naive_pose_maps(kp, (SIZE, SIZE), kind),
                                   atol=1e-5)
        fast = _best_time(lambda k=kind: pose_maps(kp, (SIZE, SIZE), k), 5, 20 if quick else 100)
        slow = _best_time(lambda k=kind: naive_pose_maps(kp, (SIZE, SIZE), k), 3, 3 if quick else 10)
        rows.append({"benchmark": f"pose map {kind} 18x256x256", "value": round(fast * 1e3, 3), "unit": "ms",
                     "note": f"naive per-joint loop {slow * 1e3:.2f} ms"})
        rows.append({"benchmark": f"pose map {kind} speed-up", "value": round(slow / fast, 1), "unit": "x",
                     "note": "vectorised vs naive per-joint numpy loop (goal >= 10x)"})
        batch = np.stack([kp] * 16)
        fb = _best_time(lambda k=kind, b=batch: pose_maps(b, (SIZE, SIZE), k), 3, 3 if quick else 10)
        rows.append({"benchmark": f"pose map {kind} batch 16", "value": round(fb / 16 * 1e3, 3),
                     "unit": "ms/map", "note": "(16, 18, 256, 256) in one call"})
    return rows


if __name__ == "__main__":
    from pgprep.cliutil import format_table

    result = run(quick="--full" not in sys.argv)
    print(format_table([[r["benchmark"], r["value"], r["unit"], r["note"]] for r in result],
                       ["benchmark", "value", "unit", "note"]))
