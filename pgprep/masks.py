"""`pgprep masks`: PG²'s morphological body mask M_B for every kept image.

The mask weights the pose-mask L1 loss of G1, ||(G1 - I_B) * (1 + M_B)||_1, and mask-SSIM.
It is computed from the keypoints alone (`pgprep.geometry.body_mask`: disks of radius r along
PG²'s 23 limbs, then a 5x5 dilation and erosion) and written unflipped as
`WORK/masks/<image path with .png>`, uint8 {0, 255}. A flipped pair reads the mirror of the
mask (np.fliplr): mirroring commutes with the construction, so it is not stored twice.

Each PNG is written atomically, so a killed run leaves only complete masks; a rerun with the
same options skips them and finishes the rest. Changing `--radius` or `--close` recomputes all.
"""

from __future__ import annotations

import json
import os
from pathlib import Path, PurePosixPath

import click
import numpy as np

from pgprep import atomic, skeleton
from pgprep.errors import PgkitError
from pgprep.geometry import body_mask, encode_png
from pgprep.parallel import default_jobs, run_jobs

STAGE = "masks"
MASK_DIR = "masks"
OPTIONS_FILE = ".options.json"  # inside WORK/masks: the options the present masks were made with
CHUNK = 64
PARALLEL_MIN = 2000  # jobs=None: in-process below this many images
PG2_SIZE = 256  # PG²'s radius 4 and 5x5 closing are meant for 256x256 DeepFashion images


def scaled_options(radius: int, close: int, size: tuple[int, int]) -> tuple[int, int]:
    """Radius and closing size scaled from PG²'s 256 px to an image of `size` (H, W):
    radius -> max(1, round(radius * s)), close -> the nearest odd size (0 stays 0), with
    s = min(H, W) / 256. At 64 px: radius 4 -> 1, close 5 -> 1 (no closing)."""
    s = min(size) / PG2_SIZE
    r = max(1, int(round(radius * s)))
    c = 0 if close == 0 else max(1, int(round(close * s)))
    return r, (c if c % 2 else c + 1) if c else 0


def mask_path(work: str | os.PathLike, image: str) -> Path:
    """WORK/masks/<image path with .png> (the image tree mirrored)."""
    return Path(work) / MASK_DIR / PurePosixPath(image).with_suffix(".png")


def _write_chunk(task: tuple) -> tuple[int, int, int, float]:
    """Compute and write the masks of one chunk, given as (work, names, keypoints, sizes,
    radius, close, skip_existing): returns (written, skipped, empty, covered fraction sum)."""
    work, names, kps, sizes, radius, close, skip_existing = task
    written = skipped = empty = 0
    cover = 0.0
    for name, kp, (h, w) in zip(names, kps, sizes, strict=True):
        path = mask_path(work, name)
        if skip_existing and path.exists():
            skipped += 1
            continue
        m = body_mask(kp, (int(h), int(w)), radius=radius, close=close)
        empty += int(not m.any())
        cover += float(m.mean())
        atomic.write_bytes_atomic(path, encode_png(m * np.uint8(255)))
        written += 1
    return written, skipped, empty, cover


def run_masks(work: str | os.PathLike, radius: int = 4, close: int = 5, jobs: int | None = None,
              force: bool = False, progress: bool | None = None, scale: bool = False) -> dict:
    """Write the body mask of every image in WORK/images.csv; return counts.

    `radius`: disk radius in px (PG² trains with 4); `close`: side of the square used for the
    dilation-then-erosion (0 = none); `jobs`: worker processes (None = all cores, 1 = in this
    process; None runs in-process below 2,000 images); `scale`: scale radius and close from PG²'s 256 px to the image size of
    work.json (`scaled_options`; for small sets such as 64 px demos). Image sizes come from
    images.csv (`width`, `height`), else work.json.
    """
    from pgprep.cliutil import progress as bar
    from pgprep.pairs import read_work

    work = Path(work)
    if radius < 0 or close < 0:
        raise PgkitError(None, f"radius and close must be >= 0, got {radius} and {close}")
    if close and close % 2 == 0:
        raise PgkitError(None, f"close must be 0 or odd (a centred square), got {close}")
    meta, images = read_work(work)
    size = meta.get("image_size") or [PG2_SIZE, PG2_SIZE]
    if scale:
        radius, close = scaled_options(radius, close, tuple(size))
    if "height" not in images.columns:
        images["height"] = int(size[0])
    options = {"radius": int(radius), "close": int(close), "version": 1}
    inputs = [work / "images.csv"]
    fp = atomic.fingerprint(inputs, options)
    outputs = [mask_path(work, n) for n in images["image"]]
    summary = {"images": len(images), "radius": int(radius), "close": int(close)}
    if not force and atomic.is_up_to_date(work, STAGE, fp, outputs):
        rec = json.loads((work / atomic.STAMP_DIR / f"{STAGE}.json").read_text())
        return {**rec.get("summary", summary), "up_to_date": True}
    atomic.clear_stamp(work, STAGE)

    # resume only masks made with the same options; record the options before writing any
    opt_file = work / MASK_DIR / OPTIONS_FILE
    try:
        previous = json.loads(opt_file.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        previous = None
    skip_existing = previous == options and not force
    atomic.write_json_atomic(opt_file, options)

    kps = skeleton.frame_columns(images)
    sizes = images[["height", "width"]].to_numpy(np.int64)
    names = images["image"].tolist()
    chunks = [slice(i, i + CHUNK) for i in range(0, len(names), CHUNK)]
    args = [(os.fspath(work), names[c], kps[c], sizes[c], int(radius), int(close), skip_existing)
            for c in chunks]
    # ~2 ms per 256 px mask: below a few thousand images, starting workers costs more than it saves
    n_jobs = (default_jobs() if len(names) >= PARALLEL_MIN else 1) if jobs is None else max(1, int(jobs))
    totals = np.zeros(4)
    with bar(total=len(names), desc="masks", unit="img", disable=None if progress is None else not progress) as pb:
        results = run_jobs(_write_chunk, args, jobs=n_jobs)
        for r, c in zip(results, chunks, strict=True):
            totals += r
            pb.update(len(names[c]))
    written, skipped, empty, cover = totals
    summary.update(written=int(written), skipped_existing=int(skipped), empty=int(empty),
                   mean_coverage=round(cover / written, 4) if written else None,
                   masks_dir=os.fspath(work / MASK_DIR))
    atomic.mark_done(work, STAGE, fp, summary=summary)
    return {**summary, "up_to_date": False}


@click.command("masks")
@click.argument("work", type=click.Path(file_okay=False, path_type=Path))
@click.option("--radius", type=click.IntRange(min=0), default=4, show_default=True,
              help="Radius in px of the disks along each limb (PG² trains with 4).")
@click.option("--close", type=click.IntRange(min=0), default=5, show_default=True,
              help="Side (odd) of the square for the dilation-then-erosion (0 = none).")
@click.option("--scale", is_flag=True,
              help="Scale --radius and --close from PG²'s 256 px to this set's image size.")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=None,
              help="Worker processes (default: all cores from 2,000 images on, else 1).")
@click.option("--force", is_flag=True, help="Recompute every mask even if the stage looks done.")
def command(work, radius, close, scale, jobs, force):
    """Write PG²'s body mask of every kept image to WORK/masks/ (uint8 PNG, 0 or 255).

    For each of PG²'s 23 limbs whose two ends were detected, disks of radius --radius are
    drawn at both ends and at evenly spaced points between them; the union is closed with a
    --close x --close dilation followed by an erosion. Masks mirror the image tree and
    are stored unflipped (a flipped pair uses the mirror):

    \b
      img/WOMEN/Dresses/id_00000002/02_1_front.jpg
      -> WORK/masks/img/WOMEN/Dresses/id_00000002/02_1_front.png

    \b
    Examples:
      pgprep masks data/work
      pgprep masks data/work --radius 8 --jobs 2
      pgprep masks data/work --close 0        # disks only, no closing
      pgprep masks data/demo --scale          # 64 px images: radius 1, no closing

    \b
    A killed run leaves only complete PNGs; rerunning finishes the rest. A rerun with the
    same images.csv and options does nothing and says so.
    """
    s = run_masks(work, radius=radius, close=close, jobs=jobs, force=force, scale=scale)
    if s.get("up_to_date"):
        click.echo(f"masks: {work} is up to date ({s['images']} masks, radius {s['radius']}, "
                   f"close {s['close']}); nothing to do. Use --force to recompute.")
        return
    from pgprep.cliutil import echo_table

    echo_table([[s["images"], s["written"], s["skipped_existing"], s["empty"], s["mean_coverage"]]],
               ["images", "masks written", "kept from an earlier run", "empty masks", "mean coverage"])
    if s["empty"]:
        click.echo(f"warning: {s['empty']} mask(s) are empty (no limb with both ends detected)", err=True)
    click.echo(f"wrote masks under {s['masks_dir']}")
