"""A synthetic Market-1501: 128x64 pedestrian boxes in the release's layout and names.

    ROOT/bounding_box_train/0003_c2s1_004215_02.jpg   train identities
    ROOT/bounding_box_test/...                        test identities, junk (-1_...), distractors (0000_...)
    ROOT/query/0004_c1s3_001120_00.jpg                a query box (box 00) per test identity and camera
    ROOT/pose/openpose/<folder>/<stem>_keypoints.json detector-like COCO-18 keypoints
    ROOT/pose/annotations.csv, pose/market-annotation-{train,test}.csv   PATN format, bare names
    ROOT/truth.csv, ROOT/truth/<folder>/<stem>.png    ground truth, silhouettes

People are the DeepFashion-shaped set's (pgprep.synth body, clothing, render and the scene's
drawing and detector model), drawn into a 128x128 canvas whose centre 64 columns are the box.
What makes it Market-like is here: six cameras, each with its own street (walls, windows,
pavement, clutter) and lighting (brightness, colour cast, gamma), 2-6 cameras per identity
with one walking direction per camera track, boxes that cut limbs, a second pedestrian now
and then, low resolution (down- and up-sampling), blur, sensor noise and strong JPEG.
Deterministic per (seed, identity), like the DeepFashion-shaped set.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from pgprep import market, skeleton
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
from pgprep.errors import PgkitError
from pgprep.formats import openpose_json_name, write_openpose_json, write_patn_csv
from pgprep.geometry import encode_jpeg, encode_png
from pgprep.parallel import default_jobs, run_jobs
from pgprep.synth.body import P, View, joints3d, sample_body, sample_pose
from pgprep.synth.clothing import sample_look
from pgprep.synth.scene import _draw, _extent, detect, supersampling
from pgprep.synth.writer import (
    ANNOTATIONS,
    OPENPOSE_DIR,
    STAGE,
    TRUTH,
    TRUTH_DIR,
    _check_root,
    item_rng,
)

GENERATOR_VERSION = 1
H, W = market.IMAGE_SIZE
S = H                    # the shared renderer draws square frames: the box is its centre columns
X0 = (S - W) // 2
CAMERAS = 6
CAMERAS_PER_ID = ((2, 3, 4, 5, 6), (0.35, 0.3, 0.2, 0.1, 0.05))
KIND_RATE = {"two_people": 0.04, "cut_off": 0.04}   # of an identity's boxes
JUNK_PER_ID, DISTRACTORS_PER_ID = 0.3, 0.4          # extra -1 / 0000 boxes per test identity
PATN_FILES = {"train": "pose/market-annotation-train.csv", "test": "pose/market-annotation-test.csv"}


# ---------------------------------------------------------------- cameras and streets

def camera(seed: int, cam: int) -> dict:
    """One camera's street and light, the same for every identity it sees."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 1501, cam]))
    u = rng.uniform
    return {"wall": np.full(3, u(70, 190)) + rng.normal(0, 18, 3), "ground": np.full(3, u(70, 150)) + rng.normal(0, 8, 3),
            "horizon": u(0.35, 0.65), "window": rng.uniform(20, 120, 3), "period": u(14, 30),
            "gain": u(0.65, 1.25), "cast": 1 + rng.normal(0, 0.08, 3), "gamma": u(0.8, 1.25),
            "noise": u(2, 6), "low_res": (u(0.4, 0.55), u(0.6, 0.85)), "blur": u(0.2, 0.8),
            "quality": int(rng.integers(70, 90))}


def street(rng: np.random.Generator, cam: dict) -> np.ndarray:
    """(H, W, 3) float32 street behind a pedestrian: wall with windows, pavement, clutter."""
    out = np.empty((H, W, 3), np.float32)
    hy = int(cam["horizon"] * H + rng.uniform(-6, 6))
    out[:hy] = cam["wall"] * rng.uniform(0.9, 1.1)
    yy = np.arange(H - hy, dtype=np.float32)[:, None, None] / max(1, H - hy)
    out[hy:] = cam["ground"] * (0.85 + 0.3 * yy)
    off = rng.uniform(0, cam["period"])
    x = off
    while x < W:  # windows / doors / shop fronts
        w = cam["period"] * rng.uniform(0.35, 0.6)
        y0 = rng.uniform(0, max(1, hy - 30))
        cv2.rectangle(out, (int(x), int(y0)), (int(x + w), int(min(hy, y0 + rng.uniform(15, 40)))),
                      tuple(float(v) for v in cam["window"] * rng.uniform(0.8, 1.2)), -1)
        x += cam["period"]
    cv2.line(out, (0, hy), (W, hy + int(rng.uniform(-4, 4))), tuple(float(v) for v in cam["ground"] * 0.6), 1)
    for _ in range(int(rng.integers(2, 7))):  # clutter: bins, bikes, bags, poles, parked things
        c = tuple(float(v) for v in rng.uniform(20, 235, 3))
        x0, y0 = rng.uniform(-10, W), rng.uniform(hy - 20, H)
        if rng.random() < 0.5:
            cv2.rectangle(out, (int(x0), int(y0)), (int(x0 + rng.uniform(4, 22)), int(y0 + rng.uniform(4, 30))), c, -1)
        elif rng.random() < 0.5:
            cv2.ellipse(out, (int(x0), int(y0)), (int(rng.uniform(3, 12)), int(rng.uniform(3, 9))), 0, 0, 360, c, -1)
        else:
            cv2.line(out, (int(x0), 0), (int(x0 + rng.uniform(-3, 3)), H), c, int(rng.integers(1, 4)))
    return cv2.GaussianBlur(out, (0, 0), 0.8)


def develop(rng: np.random.Generator, img: np.ndarray, cam: dict, light: float) -> np.ndarray:
    """Camera look: exposure, colour cast and gamma, low resolution, blur, noise -> uint8."""
    x = np.clip(img * np.float32(cam["gain"] * light) * cam["cast"].astype(np.float32), 0, 255) / 255
    x = np.power(x, np.float32(cam["gamma"])) * 255
    f = rng.uniform(*cam["low_res"])
    small = cv2.resize(x, (max(8, round(W * f)), max(16, round(H * f))), interpolation=cv2.INTER_AREA)
    x = cv2.resize(small, (W, H), interpolation=cv2.INTER_LINEAR)
    x = cv2.GaussianBlur(x, (0, 0), cam["blur"] * rng.uniform(0.7, 1.3))
    x += rng.normal(0, cam["noise"], x.shape).astype(np.float32)
    return cv2.convertScaleAbs(x)


# ---------------------------------------------------------------- one box

def _placed(rng, body, pose, kind: str) -> View:
    v0 = View(pose.yaw, pose.roll, origin_y=body.hip_y)
    unit = v0.project(joints3d(body, pose))
    x0, y0, x1, y1 = _extent(body, unit)
    mid_x = 0.5 * (unit[P["r_hip"], 0] + unit[P["l_hip"], 0])
    if kind == "cut_off":  # a detector box that ends at the thighs
        knee_y = min(unit[P["r_knee"], 1], unit[P["l_knee"], 1]) - y0
        s = max(rng.uniform(1.3, 1.6) * H / (y1 - y0), 1.05 * H / knee_y)
        top = rng.uniform(0.0, 0.05) * H
    elif kind == "fragment":  # junk: a box on part of a body
        s = rng.uniform(1.6, 2.6) * H / (y1 - y0)
        top = -rng.uniform(0.2, 0.9) * s * (y1 - y0) + 0.3 * H
    elif kind == "far":  # distractor: somebody small in the distance
        s = rng.uniform(0.3, 0.5) * H / (y1 - y0)
        top = rng.uniform(0.1, 0.5) * H
    else:  # a pedestrian box: the person spans most of the height, roughly centred
        s = rng.uniform(0.8, 0.95) * H / (y1 - y0)
        top = (H - s * (y1 - y0)) / 2 + rng.uniform(-0.03, 0.03) * H
    cx = S / 2 + rng.uniform(-0.08, 0.08) * W
    return v0.placed(s, cx - s * mid_x, top - s * y0)


def _compose(out: np.ndarray, sil: np.ndarray, drawn, value: int) -> np.ndarray:
    """Paint a drawn person (square-canvas coordinates) into the box; returns its coverage."""
    (r0, r1, c0, c1), rgb, alpha, _ = drawn
    a0, a1 = max(c0, X0), min(c1, X0 + W)
    cover = np.zeros((H, W), np.float32)
    if a1 <= a0 or r1 <= r0:
        return cover
    al = alpha[:, a0 - c0:a1 - c0]
    win = out[r0:r1, a0 - X0:a1 - X0]
    win *= (1.0 - al)[..., None]
    win += rgb[:, a0 - c0:a1 - c0]
    cover[r0:r1, a0 - X0:a1 - X0] = al
    sil[cover > 0.5] = value
    return cover


def _in_box(kp: np.ndarray) -> np.ndarray:
    return (kp[:, 0] >= 0) & (kp[:, 1] >= 0) & (kp[:, 0] <= W - 1) & (kp[:, 1] <= H - 1)


def _keypoints(rng, drawn, view: View, visible: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(truth, detection) in box coordinates; joints outside the box are missing."""
    pr = drawn[3]
    xy = pr[: skeleton.N_JOINTS, :2] - (X0, 0)
    truth = skeleton.empty()
    ok = _in_box(xy)
    truth[ok, :2], truth[ok, 2] = xy[ok], 1.0
    det = detect(rng, truth, pr[: skeleton.N_JOINTS, 2], view, S, visible)
    det[skeleton.present(det), :2] += rng.normal(0, 0.5, (int(skeleton.present(det).sum()), 2))  # low-res jitter
    det[~_in_box(det[:, :2]) | ~skeleton.present(det)] = (-1.0, -1.0, 0.0)
    return truth, det


def render_box(rng, cam: dict, light: float, kind: str, person=None, view_name: str = "front") -> dict:
    """One 128x64 box: image, silhouette, truth keypoints, detections, persons, complete."""
    k = supersampling(S)
    out = street(rng, cam)
    sil = np.zeros((H, W), np.uint8)
    truth, dets, persons = skeleton.empty(), [], 0
    if person is None and kind in ("fragment", "far"):
        look = sample_look(rng)
        person = (look, sample_body(rng, look.gender == "WOMEN"))
    if kind == "two_people":  # a second pedestrian beside and behind
        look2 = sample_look(rng)
        body2 = sample_body(rng, look2.gender == "WOMEN")
        pose2 = sample_pose(rng, str(rng.choice(["front", "back", "side", "additional"])))
        v2 = _placed(rng, body2, pose2, "person")
        v2 = v2.placed(v2.scale * rng.uniform(0.9, 1.02), v2.tx + rng.choice([-1, 1]) * rng.uniform(0.45, 0.7) * W,
                       v2.ty + rng.uniform(-4, 4))
        drawn2 = _draw(body2, look2, pose2, v2, S, k)
        _compose(out, sil, drawn2, 128)
    if person is not None and kind != "background":
        look, body = person
        pose = sample_pose(rng, view_name)
        view = _placed(rng, body, pose, kind)
        drawn = _draw(body, look, pose, view, S, k)
        cover = _compose(out, sil, drawn, 255)
        truth, det = _keypoints(rng, drawn, view)
        persons = int(cover.sum() > 0.03 * H * W)
        dets = [det] if skeleton.present(det).sum() else []
        if kind == "two_people":
            xy = drawn2[3][: skeleton.N_JOINTS, :2] - (X0, 0)
            ij = np.clip(np.rint(xy).astype(int), 0, (W - 1, H - 1))
            _, det2 = _keypoints(rng, drawn2, v2, cover[ij[:, 1], ij[:, 0]] < 0.5)
            persons += 1
            if skeleton.present(det2).sum():
                dets.append(det2)
    image = develop(rng, out, cam, light)
    complete = int(kind in ("person", "two_people", "far"))
    return {"image": image, "silhouette": sil, "truth": truth, "detections": dets, "persons": persons,
            "complete": complete}


# ---------------------------------------------------------------- identities

def identity_boxes(seed: int, index: int, split: str) -> list[dict]:
    """Every box of identity `index` (number index + 1): per camera a track with one walking
    direction, 1-3 boxes; a test identity also gets one query box in up to two cameras."""
    rng = item_rng(seed, 10_000 + index)
    look = sample_look(rng)
    body = sample_body(rng, female=look.gender == "WOMEN")
    ident = f"{index + 1:04d}"
    n_cams = int(rng.choice(CAMERAS_PER_ID[0], p=CAMERAS_PER_ID[1]))
    cams = sorted(rng.choice(np.arange(1, CAMERAS + 1), size=n_cams, replace=False).tolist())
    boxes = []
    folder = "bounding_box_train" if split == "train" else "bounding_box_test"
    for qi, c in enumerate(cams):
        cam = camera(seed, c)
        light = rng.uniform(0.85, 1.15)
        direction = str(rng.choice(["front", "back", "side", "additional"]))
        seq, frame = int(rng.integers(1, 7)), int(rng.integers(100, 9000))
        n = int(rng.integers(1, 4)) + (split == "test" and qi < 2)
        for j in range(n):
            frame += int(rng.integers(5, 60))
            r = rng.random()
            kind = "two_people" if r < KIND_RATE["two_people"] else \
                "cut_off" if r < KIND_RATE["two_people"] + KIND_RATE["cut_off"] else "person"
            query = split == "test" and qi < 2 and j == n - 1
            where, box = ("query", 0) if query else (folder, int(rng.integers(1, 9)))
            shot = render_box(rng, cam, light, "person" if query else kind, (look, body), direction)
            boxes.append({"name": f"{where}/{ident}_c{c}s{seq}_{frame:06d}_{box:02d}.jpg", "item_id": ident,
                          "camera": c, "view": direction, "kind": "person" if query else kind, **shot})
    return boxes


def extra_boxes(seed: int, index: int, identity: str) -> list[dict]:
    """One junk (-1) or distractor (0000) box of bounding_box_test."""
    rng = item_rng(seed, 20_000 + index + (0 if identity == market.JUNK else 50_000))
    c = int(rng.integers(1, CAMERAS + 1))
    kind = ("fragment" if rng.random() < 0.6 else "background") if identity == market.JUNK else \
        ("far" if rng.random() < 0.4 else "background")
    shot = render_box(rng, camera(seed, c), rng.uniform(0.85, 1.15), kind,
                      view_name=str(rng.choice(["front", "back", "side"])))
    name = f"bounding_box_test/{identity}_c{c}s{int(rng.integers(1, 7))}_{int(rng.integers(0, 999_999)):06d}_" \
           f"{int(rng.integers(1, 9)):02d}.jpg"
    return [{"name": name, "item_id": identity, "camera": c, "view": "", "kind": kind, **shot}]


def _write(root: Path, boxes: list[dict]) -> list[dict]:
    rows = []
    for b in boxes:
        stem = b["name"][: -len(".jpg")]
        write_bytes_atomic(root / b["name"], encode_jpeg(b.pop("image"), b.pop("quality", 85)))
        write_bytes_atomic(root / TRUTH_DIR / f"{stem}.png", encode_png(b.pop("silhouette")))
        write_openpose_json(root / OPENPOSE_DIR / openpose_json_name(b["name"]), b["detections"])
        rows.append({"image": b["name"], "item_id": b["item_id"], "camera": b["camera"], "view": b["view"],
                     "kind": b["kind"], "persons": b["persons"], "complete": b["complete"],
                     "silhouette": f"{TRUTH_DIR}/{stem}.png", "truth": b["truth"],
                     "detected": b["detections"][0] if b["detections"] else skeleton.empty()})
    return rows


def _render_chunk(task: tuple) -> list[dict]:
    root, seed, jobs = task
    rows = []
    for what, index, arg in jobs:
        if what == "id":
            boxes = identity_boxes(seed, index, arg)
        else:
            boxes = extra_boxes(seed, index, arg)
        for b in boxes:
            b["quality"] = camera(seed, b["camera"])["quality"]
        rows.extend(_write(Path(root), boxes))
    return rows


def _split(identities: int, seed: int) -> list[str]:
    """Half the identities train (at least one each side when there are two or more)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 1502]))
    n_train = max(1, identities // 2) if identities >= 2 else 1
    train = set(rng.permutation(identities)[:n_train].tolist())
    return ["train" if i in train else "test" for i in range(identities)]


def synthesize_market(root: str | os.PathLike, identities: int = 100, seed: int = 0,
                      jobs: int | None = None) -> dict:
    """Render a Market-1501-shaped synthetic set under `root` (see the module docstring)."""
    if identities < 2:
        raise PgkitError(None, f"--items (identities) must be at least 2 for Market, got {identities}")
    root = Path(root)
    options = {"kind": "market", "items": int(identities), "seed": int(seed), "size": [H, W],
               "generator": GENERATOR_VERSION}
    fp = fingerprint(options=options)
    outputs = [root / TRUTH, root / ANNOTATIONS, *(root / p for p in PATN_FILES.values())]
    if is_up_to_date(root, STAGE, fp, outputs):
        rec = json.loads((root / STAMP_DIR / f"{STAGE}.json").read_text())
        return {**rec.get("summary", {}), "root": str(root), "seconds": 0.0, "up_to_date": True}
    _check_root(root, options)
    t0 = time.perf_counter()
    write_json_atomic(root / STAMP_DIR / f"{STAGE}.started.json", {"stage": STAGE, "options": options})
    splits = _split(identities, seed)
    n_test = splits.count("test")
    work = [("id", i, s) for i, s in enumerate(splits)]
    work += [("extra", i, market.JUNK) for i in range(max(1, round(JUNK_PER_ID * n_test)))]
    work += [("extra", i, market.DISTRACTOR) for i in range(max(1, round(DISTRACTORS_PER_ID * n_test)))]
    n_jobs = jobs or default_jobs()
    chunk = max(1, min(25, -(-len(work) // (4 * n_jobs))))
    tasks = [(str(root), seed, work[a:a + chunk]) for a in range(0, len(work), chunk)]
    rows: list[dict] = []
    with progress(total=len(work), desc="synth market", unit="box set") as bar:
        for res, task in zip(run_jobs(_render_chunk, tasks, jobs=n_jobs), tasks, strict=True):
            rows.extend(res)
            bar.update(len(task[2]))
    frame = pd.DataFrame(rows).sort_values("image", kind="stable").reset_index(drop=True)
    truth_cols = pd.DataFrame([skeleton.to_columns(kp) for kp in frame["truth"]], index=frame.index)
    truth = pd.concat([frame[["image", "item_id", "camera", "view", "kind", "persons", "complete", "silhouette"]],
                       truth_cols], axis=1)
    write_csv_atomic(root / TRUTH, truth)
    name = frame["image"].map(lambda n: n.split("/", 1)[1])
    for split, folder in (("train", "bounding_box_train"), ("test", "bounding_box_test")):
        sel = frame["image"].str.startswith(folder + "/")
        write_patn_csv(root / PATN_FILES[split], dict(zip(name[sel], frame.loc[sel, "detected"], strict=True)))
    write_patn_csv(root / ANNOTATIONS, dict(zip(name, frame["detected"], strict=True)))
    folder = frame["image"].str.split("/").str[0]
    summary = {"kind": "market", "items": identities, "images": len(frame), "size": [H, W], "seed": seed,
               "train_items": splits.count("train"), "test_items": n_test,
               "folders": {f: int((folder == f).sum()) for f in market.FOLDERS},
               "junk": int((frame["item_id"] == market.JUNK).sum()),
               "distractors": int((frame["item_id"] == market.DISTRACTOR).sum()),
               "kinds": {k: int(v) for k, v in frame["kind"].value_counts().sort_index().items()}}
    mark_done(root, STAGE, fp, options=options, summary=summary)
    return {**summary, "root": str(root), "seconds": round(time.perf_counter() - t0, 2), "up_to_date": False}
