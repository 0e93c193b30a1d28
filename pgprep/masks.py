"""`pgprep masks`: PG²'s morphological body mask M_B for every kept image.

The mask weights the pose-mask L1 loss of G1, ||(G1 - I_B) * (1 + M_B)||_1, and mask-SSIM.
It is computed from the keypoints alone (`pgprep.geometry.body_mask`: disks of radius r along
PG²'s 23 limbs, then a 5x5 dilation and erosion) and written unflipped as
`WORK/masks/<image path with .png>`, uint8 {0, 255}. A flipped pair reads the mirror of the
mask (np.fliplr): mirroring commutes with the construction, so it is not stored twice.

Each PNG is written atomically and carries a record (a PNG tEXt chunk `pgkit-mask`) of the
digest of the keypoints, the image size and the options it was made from. A rerun keeps a
mask only if its record matches the present images.csv row and options: a killed run
finishes the rest, and new keypoints (filter rerun from another source) or another
`--radius` / `--close` recompute exactly the masks concerned. `pgprep pack` checks the same
record and refuses a mask made from other keypoints (`StaleMaskError`).
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import zlib
from pathlib import Path, PurePosixPath

import click
import numpy as np

from pgprep import atomic, skeleton
from pgprep.deepfashion import check_relative
from pgprep.errors import PgkitError
from pgprep.geometry import body_mask, encode_png, size_scale
from pgprep.parallel import default_jobs, run_jobs

STAGE = "masks"
MASK_DIR = "masks"
RECORD_KEY = b"pgkit-mask"  # PNG tEXt keyword of the record every mask carries
RECORD_VERSION = 1
CHUNK = 64
PARALLEL_MIN = 2000  # jobs=None: in-process below this many images
PG2_SIZE = 256  # PG²'s radius 4 and 5x5 closing are meant for 256x256 DeepFashion images
PG2_RADIUS, PG2_CLOSE = 4, 5


def scaled_options(radius: int, close: int, size: tuple[int, int]) -> tuple[int, int]:
    """Radius and closing size scaled from PG²'s 256 px to an image of `size` (H, W):
    radius -> max(1, round(radius * s)), close -> the nearest odd size (0 stays 0), with
    s = H / 256 (`geometry.size_scale`: a standing person spans the height, so 256x176 crops
    keep PG²'s 4 and 5). At 64 px: radius 4 -> 1, close 5 -> 1 (no closing); 560 px: 9, 11."""
    s = size_scale(size)
    r = max(1, int(round(radius * s)))
    c = 0 if close == 0 else max(1, int(round(close * s)))
    return r, (c if c % 2 else c + 1) if c else 0


def mask_path(work: str | os.PathLike, image: str) -> Path:
    """WORK/masks/<image path with .png> (the image tree mirrored)."""
    return Path(work) / MASK_DIR / PurePosixPath(image).with_suffix(".png")


class StaleMaskError(PgkitError):
    """A mask whose record does not match the keypoints it would be packed with."""


def keypoint_digest(kp: np.ndarray) -> str:
    """Digest of one image's (18, 3) keypoints as float32 (as read from images.csv)."""
    return hashlib.sha256(np.ascontiguousarray(kp, np.float32).tobytes()).hexdigest()[:32]


def mask_record(kp: np.ndarray, size: tuple[int, int], radius: int, close: int) -> dict:
    """What a mask was made from: keypoint digest, image size (H, W), radius, close."""
    return {"keypoints": keypoint_digest(kp), "size": [int(size[0]), int(size[1])],
            "radius": int(radius), "close": int(close), "version": RECORD_VERSION}


def add_record(png: bytes, record: dict) -> bytes:
    """The PNG with a tEXt chunk holding `record` inserted right after IHDR."""
    data = RECORD_KEY + b"\0" + json.dumps(record, sort_keys=True).encode("ascii")
    chunk = struct.pack(">I", len(data)) + b"tEXt" + data + struct.pack(">I", zlib.crc32(b"tEXt" + data))
    return png[:33] + chunk + png[33:]  # 8-byte signature + 25-byte IHDR chunk


def read_record(png: bytes) -> dict | None:
    """The record of a mask PNG (its bytes, or at least the first few hundred), or None."""
    pos = 8
    while pos + 8 <= len(png):
        n, kind = struct.unpack(">I4s", png[pos:pos + 8])
        if kind in (b"IDAT", b"IEND"):
            return None
        if kind == b"tEXt":
            key, _, text = png[pos + 8:pos + 8 + n].partition(b"\0")
            if key == RECORD_KEY:
                try:
                    rec = json.loads(text)
                except (ValueError, UnicodeDecodeError):
                    return None
                return rec if isinstance(rec, dict) else None
        pos += 12 + n
    return None


def check_record(png: bytes, kp: np.ndarray, path: str | os.PathLike) -> None:
    """Raise StaleMaskError naming the mask unless it was made from keypoints `kp`."""
    rec = read_record(png)
    if rec is None:
        raise StaleMaskError(path, "no keypoint record (not written by this `pgprep masks`); "
                                   "rerun `pgprep masks WORK`")
    if rec.get("keypoints") != keypoint_digest(kp):
        raise StaleMaskError(path, "made from other keypoints than images.csv holds now; "
                                   "rerun `pgprep masks WORK`")


def _current(path: Path, record: dict) -> bool:
    """True if the mask at `path` exists and was made from exactly `record`."""
    try:
        with open(path, "rb") as f:
            head = f.read(1024)
    except OSError:
        return False
    return read_record(head) == record


def _write_chunk(task: tuple) -> tuple[int, int, int, float]:
    """Compute and write the masks of one chunk, given as (work, names, keypoints, sizes,
    radius, close, skip_existing): returns (written, skipped, empty, covered fraction sum).
    With `skip_existing`, a mask whose record matches its keypoints and options is kept."""
    work, names, kps, sizes, radius, close, skip_existing = task
    written = skipped = empty = 0
    cover = 0.0
    for name, kp, (h, w) in zip(names, kps, sizes, strict=True):
        path = mask_path(work, name)
        record = mask_record(kp, (h, w), radius, close)
        if skip_existing and _current(path, record):
            skipped += 1
            continue
        m = body_mask(kp, (int(h), int(w)), radius=radius, close=close)
        empty += int(not m.any())
        cover += float(m.mean())
        atomic.write_bytes_atomic(path, add_record(encode_png(m * np.uint8(255)), record))
        written += 1
    return written, skipped, empty, cover


def run_masks(work: str | os.PathLike, radius: int | None = None, close: int | None = None,
              jobs: int | None = None, force: bool = False, progress: bool | None = None,
              scale: bool | None = None) -> dict:
    """Write the body mask of every image in WORK/images.csv; return counts.

    `radius`: disk radius in px (PG² trains with 4 at 256 px); `close`: side of the square
    used for the dilation-then-erosion (0 = none); `jobs`: worker processes (None = all
    cores, 1 = in this process; None runs in-process below 2,000 images); `scale`: scale
    radius and close from PG²'s 256 px to the image height of work.json (`scaled_options`).
    By default (`scale=None`) PG²'s 4 and 5 are scaled and explicit values are used as given;
    `scale=False` keeps 4 and 5 px at any size, `scale=True` scales explicit values too.
    Image sizes come from images.csv (`width`, `height`), else work.json.
    """
    from pgprep.cliutil import progress as bar
    from pgprep.pairs import read_work

    work = Path(work)
    if scale is None:
        scale = radius is None and close is None
    radius = PG2_RADIUS if radius is None else radius
    close = PG2_CLOSE if close is None else close
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
    # names are checked again here: an edited images.csv must not write outside WORK/masks
    refused = []
    for name in images["image"]:
        try:
            check_relative(name, work / "images.csv")
        except PgkitError as exc:
            refused.append({"image": name, "reason": str(exc)})
    if refused:
        images = images[~images["image"].isin({r["image"] for r in refused})].reset_index(drop=True)
    options = {"radius": int(radius), "close": int(close), "version": 2}  # 2: masks carry records
    inputs = [work / "images.csv"]
    fp = atomic.fingerprint(inputs, options)
    outputs = [mask_path(work, n) for n in images["image"]]
    summary = {"images": len(images), "radius": int(radius), "close": int(close)}
    if not force and atomic.is_up_to_date(work, STAGE, fp, outputs):
        rec = json.loads((work / atomic.STAMP_DIR / f"{STAGE}.json").read_text())
        return {**rec.get("summary", summary), "up_to_date": True}
    atomic.clear_stamp(work, STAGE)

    skip_existing = not force  # each kept mask's record is checked (`_write_chunk`)

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
                   masks_dir=os.fspath(work / MASK_DIR), refused=refused)
    atomic.mark_done(work, STAGE, fp, summary=summary)
    return {**summary, "up_to_date": False}


@click.command("masks")
@click.argument("work", type=click.Path(file_okay=False, path_type=Path))
@click.option("--radius", type=click.IntRange(min=0), default=None,
              help="Radius in px of the disks along each limb, used as given. Default: PG²'s 4 at "
                   "256 px scaled to the image height (64 px: 1, 560 px: 9).")
@click.option("--close", type=click.IntRange(min=0), default=None,
              help="Side (odd) of the square for the dilation-then-erosion (0 = none), used as given. "
                   "Default: PG²'s 5 at 256 px scaled to the image height.")
@click.option("--scale/--no-scale", default=None,
              help="--scale: scale an explicit --radius/--close from 256 px too; --no-scale: PG²'s "
                   "4 and 5 px at any image size.")
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
      pgprep masks data/demo --no-scale       # 4 px disks and 5x5 closing at any size

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
    if s.get("refused"):
        click.echo(f"refused {len(s['refused'])} image name(s) of images.csv (no mask written):")
        for r in s["refused"][:20]:
            click.echo(f"  {r['reason']}")
    click.echo(f"wrote masks under {s['masks_dir']}")
