"""`pgprep preview`: a contact sheet of sampled pairs, so users check their data by looking.

One row per pair: condition I_A | target I_B | target skeleton P_B | mask M_B over I_B, with
flips applied exactly as the trainer sees them (images mirrored, keypoints via
`pgprep.skeleton.flip`, masks mirrored). Drawing is `pgprep.draw`, shared with later figures.
"""

from __future__ import annotations

import os
from pathlib import Path

import click
import numpy as np
import pandas as pd

from pgprep import draw, skeleton
from pgprep.errors import PgkitError
from pgprep.geometry import body_mask, read_mask, read_rgb
from pgprep.masks import mask_path
from pgprep.pairs import SPLITS, read_work

COLUMNS = ["condition", "target", "target skeleton", "target mask"]


def load_example(work: Path, root: Path, images: pd.DataFrame, src: str, dst: str, flip: bool,
                 radius: int = 4) -> dict:
    """Condition, target (uint8 HWC), target keypoints (18, 3) and mask (H, W) of one pair,
    mirrored if `flip`. A mask missing on disk is computed from the keypoints."""
    cond = read_rgb(root / src)
    target = read_rgb(root / dst)
    kp = skeleton.from_columns(images.loc[dst])
    mp = mask_path(work, dst)
    if mp.exists():
        mask = read_mask(mp)
    else:
        mask = body_mask(kp, target.shape[:2], radius=radius)
    if mask.shape != target.shape[:2]:
        raise PgkitError(mp, f"mask is {mask.shape[1]}x{mask.shape[0]} but the image is "
                             f"{target.shape[1]}x{target.shape[0]}; rerun `pgprep masks --force`")
    if flip:
        cond, target, mask = np.fliplr(cond), np.fliplr(target), np.fliplr(mask)
        kp = skeleton.flip(kp, target.shape[1])
    return {"condition": np.ascontiguousarray(cond), "target": np.ascontiguousarray(target),
            "keypoints": kp, "mask": np.ascontiguousarray(mask)}


def sample_pairs(work: Path, split: str, n: int, seed: int) -> pd.DataFrame:
    """`n` pairs drawn at random (seeded) from WORK/pairs-<split>.csv ('both': half from each)."""
    splits = SPLITS if split == "both" else (split,)
    per = [n // len(splits) + (i < n % len(splits)) for i in range(len(splits))]
    out = []
    rng = np.random.default_rng(seed)
    for s, k in zip(splits, per, strict=True):
        path = work / f"pairs-{s}.csv"
        if not path.is_file():
            raise PgkitError(path, "missing; run `pgprep pairs WORK` first")
        frame = pd.read_csv(path, dtype={"from": str, "to": str, "item_id": str})
        if len(frame) and k:
            pick = rng.choice(len(frame), size=min(k, len(frame)), replace=False)
            out.append(frame.iloc[np.sort(pick)].assign(split=s))
    if not out:
        raise PgkitError(work, "no pairs to show (pairs CSVs are empty)")
    return pd.concat(out, ignore_index=True)


def contact_sheet(work: str | os.PathLike, n: int = 8, split: str = "both", seed: int = 0,
                  cell: int | None = None) -> np.ndarray:
    """The contact sheet as uint8 RGB; `cell` resizes every image to cell x cell first."""
    import cv2

    from pgprep.cliutil import progress

    work = Path(work)
    meta, images = read_work(work)
    root = Path(meta.get("root", ""))
    images = images.set_index("image", drop=False)
    pairs = sample_pairs(work, split, n, seed)
    rows, labels = [], []
    recs = pairs[["from", "to", "flip", "item_id", "split"]].itertuples(index=False, name=None)
    for src, dst, flip, item, split_ in progress(recs, total=len(pairs), desc="preview", unit="pair"):
        flip = bool(flip)
        ex = load_example(work, root, images, src, dst, flip)
        h, w = ex["target"].shape[:2]
        row = [ex["condition"], ex["target"], draw.skeleton_image(ex["keypoints"], (h, w)),
               draw.mask_overlay(ex["target"], ex["mask"])]
        if cell:
            row = [cv2.resize(im, (cell, cell), interpolation=cv2.INTER_AREA) for im in row]
        rows.append(row)
        labels.append(f"{split_} {item}" + (" flip" if flip else ""))
    return draw.grid(rows, col_labels=COLUMNS, row_labels=labels)


@click.command("preview")
@click.argument("work", type=click.Path(file_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="PNG file to write.")
@click.option("-n", "--pairs", "n", type=click.IntRange(min=1), default=8, show_default=True,
              help="Number of pairs (rows) to show.")
@click.option("--split", type=click.Choice(["train", "test", "both"]), default="both", show_default=True)
@click.option("--seed", default=0, show_default=True, help="Seed for sampling the pairs.")
@click.option("--cell", type=click.IntRange(min=16), default=None,
              help="Resize every image to CELL x CELL px (default: native size).")
def command(work, output, n, split, seed, cell):
    """Draw a contact sheet of sampled pairs: condition | target | skeleton | mask.

    Each row is one pair from WORK/pairs-*.csv, labelled with its split and item id
    ("flip" if mirrored). Flipped pairs are shown as the trainer sees them: both images
    mirrored, the skeleton mirrored with right and left swapped (right side drawn in warm
    colours, left in cool ones, so a front view keeps warm limbs on the image's left), and
    the mask mirrored. Masks come from WORK/masks/ (computed on the fly if missing).

    \b
    Examples:
      pgprep preview data/work -o sheet.png
      pgprep preview data/work -o train.png --split train -n 16 --seed 3 --cell 128
    """
    sheet = contact_sheet(work, n=n, split=split, seed=seed, cell=cell)
    draw.save_png(output, sheet)
    click.echo(f"wrote {output} ({sheet.shape[1]}x{sheet.shape[0]} px)")
