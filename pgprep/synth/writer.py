"""Write a synthetic DeepFashion In-shop tree: images, poses, partition and ground truth.

Each item is rendered from its own generator, seeded from (seed, item index) with numpy's
SeedSequence, so the bytes written do not depend on --jobs or on the order workers finish.
Files are written atomically; the partition, truth.csv and annotations.csv come last and
the stage stamp after them, so a killed run never looks complete.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from pgprep import skeleton
from pgprep.atomic import (
    STAMP_DIR,
    fingerprint,
    is_up_to_date,
    mark_done,
    write_bytes_atomic,
    write_csv_atomic,
    write_json_atomic,
)
from pgprep.cliutil import progress
from pgprep.deepfashion import PARTITION, flatten_name, write_partition
from pgprep.errors import PgkitError
from pgprep.formats import openpose_json_name, write_openpose_json, write_patn_csv
from pgprep.geometry import encode_jpeg, encode_png
from pgprep.parallel import default_jobs, run_jobs
from pgprep.synth.body import VIEW_NUMBER, sample_body
from pgprep.synth.clothing import sample_look
from pgprep.synth.render import sample_studio
from pgprep.synth.scene import KINDS, compose

STAGE = "synth"
GENERATOR_VERSION = 1  # bump when the rendering changes: reruns then redo the set
TRUTH = "truth.csv"
ANNOTATIONS = "pose/annotations.csv"
OPENPOSE_DIR = "pose/openpose"
TRUTH_DIR = "truth"
JPEG_QUALITY = 92
DISTRACTOR_RATE = {"two_people": 0.017, "cut_off": 0.017, "close_up": 0.016}
IMAGES_PER_ITEM = ((2, 3, 4, 5, 6), (0.12, 0.22, 0.28, 0.22, 0.16))
OTHER_VIEWS = ("side", "back", "full", "additional", "additional", "additional")
TRAIN_FRACTION = 0.5  # DeepFashion In-shop: 3,997 of 7,982 items are train
# --hard-cases F: a fraction F of the items wear a floor-length gown (every view `long_gown`,
# complete) or a knee-length dress (each view `knee_dress`, complete, or, half of them,
# `cut_knees`: the frame ends just above the knees, incomplete). Issue 20's two wrong decisions.
CUT_KNEES_SHARE = 0.5


def item_rng(seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index,)))


def item_views(rng: np.random.Generator) -> list[tuple[int, str]]:
    """(image number, view) per image of an item, DeepFashion-style: 1 front, 2 side, 3 back,
    4 full, 5.. additional."""
    n = int(rng.choice(IMAGES_PER_ITEM[0], p=IMAGES_PER_ITEM[1]))
    picked = sorted(rng.choice(len(OTHER_VIEWS), size=n - 1, replace=False))
    out, extra = [(1, "front")], 0
    for i in picked:
        v = OTHER_VIEWS[i]
        if v == "additional":
            out.append((VIEW_NUMBER["additional"] + extra, v))
            extra += 1
        else:
            out.append((VIEW_NUMBER[v], v))
    return sorted(out)


def _kind(rng: np.random.Generator) -> str:
    r = rng.random()
    for kind, p in DISTRACTOR_RATE.items():
        if r < p:
            return kind
        r -= p
    return "person"


def hard_look(rng: np.random.Generator, look, hard_cases: float):
    """(look, item kind): with probability `hard_cases` the item becomes a floor-length gown
    ("long_gown") or a knee-length dress ending above the knees ("knee_dress"), half each."""
    r = rng.random()
    if r >= hard_cases:
        return look, None
    gown = r < hard_cases / 2
    hem = rng.uniform(0.94, 0.99) if gown else rng.uniform(0.6, 0.68)  # knees are at ~0.71-0.73
    return dataclasses.replace(look, gender="WOMEN", category="Dresses", lower_kind="gown" if gown else "dress",
                               lower=look.upper, lower_hem=float(hem)), ("long_gown" if gown else "knee_dress")


def render_item(root: Path, seed: int, index: int, size: int, hard_cases: float = 0.0) -> list[dict]:
    """Render and write every image of item `index`; returns one row per image."""
    rng = item_rng(seed, index)
    look = sample_look(rng)
    hard = None
    if hard_cases > 0:  # (no draw otherwise: the default set stays byte-identical)
        look, hard = hard_look(rng, look, hard_cases)
    body = sample_body(rng, female=look.gender == "WOMEN")
    studio = sample_studio(rng)
    item_id = f"id_{index + 1:08d}"
    rows = []
    for number, view in item_views(rng):
        if hard == "knee_dress":
            kind = "cut_knees" if rng.random() < CUT_KNEES_SHARE else "knee_dress"
        else:
            kind = hard or _kind(rng)
        shot = compose(rng, body, look, view, size, kind, studio)
        tree = f"{look.gender}/{look.category}/{item_id}/01_{number}_{view}"
        image = f"img/{tree}.jpg"
        silhouette = f"{TRUTH_DIR}/{tree}.png"
        write_bytes_atomic(root / image, encode_jpeg(shot.image, JPEG_QUALITY))
        write_bytes_atomic(root / silhouette, encode_png(shot.silhouette))
        write_openpose_json(root / OPENPOSE_DIR / openpose_json_name(tree + ".jpg"), shot.detections)
        rows.append({"image": image, "item_id": item_id, "view": view, "kind": kind,
                     "persons": shot.persons, "complete": shot.complete, "silhouette": silhouette,
                     "truth": shot.truth, "detected": shot.detections[0]})
    return rows


def _render_chunk(task: tuple) -> list[dict]:
    root, seed, size, indices, hard_cases = task
    out = []
    for i in indices:
        out.extend(render_item(Path(root), seed, i, size, hard_cases))
    return out


def assign_partition(rows: pd.DataFrame, seed: int) -> pd.Series:
    """train / query / gallery by item: about half the items train; each test item's images
    are split between query and gallery (both sides when it has two or more)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 1]))
    items = sorted(rows["item_id"].unique())
    n_train = max(1, int(round(TRAIN_FRACTION * len(items))))  # a lone item trains
    if len(items) >= 2:
        n_train = min(n_train, len(items) - 1)
    train = set(np.asarray(items)[rng.permutation(len(items))[:n_train]].tolist())
    status = pd.Series("train", index=rows.index, dtype=object)
    for item, idx in rows.groupby("item_id", sort=True).groups.items():
        if item in train:
            continue
        idx = list(idx)
        order = rng.permutation(len(idx))
        for rank, j in enumerate(order):
            status[idx[j]] = ("query" if rank == 0 else "gallery" if rank == 1
                              else ("query" if rng.random() < 0.5 else "gallery"))
    return status


def _options(items: int, seed: int, size: int, hard_cases: float = 0.0) -> dict:
    opts = {"items": int(items), "seed": int(seed), "size": int(size), "generator": GENERATOR_VERSION}
    if hard_cases:  # absent at 0: sets made before the option stay up to date
        opts["hard_cases"] = float(hard_cases)
    return opts


def _check_root(root: Path, options: dict) -> None:
    """Refuse a non-empty ROOT unless it holds (part of) a synth run with the same options."""
    if root.exists() and not root.is_dir():
        raise PgkitError(root, "exists and is not a directory")
    if not root.exists() or not any(root.iterdir()):
        return
    for name in (f"{STAGE}.json", f"{STAGE}.started.json"):
        try:
            rec = json.loads((root / STAMP_DIR / name).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            continue
        if rec.get("options") == options:
            return
        raise PgkitError(root, f"holds a synthetic set made with other options {rec.get('options')}; "
                         f"asked for {options}. Use an empty directory (or delete this one)")
    raise PgkitError(root, "is not empty and is not a `pgprep synth` output; refusing to write into it")


def synthesize(root: str | os.PathLike, items: int = 200, seed: int = 0, size: int = 256,
               jobs: int | None = None, hard_cases: float = 0.0) -> dict:
    """Render a DeepFashion In-shop-shaped synthetic set under `root` (see docs/synth.md).

    `hard_cases`: fraction of items rendered as the completeness rule's hard cases (gowns,
    knee-length dresses, frames cut just above the knees; `hard_look`); 0 = none.

    Returns a summary: root, items, images, distractors (count), kinds (count per kind),
    train_items, test_items, query, gallery, seconds, up_to_date.
    """
    if items < 1:
        raise PgkitError(None, f"--items must be at least 1, got {items}")
    if size < 32:
        raise PgkitError(None, f"--size must be at least 32 pixels, got {size}")
    if not 0 <= hard_cases <= 1:
        raise PgkitError(None, f"--hard-cases must be in [0, 1], got {hard_cases}")
    root = Path(root)
    options = _options(items, seed, size, hard_cases)
    fp = fingerprint(options=options)
    outputs = [root / PARTITION, root / TRUTH, root / ANNOTATIONS]
    if is_up_to_date(root, STAGE, fp, outputs):
        rec = json.loads((root / STAMP_DIR / f"{STAGE}.json").read_text())
        return {**rec.get("summary", {}), "root": str(root), "seconds": 0.0, "up_to_date": True}
    _check_root(root, options)
    t0 = time.perf_counter()
    write_json_atomic(root / STAMP_DIR / f"{STAGE}.started.json", {"stage": STAGE, "options": options})
    n_jobs = jobs or default_jobs()
    chunk = max(1, min(25, -(-items // (4 * n_jobs))))
    tasks = [(str(root), seed, size, list(range(a, min(items, a + chunk))), float(hard_cases))
             for a in range(0, items, chunk)]
    rows: list[dict] = []
    with progress(total=items, desc="synth", unit="item") as bar:
        for res in run_jobs(_render_chunk, tasks, jobs=n_jobs):
            rows.extend(res)
            bar.update(len({r["item_id"] for r in res}))
    frame = pd.DataFrame(rows)
    frame["status"] = assign_partition(frame, seed)
    truth_cols = pd.DataFrame([skeleton.to_columns(kp) for kp in frame["truth"]], index=frame.index)
    truth = pd.concat([frame[["image", "item_id", "view", "kind", "persons", "complete", "silhouette"]],
                       truth_cols], axis=1)
    write_csv_atomic(root / TRUTH, truth)
    write_patn_csv(root / ANNOTATIONS, {flatten_name(r.image): r.detected for r in frame.itertuples()})
    write_partition(root, frame[["image", "item_id", "status"]])
    counts = frame["kind"].value_counts()
    summary = {
        "items": items, "images": len(frame),
        "distractors": int(((frame["complete"] == 0) | (frame["persons"] != 1)).sum()),
        "kinds": {k: int(counts.get(k, 0)) for k in KINDS
                  if k in ("person", "two_people", "cut_off", "close_up") or counts.get(k, 0)},
        "train_items": int(frame.loc[frame["status"] == "train", "item_id"].nunique()),
        "test_items": int(frame.loc[frame["status"] != "train", "item_id"].nunique()),
        "query": int((frame["status"] == "query").sum()),
        "gallery": int((frame["status"] == "gallery").sum()),
        "size": size, "seed": seed,
    }
    mark_done(root, STAGE, fp, options=options, summary=summary)  # no timings: stamps are reproducible
    return {**summary, "root": str(root), "seconds": round(time.perf_counter() - t0, 2),
            "up_to_date": False}
