"""`pgprep preview`: a contact sheet of sampled pairs, so users check their data by looking.

One row per pair: condition I_A | target I_B | target skeleton P_B | mask M_B over I_B, with
flips applied exactly as the trainer sees them (images mirrored, keypoints via
`pgprep.skeleton.flip`, masks mirrored). Drawing is `pgprep.draw`, shared with later figures.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import click
import numpy as np
import pandas as pd

from pgprep import draw, skeleton
from pgprep.atomic import PNG_MARK_KEY, mark_image, png_text_chunk, write_bytes_atomic
from pgprep.deepfashion import check_relative
from pgprep.errors import PgkitError
from pgprep.geometry import Crop, body_mask, encode_png, read_mask, read_rgb
from pgprep.masks import check_numbers, mask_path
from pgprep.pairs import SPLITS, read_work

COLUMNS = ["condition", "target", "target skeleton", "target mask"]


def load_example(work: Path, root: Path, images: pd.DataFrame, src: str, dst: str, flip: bool,
                 radius: int = 4, crop: Crop | None = None) -> dict:
    """Condition, target (uint8 HWC), target keypoints (18, 3) and mask (H, W) of one pair,
    mirrored if `flip`. A mask missing on disk is computed from the keypoints."""
    cond = read_rgb(root / src)  # bounded in bytes and pixels (pgprep.imageio)
    target = read_rgb(root / dst)
    if crop is not None:  # work.json's crop (pgprep filter --crop): keypoints and masks are in it
        cond, target = crop.image(cond, root / src), crop.image(target, root / dst)
    mp = mask_path(work, dst)
    h, w = target.shape[:2]
    row = images.loc[[dst]].assign(width=w, height=h)
    _, bad = check_numbers(row)  # keypoints far outside the image would draw millions of disks
    if bad:
        raise PgkitError(work / "images.csv", f"{dst}: {bad[0]['reason']}")
    kp = skeleton.from_columns(images.loc[dst])
    if os.path.lexists(mp):
        try:  # the header's size is checked against the image's before any pixel is decoded
            mask = read_mask(mp, (h, w))
        except PgkitError as exc:
            raise PgkitError(mp, f"{exc.reason}; rerun `pgprep masks WORK`") from None
    else:
        mask = body_mask(kp, (h, w), radius=radius)
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
        for name in (src, dst):  # an edited pairs CSV must not make us read outside ROOT
            check_relative(name, work / f"pairs-{split_}.csv")
            if name not in images.index:
                raise PgkitError(work / f"pairs-{split_}.csv", f"names {name}, which is not in images.csv "
                                 "(rerun `pgprep pairs WORK` after `pgprep filter`)")
        ex = load_example(work, root, images, src, dst, flip, crop=Crop.from_json(meta.get("crop"), work / "work.json"))
        h, w = ex["target"].shape[:2]
        row = [ex["condition"], ex["target"], draw.skeleton_image(ex["keypoints"], (h, w)),
               draw.mask_overlay(ex["target"], ex["mask"])]
        if cell:
            row = [cv2.resize(im, (cell, cell), interpolation=cv2.INTER_AREA) for im in row]
        rows.append(row)
        labels.append(f"{split_} {item}" + (" flip" if flip else ""))
    return draw.grid(rows, col_labels=COLUMNS, row_labels=labels)


# Written into every sheet as a PNG tEXt chunk right after IHDR (`atomic.mark_image`): `-o` may
# replace a file only when it carries this mark (a sheet pgkit wrote before), or with --force
# when it is not an input.
MARK_KEY, MARK_VALUE = PNG_MARK_KEY, b"pgkit preview"
_PNG_SIG = b"\x89PNG\r\n\x1a\n"


def mark_png(png: bytes) -> bytes:
    """Insert the pgkit-preview tEXt chunk after IHDR (signature 8 + IHDR chunk 25 bytes)."""
    return mark_image(png, MARK_VALUE.decode())


def is_pgkit_preview(path: str | os.PathLike) -> bool:
    """True if `path` is a PNG carrying the mark `mark_png` writes (as its first chunk after IHDR)."""
    mark = png_text_chunk(MARK_KEY, MARK_VALUE)[:-4]  # all but the CRC
    try:
        with open(path, "rb") as f:
            head = f.read(33 + len(mark))
    except OSError:
        return False
    return head.startswith(_PNG_SIG) and head[33:] == mark


def check_output(output: Path, work: Path, force: bool = False) -> None:
    """Refuse an -o that would replace a file pgkit's preview did not write: always when it is
    in WORK or the image ROOT (the inputs: images.csv, pairs, masks, photos), otherwise unless
    `force`. A directory or a symlink is never replaced."""
    if output.is_symlink() or output.is_dir():
        raise PgkitError(output, "is a directory or a symbolic link; choose a new file name for the sheet")
    if not output.exists() or is_pgkit_preview(output):
        return
    target = output.resolve()
    inputs = [work.resolve()]
    with contextlib.suppress(PgkitError, OSError, ValueError):
        meta, _ = read_work(work)
        if meta.get("root"):
            inputs.append(Path(meta["root"]).resolve())
    for folder in inputs:
        if target.is_relative_to(folder):
            raise PgkitError(output, f"exists and is an input under {folder} (not a sheet pgkit wrote); "
                                     "refusing to overwrite it, also with --force: choose another -o")
    if not force:
        raise PgkitError(output, "exists and is not a contact sheet pgkit wrote; refusing to overwrite "
                                 "it (choose another -o, or --force to replace it)")


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
@click.option("--force", is_flag=True,
              help="Replace an existing -o file that is not a sheet pgkit wrote (never one in WORK or ROOT).")
def command(work, output, n, split, seed, cell, force):
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

    -o never replaces a file pgkit did not write as a sheet unless --force, and never
    a file inside WORK or ROOT (images.csv, pairs, masks, photos), even with --force.
    """
    check_output(output, work, force)
    sheet = contact_sheet(work, n=n, split=split, seed=seed, cell=cell)
    write_bytes_atomic(output, mark_png(encode_png(draw.to_uint8(sheet))))
    click.echo(f"wrote {output} ({sheet.shape[1]}x{sheet.shape[0]} px)")
