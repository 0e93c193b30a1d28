"""`pgprep masks`: PG²'s morphological body mask M_B for every kept image.

The mask weights the pose-mask L1 loss of G1, ||(G1 - I_B) * (1 + M_B)||_1, and mask-SSIM.
It is computed from the keypoints alone (`pgprep.geometry.body_mask`: disks of radius r along
PG²'s 23 limbs, then a 5x5 dilation and erosion) and written unflipped as
`WORK/masks/<image path with .png>`, uint8 {0, 255}. A flipped pair reads the mirror of the
mask (np.fliplr): mirroring commutes with the construction, so it is not stored twice.

Each PNG is written atomically and carries a record (a PNG tEXt chunk `pgkit-mask`) of the
digest of the keypoints, the image size and the options it was made from, and of its own
pixels. A rerun keeps a mask only if its record matches the present images.csv row and
options and its pixels still match the digest: a killed run finishes the rest, new
keypoints (filter rerun from another source) or another `--radius` / `--close` recompute
exactly the masks concerned, and an emptied, re-saved (record lost) or edited mask is
redone. The stage is "up to date" only while no mask file changed since it finished (size,
mtime, ctime, inode). `pgprep pack` checks the same record and pixels and refuses a mask
made from other keypoints or edited (`StaleMaskError`). Rows of images.csv whose size or
keypoints cannot be drawn are rejected before anything is allocated (`check_numbers`).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path, PurePosixPath

import click
import numpy as np
import pandas as pd

from pgprep import atomic, imageio, market, skeleton
from pgprep.deepfashion import check_relative
from pgprep.errors import PgkitError
from pgprep.geometry import body_mask, decode_mask, encode_png, size_scale
from pgprep.parallel import default_jobs, run_jobs

STAGE = "masks"
MASK_DIR = "masks"
RECORD_KEY = b"pgkit-mask"  # PNG tEXt keyword of the record every mask carries
RECORD_VERSION = 2  # 2: the record also digests the pixels
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


def pixel_digest(mask: np.ndarray) -> str:
    """Digest of a mask's pixels as {0, 1} (H, W) and its size: the PNG's bytes may differ
    (another encoder), its pixels may not."""
    m = np.ascontiguousarray(np.asarray(mask) > 0)
    return hashlib.sha256(f"{m.shape[0]}x{m.shape[1]}\n".encode() + np.packbits(m).tobytes()).hexdigest()[:32]


def mask_record(kp: np.ndarray, size: tuple[int, int], radius: int, close: int,
                mask: np.ndarray | None = None) -> dict:
    """What a mask was made from: keypoint digest, image size (H, W), radius, close; with
    `mask`, also the digest of its pixels (`pixels`), so an edited PNG is noticed."""
    rec = {"keypoints": keypoint_digest(kp), "size": [int(size[0]), int(size[1])],
           "radius": int(radius), "close": int(close), "version": RECORD_VERSION}
    return rec if mask is None else {**rec, "pixels": pixel_digest(mask)}


def add_record(png: bytes, record: dict) -> bytes:
    """The PNG with a tEXt chunk holding `record` inserted right after IHDR."""
    return atomic.add_png_text(png, RECORD_KEY, json.dumps(record, sort_keys=True).encode("ascii"))


def read_record(png: bytes) -> dict | None:
    """The record of a mask PNG (its bytes, or at least the first few hundred), or None."""
    for key, text in atomic.png_texts(png):
        if key == RECORD_KEY:
            try:
                rec = json.loads(text)
            except (ValueError, UnicodeDecodeError):
                return None
            return rec if isinstance(rec, dict) else None
    return None


def check_record(png: bytes, kp: np.ndarray, path: str | os.PathLike, mask: np.ndarray | None = None) -> None:
    """Raise StaleMaskError naming the mask unless it was made from keypoints `kp` and (given
    its decoded `mask`) still holds the pixels its record digests."""
    rec = read_record(png)
    if rec is None:
        raise StaleMaskError(path, "no keypoint record (not written by this `pgprep masks`); "
                                   "rerun `pgprep masks WORK`")
    if rec.get("keypoints") != keypoint_digest(kp):
        raise StaleMaskError(path, "made from other keypoints than images.csv holds now; "
                                   "rerun `pgprep masks WORK`")
    if mask is not None and rec.get("pixels") != pixel_digest(mask):
        why = "its pixels differ from those its record digests (edited after `pgprep masks` wrote it)" \
            if "pixels" in rec else "its record has no pixel digest (made by an older `pgprep masks`)"
        raise StaleMaskError(path, f"{why}; rerun `pgprep masks WORK`")


def load_mask(path: str | os.PathLike, kp: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The mask for keypoints `kp` of an image of `size` (H, W) -> uint8 {0, 1}: read bounded,
    header checked before decoding (`geometry.decode_mask`), record and pixels checked.
    PgkitError if the file is unusable; StaleMaskError if it is not what `pgprep masks` made
    for `kp` now."""
    data = imageio.read_bytes(path, "mask")
    m = decode_mask(data, path, size)
    check_record(data, kp, path, m)
    return m


def _current(path: Path, record: dict, size: tuple[int, int]) -> bool:
    """True if the mask at `path` is a usable PNG of `size` made from exactly `record` (the
    record without `pixels`) whose pixels still match its digest. An empty, truncated or
    oversized file, a lost record (re-saved PNG) or edited pixels: False, so it is redone."""
    try:
        data = imageio.read_bytes(path, "mask")
        rec = read_record(data)
        if rec is None or {k: v for k, v in rec.items() if k != "pixels"} != record:
            return False
        return rec.get("pixels") == pixel_digest(decode_mask(data, path, size))
    except PgkitError:
        return False


def check_numbers(images: pd.DataFrame) -> tuple[pd.DataFrame, list[dict]]:
    """The rows of images.csv whose numbers can be drawn (width, height and keypoints made
    numeric) and a rejection {image, reason} for each other row, checked before anything is
    allocated: width and height whole numbers >= 1 within the pixel limit
    (`imageio.max_pixels`; 30000x30000 would be a 1.8 GB mask), every keypoint value finite,
    and every detected joint within the image or less than its own size beyond its right or
    bottom edge (a joint at x = 3e7 would draw 7.5 million disks)."""
    cols = ["width", "height", *skeleton.KP_COLUMNS]
    num = images[cols].apply(pd.to_numeric, errors="coerce").astype(np.float64)
    w, h = num["width"].to_numpy(), num["height"].to_numpy()
    kp = num[skeleton.KP_COLUMNS].to_numpy().reshape(len(num), skeleton.N_JOINTS, 3)
    limit = imageio.max_pixels()
    with np.errstate(invalid="ignore", over="ignore"):
        size_ok = np.isfinite(w) & np.isfinite(h) & (w >= 1) & (h >= 1) & (w == np.floor(w)) \
            & (h == np.floor(h)) & (w * h <= limit)
        finite = np.isfinite(kp).all(axis=(1, 2))
        det = (kp[..., 2] > 0) & (kp[..., 0] >= 0) & (kp[..., 1] >= 0)  # skeleton.present
        far = det & ((kp[..., 0] >= 2 * w[:, None]) | (kp[..., 1] >= 2 * h[:, None]))
    rejected = []
    for i in np.flatnonzero(~(size_ok & finite & ~far.any(axis=1))):
        if not size_ok[i]:
            why = (f"bad-size: images.csv says width {_shown(images['width'].iloc[i])}, height "
                   f"{_shown(images['height'].iloc[i])}; expected whole numbers "
                   f">= 1 of at most {limit:,} pixels in all (PGKIT_MAX_PIXELS)")
        elif not finite[i]:
            col = skeleton.KP_COLUMNS[int(np.flatnonzero(~np.isfinite(kp[i].ravel()))[0])]
            why = f"nan-keypoint: images.csv column {col} holds {_shown(images[col].iloc[i])}, not a finite number"
        else:
            j = int(np.flatnonzero(far[i])[0])
            why = (f"bad-pose: keypoint {skeleton.JOINTS[j]} at x={kp[i, j, 0]:g}, y={kp[i, j, 1]:g} lies "
                   f"far outside the {h[i]:g}x{w[i]:g} (HxW) image (more than its size beyond the edge)")
        rejected.append({"image": images["image"].iloc[i], "reason": why})
    keep = size_ok & finite & ~far.any(axis=1)
    images = images.loc[keep].reset_index(drop=True)
    images[cols] = num.loc[keep, cols].reset_index(drop=True)
    return images, rejected


def _shown(value) -> str:
    """A CSV value as a message shows it: text quoted ('abc'), numbers bare (30000, inf, nan)."""
    if isinstance(value, str):
        return repr(value)
    try:
        return f"{float(value):g}"
    except (TypeError, ValueError):
        return repr(value)


def remove_stale_temps(work: str | os.PathLike) -> int:
    """Delete the temporary files killed runs left under WORK/masks: only regular files named
    by pgkit's temp rule (`atomic.temp_target`) for a mask PNG, `.X.png.XXXXXXXX.tmp`; never
    anything else, never through a symlinked folder. Returns how many were deleted."""
    removed = 0
    for folder, _dirs, files in os.walk(Path(work) / MASK_DIR):  # does not follow symlinked folders
        for f in files:
            target = atomic.temp_target(f)
            p = Path(folder) / f
            if target and target.endswith(".png") and p.is_file() and not p.is_symlink():
                p.unlink(missing_ok=True)
                removed += 1
    return removed


def _remove_own_mask(work: Path, image: str) -> None:
    """Delete the mask of `image` if pgkit wrote it (a regular file carrying a `pgkit-mask`
    record); a name that is not safe, a symlink or a file without the record is left alone."""
    try:
        path = mask_path(work, check_relative(image))
    except (PgkitError, TypeError, ValueError):
        return
    if path.is_symlink() or not path.is_file():
        return
    try:
        with open(path, "rb") as f:
            ours = read_record(f.read(4096)) is not None
    except OSError:
        return
    if ours:
        path.unlink(missing_ok=True)


def _outputs_state(work: Path, names: list[str]) -> str:
    """Digest of every mask file's size, mtime, ctime and inode: any change to a mask after
    the stage finished (emptied, re-saved, edited, replaced) makes the next run look at it."""
    h = hashlib.sha256()
    for n in names:
        try:
            st = os.lstat(mask_path(work, n))
            h.update(f"{n}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}\0{st.st_ino}\n".encode())
        except OSError:
            h.update(f"{n}\0missing\n".encode())
    return h.hexdigest()


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
        if skip_existing and _current(path, record, (int(h), int(w))):
            skipped += 1
            continue
        m = body_mask(kp, (int(h), int(w)), radius=radius, close=close)
        empty += int(not m.any())
        cover += float(m.mean())
        atomic.write_bytes_atomic(path, add_record(encode_png(m * np.uint8(255)),
                                                   mask_record(kp, (h, w), radius, close, m)))
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
    # Market-1501 WORK: PG²'s Market masks, radius 4 + 5x5 closing at 128x64 unscaled (pgprep.market)
    radius, close, scale, setting = market.mask_settings(work, radius, close, scale)
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
    if "width" not in images.columns:
        images["width"] = int(size[1])
    images, rejected = check_numbers(images)  # sizes and keypoints, before anything is allocated
    for r in rejected:  # a mask of an earlier run no longer matches a row we reject: pack must not use it
        _remove_own_mask(work, r["image"])
    # names are checked again here: an edited images.csv must not write outside WORK/masks
    refused = []
    for name in images["image"]:
        try:
            check_relative(name, work / "images.csv")
        except PgkitError as exc:
            refused.append({"image": name, "reason": str(exc)})
    if refused:
        images = images[~images["image"].isin({r["image"] for r in refused})].reset_index(drop=True)
    options = {"radius": int(radius), "close": int(close), "version": 3}  # 3: records digest the pixels
    inputs = [work / "images.csv"]
    fp = atomic.fingerprint(inputs, options)
    summary = {"images": len(images), "radius": int(radius), "close": int(close), "setting": setting}
    cleaned = remove_stale_temps(work)
    stamp = work / atomic.STAMP_DIR / f"{STAGE}.json"
    try:
        done = json.loads(stamp.read_text())
    except (OSError, ValueError):
        done = None
    if not isinstance(done, dict) or done.get("fingerprint") != fp:
        done = None
    # up to date: same inputs and options, and no mask touched since (else each is checked below)
    if not force and done and done.get("outputs") == _outputs_state(work, images["image"].tolist()):
        return {**done.get("summary", summary), "up_to_date": True, "temp_removed": cleaned}
    atomic.clear_stamp(work, STAGE)

    skip_existing = not force  # each kept mask's record and pixels are checked (`_write_chunk`)

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
    if done and not written:  # the masks were touched (copied, touched) but are all still right
        atomic.mark_done(work, STAGE, fp, summary=done.get("summary", summary), outputs=_outputs_state(work, names))
        return {**done.get("summary", summary), "up_to_date": True, "temp_removed": cleaned}
    summary.update(written=int(written), skipped_existing=int(skipped), empty=int(empty),
                   mean_coverage=round(cover / written, 4) if written else None,
                   masks_dir=os.fspath(work / MASK_DIR), refused=refused, rejected=rejected,
                   temp_removed=cleaned)
    atomic.mark_done(work, STAGE, fp, summary=summary, outputs=_outputs_state(work, names))
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

    Market-1501 WORK (work.json "dataset": "market"): PG²'s Market setting `pg2-market`,
    radius 4 and 5x5 closing at 128x64, unscaled (docs/market.md), unless options are given.

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
    if s.get("rejected"):
        click.echo(f"rejected {len(s['rejected'])} image(s) of images.csv whose size or keypoints "
                   "cannot be drawn (no mask written):")
        for r in s["rejected"][:20]:
            click.echo(f"  {r['image']}: {r['reason']}")
    setting = f" (setting {s['setting']})" if s.get("setting") else ""
    click.echo(f"wrote masks under {s['masks_dir']}: radius {s['radius']}, close {s['close']}{setting}")
