"""`pgprep pairs`: cross-pose training pairs per item, left/right-correct flips, train/test.

For every item id, all ordered pairs (I_A, I_B), A != B, of its kept images on the same side
of the split: I_A is the condition image (`from`), I_B the target (`to`). Pairs whose poses
are not different enough are dropped (see `pose_distance`); on the train side each kept pair
also appears mirrored (`flip = 1`: both images flipped, keypoints x -> W-1-x with the COCO-18
left/right swap, `pgprep.skeleton.flip` — derived, never re-estimated). Rows are shuffled
deterministically with the seed. Train and test never share an item id: this is checked, and
a violation is an error.

The community's `from,to` pairs CSVs (PATN / Deformable GAN, PATN-flattened names) can be
imported to replace a split's pairs (`--import-test-pairs fasion-resize-pairs-test.csv` gives
exactly the standard 8,570 test pairs, minus any that name images the filter did not keep,
which are reported) and exported (`--export DIR`).
"""

from __future__ import annotations

import collections
import json
import os
from pathlib import Path

import click
import numpy as np
import pandas as pd

from pgprep import atomic, deepfashion, market, skeleton
from pgprep.errors import PgkitError

STAGE = "pairs"
SPLITS = ("train", "test")
PAIR_COLUMNS = ["from", "to", "flip", "item_id"]
DEFAULT_MIN_DISTANCE = 0.05
COMMUNITY_PAIRS = "fasion-resize-pairs-{split}.csv"
COMMUNITY_ANNOTATION = "fasion-resize-annotation-{split}.csv"
DROPPED_PAIRS = "pairs-dropped-{split}.csv"  # imported pairs not used, one reason each


# ---------------------------------------------------------------- inputs

def read_work(work: str | os.PathLike) -> tuple[dict, pd.DataFrame]:
    """WORK/work.json and WORK/images.csv (kept images), checked; images keyed by `image`."""
    work = Path(work)
    meta_path, images_path = work / "work.json", work / "images.csv"
    if not work.is_dir():
        raise PgkitError(work, "not a directory; run `pgprep filter ROOT --poses SRC -o WORK` first")
    for p in (meta_path, images_path):
        if not p.is_file():
            raise PgkitError(p, "missing; run `pgprep filter ROOT --poses SRC -o WORK` first")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as exc:
        raise PgkitError(meta_path, f"malformed JSON at line {exc.lineno}: {exc.msg}") from None
    try:
        images = pd.read_csv(images_path, dtype={"image": str, "item_id": str, "split": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise PgkitError(images_path, f"not a readable CSV ({exc})") from None
    need = ["image", "item_id", "split", *skeleton.KP_COLUMNS]
    missing = [c for c in need if c not in images.columns]
    if missing:
        raise PgkitError(images_path, f"missing columns {', '.join(missing[:5])}"
                         + (" ..." if len(missing) > 5 else ""))
    bad = ~images["split"].isin(SPLITS)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise PgkitError(images_path, f"line {row + 2}: split must be train or test, "
                                      f"found {images['split'].iloc[row]!r}")
    dup = images["image"].duplicated()
    if dup.any():
        row = int(np.flatnonzero(dup.to_numpy())[0])
        raise PgkitError(images_path, f"line {row + 2}: image {images['image'].iloc[row]!r} listed twice")
    if "width" not in images.columns:
        size = meta.get("image_size") or [256, 256]
        images["width"] = int(size[1])
    return meta, images.reset_index(drop=True)


def check_no_shared_items(images: pd.DataFrame, where: str | os.PathLike | None) -> None:
    """Raise if one item id has images (or pairs) on both sides of the split."""
    train = set(images.loc[images["split"] == "train", "item_id"])
    test = set(images.loc[images["split"] == "test", "item_id"])
    shared = sorted(train & test)
    if shared:
        raise PgkitError(where, f"{len(shared)} item id(s) on both the train and the test side "
                                f"(e.g. {shared[0]}); identities would leak from training into testing")


# ---------------------------------------------------------------- pose distance

def body_scale(kp: np.ndarray) -> np.ndarray:
    """Body size in pixels of skeleton(s) (..., 18, 3): the neck-to-mid-hip (torso) length,
    the mid-hip being the midpoint of the detected hips; where the neck or both hips are
    missing, the height of the bounding box of the detected joints. At least 1 px."""
    kp = np.asarray(kp, np.float64)
    ok = skeleton.present(kp)
    neck, rh, lh = skeleton.J["neck"], skeleton.J["r_hip"], skeleton.J["l_hip"]
    nh = ok[..., rh].astype(np.float64) + ok[..., lh]
    hip = (np.where(ok[..., rh, None], kp[..., rh, :2], 0) + np.where(ok[..., lh, None], kp[..., lh, :2], 0))
    hip = hip / np.maximum(nh, 1)[..., None]
    torso = np.hypot(*np.moveaxis(kp[..., neck, :2] - hip, -1, 0))
    top = np.where(ok, kp[..., 1], np.inf).min(axis=-1)
    bottom = np.where(ok, kp[..., 1], -np.inf).max(axis=-1)
    height = np.where(ok.any(axis=-1), bottom - top, 0.0)
    scale = np.where(ok[..., neck] & (nh > 0), torso, height)
    return np.maximum(scale, 1.0)


def pose_distance(kp_a: np.ndarray, kp_b: np.ndarray) -> np.ndarray:
    """Scale-normalised pose distance between skeletons (..., 18, 3), float64.

    The mean Euclidean distance in pixels over the joints detected in both, divided by the
    mean `body_scale` of the two. 0 means the same pose at the same place; 0.05 means the
    joints moved on average by 5% of the torso length. No joint in common -> inf (different).
    Not translation-invariant on purpose: the same pose elsewhere in the frame is a different
    target for the generator.
    """
    a = np.asarray(kp_a, np.float64)
    b = np.asarray(kp_b, np.float64)
    both = skeleton.present(a) & skeleton.present(b)
    d = np.hypot(a[..., 0] - b[..., 0], a[..., 1] - b[..., 1])
    n = both.sum(axis=-1)
    mean = np.where(both, d, 0.0).sum(axis=-1) / np.maximum(n, 1)
    dist = mean / ((body_scale(a) + body_scale(b)) / 2.0)
    return np.where(n > 0, dist, np.inf)


def identical_poses(kp_a: np.ndarray, kp_b: np.ndarray) -> np.ndarray:
    """True where two skeletons have the same detected joints at the same coordinates."""
    a, b = np.asarray(kp_a), np.asarray(kp_b)
    pa, pb = skeleton.present(a), skeleton.present(b)
    same_xy = (a[..., 0] == b[..., 0]) & (a[..., 1] == b[..., 1])
    return ((pa == pb) & (~pa | same_xy)).all(axis=-1)


# ---------------------------------------------------------------- pair building

def ordered_pairs(images: pd.DataFrame, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (a, b), a != b, of all ordered pairs of images of one item on `split`."""
    sub = images.index[images["split"] == split].to_numpy()
    if sub.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    items = images.loc[sub, "item_id"].to_numpy()
    order = np.argsort(items, kind="stable")
    sub, items = sub[order], items[order]
    starts = np.flatnonzero(np.r_[True, items[1:] != items[:-1]])
    ends = np.r_[starts[1:], sub.size]
    aa, bb = [], []
    for s, e in zip(starts, ends, strict=True):
        n = e - s
        if n < 2:
            continue
        i, j = np.nonzero(~np.eye(n, dtype=bool))  # row-major: (0,1), (0,2), ..., (1,0), ...
        aa.append(sub[s + i])
        bb.append(sub[s + j])
    if not aa:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(aa), np.concatenate(bb)


def _cap_per_item(a: np.ndarray, b: np.ndarray, items: np.ndarray, cap: int,
                  rng: np.random.Generator) -> np.ndarray:
    """Boolean keep-mask choosing at most `cap` random pairs per item."""
    keep = np.zeros(a.size, bool)
    if a.size == 0:
        return keep
    key = rng.random(a.size)
    order = np.lexsort((key, items))  # by item, random within item
    it = items[order]
    starts = np.flatnonzero(np.r_[True, it[1:] != it[:-1]])
    rank = np.arange(a.size) - np.repeat(starts, np.diff(np.r_[starts, a.size]))
    keep[order[rank < cap]] = True
    return keep


def read_community_pairs(path: str | os.PathLike) -> pd.DataFrame:
    """A community pairs CSV (header `from,to`; an extra index column is tolerated)."""
    try:
        frame = pd.read_csv(path, dtype=str)
    except FileNotFoundError:
        raise PgkitError(path, "no such file") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise PgkitError(path, f"not a readable pairs CSV ({exc})") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    if not {"from", "to"} <= set(frame.columns):
        raise PgkitError(path, "not a pairs CSV: the header must contain 'from' and 'to'")
    return frame[["from", "to"]].apply(lambda s: s.str.strip())


def flattened_names(images: pd.DataFrame, where) -> dict[str, str]:
    """PATN-flattened name -> image name, for every kept image."""
    out = {}
    for name in images["image"]:
        try:
            out[market.community_name(name)] = name  # PATN-flattened; Market: the bare file name
        except ValueError as exc:
            raise PgkitError(where, f"cannot use community pair names: {exc}") from None
    return out


def import_pairs(path: str | os.PathLike, images: pd.DataFrame, split: str,
                 where=None, why: dict[str, str] | None = None, lists_split: bool = False,
                 dropped: list[dict] | None = None) -> tuple[pd.DataFrame, dict[str, int], list[str]]:
    """Map a community `from,to` CSV onto kept images of `split`.

    Returns (pairs with columns a, b as row indices, problem counts, examples). Pairs naming an
    image the filter did not keep, or one on the other side of the split, are skipped and
    counted. Raw image paths are accepted as well as PATN-flattened names.

    `lists_split` (PATN's lists set the split, work.json `split_source`): a pair naming an
    image of the other side is an error naming it, never a silent drop. `dropped`: a list that
    receives one row `from, to, reason` per skipped pair, the reason taken from `why` (name ->
    the filter's reject reason, `not_kept_reasons`).
    """
    frame = read_community_pairs(path)
    by_flat = flattened_names(images, where)
    row_of = {name: i for i, name in enumerate(images["image"])}
    split_arr = images["split"].to_numpy()

    def resolve(name: str) -> int:
        img = by_flat.get(name, name)
        return row_of.get(img, -1)

    a = np.array([resolve(n) for n in frame["from"]], np.int64)
    b = np.array([resolve(n) for n in frame["to"]], np.int64)
    not_kept = (a < 0) | (b < 0)
    wrong = ~not_kept & ((split_arr[np.maximum(a, 0)] != split) | (split_arr[np.maximum(b, 0)] != split))
    same = ~not_kept & (a == b)
    if lists_split and wrong.any():
        i = int(np.flatnonzero(wrong)[0])
        bad = frame["from"].iloc[i] if split_arr[a[i]] != split else frame["to"].iloc[i]
        raise PgkitError(path, f"line {i + 2}: pair {frame['from'].iloc[i]} -> {frame['to'].iloc[i]} "
                               f"names {bad}, which the split lists put on the other side of {split} "
                               f"({int(wrong.sum())} such pair(s)): the lists and the pairs CSV disagree")
    ok = ~(not_kept | wrong | same)
    if dropped is not None:
        why = why or {}
        for i in np.flatnonzero(~ok):
            f, t = frame["from"].iloc[i], frame["to"].iloc[i]
            if not_kept[i]:
                n = f if a[i] < 0 else t
                reason = why.get(n, "unknown-image: not in images.csv or rejects.csv")
                reason, code = f"{n}: {reason}", ":".join(reason.split(":")[:2 if reason.startswith("rejected") else 1])
            elif wrong[i]:
                reason, code = f"other-split: an image of the pair is not on the {split} side", "other-split"
            else:
                reason, code = "self-pair: from and to are the same image", "self-pair"
            dropped.append({"from": f, "to": t, "reason": reason, "code": code})
    examples = [f"{frame['from'].iloc[i]} -> {frame['to'].iloc[i]}"
                for i in np.flatnonzero(~ok)[:3]]
    problems = {"imported": int(len(frame)), "not_kept": int(not_kept.sum()),
                "other_split": int(wrong.sum()), "self_pairs": int(same.sum())}
    return pd.DataFrame({"a": a[ok], "b": b[ok]}), problems, examples


def not_kept_reasons(work: Path) -> dict[str, str]:
    """Image name (raw and community-flattened) -> why it is not in images.csv: the filter's
    reject reason (rejects.csv), or the split lists' reason for a list name that mapped to no
    image (unmapped-list-names.csv)."""
    out: dict[str, str] = {}
    for file, key, col, prefix in (("unmapped-list-names.csv", "name", "reason", "unmapped list name: "),
                                   ("rejects.csv", "image", "reason", "rejected by filter: ")):
        try:
            frame = pd.read_csv(work / file, dtype=str, keep_default_na=False)
        except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
            continue
        if key not in frame.columns or col not in frame.columns:
            continue
        for name, reason in zip(frame[key], frame[col], strict=True):
            out[name] = prefix + reason
            try:
                out.setdefault(market.community_name(name), prefix + reason)
            except ValueError:
                pass
    return out


def export_community(out_dir: str | os.PathLike, images: pd.DataFrame,
                     pairs: dict[str, pd.DataFrame]) -> list[Path]:
    """Write community-format pairs (`from,to`, unflipped, flattened names) and PATN
    annotation CSVs for both splits into `out_dir`."""
    from pgprep.formats import write_patn_csv

    out_dir = Path(out_dir)
    flat = {v: k for k, v in flattened_names(images, out_dir).items()}
    kps = skeleton.frame_columns(images)
    written = []
    for split in SPLITS:
        p = pairs[split]
        p = p[p["flip"] == 0]
        frame = pd.DataFrame({"from": p["from"].map(flat), "to": p["to"].map(flat)})
        path = out_dir / market.community_file(COMMUNITY_PAIRS, images).format(split=split)
        atomic.write_csv_atomic(path, frame)
        sel = np.flatnonzero(images["split"].to_numpy() == split)
        ann = out_dir / market.community_file(COMMUNITY_ANNOTATION, images).format(split=split)
        write_patn_csv(ann, {flat[images["image"].iloc[i]]: kps[i] for i in sel})
        written += [path, ann]
    return written


def run_pairs(work: str | os.PathLike, seed: int = 0, min_distance: float = DEFAULT_MIN_DISTANCE,
              max_per_item: int | None = None, flip: bool | None = None, rule: str = "auto",
              import_test: str | os.PathLike | None = None,
              import_train: str | os.PathLike | None = None,
              export: str | os.PathLike | None = None, force: bool = False) -> dict:
    """Build WORK/pairs-train.csv and WORK/pairs-test.csv (`from,to,flip,item_id`).

    A pair (A, B) is dropped as non-different when `pose_distance(A, B) <= min_distance`;
    identical keypoints are always dropped. `max_per_item` caps the pairs of one item and
    split (counted before the flip doubling, chosen at random with `seed`). `import_*` replace
    a split's pairs with those of a community CSV (no distance filter, no cap). Returns the
    counts (also stored in the stage stamp); `up_to_date` is True when nothing had to be done.
    """
    work = Path(work)
    images_path = work / "images.csv"
    meta, images = read_work(work)
    # pair rules (pgprep.market): pgkit's own, or PG²'s / PATN's Market-1501 scripts; auto = by dataset
    rule = market.resolve_rule(rule, meta, images)
    flip = market.rule_flips(rule) if flip is None else flip
    if max_per_item is not None and max_per_item < 1:
        raise PgkitError(None, f"max_per_item must be >= 1, got {max_per_item}")
    inputs = [images_path, work / "work.json"] + [Path(p) for p in (import_test, import_train) if p]
    options = {"seed": int(seed), "min_distance": float(min_distance), "max_per_item": max_per_item,
               "flip": bool(flip),
               "import_test": atomic.canonical_path(import_test) if import_test else None,
               "import_train": atomic.canonical_path(import_train) if import_train else None,
               "export": os.path.abspath(export) if export else None, "version": 1}
    if rule != "pgkit":  # (absent for pgkit's rule: earlier stamps stay valid)
        options["rule"] = rule
    fp = atomic.fingerprint(inputs, options)
    outputs = [work / f"pairs-{s}.csv" for s in SPLITS]
    if export:
        outputs += [Path(export) / market.community_file(COMMUNITY_PAIRS, images).format(split=s) for s in SPLITS]
    if not force and atomic.is_up_to_date(work, STAGE, fp, outputs):
        rec = json.loads((work / atomic.STAMP_DIR / f"{STAGE}.json").read_text())
        return {**rec.get("summary", {}), "up_to_date": True}
    atomic.clear_stamp(work, STAGE)

    check_no_shared_items(images, images_path)
    kp = skeleton.frame_columns(images)
    items = images["item_id"].to_numpy()
    rng = np.random.default_rng(seed)
    summary: dict = {"work": os.fspath(work), "rule": rule, "seed": int(seed), "min_distance": float(min_distance),
                     "max_per_item": max_per_item, "flip": bool(flip), "imports": {}}
    frames = {}
    for split in SPLITS:
        n_images = int((images["split"] == split).sum())
        imported = {"train": import_train, "test": import_test}[split]
        if imported:
            rows: list[dict] = []
            got, problems, examples = import_pairs(imported, images, split, images_path,
                                                   why=not_kept_reasons(work), dropped=rows,
                                                   lists_split=meta.get("split_source") == "lists")
            atomic.write_csv_atomic(work / DROPPED_PAIRS.format(split=split),
                                    pd.DataFrame(rows, columns=["from", "to", "reason"]))
            problems["dropped_csv"] = os.fspath(work / DROPPED_PAIRS.format(split=split))
            problems["reasons"] = dict(collections.Counter(r["code"] for r in rows).most_common())
            a, b = got["a"].to_numpy(), got["b"].to_numpy()
            summary["imports"][split] = {"file": os.fspath(imported), **problems, "examples": examples}
            candidates, dropped, capped = int(a.size), 0, 0
        elif rule != "pgkit":  # the published rule as its script has it: no distance filter
            a, b, got = market.rule_pairs(images, rule, split, seed)
            candidates, dropped, capped = got["candidates"], got["dropped"], got["capped"]
        else:
            a, b = ordered_pairs(images, split)
            candidates = int(a.size)
            dist = pose_distance(kp[a], kp[b])
            keep = (dist > min_distance) & ~identical_poses(kp[a], kp[b])
            dropped = int((~keep).sum())
            a, b = a[keep], b[keep]
            capped = 0
            if max_per_item is not None:
                keep = _cap_per_item(a, b, items[a], max_per_item, rng)
                capped = int((~keep).sum())
                a, b = a[keep], b[keep]
        flips = np.zeros(a.size, np.int8)
        if flip and split == "train":
            a, b = np.r_[a, a], np.r_[b, b]
            flips = np.r_[flips, np.ones_like(flips)]
        order = rng.permutation(a.size)
        a, b, flips = a[order], b[order], flips[order]
        frames[split] = pd.DataFrame({"from": images["image"].to_numpy()[a],
                                      "to": images["image"].to_numpy()[b],
                                      "flip": flips.astype(np.int64), "item_id": items[a]})
        summary[split] = {"images": n_images,
                          "images_with_flips": n_images * (2 if flip and split == "train" else 1),
                          "items": int(images.loc[images["split"] == split, "item_id"].nunique()),
                          "candidate_pairs": candidates, "dropped_non_different": dropped,
                          "dropped_by_cap": capped, "pairs": int(a.size),
                          # the seed's "57,520 train images after flip and removing
                          # non-different pairs": distinct (image, flip) in the written pairs
                          "images_in_pairs": int(np.unique(np.r_[a * 2 + flips, b * 2 + flips]).size)}
    # assert, not assume: the written pairs never share an identity across the split
    item_of = dict(zip(images["image"], items, strict=True))
    pair_items = {s: {item_of[n] for n in pd.concat([frames[s]["from"], frames[s]["to"]])}
                  for s in SPLITS}
    shared = sorted(pair_items["train"] & pair_items["test"])
    if shared:
        raise PgkitError(images_path, f"train and test pairs share {len(shared)} item id(s), "
                                      f"e.g. {shared[0]}; refusing to write leaking pairs")
    for split in SPLITS:
        atomic.write_csv_atomic(work / f"pairs-{split}.csv", frames[split][PAIR_COLUMNS])
    if export:
        summary["exported"] = [os.fspath(p) for p in export_community(export, images, frames)]
    atomic.mark_done(work, STAGE, fp, summary=summary)
    return {**summary, "up_to_date": False}


def summary_rows(summary: dict) -> list[list]:
    rows = []
    for split in SPLITS:
        s = summary[split]
        rows.append([split, s["items"], s["images"], s["images_with_flips"], s["candidate_pairs"],
                     s["dropped_non_different"], s["dropped_by_cap"], s["pairs"], s["images_in_pairs"]])
    return rows


SUMMARY_HEADERS = ["split", "items", "images", "images incl. flips", "candidate pairs",
                   "dropped non-different", "dropped by cap", "pairs written", "images in pairs"]


@click.command("pairs")
@click.argument("work", type=click.Path(file_okay=False, path_type=Path))
@click.option("--seed", default=0, show_default=True, help="Seed for the shuffle and the per-item cap.")
@click.option("--min-distance", type=float, default=DEFAULT_MIN_DISTANCE, show_default=True,
              help="Drop pairs whose pose distance (mean joint displacement / torso length) is <= this.")
@click.option("--max-pairs-per-item", "max_per_item", type=click.IntRange(min=1), default=None,
              help="Keep at most N random pairs per item and split (before flips). Default: all.")
@click.option("--flip/--no-flip", default=None,
              help="Add the mirrored copy (flip=1) of every train pair [default: yes; patn rule: no].")
@click.option("--rule", type=click.Choice(market.RULES), default="auto", show_default=True,
              help="pgkit: all ordered pairs per item with the distance filter; pg2-market / patn: "
                   "PG²'s convert_market.py / PATN's create_pairs_dataset.py on Market-1501 "
                   "(docs/market.md); auto: pg2-market for a Market WORK, else pgkit.")
@click.option("--import-test-pairs", "import_test", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Community `from,to` CSV that replaces the test pairs.")
@click.option("--import-train-pairs", "import_train", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Community `from,to` CSV that replaces the train pairs (flips still added).")
@click.option("--export", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Also write community-format pairs and annotation CSVs into this directory.")
@click.option("--force", is_flag=True, help="Rebuild even if the stage stamp says nothing changed.")
def command(work, seed, min_distance, max_per_item, flip, rule, import_test, import_train, export, force):
    """Build cross-pose pairs (condition -> target) per item; write WORK/pairs-{train,test}.csv.

    Every ordered pair (A, B), A != B, of kept images of one item id on one side of the
    split becomes a row `from,to,flip,item_id`. Pairs whose poses barely differ are dropped:
    the distance is the mean pixel distance over the joints found in both images, divided
    by the torso (neck to mid-hip) length; `--min-distance 0.05` drops pairs whose joints
    moved by 5% of the torso or less, and identical keypoints are always dropped. Every
    train pair is also written mirrored (flip=1): both images flipped, keypoints
    x -> W-1-x with right and left joints swapped. Rows are shuffled with --seed.

    \b
    Examples:
      pgprep pairs data/work
      pgprep pairs data/work --min-distance 0.1 --max-pairs-per-item 50 --seed 1
      pgprep pairs data/work --import-test-pairs fasion-resize-pairs-test.csv
      pgprep pairs data/work --export data/community   # fasion-resize-pairs-*.csv
      pgprep pairs data/mwork --rule patn               # Market-1501: PATN's pairs
      pgprep pairs data/mwork --import-test-pairs market-pairs-test.csv

    \b
    Output (stdout): a table of items, images (and with flips), candidate pairs,
    pairs dropped as non-different or by the cap, pairs written, and the images
    (flipped copies counted apart) that appear in a written pair, per split.
    A rerun with unchanged inputs and options does nothing and says so.
    """
    summary = run_pairs(work, seed=seed, min_distance=min_distance, max_per_item=max_per_item,
                        flip=flip, import_test=import_test, import_train=import_train,
                        export=export, force=force, rule=rule)
    from pgprep.cliutil import echo_table

    if summary.get("up_to_date"):
        click.echo(f"pairs: {work} is up to date (same images.csv and options); nothing to do. "
                   "Use --force to rebuild.")
    echo_table(summary_rows(summary), SUMMARY_HEADERS)
    click.echo(f"rule: {summary.get('rule', 'pgkit')}")
    for split, rec in summary.get("imports", {}).items():
        skipped = rec["not_kept"] + rec["other_split"] + rec["self_pairs"]
        click.echo(f"{split} pairs imported from {rec['file']}: {rec['imported'] - skipped} of "
                   f"{rec['imported']} used; skipped {rec['not_kept']} naming images not kept, "
                   f"{rec['other_split']} naming images of the other split, {rec['self_pairs']} self-pairs"
                   + (f" (e.g. {rec['examples'][0]})" if rec["examples"] else ""))
        note = deepfashion.pairs_report(split, rec["imported"], rec["imported"] - skipped)
        if note:
            click.echo(f"  {note}")
        if rec.get("reasons"):
            click.echo("  dropped by reason: " + ", ".join(f"{k} x{v}" for k, v in rec["reasons"].items())
                       + f" -> {rec['dropped_csv']}")
    for path in summary.get("exported", []):
        click.echo(f"exported {path}")
    if not summary.get("up_to_date"):
        click.echo(f"wrote {work / 'pairs-train.csv'} and {work / 'pairs-test.csv'}")
