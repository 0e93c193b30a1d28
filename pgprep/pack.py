"""`pgprep pack`: WORK (images, keypoints, masks, pairs) -> HDF5 shards + index.json.

Pairs are grouped by item (a shard holds whole items, so no pair crosses a shard) and
items are cut into shards of about `max_pairs` pairs or `max_mb` megabytes. Every shard is
an independent job (pgprep.parallel: loky or dask); a job reads its images and masks,
drops pairs whose inputs are unreadable or whose names are unsafe (reported, never
written), refuses masks made from other keypoints (StaleMaskError), hashes the shard,
records a sidecar `SHARDS/.pgkit/shards/<file>.json` (fingerprint of its inputs, sha256,
quick digest), then writes the shard under a temporary name and renames it into place. A
rerun skips every shard whose sidecar fingerprint and file hash still match, and index.json
is written last. Only files pgkit recorded are ever deleted or overwritten in SHARDS.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import click
import numpy as np
import pandas as pd

from pgprep import __version__, geometry, imageio, market, skeleton
from pgprep import shards as shard_format
from pgprep.atomic import (
    STAMP_DIR,
    atomic_path,
    fingerprint,
    is_up_to_date,
    mark_done,
    temp_target,
    write_json_atomic,
)
from pgprep.cliutil import debug_option, progress
from pgprep.deepfashion import check_relative
from pgprep.errors import PgkitError
from pgprep.masks import StaleMaskError, load_mask, mask_path
from pgprep.parallel import BACKENDS, default_jobs, run_jobs

STAGE = "pack"
SIDECARS = Path(STAMP_DIR) / "shards"
DEFAULT_MAX_PAIRS = 4000
DEFAULT_MAX_MB = 1024
MIN_POSE_PX = 0.01  # smallest pose radius / sigma: sigma 1e-200 squares to 0 (ZeroDivisionError)


@dataclass
class ShardJob:
    """Everything one shard needs; plain data so it pickles to loky and dask workers."""

    file: str
    split: str
    layout: str
    out_dir: str
    root: str
    work: str
    image_size: tuple[int, int]
    pose: dict
    pairs: list[tuple[str, str, int]]
    keypoints: dict[str, list] = field(repr=False)
    fingerprint: str = ""
    crop: dict | None = None  # work.json's crop (geometry.Crop): pixels are cut and stored as PNG


# ---------------------------------------------------------------- reading WORK

def _read_csv(path: Path, required: list[str]) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path, dtype={"image": str, "from": str, "to": str, "item_id": str})
    except FileNotFoundError:
        raise PgkitError(path, "missing (run the earlier pgprep stages first)") from None
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise PgkitError(path, f"unreadable CSV ({exc})") from None
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise PgkitError(path, f"missing columns {missing}")
    return frame


def load_work(work: str | os.PathLike) -> dict:
    """work.json, images.csv (keypoints by image) and the pairs of each split."""
    work = Path(work)
    try:
        meta = json.loads((work / "work.json").read_text())
    except FileNotFoundError:
        raise PgkitError(work / "work.json", "missing: not a WORK directory (run `pgprep filter`)") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise PgkitError(work / "work.json", f"unreadable ({exc})") from None
    if "root" not in meta or "image_size" not in meta:
        raise PgkitError(work / "work.json", "needs 'root' and 'image_size'")
    images = _read_csv(work / "images.csv", ["image", "item_id"] + skeleton.KP_COLUMNS)
    kps = skeleton.frame_columns(images)
    keypoints = {name: kp for name, kp in zip(images["image"], kps, strict=True)}
    items = dict(zip(images["image"], images["item_id"], strict=True))
    pairs = {}
    for split in shard_format.SPLITS:
        path = work / f"pairs-{split}.csv"
        frame = _read_csv(path, ["from", "to", "flip"])
        if "item_id" not in frame.columns:
            frame["item_id"] = [items.get(a, a) for a in frame["from"]]
        try:
            flips = frame["flip"].astype(int).to_numpy()
        except ValueError:
            raise PgkitError(path, "column flip must hold 0 or 1") from None
        if not np.isin(flips, (0, 1)).all():
            raise PgkitError(path, "column flip must hold 0 or 1")
        pairs[split] = list(zip(frame["from"], frame["to"], flips.tolist(), frame["item_id"].astype(str), strict=True))
    h, w = (int(v) for v in meta["image_size"])
    crop = geometry.Crop.from_json(meta.get("crop"), work / "work.json")
    if crop is not None and crop.size != (h, w):
        raise PgkitError(work / "work.json", f"image_size {h}x{w} is not the crop's {crop.size[0]}x{crop.size[1]}")
    return {"root": str(meta["root"]), "image_size": (h, w), "keypoints": keypoints, "pairs": pairs,
            "crop": crop}


def plan_shards(pairs: list[tuple], split: str, layout: str, root: Path, image_size,
                max_pairs: int, max_bytes: int) -> list[list[tuple[str, str, int]]]:
    """Cut pairs into shards of whole items (item order = first appearance in the CSV)."""
    by_item: dict[str, list] = {}
    for a, b, flip, item in pairs:
        by_item.setdefault(item, []).append((a, b, int(flip)))
    h, w = image_size
    dense_pair = h * w * 25 * 4
    groups, cur, cur_pairs, cur_bytes, seen = [], [], 0, 0, set()
    for item_pairs in by_item.values():
        if layout == "dense":
            add = dense_pair * len(item_pairs)
        else:
            new = {n for p in item_pairs for n in p[:2]} - seen
            add = sum(_size(root, n) + h * w // 16 for n in new)
        if cur and (cur_pairs + len(item_pairs) > max_pairs or cur_bytes + add > max_bytes):
            groups.append(cur)
            cur, cur_pairs, cur_bytes, seen = [], 0, 0, set()
            if layout != "dense":
                add = sum(_size(root, n) + h * w // 16 for n in {n for p in item_pairs for n in p[:2]})
        cur += item_pairs
        cur_pairs += len(item_pairs)
        cur_bytes += add
        seen |= {n for p in item_pairs for n in p[:2]}
    if cur:
        groups.append(cur)
    return groups


def _size(root: Path, name: str) -> int:
    try:
        return (root / check_relative(name)).stat().st_size
    except (OSError, PgkitError):
        return 0


# ---------------------------------------------------------------- one shard (runs in a worker)

def _load_inputs(job: ShardJob, names: list[str]) -> tuple[dict, dict, dict]:
    """Read and check every image and mask; returns ({image: (file bytes, BGR pixels or None)},
    masks, {bad image: reason}). Every image is decoded as a check; only the dense layout,
    which stores pixels, keeps the decoded array."""
    h, w = job.image_size
    data, masks, bad = {}, {}, {}
    for name in names:
        try:  # names read back from WORK are checked again: never read outside ROOT / WORK
            check_relative(name, Path(job.work) / f"pairs-{job.split}.csv")
        except PgkitError as exc:
            bad[name] = str(exc)
            continue
        if name not in job.keypoints:
            bad[name] = "not in images.csv"
            continue
        path = Path(job.root) / name
        try:
            raw = imageio.read_bytes(path)  # bounded: a device, FIFO or oversized file is refused
            info = imageio.probe(raw, path)
            want = tuple(geometry.Crop.from_json(job.crop).source_size) if job.crop is not None else (h, w)
            if (info.height, info.width) != want:  # from the header, before any pixel is decoded
                raise PgkitError(path, f"image is {info.height}x{info.width} (HxW), work.json says "
                                       f"{want[0]}x{want[1]}")
            rgb = imageio.decode(raw, path, info=info)
            if info.alpha:  # the shard reader decodes colour only: store the pixels over white, lossless
                raw = geometry.encode_png(rgb)
            if job.crop is not None:  # the crop of `pgprep filter --crop`: the pixels change, so PNG
                rgb = geometry.Crop.from_json(job.crop).image(rgb, path)
                raw = geometry.encode_png(rgb)
            if rgb.shape[:2] != (h, w):
                raise PgkitError(path, f"image is {rgb.shape[0]}x{rgb.shape[1]} (HxW), work.json says {h}x{w}")
            # bounded, header size checked before decoding, record and pixel digest checked
            m = load_mask(mask_path(Path(job.work), name), np.asarray(job.keypoints[name], np.float32), (h, w))
        except OSError as exc:
            bad[name] = f"{path}: cannot read ({exc.strerror})"
            continue
        except StaleMaskError:
            raise  # masks older than images.csv: the stage order is wrong, not one record
        except PgkitError as exc:
            bad[name] = str(exc)
            continue
        data[name] = (raw, rgb[..., ::-1] if job.layout == "dense" else None)  # BGR, as the reader's cv2.imdecode
        masks[name] = m
    return data, masks, bad


def pack_shard(job: ShardJob) -> dict:
    """Write one shard (atomically) and its sidecar; returns its index entry."""
    names = list(dict.fromkeys(n for p in job.pairs for n in p[:2]))
    data, masks, bad = _load_inputs(job, names)
    kept, removed_count = [], {}
    for a, b, flip in job.pairs:
        culprit = a if a in bad else b if b in bad else None
        if culprit is None:
            kept.append((a, b, flip))
        else:
            removed_count[culprit] = removed_count.get(culprit, 0) + 1
    removed = [{"image": n, "reason": bad[n], "pairs": removed_count.get(n, 0)} for n in bad]
    used = list(dict.fromkeys(n for p in kept for n in p[:2]))
    out = Path(job.out_dir) / job.file
    kp = {n: np.asarray(job.keypoints[n], np.float32) for n in used}
    # HDF5 is built in memory and written with one plain write: a full disk then fails as a
    # clean OSError (libhdf5 itself crashes the process when a write fails mid-file).
    buf = io.BytesIO()
    if job.layout == "compact":
        pos = {n: i for i, n in enumerate(used)}
        shard_format.write_compact(
            buf, job.split, job.image_size, job.pose, used, [data[n][0] for n in used],
            np.stack([kp[n] for n in used]) if used else np.zeros((0, 18, 3), np.float32),
            np.stack([masks[n] for n in used]) if used else np.zeros((0,) + tuple(job.image_size), np.uint8),
            np.array([pos[a] for a, _, _ in kept], np.int32),
            np.array([pos[b] for _, b, _ in kept], np.int32),
            np.array([f for _, _, f in kept], np.uint8), removed,
            **({"image_encoding": shard_format.CROP_ENCODING.format(crop=job.crop)} if job.crop else {}))
    else:
        writer = shard_format.DenseWriter(buf, job.split, job.image_size, job.pose, len(kept), removed)
        try:
            for a, b, flip in kept:
                raw = shard_format.raw_example(data[a][1], data[b][1], kp[b], masks[b], bool(flip))
                ex = shard_format.to_hwc(shard_format.float_example(raw, job.pose))
                writer.add({**ex, "from": a, "to": b, "flip": flip})
        finally:
            writer.close(len(used))
    data_bytes = buf.getbuffer()
    entry = {"file": job.file, "split": job.split, "pairs": len(kept), "images": len(used),
             "bytes": len(data_bytes), "sha256": hashlib.sha256(data_bytes).hexdigest(),
             "quick_sha256": shard_format.quick_digest(data_bytes)}
    # the sidecar first: a shard renamed into place is always recorded as pgkit's own (a kill
    # between the two leaves a sidecar whose file is missing: the rerun writes it)
    write_json_atomic(Path(job.out_dir) / SIDECARS / (job.file + ".json"),
                      {**entry, "fingerprint": job.fingerprint, "removed": removed})
    with atomic_path(out) as tmp, open(tmp, "wb") as fh:
        fh.write(data_bytes)
    data_bytes.release()
    return {**entry, "removed": removed}


def _complete(out_dir: Path, job: ShardJob, held: dict) -> dict | None:
    """The sidecar of a shard a previous run finished with the same inputs, if its hash holds."""
    side = out_dir / SIDECARS / (job.file + ".json")
    try:
        rec = json.loads(side.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    path = out_dir / job.file
    if rec.get("fingerprint") != job.fingerprint or not path.is_file():
        return None
    if "quick_sha256" not in rec:  # made by an older pgkit: rewrite it
        return None
    if not _holds(path, rec, held):
        return None
    return {k: rec[k] for k in ENTRY_KEYS + ("removed",)}


def _holds(path: Path, entry: dict, held: dict) -> bool:
    """`shards.check_shard_file(full=True)` as yes / no, remembered in `held` by file and
    recorded size and digests: the up-to-date check (index.json) and the resume check (the
    sidecars, which record the same) ask about the same shards, and each is read once."""
    key = (path.name, entry.get("bytes"), entry.get("sha256"), entry.get("quick_sha256"))
    if key not in held:
        try:
            shard_format.check_shard_file(path, entry, full=True)
            held[key] = True
        except (PgkitError, KeyError, TypeError, ValueError):  # also a sidecar missing a field
            held[key] = False
    return held[key]


ENTRY_KEYS = ("file", "split", "pairs", "images", "bytes", "sha256", "quick_sha256")
def _is_our_temp(filename: str) -> bool:
    """A temporary file a killed pack left: atomic_path's name for a shard or index.json."""
    target = temp_target(filename)
    return target is not None and (target == shard_format.INDEX or bool(shard_format.SHARD_FILE.fullmatch(target)))


def _own_index(out_dir: Path) -> dict | None:
    """index.json as plain JSON when pgkit wrote it (its format, any version), else None."""
    try:
        doc = json.loads((out_dir / shard_format.INDEX).read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and doc.get("format") == shard_format.FORMAT else None


def _recorded_shards(out_dir: Path, index: dict | None) -> set[str]:
    """Shard files pgkit recorded in `out_dir`: listed by its index.json (`index`, as
    `_own_index` reads it) or by a sidecar."""
    names = set()
    if index is not None and isinstance(index.get("shards"), list):
        names |= {e.get("file") for e in index["shards"] if isinstance(e, dict)}
    for side in (out_dir / SIDECARS).glob("*.h5.json"):
        try:
            rec = json.loads(side.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(rec, dict) and rec.get("file") == side.name[:-len(".json")]:
            names.add(rec["file"])
    return {n for n in names if isinstance(n, str) and shard_format.SHARD_FILE.fullmatch(n)}


def _check_output_dir(out_dir: Path, index: dict | None = None) -> set[str]:
    """Refuse an output folder holding anything pgkit did not write there (so nothing of the
    user's is overwritten or deleted); returns the shards pgkit recorded in it. `index`:
    index.json as already read and validated (`shards.read_index`), if it was."""
    if out_dir.exists() and not out_dir.is_dir():
        raise PgkitError(out_dir, "exists and is not a folder")
    if not out_dir.exists():
        return set()
    if index is None:
        index = _own_index(out_dir)
    recorded = _recorded_shards(out_dir, index)
    ours = recorded | {STAMP_DIR}
    if index is not None:
        ours.add(shard_format.INDEX)
    foreign = sorted(p.name for p in out_dir.iterdir() if p.name not in ours and not _is_our_temp(p.name))
    if foreign:
        more = f" (and {len(foreign) - 1} more)" if len(foreign) > 1 else ""
        raise PgkitError(out_dir / foreign[0], f"not written by pgkit{more}: pack writes only into an "
                         "empty folder or one it made, and never deletes or overwrites other files; "
                         "move it away or choose another -o")
    return recorded


def _valid_index(out_dir: Path) -> dict | None:
    """index.json read and validated (`shards.read_index`), or None."""
    try:
        return shard_format.read_index(out_dir)
    except PgkitError:
        return None


def _index_matches(out_dir: Path, index: dict | None, jobs_list: list, held: dict) -> bool:
    """`index` (index.json, validated) lists exactly the planned shards, and every shard still
    has its recorded size and digests (a full re-hash, remembered in `held`: ~1.1 s a GiB)."""
    if index is None or [e["file"] for e in index["shards"]] != [j.file for j in jobs_list]:
        return False
    for e in index["shards"]:
        path = out_dir / e["file"]
        if not _holds(path, e, held):
            return False
        try:
            shard_format.open_shard(path).close()   # links / external storage: not ours, redo it
        except (OSError, PgkitError):
            return False
    return True


# ---------------------------------------------------------------- the stage

def run_pack(work: str | os.PathLike, shards: str | os.PathLike, layout: str = "compact",
             jobs: int | None = None, backend: str = "loky", scheduler: str | None = None,
             pose_kind: str = "disk", pose_radius: float | None = None, pose_sigma: float | None = None,
             max_pairs: int = DEFAULT_MAX_PAIRS, max_mb: float = DEFAULT_MAX_MB,
             cluster_options: dict | None = None, show_progress: bool = False,
             force: bool = False) -> dict:
    """Pack WORK into shards. Returns a summary: pairs per split, shards written/skipped,
    bytes, removed inputs, `up_to_date` (True when nothing had to be done).

    Up to date means: the same inputs and options as last time, and every shard still has
    the size and sha256 index.json records. `force` rewrites every shard. The output folder
    may hold only what pgkit wrote there (`_check_output_dir`); a shard the new plan no
    longer needs is deleted only if pgkit recorded it (index.json or a sidecar)."""
    if layout not in shard_format.LAYOUTS:
        raise PgkitError(None, f"layout must be one of {shard_format.LAYOUTS}, got {layout!r}")
    work, out_dir = Path(work), Path(shards)
    w = load_work(work)
    pose_radius = market.pose_radius(work, pose_radius)  # Market-1501: PG²'s 4 px at 128x64, unscaled
    # pose maps scale with the image height like the masks (PG²'s radius 4 at 256 px) unless given
    radius, sigma = geometry.scaled_pose(w["image_size"], pose_radius, pose_sigma)
    check_pose_options(radius, sigma, w["image_size"])
    pose = shard_format.pose_settings(pose_kind, radius, sigma)
    root = Path(w["root"])
    if not root.is_absolute():
        root = (work / root).resolve()
    jobs_list: list[ShardJob] = []
    for split in shard_format.SPLITS:
        groups = plan_shards(w["pairs"][split], split, layout, root, w["image_size"], max_pairs,
                             int(max_mb * 2**20))
        for k, pairs in enumerate(groups):
            names = sorted({n for p in pairs for n in p[:2]})
            kps = {n: w["keypoints"][n].tolist() for n in names if n in w["keypoints"]}
            job = ShardJob(shard_format.shard_name(split, k), split, layout, str(out_dir), str(root),
                           str(work), w["image_size"], pose, pairs, kps,
                           crop=w["crop"].to_json() if w["crop"] else None)
            safe = [n for n in names if _is_safe(n)]  # unsafe ones are rejected by the job
            files = [root / n for n in safe] + [mask_path(work, n) for n in safe]
            job.fingerprint = fingerprint(files, {"layout": layout, "pose": pose, "file": job.file,
                                                  "size": w["image_size"], "pairs": pairs,
                                                  "keypoints": kps, "schema": shard_format.VERSION,
                                                  **({"crop": job.crop} if job.crop else {})})
            jobs_list.append(job)
    fp = fingerprint([], {"shards": [j.fingerprint for j in jobs_list], "version": __version__})
    outputs = [out_dir / shard_format.INDEX] + [out_dir / j.file for j in jobs_list]
    held: dict = {}  # each shard's full check, made once (`_holds`)
    index = None if force or not is_up_to_date(out_dir, STAGE, fp, outputs) else _valid_index(out_dir)
    if index is not None and _index_matches(out_dir, index, jobs_list, held):
        return _summary(index, written=0, skipped=len(jobs_list), up_to_date=True)

    recorded = _check_output_dir(out_dir, index)
    out_dir.mkdir(parents=True, exist_ok=True)
    for tmp in out_dir.iterdir():  # left behind by a killed run (pgkit's temporary names only)
        if _is_our_temp(tmp.name) and tmp.is_file():
            tmp.unlink(missing_ok=True)
    done, todo = {}, []
    for job in jobs_list:
        rec = None if force else _complete(out_dir, job, held)
        if rec is None:
            todo.append(job)
        else:
            done[job.file] = rec
    total = sum(len(j.pairs) for j in todo)
    bar = progress(total=total, desc="pack", unit="pair", disable=None if show_progress else True)
    try:
        for job, rec in zip(todo, run_jobs(pack_shard, todo, jobs or default_jobs(), backend,
                                           scheduler, cluster_options), strict=True):
            done[job.file] = rec
            bar.update(len(job.pairs))
    finally:
        bar.close()

    entries = [done[j.file] for j in jobs_list]
    removed = [dict(r, split=e["split"], shard=e["file"]) for e in entries for r in e["removed"]]
    splits = {}
    for split in shard_format.SPLITS:
        mine = [e for e in entries if e["split"] == split]
        splits[split] = {"pairs": sum(e["pairs"] for e in mine), "images": sum(e["images"] for e in mine),
                         "shards": len(mine), "bytes": sum(e["bytes"] for e in mine)}
    index = {
        "format": shard_format.FORMAT, "version": shard_format.VERSION, "layout": layout,
        "image_size": list(w["image_size"]), "splits": splits,
        "shards": [{k: e[k] for k in ENTRY_KEYS} for e in entries],
        "pose": pose, "normalisation": shard_format.NORMALISATION, "joints": list(skeleton.JOINTS),
        "removed": removed, "created_by": f"pgprep {__version__}",
    }
    if w["crop"] is not None:  # where the pixels came from (PATN's protocol pads x0 white columns back)
        index["crop"] = w["crop"].to_json()
    write_json_atomic(out_dir / shard_format.INDEX, index)
    keep = {j.file for j in jobs_list}
    for name in sorted(recorded - keep):  # only shards pgkit itself recorded here
        (out_dir / name).unlink(missing_ok=True)
        (out_dir / SIDECARS / (name + ".json")).unlink(missing_ok=True)
    mark_done(out_dir, STAGE, fp, source=str(work.resolve()))
    return _summary(index, written=len(todo), skipped=len(jobs_list) - len(todo), up_to_date=False)


class PoseOptionError(PgkitError):
    """--pose-radius / --pose-sigma out of range for the images (the CLI makes it a usage error)."""


def check_pose_options(radius: float, sigma: float, image_size: tuple[int, int]) -> None:
    """Pose radius and sigma finite, at least `MIN_POSE_PX` and at most the image's larger side:
    a disk of radius 1024 on 64-px images is a window of 4 million pixels per joint (the
    trainer's pose maps exhausted memory), and one larger than the image draws nothing more."""
    h, w = (int(v) for v in image_size)
    top = max(h, w)
    for flag, v in (("--pose-radius", radius), ("--pose-sigma", sigma)):
        if not (math.isfinite(v) and MIN_POSE_PX <= v <= top):
            raise PoseOptionError(None, f"{flag} {v:g} is out of range for {h}x{w} (HxW) images: give a "
                                        f"number from {MIN_POSE_PX:g} to {top} px (the image's larger side)")


def _is_safe(name: str) -> bool:
    try:
        check_relative(name)
    except PgkitError:
        return False
    return True


def _summary(index: dict, written: int, skipped: int, up_to_date: bool) -> dict:
    sp = index["splits"]
    total_bytes = sum(s["bytes"] for s in sp.values())
    pairs = sum(s["pairs"] for s in sp.values())
    return {"layout": index["layout"], "pairs": {k: v["pairs"] for k, v in sp.items()},
            "images": {k: v["images"] for k, v in sp.items()}, "shards": len(index["shards"]),
            "written": written, "skipped": skipped, "bytes": total_bytes,
            "bytes_per_pair": total_bytes / pairs if pairs else 0.0,
            "removed": index.get("removed", []), "up_to_date": up_to_date}


@click.command("pack")
@click.argument("work", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-o", "--output", "shards_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Shard directory to write (index.json + <split>-NNNNN.h5).")
@click.option("--layout", type=click.Choice(shard_format.LAYOUTS), default="compact", show_default=True,
              help="compact: images once, keypoints, packed masks; dense: the seed's float tensors.")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=None,
              help="Parallel shard jobs (default: all cores; workers for a local dask cluster).")
@click.option("--backend", type=click.Choice(BACKENDS), default="loky", show_default=True,
              help="joblib backend: loky (this machine) or dask (dask.distributed cluster).")
@click.option("--scheduler", default=None, metavar="ADDR",
              help="dask scheduler address, e.g. tcp://10.0.0.5:8786 (default: a LocalCluster).")
@click.option("--pose-kind", type=click.Choice(geometry.POSE_KINDS), default="disk", show_default=True,
              help="Pose maps: PG²'s solid disk or a Gaussian.")
@click.option("--pose-radius", type=float, default=None,
              help="Disk radius (px), 0.01 up to the image's larger side. Default: PG²'s 4 at 256 px "
                   "scaled to the image height.")
@click.option("--pose-sigma", type=float, default=None,
              help="Gaussian sigma (px), 0.01 up to the image's larger side. Default: 6 at 256 px scaled "
                   "to the image height.")
@click.option("--max-pairs", type=click.IntRange(min=1), default=DEFAULT_MAX_PAIRS, show_default=True,
              help="Start a new shard after about this many pairs (whole items only).")
@click.option("--max-mb", type=click.FloatRange(min=0.001), default=DEFAULT_MAX_MB, show_default=True,
              help="... or after about this many megabytes.")
@click.option("--force", is_flag=True,
              help="Rewrite every shard even if its inputs and recorded sha256 still match.")
@debug_option
def command(work, shards_dir, layout, jobs, backend, scheduler, pose_kind, pose_radius, pose_sigma,
            max_pairs, max_mb, force):
    """Pack WORK (images, keypoints, masks, pairs) into verified HDF5 shards.

    compact (default) stores each image once as its original JPEG bytes, bit-packed masks,
    keypoints instead of pose maps, flips as a flag and pairs as indices: DeepFashion's 127k
    training pairs fit in a few GB. dense stores the seed's float32 example per pair
    (condition, target, pose, mask; about 6.5 MB per pair at 256x256). Both decode to the
    same tensors through pgtrain.data.PairDataset. Pose-map settings are recorded in
    index.json and the shards and used by the reader.

    A shard holds whole items; each is written under a temporary name, hashed and renamed
    when complete, and index.json is written last. A rerun skips complete shards (re-hashed)
    and finishes the rest; --force rewrites all. An unreadable image or mask is reported
    with the pairs it removed; a mask made from other keypoints than images.csv holds stops
    the run (rerun `pgprep masks`). -o must be new, empty or made by pgkit: files pgkit did
    not write are never deleted or overwritten.

    \b
    Examples:
      pgprep pack data/work -o data/shards                   # compact, all cores
      pgprep pack data/work -o data/dense --layout dense -j 2
      pgprep pack data/work -o data/shards --backend dask    # local dask cluster
      pgprep pack data/work -o data/shards --backend dask --scheduler tcp://10.0.0.5:8786
      pgprep verify data/shards && pgprep inspect data/shards
    """
    try:
        s = run_pack(work, shards_dir, layout=layout, jobs=jobs, backend=backend, scheduler=scheduler,
                     pose_kind=pose_kind, pose_radius=pose_radius, pose_sigma=pose_sigma,
                     max_pairs=max_pairs, max_mb=max_mb, show_progress=True, force=force)
    except PoseOptionError as exc:  # out of range for this WORK's image size: a usage error (exit 2)
        raise click.UsageError(exc.reason) from None
    pairs = ", ".join(f"{k} {v}" for k, v in s["pairs"].items())
    if s["up_to_date"]:
        click.echo(f"pack: up to date, nothing to do ({s['shards']} shards, {pairs} pairs in {shards_dir})")
        return
    click.echo(f"pack: {pairs} pairs in {s['shards']} {s['layout']} shards -> {shards_dir} "
               f"({s['written']} written, {s['skipped']} already complete; "
               f"{s['bytes']:,} bytes, {s['bytes_per_pair']:,.0f} bytes/pair)")
    removed = s["removed"]
    if removed:
        click.echo(f"removed {len(removed)} unreadable input(s) and {sum(r['pairs'] for r in removed)} "
                   "pair(s) that used them:")
        for r in removed[:20]:
            click.echo(f"  {r['image']}: {r['reason']} ({r['pairs']} pairs)")
        if len(removed) > 20:
            click.echo(f"  ... and {len(removed) - 20} more (all listed in index.json 'removed')")
