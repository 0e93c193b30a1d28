"""`pgprep ingest`: any folder of photos -> a DeepFashion-shaped tree the other stages read.

    PHOTOS/                                  ROOT/img/<GENDER>/<Category>/id_XXXXXXXX/01_<k>_<view>.jpg
      anna-red-dress/ front.jpg side.webp -> ROOT/Eval/list_eval_partition.txt  (split by item, seeded)
      IMG_2041.HEIC.jpg                      ROOT/ingest.csv          (one row per image: the transform)
                                             ROOT/ingest-rejects.csv  (source, reason)

- items: one sub-folder of PHOTOS per item (every photo below it, at any depth, is a view of
  that item); a photo lying directly in PHOTOS is an item of its own. `--items CSV`
  (columns `file,item[,view]`, file relative to PHOTOS) says it instead. A folder path that
  contains MEN or WOMEN gives the gender and the folder after it the category
  (`PHOTOS/WOMEN/Dresses/anna/...`); otherwise `--gender` / `--category`.
- ids: items sorted by their key (folder path, CSV item or file stem) -> id_00000001, ...
  Views within an item are numbered 1.. in file-name order: `01_<k>_<view>.jpg`; the view
  word comes from the CSV, else from the file name (front, side, back, full, additional,
  flat), else `full`.
- pixels: every photo is read with the one policy of `pgprep.imageio` (JPEG/PNG/WebP, EXIF
  orientation applied, trailers ignored, pixel limit), scaled to fit H x W keeping its aspect
  ratio and padded with white, centred, as DeepFashion's 256x256 images are
  (`pgprep.geometry.Letterbox`, also used by filter and `pgtrain generate`). JPEG quality 95.
- the transform of each image is in ROOT/ingest.csv: `scale`, `pad_x`, `pad_y`, the upright
  original size and the EXIF orientation. A keypoint (x, y) found on the upright original
  maps to ((x + 0.5) * scale - 0.5 + pad_x, (y + 0.5) * scale - 0.5 + pad_y) (pixel centres,
  as cv2.resize samples); `map_keypoints` does it, and `--poses DIR` maps OpenPose JSON made
  on the originals (PHOTOS-relative `<stem>_keypoints.json`) into ROOT/pose/openpose/.
- reruns: every file is written atomically; a per-photo journal (ROOT/.pgkit/ingest-journal.jsonl)
  lets a killed run resume without redoing finished photos; a rerun with nothing changed does
  nothing and says so. A ROOT holding an img/ tree that ingest did not write is refused.
- reads: a new or changed photo is read, hashed, probed and decoded once (its JPEG waits in
  ROOT/.pgkit/ingest-staging/ until the ids are known and the outputs checked); a photo the
  journal finished (same path, size, mtime) is not read at all, nor is an output whose size,
  mtime and inode still match what the journal recorded after writing it (else it is hashed).
- ownership: ROOT/.pgkit/ingest-files.jsonl records the sha256 of every file ingest writes
  (images, pose JSON, the partition, ingest.csv, ingest-rejects.csv), appended before the file
  is renamed into place, so a killed run's files are recorded too. An output path holding
  anything else (a file with another sha256, a symlink, a folder, a symlinked folder on the
  way) stops the run before it writes anything. Files an earlier run (killed or not) wrote
  that this run no longer produces are deleted only while they still hold the recorded bytes,
  never through a symlink; an image the user edited is kept. ingest.csv is never trusted for
  deletion.
- bad inputs are rejected per photo in ingest-rejects.csv: unreadable or oversized photos
  (over 4 bytes per pixel of the pixel limit + 16 MiB, checked before reading), FIFOs,
  devices, symlink loops, folders named like photos, and a bad pose JSON under --poses.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import hashlib
import io
import json
import os
import re
import shutil
import stat
from pathlib import Path, PurePosixPath

import click
import numpy as np
import pandas as pd

from pgprep import atomic, deepfashion, formats, geometry, imageio
from pgprep.errors import PgkitError

STAGE = "ingest"
RECORDS = "ingest.csv"
REJECTS = "ingest-rejects.csv"
JOURNAL = f"{atomic.STAMP_DIR}/ingest-journal.jsonl"
STAGING = f"{atomic.STAMP_DIR}/ingest-staging"  # converted JPEGs waiting for their final name
# Every file ingest writes outside .pgkit/, with its sha256, appended before the file is renamed
# into place (so a killed run's files are known too); rewritten to the current set at the end.
MANIFEST = f"{atomic.STAMP_DIR}/ingest-files.jsonl"
MAX_ITEMS_BYTES = 128 << 20      # --items CSV (a million photos is ~60 MB)
PHOTO_BYTES_PER_PIXEL = 4        # a photo's bytes may be those of uncompressed RGBA at the pixel limit
PHOTO_BYTES_SLACK = 16 << 20     # ... plus metadata, thumbnails, a phone's motion-photo trailer
GENDERS = ("MEN", "WOMEN")
QUALITY = 95
PAD_VALUE = 255  # DeepFashion pads with white
DEFAULT_VIEW = "full"
# Image-like files ingest recognises by name; those it cannot read are rejected with a reason,
# other files (notes, sidecars) are ignored and counted.
OTHER_IMAGE_EXTS = (".heic", ".heif", ".avif", ".gif", ".bmp", ".tif", ".tiff", ".jxl")
RECORD_COLUMNS = ["source", "image", "item", "item_id", "view", "status", "scale", "pad_x", "pad_y",
                  "orig_width", "orig_height", "orientation", "format", "width", "height", "sha256"]
_VIEW_RE = re.compile(r"(?<![a-z])(" + "|".join(deepfashion.VIEWS) + r")(?![a-z])")


def parse_size(text: str | int | tuple) -> tuple[int, int]:
    """`256` -> (256, 256); `256x176` -> (256, 176): height x width (`geometry.parse_hw`, 16..4096)."""
    return geometry.parse_hw(text, lo=16, hi=4096)


# the transform of a photo into ROOT: `geometry.Letterbox` (shared with filter and generate)
map_keypoints = geometry.fit_keypoints


# ---------------------------------------------------------------- what to ingest

def _view_of(name: str) -> str:
    m = _VIEW_RE.search(PurePosixPath(name).stem.lower())
    return m.group(1) if m else DEFAULT_VIEW


def _gender_category(parts: tuple[str, ...], gender: str, category: str) -> tuple[str, str]:
    for i, p in enumerate(parts):
        if p.upper() in GENDERS:
            return p.upper(), _safe(parts[i + 1]) if i + 1 < len(parts) else category
    return gender, category


def _safe(text: str) -> str:
    """A category folder name DeepFashion-style: letters, digits, '_' and '-' only."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_") or "Photos"


def scan(photos: Path, items_csv: Path | None, gender: str, category: str) -> tuple[list[dict], list[dict], int]:
    """(candidates, rejects, ignored): one candidate per photo with its item key and view."""
    cands, rejects, ignored = [], [], 0
    if items_csv is not None:
        data = read_bounded(items_csv, MAX_ITEMS_BYTES, "items CSV")
        try:
            table = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False)
        except (OSError, ValueError, pd.errors.ParserError) as exc:
            raise PgkitError(items_csv, f"unreadable items CSV ({exc})") from None
        missing = [c for c in ("file", "item") if c not in table.columns]
        if missing:
            raise PgkitError(items_csv, f"missing columns {missing} (expected file,item[,view])")
        for i, r in enumerate(table.itertuples(index=False), start=2):
            name = str(r.file).strip()
            try:
                name = deepfashion.check_relative(name, items_csv)
            except PgkitError as exc:
                rejects.append({"source": name, "reason": f"bad-name: line {i}: {exc.reason}"})
                continue
            if not str(r.item).strip():
                rejects.append({"source": name, "reason": f"bad-row: line {i} has no item"})
                continue
            view = str(getattr(r, "view", "") or "").strip().lower() or _view_of(name)
            if view not in deepfashion.VIEWS:
                rejects.append({"source": name, "reason": f"bad-row: line {i}: view {view!r} is not one of "
                                                          f"{', '.join(deepfashion.VIEWS)}"})
                continue
            g, c = _gender_category(PurePosixPath(str(r.item)).parts, gender, category)
            cands.append({"source": name, "item": str(r.item).strip(), "view": view, "gender": g, "category": c})
        return cands, rejects, ignored
    for p in sorted(photos.rglob("*")):
        rel = p.relative_to(photos)
        if any(part.startswith(".") for part in rel.parts):
            continue
        ext = p.suffix.lower()
        if ext not in imageio.EXTENSIONS and ext not in OTHER_IMAGE_EXTS:
            ignored += not p.is_dir()
            continue
        problem = file_problem(p)  # a FIFO, a device, a link loop, a folder named x.jpg: said, not skipped
        if problem:
            rejects.append({"source": rel.as_posix(), "reason": f"bad-image: {problem}"})
            continue
        parts = rel.parts
        item = parts[0] if len(parts) > 1 else rel.stem
        g, c = _gender_category(parts[:-1], gender, category)
        if len(parts) > 1 and g in GENDERS and parts[0].upper() in GENDERS:
            item = "/".join(parts[:-1])  # WOMEN/Dresses/anna/x.jpg: the item is the whole folder path
        cands.append({"source": rel.as_posix(), "item": item, "view": _view_of(rel.name), "gender": g,
                      "category": c})
    return cands, rejects, ignored


def assign_ids(cands: list[dict]) -> None:
    """Item keys sorted -> id_00000001...; views numbered 1.. per item in file-name order."""
    keys = sorted({c["item"] for c in cands})
    ids = {k: f"id_{i:08d}" for i, k in enumerate(keys, start=1)}
    counter: dict[str, int] = collections.defaultdict(int)
    for c in sorted(cands, key=lambda c: (c["item"], c["source"])):
        counter[c["item"]] += 1
        c["item_id"] = ids[c["item"]]
        c["number"] = counter[c["item"]]
        c["image"] = (f"img/{c['gender']}/{_safe(c['category'])}/{c['item_id']}/"
                      f"01_{c['number']}_{c['view']}.jpg")


def assign_partition(item_ids: list[str], test_fraction: float, seed: int) -> dict[str, str]:
    """item -> 'train' | 'test' by a seeded permutation; a lone item trains."""
    items = sorted(set(item_ids))
    n_test = int(round(test_fraction * len(items)))
    if test_fraction > 0 and len(items) >= 2:
        n_test = min(max(1, n_test), len(items) - 1)
    else:
        n_test = 0
    rng = np.random.default_rng(np.random.SeedSequence([seed, 13]))
    test = {items[i] for i in rng.permutation(len(items))[:n_test]}
    return {i: "test" if i in test else "train" for i in items}


def _statuses(rows: list[dict], split: dict[str, str]) -> None:
    """train items -> train; a test item's images alternate query / gallery (DeepFashion's
    test side is query + gallery)."""
    seen: dict[str, int] = collections.defaultdict(int)
    for r in rows:
        if split[r["item_id"]] == "train":
            r["status"] = "train"
        else:
            r["status"] = "query" if seen[r["item_id"]] % 2 == 0 else "gallery"
            seen[r["item_id"]] += 1


# ---------------------------------------------------------------- reading inputs, bounded

def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "directory"), (stat.S_ISFIFO, "FIFO"), (stat.S_ISCHR, "character device"),
                       (stat.S_ISBLK, "block device"), (stat.S_ISSOCK, "socket"), (stat.S_ISLNK, "symbolic link")):
        if test(mode):
            return name
    return "special file"


def file_problem(path: Path) -> str | None:
    """Why `path` is not a regular file (symlinks followed), or None; 'missing' if nothing is there."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return "symbolic link to a missing file" if os.path.islink(path) else "missing"
    except OSError as exc:
        return "symbolic link loop" if exc.errno == errno.ELOOP else f"cannot read ({exc.strerror})"
    return None if stat.S_ISREG(st.st_mode) else f"not a regular file ({_kind(st.st_mode)})"


def read_bounded(path: Path, limit: int, what: str, note: str = "") -> bytes:
    """The bytes of a regular file of at most `limit` bytes, else PgkitError naming it. Size and
    type are checked on the open file before anything is read (O_NONBLOCK: a FIFO cannot hang)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise PgkitError(path, "symbolic link loop" if exc.errno == errno.ELOOP
                         else f"cannot read {what} ({exc.strerror})") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise PgkitError(path, f"{what} is not a regular file ({_kind(st.st_mode)})")
        if st.st_size > limit:
            raise PgkitError(path, f"{what} of {st.st_size:,} bytes is larger than the {limit:,}-byte limit{note}")
        try:
            data = f.read(limit + 1)
        except OSError as exc:
            raise PgkitError(path, f"cannot read {what} ({exc.strerror})") from None
    if len(data) > limit:
        raise PgkitError(path, f"{what} grew past the {limit:,}-byte limit while it was read")
    return data


def max_photo_bytes() -> int:
    return PHOTO_BYTES_PER_PIXEL * imageio.max_pixels() + PHOTO_BYTES_SLACK


def _read_photo(path: Path) -> bytes:
    return read_bounded(path, max_photo_bytes(), "photo", f" ({PHOTO_BYTES_PER_PIXEL} bytes a pixel of "
                                                          "PGKIT_MAX_PIXELS)")


def _read_pose(poses: Path, source: str) -> list[np.ndarray] | None:
    """The people of a photo's OpenPose JSON under POSES; None if it has none."""
    path = poses / formats.openpose_json_name(source)
    problem = file_problem(path)
    if problem == "missing":
        return None
    if problem:
        raise PgkitError(path, problem)
    return formats.read_openpose_json(path)


# ---------------------------------------------------------------- what ingest owns in ROOT
# A file below ROOT is ingest's when it is a regular file, reached without following a symlink
# below ROOT, whose sha256 ingest recorded in MANIFEST before writing it. Only such files are
# replaced (any recorded sha256) or deleted (the one recorded for that very path).

def _lkind(name: str, dir_fd: int) -> str:
    try:
        mode = os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode
    except OSError:
        return "unreadable"
    return "a file" if stat.S_ISREG(mode) else f"a {_kind(mode)}"


def _look(root: Path, rel: str, remove_if: set[str] = frozenset(),
          known: dict[str, tuple] | None = None) -> tuple[str | None, tuple[str, str] | None]:
    """What ROOT/rel holds, never following a symlink below ROOT: (sha256, None) for a regular
    file; (None, None) for nothing; (None, (path, 'a symbolic link')) for anything else, where
    path is rel or the folder on the way that is not a real folder. A regular file whose sha256
    is in `remove_if` is unlinked by name in the folder fd that was checked (OSError if it fails).
    `known`: rel -> (size, mtime_ns, inode, sha256) the journal recorded after ingest wrote the
    file; a file whose stat still matches is not read again (a rerun touches no image)."""
    parts = PurePosixPath(rel).parts
    try:
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        return None, None
    except OSError:
        return None, (".", "not a folder")
    try:
        for i, part in enumerate(parts[:-1]):
            try:
                nxt = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            except FileNotFoundError:
                return None, None
            except OSError:
                return None, ("/".join(parts[:i + 1]), _lkind(part, fd))
            os.close(fd)
            fd = nxt
        try:
            st = os.stat(parts[-1], dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            return None, None
        if not stat.S_ISREG(st.st_mode):
            return None, (rel, f"a {_kind(st.st_mode)}")
        rec = (known or {}).get(rel)
        if rec is not None and tuple(rec[:3]) == _stat_key(st):
            sha = str(rec[3])
        else:
            h = hashlib.sha256()
            with os.fdopen(os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=fd), "rb") as f:
                while block := f.read(1 << 20):
                    h.update(block)
            sha = h.hexdigest()
        if sha in remove_if:
            os.unlink(parts[-1], dir_fd=fd)
        return sha, None
    finally:
        os.close(fd)


def _stat_key(st: os.stat_result) -> tuple[int, int, int]:
    return st.st_size, st.st_mtime_ns, st.st_ino


def _load_manifest(root: Path) -> dict[str, set[str]]:
    """path -> the sha256s ingest recorded for it (a torn last line of a killed run is skipped:
    its file was never renamed into place)."""
    owned: dict[str, set[str]] = collections.defaultdict(set)
    try:
        lines = (root / MANIFEST).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return _legacy_manifest(root)
    for line in lines:
        try:
            rec = json.loads(line)
            owned[str(rec["file"])].add(str(rec["sha256"]))
        except (json.JSONDecodeError, KeyError, TypeError):
            continue
    return owned


def _legacy_manifest(root: Path) -> dict[str, set[str]]:
    """A ROOT of a pgkit before MANIFEST: the images its journal recorded with their sha256 and,
    after a finished run (its stamp), the three record files as they are now."""
    owned: dict[str, set[str]] = collections.defaultdict(set)
    for rec in _load_journal(root).values():
        if isinstance(rec.get("image"), str) and isinstance(rec.get("out"), str):
            owned[rec["image"]].add(rec["out"])
    if (root / atomic.STAMP_DIR / f"{STAGE}.json").is_file():
        for rel in (RECORDS, REJECTS, deepfashion.PARTITION):
            sha, _ = _look(root, rel)
            if sha:
                owned[rel].add(sha)
    return owned


def _check_outputs(root: Path, rels: list[str], owned: dict[str, set[str]],
                   known: dict[str, tuple] | None = None) -> dict[str, str]:
    """Stop, before anything is written, if an output would replace what ingest did not write;
    returns rel -> sha256 of the outputs already in place (`known`: see `_look`)."""
    ours = set().union(*owned.values())
    here = {}
    for rel in rels:
        sha, other = _look(root, rel, known=known)
        if other or (sha is not None and sha not in ours):
            at, what = other or (rel, "")
            raise PgkitError(root / at, "exists and was not written by pgprep ingest"
                             + (f" ({what})" if what else "") + "; move it away or choose a new ROOT")
        if sha is not None:
            here[rel] = sha
    return here


class _Outputs:
    """Writes ROOT's files, each recorded in MANIFEST (sha256, flushed) before it is renamed into place."""

    def __init__(self, root: Path):
        self.root, self.sha, self.stat = root, {}, {}
        self._log = open(root / MANIFEST, "a", encoding="utf-8")  # noqa: SIM115 (closed by close())

    def write(self, rel: str, data: bytes) -> None:
        sha = hashlib.sha256(data).hexdigest()
        self._record(rel, sha)
        atomic.write_bytes_atomic(self.root / rel, data)
        self.sha[rel] = sha

    def place(self, rel: str, staged: Path, sha: str) -> tuple[int, int, int]:
        """Rename a file staged under .pgkit/ (its sha256 known) into place; -> its stat key."""
        self._record(rel, sha)
        (self.root / rel).parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged, self.root / rel)
        self.sha[rel] = sha
        return _stat_key(os.stat(self.root / rel, follow_symlinks=False))

    def _record(self, rel: str, sha: str) -> None:
        self._log.write(json.dumps({"file": rel, "sha256": sha}) + "\n")
        self._log.flush()

    def close(self) -> None:
        self._log.close()

    def save(self, also: dict[str, set[str]]) -> None:
        """Rewrite MANIFEST as what ingest owns now: this run's files plus `also`."""
        self.close()
        lines = [json.dumps({"file": rel, "sha256": sha}) for rel, sha in sorted(self.sha.items())]
        lines += [json.dumps({"file": rel, "sha256": sha}) for rel, shas in sorted(also.items()) for sha in sorted(shas)]
        atomic.write_text_atomic(self.root / MANIFEST, "".join(line + "\n" for line in lines))


# ---------------------------------------------------------------- one photo

def _key(path: Path, options: dict) -> str:
    st = path.stat()
    return hashlib.sha256(json.dumps([str(path.resolve()), st.st_size, st.st_mtime_ns, options],
                                     sort_keys=True).encode()).hexdigest()[:24]


def convert(data: bytes, src: Path, size: tuple[int, int], digest: str | None = None) -> tuple[bytes, dict]:
    """One photo's bytes, read with the shared policy and letterboxed -> (JPEG bytes, its record).
    Probed and decoded once; `digest`: the bytes' sha256 when the caller has it."""
    info = imageio.probe(data, src)
    rgb = imageio.decode(data, src, info=info)
    f = geometry.Letterbox.fit(rgb.shape[:2], size)
    out = f.image(rgb, PAD_VALUE)
    return geometry.encode_jpeg(out, QUALITY), {
        "scale": round(f.scale, 8), "pad_x": f.pad_x, "pad_y": f.pad_y, "orig_width": info.width,
        "orig_height": info.height, "orientation": info.orientation, "format": info.format,
        "width": size[1], "height": size[0], "sha256": digest or hashlib.sha256(data).hexdigest()}


def _stage(data: bytes, src: Path, size: tuple[int, int], digest: str, staged: Path,
           ) -> tuple[tuple[Path, str], dict]:
    """Convert one photo (`convert`) and write its JPEG to `staged` under .pgkit/ ->
    ((staged path, the JPEG's sha256), record)."""
    jpeg, rec = convert(data, src, size, digest)
    atomic.write_bytes_atomic(staged, jpeg)
    return (staged, hashlib.sha256(jpeg).hexdigest()), rec


def _pose_name(image: str) -> str:
    """img/A/B/01_1_front.jpg -> pose/openpose/A/B/01_1_front_keypoints.json"""
    return "pose/openpose/" + formats.openpose_json_name(str(PurePosixPath(*PurePosixPath(image).parts[1:])))


def _load_journal(root: Path) -> dict[str, dict]:
    path = root / JOURNAL
    done = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return done
    for line in lines:
        try:
            rec = json.loads(line)
            done[rec["key"]] = rec
        except (json.JSONDecodeError, KeyError, TypeError):
            continue  # a torn last line of a killed run: that photo is redone
    return done


# ---------------------------------------------------------------- the stage

def run_ingest(photos, root, *, size="256", items=None, test_fraction: float = 0.2, seed: int = 0,
               gender: str = "WOMEN", category: str = "Photos", poses=None, force: bool = False,
               progress: bool | None = None) -> dict:
    """Turn the photos under PHOTOS into a DeepFashion-shaped tree at ROOT; returns counts
    (`images`, `items`, `train_items`, `test_items`, `rejected`, `ignored`, `converted`,
    `reused`, `removed`, `skipped=True` when ROOT was already up to date)."""
    from pgprep.cliutil import progress as bar

    photos, root = Path(photos), Path(root)
    hw = parse_size(size)
    if not photos.is_dir():
        raise PgkitError(photos, "not a directory of photos")
    if not 0 <= test_fraction < 1:
        raise PgkitError(None, f"--test-fraction must be in [0, 1), got {test_fraction}")
    gender = gender.upper()
    if gender not in GENDERS:
        raise PgkitError(None, f"--gender must be MEN or WOMEN, got {gender!r}")
    if root.resolve() == photos.resolve() or photos.resolve() in root.resolve().parents:
        raise PgkitError(root, "ROOT must not lie inside PHOTOS (its images would be ingested next time)")
    if (root / "img").exists() and not any((root / f).exists() for f in (RECORDS, JOURNAL, MANIFEST)):
        raise PgkitError(root, f"holds an img/ tree that pgprep ingest did not write (no {RECORDS}); "
                               "choose a new ROOT")
    cands, rejects, ignored = scan(photos, Path(items) if items else None, gender, category)
    options = {"size": list(hw), "test_fraction": float(test_fraction), "seed": int(seed), "gender": gender,
               "category": category, "quality": QUALITY, "items": str(Path(items).resolve()) if items else None,
               "poses": str(Path(poses).resolve()) if poses else None, "version": 1}
    files = [photos / c["source"] for c in cands] + ([Path(items)] if items else [])
    if poses:
        files += sorted(Path(poses).rglob("*" + formats.OPENPOSE_SUFFIX))
    fp = atomic.fingerprint(files, options)
    outputs = [root / RECORDS, root / REJECTS, root / deepfashion.PARTITION]
    if not force and atomic.is_up_to_date(root, STAGE, fp, outputs):
        info = json.loads((root / atomic.STAMP_DIR / f"{STAGE}.json").read_text())
        return {**info.get("counts", {}), "skipped": True}

    if items:  # the folder scan rejects what is not a regular file itself; a CSV row may name anything
        listed, cands = cands, []
        for c in listed:
            problem = file_problem(photos / c["source"])
            if problem == "missing":
                rejects.append({"source": c["source"], "reason": "missing: listed in the items CSV but not on disk"})
            elif problem:
                rejects.append({"source": c["source"], "reason": f"bad-image: {problem}"})
            else:
                cands.append(c)
    journal = _load_journal(root)
    owned = _load_manifest(root)
    pix_opts = {"size": list(hw), "quality": QUALITY}
    # Each photo is read, hashed, probed and decoded once: a new or changed photo is converted
    # here and its JPEG staged under .pgkit/ until ids are known and the outputs checked; a
    # photo the journal finished (same path, size, mtime, options) is not read at all.
    staging = root / STAGING
    made = [d for d in (root, root / atomic.STAMP_DIR) if not d.exists()]  # removed again on refusal
    shutil.rmtree(staging, ignore_errors=True)  # a killed run's leftovers
    staging.mkdir(parents=True, exist_ok=True)
    # Duplicate bytes would put one photo in two items (or twice in one): the first one wins.
    by_hash: dict[str, str] = {}
    readable, keyed, new_errors = [], [], []
    for c in bar(cands, desc="ingest: read", unit="img", disable=None if progress is None else not progress):
        src = photos / c["source"]
        try:
            key = _key(src, pix_opts)
        except OSError as exc:
            rejects.append({"source": c["source"], "reason": f"bad-image: cannot read ({exc.strerror})"})
            continue
        prev = journal.get(key)
        if prev and "error" in prev:
            c["key"] = key
            keyed.append(c)
            rejects.append({"source": c["source"], "reason": prev["error"]})
            continue
        done = prev if prev and isinstance(prev.get("record"), dict) and prev["record"].get("sha256") else None
        data = None
        if done is not None:
            digest = str(done["record"]["sha256"])
        else:
            try:
                data = _read_photo(src)  # size checked first: a 6 GB file is neither hashed nor read
            except PgkitError as exc:
                rejects.append({"source": c["source"], "reason": f"bad-image: {exc.reason}"})
                continue
            except OSError as exc:
                rejects.append({"source": c["source"], "reason": f"bad-image: cannot read ({exc.strerror})"})
                continue
            digest = hashlib.sha256(data).hexdigest()
        if digest in by_hash:
            rejects.append({"source": c["source"], "reason": f"duplicate: same bytes as {by_hash[digest]}"})
            continue
        by_hash[digest] = c["source"]
        c["key"] = key
        keyed.append(c)
        if data is not None:
            try:
                c["jpeg"], c["record"] = _stage(data, src, hw, digest, staging / f"{key}.jpg")
            except PgkitError as exc:
                rejects.append({"source": c["source"], "reason": f"bad-image: {exc.reason}"})
                new_errors.append({"key": key, "error": f"bad-image: {exc.reason}"})
                continue
        else:
            c["prev"] = done
        if poses:
            try:
                c["people"] = _read_pose(Path(poses), c["source"])
            except PgkitError as exc:  # one bad pose file rejects its photo, not the run
                rejects.append({"source": c["source"], "reason": f"bad-pose: {exc}"})
                continue
        readable.append(c)
    # ids only for photos that can be ingested, so a bad photo leaves no hole in an item's numbering
    assign_ids(readable)
    fixed = [RECORDS, REJECTS, deepfashion.PARTITION]
    known = {r["image"]: (*r["out_stat"], r["out"]) for r in journal.values()
             if isinstance(r.get("image"), str) and r.get("out") and isinstance(r.get("out_stat"), list)
             and len(r["out_stat"]) == 3}
    try:
        here = _check_outputs(root, [c["image"] for c in readable]
                              + [_pose_name(c["image"]) for c in readable if c.get("people") is not None] + fixed,
                              owned, known)
    except PgkitError:  # refused: ROOT is left as it was found
        shutil.rmtree(staging, ignore_errors=True)
        for d in reversed(made):
            with contextlib.suppress(OSError):
                d.rmdir()
        raise
    (root / atomic.STAMP_DIR).mkdir(parents=True, exist_ok=True)
    atomic.clear_stamp(root, STAGE)
    rows, converted, reused = [], 0, 0
    out = _Outputs(root)
    try:
        with bar(total=len(readable), desc="ingest", unit="img",
                 disable=None if progress is None else not progress) as pbar, \
                open(root / JOURNAL, "a", encoding="utf-8") as jf:
            jf.writelines(json.dumps(e) + "\n" for e in new_errors)
            for c in readable:
                pbar.update(1)
                prev = c.get("prev")
                if prev and prev.get("image") == c["image"] and prev.get("out") and here.get(c["image"]) == prev["out"]:
                    rec = prev["record"]
                    out.sha[c["image"]] = prev["out"]
                    # a journal of an older pgkit has no stat: take it now (the sha256 was just checked)
                    out.stat[c["image"]] = prev.get("out_stat") or list(
                        _stat_key(os.stat(root / c["image"], follow_symlinks=False)))
                    reused += 1
                else:
                    if "jpeg" not in c:  # finished earlier under another name or its output is gone
                        try:
                            data = _read_photo(photos / c["source"])
                            c["jpeg"], c["record"] = _stage(data, photos / c["source"], hw,
                                                            str(prev["record"]["sha256"]),
                                                            staging / f"{c['key']}.jpg")
                        except PgkitError as exc:
                            rejects.append({"source": c["source"], "reason": f"bad-image: {exc.reason}"})
                            jf.write(json.dumps({"key": c["key"], "error": f"bad-image: {exc.reason}"}) + "\n")
                            continue
                    rec = c["record"]
                    staged, sha = c["jpeg"]
                    out.stat[c["image"]] = list(out.place(c["image"], staged, sha))
                    jf.write(json.dumps({"key": c["key"], "image": c["image"], "record": rec,
                                         "out": sha, "out_stat": out.stat[c["image"]]}) + "\n")
                    jf.flush()
                    converted += 1
                c["record"] = rec
                rows.append({"source": c["source"], "image": c["image"], "item": c["item"],
                             "item_id": c["item_id"], "view": c["view"], **rec})
        if not rows:
            raise PgkitError(photos, f"no usable photos ({len(rejects)} rejected, {ignored} other files ignored)")
        split = assign_partition([r["item_id"] for r in rows], test_fraction, seed)
        rows.sort(key=lambda r: r["image"])
        _statuses(rows, split)
        table = pd.DataFrame(rows, columns=RECORD_COLUMNS)
        mapped = _map_poses(out, [c for c in readable if "record" in c]) if poses else None
        keep = set(out.sha) | set(fixed)
        removed, kept_changed, left = _remove_stale(root, keep, owned)
        out.write(deepfashion.PARTITION, _partition_text(table).encode())
        out.write(RECORDS, table.to_csv(index=False).encode())
        out.write(REJECTS, pd.DataFrame(rejects, columns=["source", "reason"]).to_csv(index=False).encode())
    finally:
        out.close()
    out.save(left)
    counts = {"images": len(table), "items": int(table["item_id"].nunique()),
              "train_items": sum(v == "train" for v in split.values()),
              "test_items": sum(v == "test" for v in split.values()),
              "rejected": len(rejects), "ignored": ignored, "converted": converted, "reused": reused,
              "removed": removed, "kept_changed": kept_changed, "size": list(hw)}
    if mapped is not None:
        counts["poses_mapped"] = mapped
    _compact_journal(root, table, rejects, keyed, out.sha, out.stat)
    shutil.rmtree(staging, ignore_errors=True)
    atomic.mark_done(root, STAGE, fp, counts=counts)
    return {**counts, "skipped": False}


def _partition_text(frame: pd.DataFrame) -> str:
    """Eval/list_eval_partition.txt, as `deepfashion.write_partition` writes it."""
    body = "\n".join(f"{r.image} {r.item_id} {r.status}" for r in frame.itertuples())
    return f"{len(frame)}\n{deepfashion.PARTITION_HEADER}\n{body}\n"


def _remove_stale(root: Path, keep: set[str], owned: dict[str, set[str]]) -> tuple[int, int, dict[str, set[str]]]:
    """Delete the files an earlier ingest recorded in MANIFEST (a killed one too) that this run
    no longer writes: only a regular file still holding the sha256 recorded for that path, never
    through a symlink. -> (removed, kept because changed or no longer a plain file, recorded
    files that could not be removed: still ingest's)."""
    removed = changed = 0
    left: dict[str, set[str]] = {}
    for rel, shas in sorted(owned.items()):
        if rel in keep:
            continue
        try:
            deepfashion.check_relative(rel)
        except PgkitError:
            continue
        try:
            sha, other = _look(root, rel, remove_if=shas)
        except OSError:
            left[rel] = shas  # still ingest's: the next run tries again
            continue
        if other or (sha is not None and sha not in shas):
            changed += 1  # the user's now (edited, replaced, moved behind a symlink): left alone
        elif sha is not None:
            removed += 1
    return removed, changed, left


def _compact_journal(root: Path, table: pd.DataFrame, rejects: list[dict], cands: list[dict],
                     shas: dict[str, str], stats: dict[str, list] | None = None) -> None:
    """Rewrite the journal with the current photos only (it would otherwise grow forever)."""
    by_source = {c["source"]: c.get("key") for c in cands}
    lines = []
    for r in table.to_dict("records"):
        rec = {k: r[k] for k in ("scale", "pad_x", "pad_y", "orig_width", "orig_height", "orientation",
                                 "format", "width", "height", "sha256")}
        rec = {k: (v.item() if hasattr(v, "item") else v) for k, v in rec.items()}
        lines.append(json.dumps({"key": by_source[r["source"]], "image": r["image"], "record": rec,
                                 "out": shas.get(r["image"]), "out_stat": (stats or {}).get(r["image"])}))
    for r in rejects:
        key = by_source.get(r["source"])
        if key and r["reason"].startswith("bad-image"):
            lines.append(json.dumps({"key": key, "error": r["reason"]}))
    atomic.write_text_atomic(root / JOURNAL, "\n".join(lines) + ("\n" if lines else ""))


def _map_poses(out: _Outputs, cands: list[dict]) -> int:
    """OpenPose JSON made on the originals (read and checked with each photo) -> ROOT/pose/openpose/."""
    n = 0
    for c in cands:
        if c.get("people") is None:
            continue
        r = c["record"]
        mapped = [map_keypoints(p, r["scale"], r["pad_x"], r["pad_y"]) for p in c["people"]]
        out.write(_pose_name(c["image"]), json.dumps(formats.openpose_dict(mapped), separators=(",", ":")).encode())
        n += 1
    return n


# ---------------------------------------------------------------- command

@click.command("ingest")
@click.argument("photos", type=click.Path(file_okay=False, path_type=Path))
@click.option("-o", "--out", "root", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="ROOT to write: img/..., Eval/list_eval_partition.txt, ingest.csv, ingest-rejects.csv.")
@click.option("--size", default="256", show_default=True,
              help="Output size: N (square) or HxW, e.g. 256x176 for the PATN protocol.")
@click.option("--items", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="CSV with columns file,item[,view] (file relative to PHOTOS) instead of the folder layout.")
@click.option("--test-fraction", type=float, default=0.2, show_default=True,
              help="Fraction of items in the test split (query + gallery); split by item, never by image.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the train/test split.")
@click.option("--gender", default="WOMEN", show_default=True,
              help="Gender folder for items whose path names neither MEN nor WOMEN.")
@click.option("--category", default="Photos", show_default=True,
              help="Category folder for items whose path does not give one.")
@click.option("--poses", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="OpenPose JSON made on the original photos (PHOTOS-relative <stem>_keypoints.json): "
                   "mapped into ROOT/pose/openpose/.")
@click.option("--force", is_flag=True, help="Rebuild the records even if ROOT is up to date.")
def command(photos, root, size, items, test_fraction, seed, gender, category, poses, force):
    """Turn a folder of photos into a DeepFashion-shaped ROOT for the other stages.

    JPEG, PNG and WebP of any size are read upright (EXIF orientation applied; bytes after
    a JPEG's end marker are ignored), scaled to fit --size keeping the aspect ratio and
    padded with white, centred, like DeepFashion's images. One sub-folder of PHOTOS per
    item (a loose photo is an item of its own), or --items CSV.

    \b
    Examples:
      pgprep ingest photos/ -o data/mine                   # 256x256
      pgprep ingest photos/ -o data/mine-patn --size 256x176
      pgprep ingest photos/ -o data/mine --items items.csv --test-fraction 0.1 --seed 3

    \b
    Then:
      pgprep pose data/mine -o data/mine/pose/openpose
      pgprep filter data/mine --poses data/mine/pose/openpose -o data/work

    ROOT/ingest.csv records per image the source, scale, pad_x, pad_y, the upright
    original size and the EXIF orientation: a keypoint (x, y) on the original is at
    ((x + .5) * scale - .5 + pad_x, (y + .5) * scale - .5 + pad_y). Unreadable photos go
    to ROOT/ingest-rejects.csv with the reason. A rerun with nothing changed does nothing.
    """
    from pgprep.cliutil import echo_table

    c = run_ingest(photos, root, size=size, items=items, test_fraction=test_fraction, seed=seed,
                   gender=gender, category=category, poses=poses, force=force)
    if c.get("skipped"):
        click.echo(f"ingest: {root} is up to date ({c['images']} images of {c['items']} items, "
                   f"{c['rejected']} rejected); nothing to do (--force to rerun)")
        return
    h, w = c["size"]
    echo_table([["images", c["images"]], ["items (train / test)", f"{c['items']} ({c['train_items']} / "
                                                                   f"{c['test_items']})"],
                ["converted / reused", f"{c['converted']} / {c['reused']}"], ["rejected", c["rejected"]],
                ["other files ignored", c["ignored"]], ["stale images removed", c["removed"]]],
               ["ingest", f"{h}x{w}"])
    if c.get("kept_changed"):
        click.echo(f"kept {c['kept_changed']} stale file(s) changed since ingest wrote them "
                   f"(yours now; see {root}/{MANIFEST} for what ingest owns)")
    if "poses_mapped" in c:
        click.echo(f"poses mapped: {c['poses_mapped']} -> {root}/pose/openpose")
    click.echo(f"-> {root}/img, {root}/{deepfashion.PARTITION}, {root}/{RECORDS}"
               + (f"; rejects in {root}/{REJECTS}" if c["rejected"] else ""))
