"""Market-1501 as released: folders, file names, junk identities, and the settings PG² and
PATN used to pair, mask and pose-map it (docs/market.md has the sources, file:line).

    ROOT/bounding_box_train/0002_c1s1_000451_03.jpg   identity 0002, camera 1, sequence 1,
    ROOT/bounding_box_test/...                        frame 000451, box 03 (128x64 JPEGs)
    ROOT/query/0001_c1s1_001051_00.jpg                query boxes are hand-drawn: box 00

Identity `-1` marks junk detections and `0000` distractors (not people to pair): they are
rejected with that reason. bounding_box_train is the train side; bounding_box_test and query
form the test side (their identities are the test identities). The identity is the item id.
"""

from __future__ import annotations

import itertools
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from pgprep import skeleton
from pgprep.errors import PgkitError

DATASET = "market"
# folder -> (split, status as in DeepFashion's partition: train / gallery / query)
FOLDERS = {"bounding_box_train": ("train", "train"), "bounding_box_test": ("test", "gallery"),
           "query": ("test", "query")}
IMAGE_SIZE = (128, 64)  # (H, W) of every Market-1501 box
JUNK, DISTRACTOR = "-1", "0000"
NAME_RE = re.compile(r"^(-1|\d{4})_c(\d)s(\d+)_(\d{6})_(\d{2})\.(jpe?g|png)$", re.IGNORECASE)
NAME_FORMAT = "IIII_cCsS_FFFFFF_BB.jpg (identity, camera, sequence, frame, box)"

# `pgprep filter` thresholds that differ from DeepFashion's (filter.Thresholds) for 128x64
# pedestrian boxes: a front-facing walker's shoulders span ~40 % of the 64-px width, which the
# catalogue close-up rule (0.35) would reject; a Market box is never a close-up.
THRESHOLDS = {"max_shoulder_frac": 0.8}

# Body masks and pose maps: PG²'s Market conversion draws both with radius 4 (and the mask's
# 5x5 dilation + erosion) at 128x64 itself, unscaled (datasets/convert_market.py:477-480,
# 279-280); pgkit scales its 256-px defaults by the height (128 px: radius 2) otherwise.
MASK_SETTINGS = {
    "pg2-deepfashion": {"radius": 4, "close": 5, "scale": True},   # convert_DF.py:401, 242-243 at 256 px
    "pg2-market": {"radius": 4, "close": 5, "scale": False},       # convert_market.py:479, 279-280 at 128x64
}
POSE_RADIUS = 4.0  # convert_market.py:477 _getSparsePose(..., radius=4); trainer.py:434 reads pose_sparse_r4

# Pair rules (`pgprep pairs --rule`): "pgkit" = pgkit's own (every ordered pair of an item with
# a pose-distance filter, pairs.py); the two below reproduce the published scripts.
RULES = ("auto", "pgkit", "pg2-market", "patn")
PG2_TEST_PAIRS = 12_800   # convert_market.py:966 tf_record_pair_num=12800 (= trainer.py test(): 400 x batch 32)
PATN_TEST_PAIRS = 12_000  # PATN tool/create_pairs_dataset.py:53 images_for_test = 12000
PATN_REQUIRED = ("r_hip", "l_hip", "l_shoulder", "r_shoulder")  # create_pairs_dataset.py:20


@dataclass(frozen=True)
class MarketName:
    identity: str   # "0002", "-1" (junk) or "0000" (distractor)
    camera: int
    sequence: int
    frame: int
    box: int


def parse_name(name: str) -> MarketName:
    """`0002_c1s1_000451_03.jpg` -> MarketName('0002', 1, 1, 451, 3); ValueError otherwise."""
    m = NAME_RE.match(PurePosixPath(name).name)
    if not m:
        raise ValueError(f"{PurePosixPath(name).name!r} does not follow Market-1501's {NAME_FORMAT}")
    return MarketName(m.group(1), int(m.group(2)), int(m.group(3)), int(m.group(4)), int(m.group(5)))


def is_market_image(image: str) -> bool:
    """True for a name below one of the release folders (`bounding_box_train/0002_....jpg`)."""
    parts = PurePosixPath(str(image)).parts
    return len(parts) == 2 and parts[0] in FOLDERS


def is_market_root(root: str | os.PathLike) -> bool:
    """ROOT looks like the unpacked release: it has bounding_box_train/ or bounding_box_test/."""
    root = Path(root)
    return (root / "bounding_box_train").is_dir() or (root / "bounding_box_test").is_dir()


def detect_dataset(root: str | os.PathLike, dataset: str = "auto") -> str:
    """'market' or 'deepfashion' for ROOT (`dataset` "auto" looks at the folders)."""
    if dataset not in ("auto", "deepfashion", DATASET):
        raise PgkitError(None, f"dataset must be auto, deepfashion or market, not {dataset!r}")
    if dataset == "auto":
        return DATASET if is_market_root(root) and not (Path(root) / "img").is_dir() else "deepfashion"
    if dataset == DATASET and not is_market_root(root):
        raise PgkitError(root, "not a Market-1501 release: expected ROOT/bounding_box_train/, "
                               "ROOT/bounding_box_test/ and ROOT/query/ with files like 0002_c1s1_000451_03.jpg")
    return dataset


def is_market_work(meta: dict, images: pd.DataFrame | None = None) -> bool:
    """A WORK directory made from Market-1501 (work.json `dataset`, else the image names)."""
    if meta.get("dataset"):
        return meta["dataset"] == DATASET
    return images is not None and len(images) > 0 and bool(images["image"].map(is_market_image).all())


def read_release(root: str | os.PathLike) -> tuple[pd.DataFrame, list[dict]]:
    """The images of an unpacked Market-1501 release.

    Returns (rows, rejects): rows with columns image (`folder/name.jpg`), item_id (the
    identity), status (train | gallery | query), split (train | test), camera, sequence,
    frame, box, line (0, for the filter's bookkeeping); rejects with image, split, reason for
    junk (`-1`), distractors (`0000`) and names that do not follow the release's scheme.
    Files that are not images (the release ships `Thumbs.db`) are ignored.
    """
    root = Path(root)
    if not is_market_root(root):
        raise PgkitError(root, "not a Market-1501 release: expected bounding_box_train/, bounding_box_test/, query/")
    rows, rejects = [], []
    for folder, (split, status) in FOLDERS.items():
        d = root / folder
        if not d.is_dir():
            continue
        for entry in sorted(os.listdir(d)):
            if not entry.lower().endswith((".jpg", ".jpeg", ".png")) or entry.startswith("."):
                continue
            image = f"{folder}/{entry}"
            try:
                n = parse_name(entry)
            except ValueError as exc:
                rejects.append({"image": image, "split": split, "reason": f"bad-name: {exc}"})
                continue
            if n.identity == JUNK:
                rejects.append({"image": image, "split": split,
                                "reason": "junk: identity -1 (Market-1501 junk detection, not a person to pair)"})
                continue
            if n.identity == DISTRACTOR:
                rejects.append({"image": image, "split": split,
                                "reason": "distractor: identity 0000 (Market-1501 distractor)"})
                continue
            rows.append({"image": image, "item_id": n.identity, "status": status, "split": split,
                         "camera": n.camera, "sequence": n.sequence, "frame": n.frame, "box": n.box,
                         "line": 0})
    if not rows and not rejects:
        raise PgkitError(root, "no Market-1501 images (NNNN_cCsS_FFFFFF_BB.jpg) in bounding_box_train/, "
                               "bounding_box_test/ or query/")
    cols = ["image", "item_id", "status", "split", "camera", "sequence", "frame", "box", "line"]
    frame = pd.DataFrame(rows, columns=cols)
    both = sorted(set(frame.loc[frame["split"] == "train", "item_id"]) & set(frame.loc[frame["split"] == "test", "item_id"]))
    if both:  # the release keeps train and test identities apart; a mixed tree would leak
        leak = frame["item_id"].isin(both) & (frame["split"] == "test")
        for r in frame[leak].itertuples():
            rejects.append({"image": r.image, "split": "test",
                            "reason": f"identity-leak: identity {r.item_id} also in bounding_box_train"})
        frame = frame[~leak]
    return frame.reset_index(drop=True), rejects


def pose_keys(image: str) -> list[str]:
    """Extra names under which a pose source may list a Market image: the bare file name
    (PATN's market-annotation-*.csv, OpenPose run on one flat folder)."""
    return [PurePosixPath(image).name] if is_market_image(image) else []


def community_name(image: str) -> str:
    """The name community CSVs use: the bare file name for Market (PATN's market-*.csv),
    PATN's flattened name for DeepFashion; ValueError for anything else."""
    if is_market_image(image):
        return PurePosixPath(image).name
    from pgprep.deepfashion import flatten_name

    return flatten_name(image)


def community_file(pattern: str, images: pd.DataFrame) -> str:
    """PATN's file names for Market WORK: fasion-resize-pairs-{split}.csv ->
    market-pairs-{split}.csv, fasion-resize-annotation-... -> market-annotation-..."""
    if len(images) and images["image"].map(is_market_image).all():
        return pattern.replace("fasion-resize-", "market-")
    return pattern


# ---------------------------------------------------------------- stage settings by dataset

def _work_meta(work: str | os.PathLike) -> dict:
    try:
        return json.loads((Path(work) / "work.json").read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def mask_settings(work, radius: int | None, close: int | None, scale: bool | None
                  ) -> tuple[int | None, int | None, bool | None, str | None]:
    """(radius, close, scale, setting name): PG²'s Market masks (radius 4, 5x5 closing at
    128x64, unscaled) for a Market WORK when the caller gave none of the three."""
    if radius is None and close is None and scale is None and _work_meta(work).get("dataset") == DATASET:
        s = MASK_SETTINGS["pg2-market"]
        return s["radius"], s["close"], s["scale"], "pg2-market"
    return radius, close, scale, None


def pose_radius(work, radius: float | None) -> float | None:
    """PG²'s Market pose-map radius (4 px at 128x64) for a Market WORK unless given."""
    if radius is None and _work_meta(work).get("dataset") == DATASET:
        return POSE_RADIUS
    return radius


def resolve_rule(rule: str, meta: dict, images: pd.DataFrame) -> str:
    """`auto` -> pg2-market for Market WORK (PG²'s own conversion), pgkit otherwise."""
    if rule not in RULES:
        raise PgkitError(None, f"unknown pair rule {rule!r} (choose from {', '.join(RULES)})")
    if rule == "auto":
        return "pg2-market" if is_market_work(meta, images) else "pgkit"
    if not is_market_work(meta, images) and rule != "pgkit":
        raise PgkitError(None, f"pair rule {rule} is Market-1501's; this WORK holds no Market images")
    return rule


def rule_flips(rule: str) -> bool:
    """Whether a rule mirrors train pairs: PG² converts bounding_box_train_flip as well
    (convert_market.py:920-937); PATN trains with --no_flip (README.md, Market train command)."""
    return rule != "patn"


# ---------------------------------------------------------------- the published pair rules

def _rows_of(images: pd.DataFrame, split: str) -> np.ndarray:
    """Row indices of `split` in the folder each script reads: bounding_box_train (train),
    bounding_box_test (test; PG² and PATN never pair query/)."""
    folder = "bounding_box_train" if split == "train" else "bounding_box_test"
    top = images["image"].map(lambda n: PurePosixPath(n).parts[0])
    return np.flatnonzero((images["split"] == split).to_numpy() & (top == folder).to_numpy())


def pg2_pairs(images: pd.DataFrame, split: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray, dict]:
    """PG²'s convert_market.py, mode 'same_diff_cam' (the mode run_one_pair_rec uses, lines
    908-911 and 949-952): the folder's file names sorted (line 88/93), every i < j of the same
    identity (name[0:4]), whatever the cameras, in both orders (lines 175-186,
    add_switch_pair=True); images without a pose are skipped (_format_data returns None,
    lines 474 and 521-522: here, images the filter did not keep). Test: shuffled
    (line 959) and cut at 12,800 (line 966). Returns (a, b, counts)."""
    rows = _rows_of(images, split)
    names = images["image"].to_numpy()[rows]
    order = np.argsort([PurePosixPath(n).name for n in names], kind="stable")
    rows = rows[order]
    ids = images["item_id"].to_numpy()[rows]
    aa, bb = [], []
    for _, grp in itertools.groupby(range(rows.size), key=lambda i: ids[i]):
        g = rows[list(grp)]
        i, j = np.triu_indices(g.size, k=1)
        # the script appends [i, j] then [j, i] for each i < j
        aa.append(np.stack([g[i], g[j]], 1).ravel())
        bb.append(np.stack([g[j], g[i]], 1).ravel())
    a = np.concatenate(aa) if aa else np.zeros(0, np.int64)
    b = np.concatenate(bb) if bb else np.zeros(0, np.int64)
    candidates, capped = int(a.size), 0
    if split == "test" and a.size > PG2_TEST_PAIRS:
        keep = np.random.default_rng(np.random.SeedSequence([seed, 1501])).permutation(a.size)[:PG2_TEST_PAIRS]
        capped = int(a.size - keep.size)
        a, b = a[keep], b[keep]
    return a.astype(np.int64), b.astype(np.int64), {"candidates": candidates, "dropped": 0, "capped": capped}


def patn_pairs(images: pd.DataFrame, split: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray, dict]:
    """PATN's tool/create_pairs_dataset.py: keep images with both hips and both shoulders
    (lines 18-20, 29-34; names starting -1 / 0000 are already rejected, line 32), every
    ordered pair (itertools.permutations) per person = name before the first '_'
    (lines 37-49), persons in order of first appearance; test: `DataFrame.sample(n=min(12000,
    len), replace=False, random_state=seed)` (line 72, random_state=0). Returns (a, b, counts)."""
    rows = _rows_of(images, split)
    kp = skeleton.frame_columns(images.iloc[rows])
    ok = skeleton.present(kp)[:, [skeleton.J[j] for j in PATN_REQUIRED]].all(axis=1)
    dropped_images = int((~ok).sum())
    rows = rows[ok]
    ids = images["item_id"].to_numpy()[rows]
    by_person: dict[str, list[int]] = {}
    for r, i in zip(rows, ids, strict=True):
        by_person.setdefault(i, []).append(int(r))
    aa, bb = [], []
    for members in by_person.values():
        for x, y in itertools.permutations(members, 2):
            aa.append(x)
            bb.append(y)
    a, b = np.asarray(aa, np.int64), np.asarray(bb, np.int64)
    candidates, capped = int(a.size), 0
    if split == "test":
        frame = pd.DataFrame({"a": a, "b": b})
        frame = frame.sample(n=min(PATN_TEST_PAIRS, len(frame)), replace=False, random_state=seed)
        capped = int(a.size - len(frame))
        a, b = frame["a"].to_numpy(np.int64), frame["b"].to_numpy(np.int64)
    return a, b, {"candidates": candidates, "dropped": 0, "capped": capped,
                  "images_without_hips_shoulders": dropped_images}


def rule_pairs(images: pd.DataFrame, rule: str, split: str, seed: int = 0):
    """(a, b, counts) of a published rule on one split."""
    return {"pg2-market": pg2_pairs, "patn": patn_pairs}[rule](images, split, seed)
