"""The shard format: constants, writer, reader, `verify` and the `verify` / `inspect` commands.

A shard directory holds `index.json` (the manifest, SPEC.md) and HDF5 shards named
`<split>-<NNNNN>.h5`. Two layouts (docs/shards.md has the full schema):

- dense: the seed's example per pair: `condition`, `target` (N,H,W,3 float32 in [-1,1]),
  `pose` (N,H,W,18 in [-1,1]), `mask` (N,H,W,1 in {0,1}), plus `keypoints`, `from`, `to`,
  `flip`.
- compact (default): every image once (`images/jpeg`: the original file bytes,
  `images/mask`: bit-packed, `images/keypoints`: float32 (18, 3)), pairs as indices
  (`pairs/from`, `pairs/to`) with a `pairs/flip` flag. Decodes to the dense tensors exactly.

Writers are deterministic (no timestamps, fixed chunking), so the same inputs give the same
bytes on any backend. Reader and writer share the constants below.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import sys
from pathlib import Path

import click
import cv2
import h5py
import numpy as np

from pgprep import geometry, skeleton
from pgprep.atomic import file_sha256
from pgprep.cliutil import debug_option, echo_table, progress
from pgprep.deepfashion import check_relative
from pgprep.errors import PgkitError

FORMAT = "pgkit-shards"
VERSION = 1  # index.json and shard schema version
INDEX = "index.json"
LAYOUTS = ("compact", "dense")
SPLITS = ("train", "test")
NORMALISATION = "(x - 127.5) / 127.5"
SHARD_GLOB = "*-[0-9][0-9][0-9][0-9][0-9].h5"
SHARD_FILE = re.compile(r"(train|test)-[0-9]{5}\.h5")  # the only names pack writes (or deletes)
QUICK_BLOCK = 1 << 20  # quick digest: size + first and last MiB (docs/shards.md: cost)
MAX_SIDE = 16384  # largest image side index.json may claim
MAX_POSE_PX = 1024.0  # largest pose-map radius / sigma
_HEX64 = re.compile(r"[0-9a-f]{64}")
MAX_INDEX_BYTES = 64 << 20  # index.json: ~250 bytes a shard, so ~250k shards
MAX_OBJECTS = 64  # groups, datasets and named types in a shard (pgkit writes 9 or 8)

# Chosen by measurement (docs/shards.md): masks bit-packed along rows then gzip level 4 in one
# chunk per image; JPEG bytes stored as they are (already entropy coded); dense datasets one
# uncompressed chunk per pair so a random read touches one chunk.
MASK_GZIP = 4
MASK_ENCODING = "np.packbits(mask, axis=-1, bitorder='big'); unpack with count=W"
IMAGE_ENCODING = "original image file bytes (JPEG); cv2.imdecode -> BGR -> RGB"
CROP_ENCODING = "PNG of the centre crop {crop} of the original image (lossless); cv2.imdecode -> BGR -> RGB"

COMPACT_DATASETS = ("images/name", "images/jpeg", "images/keypoints", "images/mask",
                    "pairs/from", "pairs/to", "pairs/flip")
DENSE_DATASETS = ("condition", "target", "pose", "mask", "keypoints", "from", "to", "flip")
# the type each dataset is written with ("str": UTF-8 variable-length; "bytes": vlen uint8)
COMPACT_TYPES = {"images/name": "str", "images/jpeg": "bytes", "images/keypoints": "float32",
                 "images/mask": "uint8", "pairs/from": "int32", "pairs/to": "int32",
                 "pairs/flip": "uint8"}
DENSE_TYPES = {**dict.fromkeys(("condition", "target", "pose", "mask", "keypoints"), "float32"),
               "from": "str", "to": "str", "flip": "uint8"}
TYPE_WORDS = {"str": "variable-length UTF-8 strings", "bytes": "variable-length uint8 (file bytes)"}
VLEN_MIN_BYTES = 8  # a variable-length element takes 16 bytes in the file (length + heap id)

_STR = h5py.string_dtype("utf-8")


def shard_name(split: str, k: int) -> str:
    return f"{split}-{k:05d}.h5"


def pose_settings(kind: str = "disk", radius: float = 4.0, sigma: float = 6.0,
                  where: str | os.PathLike | None = None) -> dict:
    """Pose-map settings, checked: a known kind, radius and sigma finite in (0, 1024] px."""
    if kind not in geometry.POSE_KINDS:
        raise PgkitError(where, f"pose map kind must be one of {geometry.POSE_KINDS}, got {kind!r}")
    out = {"kind": kind}
    for name, v in (("radius", radius), ("sigma", sigma)):
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) \
                or not (0 < v <= MAX_POSE_PX and math.isfinite(v)):  # range first: 10**400 is no float
            raise PgkitError(where, f"pose {name} must be a number in (0, {MAX_POSE_PX:g}] px, got {_short(v)}")
        out[name] = float(v)
    return out


def _short(v) -> str:
    """repr(v) cut to 60 characters (a 4,000-digit integer or a long list in an error message)."""
    text = repr(v)
    return text if len(text) <= 60 else text[:60] + "..."


def quick_digest(data: str | os.PathLike | bytes | memoryview) -> str:
    """sha256 of the size and the first and last MiB (the whole file up to 2 MiB): what
    PairDataset re-checks each time a process opens a shard. Takes a path or the bytes."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        view = memoryview(data)
        size = len(view)
        parts = [view] if size <= 2 * QUICK_BLOCK else [view[:QUICK_BLOCK], view[size - QUICK_BLOCK:]]
    else:
        with open(data, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size <= 2 * QUICK_BLOCK:
                parts = [f.read()]
            else:
                head = f.read(QUICK_BLOCK)
                f.seek(size - QUICK_BLOCK)
                parts = [head, f.read(QUICK_BLOCK)]
    return _quick(size, parts)


def _quick(size: int, parts) -> str:
    h = hashlib.sha256(f"pgkit-quick {size}\n".encode())
    for part in parts:
        h.update(part)
    return h.hexdigest()


def file_digests(path: str | os.PathLike) -> tuple[str, str]:
    """(quick digest, sha256) of a file from one read of its bytes: a full check of a shard
    reads it once, not the first and last MiB again."""
    full = hashlib.sha256()
    blocks: list[bytes] = []  # the first block read and the last two
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        while block := f.read(QUICK_BLOCK):
            full.update(block)
            blocks = blocks + [block] if len(blocks) < 2 else [blocks[0], blocks[-1], block]
    data = b"".join(blocks)
    parts = [data] if size <= 2 * QUICK_BLOCK else [blocks[0], b"".join(blocks[-2:])[-QUICK_BLOCK:]]
    return _quick(size, parts), full.hexdigest()


def check_shard_file(path: str | os.PathLike, entry: dict, full: bool = False) -> None:
    """Raise PgkitError naming the shard if its size, quick digest or (with `full`) sha256
    differ from its index.json entry."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if "bytes" in entry and size != entry["bytes"]:
            why = f"size {size:,} bytes, index.json records {entry['bytes']:,}"
        else:
            quick, sha = file_digests(path) if full else (quick_digest(path), None)
            if "quick_sha256" in entry and quick != entry["quick_sha256"]:
                why = "first/last MiB differ from index.json's quick_sha256"
            elif full and sha != entry["sha256"]:
                why = "sha256 differs from index.json's"
            else:
                return
    except FileNotFoundError:
        raise PgkitError(path, "missing (listed in index.json)") from None
    except OSError as exc:
        raise PgkitError(path, f"cannot read shard ({exc.strerror})") from None
    raise PgkitError(path, f"changed since it was packed ({why}); rerun `pgprep pack` to rewrite it")


def check_self_contained(f: h5py.File, path: str | os.PathLike) -> None:
    """Raise PgkitError naming the shard unless everything a reader can reach is stored in
    this file: only hard links (no soft or external link), no virtual dataset, no external
    raw storage, no filter but gzip. index.json's sha256 covers this file's bytes only, so
    data read through a link or from another file would escape it. Walks the links without
    following any but hard ones (a soft-link loop is refused, not followed); must run before
    anything opens a dataset by name."""
    count = 0
    todo: list[tuple[str, h5py.Group]] = [("", f)]
    while todo:
        prefix, group = todo.pop()
        if group.id.get_num_objs() > MAX_OBJECTS:
            raise PgkitError(path, f"group /{prefix} holds {group.id.get_num_objs():,} objects; "
                                   "a pgkit shard holds a handful: not a shard pgkit wrote")
        for key in group:
            name = f"{prefix}{key}"
            link = group.get(key, getlink=True)
            if isinstance(link, h5py.ExternalLink):
                raise PgkitError(path, f"{name} is an external link to {link.filename}:{link.path}; "
                                       "refused: a shard must hold all its data itself (the sha256 "
                                       "covers this file only); rerun `pgprep pack`")
            if not isinstance(link, h5py.HardLink):
                kind = "soft link" if isinstance(link, h5py.SoftLink) else type(link).__name__
                raise PgkitError(path, f"{name} is a {kind} to {getattr(link, 'path', '?')}; refused: "
                                       "pgkit shards hold no links; rerun `pgprep pack`")
            count += 1
            if count > MAX_OBJECTS:
                raise PgkitError(path, f"more than {MAX_OBJECTS} objects (hard links in a loop?); "
                                       "not a shard pgkit wrote")
            obj = group[key]
            if isinstance(obj, h5py.Group):
                todo.append((f"{name}/", obj))
            elif isinstance(obj, h5py.Dataset):
                _check_storage_is_local(obj, name, path)


def _check_storage_is_local(ds: h5py.Dataset, name: str, path) -> None:
    plist = ds.id.get_create_plist()
    if ds.is_virtual:
        raise PgkitError(path, f"{name} is a virtual dataset (its data lives in other files); "
                               "refused: a shard must hold all its data itself; rerun `pgprep pack`")
    if plist.get_external_count():
        raise PgkitError(path, f"{name} keeps its data in external raw files "
                               f"({plist.get_external(0)[0].decode(errors='replace')!r}); refused: a "
                               "shard must hold all its data itself; rerun `pgprep pack`")
    for i in range(plist.get_nfilters()):
        code = plist.get_filter(i)[0]
        if code != h5py.h5z.FILTER_DEFLATE:  # any other filter may load a plugin library
            raise PgkitError(path, f"{name} uses HDF5 filter {code}; pgkit shards use gzip only")


def open_shard(path: str | os.PathLike) -> h5py.File:
    """h5py.File(path, "r") once `check_self_contained` passed; PgkitError naming the shard
    otherwise (also for a file that is not HDF5). Every reader of a shard opens it here."""
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise PgkitError(path, f"not a readable HDF5 file ({exc})") from None
    try:
        check_self_contained(f, path)
    except BaseException:
        f.close()
        raise
    return f


def _attrs(layout: str, split: str, image_size, pose: dict, n_pairs: int, n_images: int,
           removed: list) -> dict:
    h, w = image_size
    return {
        "format": FORMAT, "schema_version": VERSION, "layout": layout, "split": split,
        "pairs": int(n_pairs), "images": int(n_images), "image_size": np.array([h, w], np.int32),
        "normalisation": NORMALISATION, "image_range": "[-1, 1]",
        "pose_kind": pose["kind"], "pose_radius": pose["radius"], "pose_sigma": pose["sigma"],
        "pose_range": "[-1, 1]; missing joint = all -1",
        "joints": json.dumps(list(skeleton.JOINTS)),
        "keypoints": "float32 (18, 3): x (column), y (row), score; missing = -1, -1, 0",
        "flip": "1 = condition, target, pose and mask mirrored with the left/right joint swap",
        "flip_perm": np.asarray(skeleton.FLIP_PERM, np.int32),
        "removed_inputs": json.dumps(removed),
    }


def _dataset(f: h5py.File, name: str, data=None, **kw) -> h5py.Dataset:
    return f.create_dataset(name, data=data, track_times=False, **kw)


# ---------------------------------------------------------------- writers

def write_compact(path: str | os.PathLike, split: str, image_size, pose: dict,
                  names: list[str], jpegs: list[bytes], keypoints: np.ndarray,
                  masks: np.ndarray, pair_from: np.ndarray, pair_to: np.ndarray,
                  pair_flip: np.ndarray, removed: list, image_encoding: str = IMAGE_ENCODING) -> None:
    """One compact shard: images once, pairs as indices. `masks` is (n, H, W) uint8 {0,1}."""
    h, w = image_size
    n = len(names)
    packed = np.packbits(np.asarray(masks, np.uint8).reshape(n, h, w) > 0, axis=-1,
                         bitorder="big")
    with h5py.File(path, "w") as f:
        for k, v in _attrs("compact", split, image_size, pose, len(pair_from), n, removed).items():
            f.attrs[k] = v
        f.attrs["image_encoding"] = image_encoding
        f.attrs["mask_encoding"] = MASK_ENCODING
        f.create_group("images")
        f.create_group("pairs")
        _dataset(f, "images/name", np.array(names, dtype=object), dtype=_STR)
        dj = _dataset(f, "images/jpeg", shape=(n,), dtype=h5py.vlen_dtype(np.uint8))
        for i, b in enumerate(jpegs):
            dj[i] = np.frombuffer(b, np.uint8)
        _dataset(f, "images/keypoints", np.asarray(keypoints, np.float32).reshape(n, 18, 3))
        _dataset(f, "images/mask", packed, chunks=(1,) + packed.shape[1:] if n else None,
                 compression="gzip" if n else None, compression_opts=MASK_GZIP if n else None)
        _dataset(f, "pairs/from", np.asarray(pair_from, np.int32))
        _dataset(f, "pairs/to", np.asarray(pair_to, np.int32))
        _dataset(f, "pairs/flip", np.asarray(pair_flip, np.uint8))


class DenseWriter:
    """Appends the seed's per-pair example to preallocated datasets (one chunk per pair)."""

    def __init__(self, path, split, image_size, pose, n_pairs, removed):
        h, w = image_size
        self.f = h5py.File(path, "w")
        for k, v in _attrs("dense", split, image_size, pose, n_pairs, 0, removed).items():
            self.f.attrs[k] = v
        self.ds = {}
        for name, c in (("condition", 3), ("target", 3), ("pose", 18), ("mask", 1)):
            shape = (n_pairs, h, w, c)
            self.ds[name] = _dataset(self.f, name, shape=shape, dtype=np.float32,
                                     chunks=(1, h, w, c) if n_pairs else None)
        self.ds["keypoints"] = _dataset(self.f, "keypoints", shape=(n_pairs, 18, 3), dtype=np.float32)
        self.names = {"from": [], "to": []}
        self.flips = []
        self.i = 0

    def add(self, ex: dict) -> None:
        for name in ("condition", "target", "pose", "mask", "keypoints"):
            self.ds[name][self.i] = ex[name]
        self.names["from"].append(ex["from"])
        self.names["to"].append(ex["to"])
        self.flips.append(int(ex["flip"]))
        self.i += 1

    def close(self, n_images: int) -> None:
        for k in ("from", "to"):
            _dataset(self.f, k, np.array(self.names[k], dtype=object), dtype=_STR)
        _dataset(self.f, "flip", np.asarray(self.flips, np.uint8))
        self.f.attrs["images"] = int(n_images)
        self.f.close()


# ---------------------------------------------------------------- decoding (shared by both)
#
# Decoded examples are CHW (torch's layout); only the dense file stores HWC (the seed's).

def bgr_to_chw(bgr: np.ndarray, flip: bool) -> np.ndarray:
    """cv2's BGR (H, W, 3) -> RGB (3, H, W) uint8, mirrored if `flip`.

    cv2.split writes the B, G, R planes straight into planes 2, 1, 0 of the output (its
    vectorised deinterleave); numpy's transpose copy gathers bytes at a stride of 3 and took
    ~5x as long at 256x256 (benchmarks/bench_loader.py).
    """
    if flip:
        bgr = cv2.flip(bgr, 1)
    chw = np.empty((3,) + bgr.shape[:2], np.uint8)
    dst = [chw[2], chw[1], chw[0]]
    for plane, out in zip(cv2.split(bgr, dst), dst, strict=True):
        if plane is not out:  # cv2 allocated new planes instead (not seen): copy them in
            out[...] = plane
    return chw


def raw_example(cond_bgr: np.ndarray, target_bgr: np.ndarray, target_kp: np.ndarray,
                target_mask: np.ndarray, flip: bool) -> dict:
    """uint8 CHW RGB images, (1, H, W) uint8 mask and the target's keypoints, flip applied.

    With `flip`, both images and the mask are mirrored and the keypoints flipped with the
    left/right swap (pgprep.skeleton.flip).
    """
    kp = np.asarray(target_kp, np.float32)
    w = cond_bgr.shape[1]
    m = np.asarray(target_mask, np.uint8)
    return {"condition": bgr_to_chw(cond_bgr, flip), "target": bgr_to_chw(target_bgr, flip),
            "keypoints": skeleton.flip(kp, w) if flip else kp,
            # cv2.flip: ~6x faster than numpy's negative-stride copy
            "mask": cv2.flip(m, 1)[None] if flip else np.ascontiguousarray(m[None])}


def float_example(raw: dict, pose: dict) -> dict:
    """A raw example -> the seed's example in CHW: float32 images in [-1, 1] (I_A, I_B), pose
    maps P_B of the target keypoints, mask M_B in {0, 1}."""
    h, w = raw["condition"].shape[1:]
    return {"condition": geometry.normalise(raw["condition"]),
            "target": geometry.normalise(raw["target"]),
            "pose": geometry.pose_maps(raw["keypoints"], (h, w), pose["kind"], pose["radius"],
                                       pose["sigma"]),
            "mask": raw["mask"].astype(np.float32),
            "keypoints": raw["keypoints"]}


def to_hwc(ex: dict) -> dict:
    """CHW example -> the dense file's HWC arrays."""
    return {k: np.ascontiguousarray(v.transpose(1, 2, 0)) if v.ndim == 3 else v for k, v in ex.items()}


def stored_image_size(data: bytes) -> tuple[int, int] | None:
    """(height, width) as a JPEG's frame header, a PNG's IHDR or a WebP's VP8/VP8L/VP8X header
    stores them (before any EXIF rotation); None if no such header is found. Reads only
    header bytes: what a decode would allocate is known before it runs."""
    be = int.from_bytes
    if data[:3] == b"\xff\xd8\xff":
        i, n = 2, len(data)
        while i + 4 <= n:
            if data[i] != 0xFF:
                return None
            marker = data[i + 1]
            if marker == 0xFF:  # fill byte
                i += 1
            elif marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:  # no length field
                i += 2
            elif marker in (0xD9, 0xDA):  # end of image / start of scan before a frame header
                return None
            elif 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # SOFn
                return (be(data[i + 5:i + 7], "big"), be(data[i + 7:i + 9], "big")) if i + 9 <= n else None
            else:
                i += 2 + be(data[i + 2:i + 4], "big")
        return None
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR" and len(data) >= 24:
        return be(data[20:24], "big"), be(data[16:20], "big")
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP" and len(data) >= 30:
        kind = data[12:16]
        if kind == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
            return be(data[28:30], "little") & 0x3FFF, be(data[26:28], "little") & 0x3FFF
        if kind == b"VP8L" and data[20] == 0x2F:
            bits = be(data[21:25], "little")
            return ((bits >> 14) & 0x3FFF) + 1, (bits & 0x3FFF) + 1
        if kind == b"VP8X":
            return be(data[27:30], "little") + 1, be(data[24:27], "little") + 1
    return None


def decode_bgr(data: np.ndarray, where: str, size: tuple[int, int] | None = None) -> np.ndarray:
    """Stored image bytes -> BGR (H, W, 3). With `size` (index.json's image_size), the header
    must claim exactly that many pixels (either orientation: EXIF may rotate) before the
    decode runs, so a stored JPEG claiming 30000x30000 costs nothing; the result must be `size`."""
    data = np.asarray(data, np.uint8)
    if size is not None:
        claim = stored_image_size(data.tobytes())
        if claim is None:
            raise PgkitError(where, "stored image has no JPEG, PNG or WebP header")
        if sorted(claim) != sorted(size):
            raise PgkitError(where, f"stored image header says {claim[0]}x{claim[1]} (HxW), "
                                    f"index.json's image_size is {size[0]}x{size[1]}")
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if bgr is None:
        raise PgkitError(where, "stored image does not decode")
    if size is not None and bgr.shape[:2] != tuple(size):
        raise PgkitError(where, f"stored image decodes to {bgr.shape[0]}x{bgr.shape[1]} (HxW), "
                                f"index.json's image_size is {size[0]}x{size[1]}")
    return bgr


class ShardReader:
    """Reads pairs from one shard; opens the HDF5 file on first use in each process, so it
    pickles (DataLoader workers, DistributedSampler ranks) without an open handle.

    With `entry` and `index` (its index.json entry and the validated index), every open
    first re-checks the file's size and quick digest (`check_shard_file`), then its
    attributes and dataset shapes against index.json (`_check_schema`): a shard changed or
    replaced after packing stops with a PgkitError naming it, never trains silently."""

    def __init__(self, path: str | os.PathLike, entry: dict | None = None, index: dict | None = None):
        self.path = Path(path)
        self.entry, self.index = entry, index
        self._f = None
        self._pid = None
        self._meta = None

    def __getstate__(self):
        return {"path": self.path, "entry": self.entry, "index": self.index,
                "_f": None, "_pid": None, "_meta": None}

    @property
    def f(self) -> h5py.File:
        if self._f is None or self._pid != os.getpid():
            if self.entry is not None:
                check_shard_file(self.path, self.entry)
            f = open_shard(self.path)
            if self.entry is not None and self.index is not None:
                problems = _check_schema(f, self.entry, self.index)
                if problems:
                    f.close()
                    raise PgkitError(self.path, f"disagrees with index.json: {problems[0]}"
                                     + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""))
            self._f = f
            self._pid = os.getpid()
            self._meta = None
        return self._f

    def close(self) -> None:
        if self._f is not None and self._pid == os.getpid():
            self._f.close()
        self._f = None

    @property
    def meta(self) -> dict:
        """Attributes, pair tables and dataset handles, read once per process."""
        f = self.f
        if self._meta is None:
            m = {"layout": str(f.attrs["layout"]), "pairs": int(f.attrs["pairs"]),
                 "image_size": tuple(int(v) for v in f.attrs["image_size"]),
                 "pose": pose_settings(str(f.attrs["pose_kind"]), float(f.attrs["pose_radius"]),
                                       float(f.attrs["pose_sigma"]), where=self.path)}
            if m["layout"] == "compact":
                m["from"] = f["pairs/from"][:]
                m["to"] = f["pairs/to"][:]
                m["flip"] = f["pairs/flip"][:].astype(bool)
                m["names"] = [s.decode() for s in f["images/name"][:]]
                m["keypoints"] = f["images/keypoints"][:]
                m["jpeg"], m["mask"] = f["images/jpeg"], f["images/mask"]
            else:
                m["from_names"] = [s.decode() for s in f["from"][:]]
                m["to_names"] = [s.decode() for s in f["to"][:]]
                m["flip"] = f["flip"][:].astype(bool)
                m["ds"] = {k: f[k] for k in ("condition", "target", "pose", "mask", "keypoints")}
            self._meta = m
        return self._meta

    def __len__(self) -> int:
        return self.meta["pairs"]

    def names(self, i: int) -> tuple[str, str, bool]:
        m = self.meta
        if m["layout"] == "compact":
            return m["names"][m["from"][i]], m["names"][m["to"][i]], bool(m["flip"][i])
        return m["from_names"][i], m["to_names"][i], bool(m["flip"][i])

    def raw(self, i: int) -> dict:
        """uint8 CHW condition/target, (1, H, W) uint8 mask, target keypoints (flip applied)."""
        m = self.meta
        if m["layout"] == "compact":
            return self.raw_many([i])[0]
        ds = m["ds"]
        return {"condition": geometry.denormalise(ds["condition"][i]).transpose(2, 0, 1).copy(),
                "target": geometry.denormalise(ds["target"][i]).transpose(2, 0, 1).copy(),
                "keypoints": ds["keypoints"][i],
                "mask": (ds["mask"][i, ..., 0] > 0.5).astype(np.uint8)[None]}

    def example(self, i: int, pose: dict | None = None) -> dict:
        """The seed's example in CHW float32; dense shards return what they store."""
        m = self.meta
        if m["layout"] == "dense" and (pose is None or pose == m["pose"]):
            ex = {k: m["ds"][k][i] for k in ("condition", "target", "pose", "mask")}
            ex = {k: np.ascontiguousarray(v.transpose(2, 0, 1)) for k, v in ex.items()}
            ex["keypoints"] = m["ds"]["keypoints"][i]
            return ex
        return float_example(self.raw(i), pose or m["pose"])

    def raw_many(self, indices) -> list[dict]:
        """[self.raw(i) for i in indices], reading all the JPEG bytes the pairs need with one
        HDF5 call. Reading one variable-length element costs ~50 us in h5py + HDF5 (a fifth of
        a 256x256 JPEG decode); a batched read ~5 us an element."""
        m = self.meta
        idx = np.asarray(indices, np.int64).reshape(-1)
        if m["layout"] != "compact":
            return [self.raw(int(i)) for i in idx]
        a, b = m["from"][idx], m["to"][idx]
        # h5py reads a list of points only in increasing order without repeats
        ids = np.unique(np.concatenate([a, b]))
        jpeg = dict(zip(ids.tolist(), m["jpeg"][ids], strict=True)) if len(ids) else {}
        w = m["image_size"][1]
        out = []
        for i, ai, bi in zip(idx.tolist(), a.tolist(), b.tolist(), strict=True):
            # masks one by one: ~5 us each (one gzip chunk), while h5py's list read of a 3-D
            # dataset selected point by point and took milliseconds
            mask = np.unpackbits(m["mask"][bi], axis=-1, count=w, bitorder="big")
            size = m["image_size"]
            out.append(raw_example(decode_bgr(jpeg[ai], f"{self.path}:images/jpeg[{ai}]", size),
                                   decode_bgr(jpeg[bi], f"{self.path}:images/jpeg[{bi}]", size),
                                   m["keypoints"][bi], mask, bool(m["flip"][i])))
        return out


# ---------------------------------------------------------------- index and verify

def read_index(shards: str | os.PathLike) -> dict:
    path = Path(shards) / INDEX
    try:
        if path.exists() and not path.is_file():  # a FIFO would block, /dev/zero never end
            raise PgkitError(path, "not a regular file: not an index pgkit wrote")
        with open(path, "rb") as fh:
            if os.fstat(fh.fileno()).st_size > MAX_INDEX_BYTES:
                raise PgkitError(path, f"larger than {MAX_INDEX_BYTES >> 20} MiB: not an index pgkit wrote")
            doc = json.loads(fh.read(MAX_INDEX_BYTES + 1).decode("utf-8"))
    except FileNotFoundError:
        raise PgkitError(path, "no index.json: not a shard directory (run `pgprep pack` first)") from None
    except RecursionError:
        raise PgkitError(path, "unreadable index (JSON nested too deeply)") from None
    except (OSError, ValueError) as exc:  # also the 4,300-digit integer limit and bad UTF-8
        raise PgkitError(path, f"unreadable index ({str(exc).splitlines()[0][:200]})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise PgkitError(path, f"not a {FORMAT} index (format={doc.get('format') if isinstance(doc, dict) else None!r})")
    if doc.get("version") != VERSION:
        raise PgkitError(path, f"index version {doc.get('version')!r}; this pgkit reads version {VERSION}")
    return validate_index(doc, path)


def _count(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def validate_index(doc: dict, path: str | os.PathLike) -> dict:
    """Check every field a reader relies on (types, ranges, names, totals); raise PgkitError
    naming index.json at the first problem. Returns `doc` with `pose` filled in."""
    def bad(reason: str):
        raise PgkitError(path, reason)

    if doc.get("layout") not in LAYOUTS:
        bad(f"layout must be one of {LAYOUTS}, got {doc.get('layout')!r}")
    size = doc.get("image_size")
    if not (isinstance(size, list) and len(size) == 2
            and all(_count(v) and 0 < v <= MAX_SIDE for v in size)):
        bad(f"image_size must be [H, W], whole numbers in 1..{MAX_SIDE}, got {size!r}")
    pose = doc.get("pose", pose_settings())
    if not isinstance(pose, dict):
        bad(f"pose must be an object with kind, radius, sigma, got {pose!r}")
    doc["pose"] = pose_settings(pose.get("kind"), pose.get("radius"), pose.get("sigma"), where=path)
    splits, entries = doc.get("splits"), doc.get("shards")
    if not isinstance(splits, dict) or not splits or not set(splits) <= set(SPLITS):
        bad(f"splits must be an object keyed by {SPLITS}, got {splits!r:.80}")
    if not isinstance(entries, list):
        bad(f"shards must be a list, got {type(entries).__name__}")
    totals = dict.fromkeys(splits, 0)
    seen: set[str] = set()
    digests: dict[str, str] = {}
    for k, e in enumerate(entries):
        where = f"shards[{k}]"
        if not isinstance(e, dict):
            bad(f"{where} must be an object, got {e!r:.80}")
        name = e.get("file")
        try:
            check_relative(name, path)
        except PgkitError as exc:
            bad(f"{where}: {exc.reason}")
        if not SHARD_FILE.fullmatch(name):
            bad(f"{where}: file {name!r} is not a shard name (<split>-NNNNN.h5)")
        if name in seen:
            bad(f"{where}: {name} listed twice")
        seen.add(name)
        if e.get("split") not in splits:
            bad(f"{where} ({name}): split {e.get('split')!r} is not one of {sorted(splits)}")
        for field in ("pairs", "bytes", "images"):
            if (field == "pairs" or field in e) and not _count(e.get(field)):
                bad(f"{where} ({name}): {field} must be a whole number >= 0, got {e.get(field)!r}")
        for field in ("sha256", "quick_sha256"):
            if (field == "sha256" or field in e) and not (isinstance(e.get(field), str)
                                                          and _HEX64.fullmatch(e[field])):
                bad(f"{where} ({name}): {field} must be 64 hex digits, got {e.get(field)!r}")
        if e["sha256"] in digests:  # a copied shard listed again: its pairs would train twice
            bad(f"{where} ({name}): same sha256 as {digests[e['sha256']]}; a shard listed twice "
                "under two names (its pairs would be used twice)")
        digests[e["sha256"]] = name
        totals[e["split"]] += e["pairs"]
    for split, info in splits.items():
        if not isinstance(info, dict) or not _count(info.get("pairs")):
            bad(f"splits.{split}.pairs must be a whole number >= 0, got {info!r:.80}")
        if info["pairs"] != totals[split]:
            bad(f"split {split} claims {info['pairs']} pairs, its shards list {totals[split]}")
    removed = doc.get("removed", [])
    if not isinstance(removed, list) or not all(
            isinstance(r, dict) and isinstance(r.get("image"), str) and isinstance(r.get("reason"), str)
            and _count(r.get("pairs")) for r in removed):
        bad("removed must be a list of {image, reason, pairs} records")
    return doc


def _check_schema(f: h5py.File, entry: dict, index: dict) -> list[str]:
    bad = []
    pose = index.get("pose") or pose_settings()
    expect = {"format": FORMAT, "schema_version": VERSION, "layout": index.get("layout"),
              "split": entry.get("split"), "pairs": entry.get("pairs"),
              "image_size": list(index.get("image_size", [])), "pose_kind": pose["kind"],
              "pose_radius": pose["radius"], "pose_sigma": pose["sigma"]}
    for k, v in expect.items():
        got = f.attrs.get(k)
        got = got.decode() if isinstance(got, bytes) else got
        got = got.tolist() if isinstance(got, (np.generic, np.ndarray)) else got
        if got is None or (got != v and str(got) != str(v)):
            bad.append(f"attribute {k}={got!r}, index.json says {v!r}")
    if bad:
        return bad
    h, w = index["image_size"]
    n = int(entry["pairs"])
    if index["layout"] == "compact":
        missing = [d for d in COMPACT_DATASETS if d not in f]
        if missing:
            return [f"missing datasets {missing}"]
        bad += _check_types(f, COMPACT_TYPES)
        m = f["images/name"].shape[0] if f["images/name"].ndim == 1 else -1
        shapes = {"images/name": (m,), "images/jpeg": (m,), "images/keypoints": (m, 18, 3),
                  "images/mask": (m, h, (w + 7) // 8), "pairs/from": (n,), "pairs/to": (n,),
                  "pairs/flip": (n,)}
        bad += [f"{d} has shape {f[d].shape}, expected {s}" for d, s in shapes.items() if f[d].shape != s]
        if not bad:
            bad += _check_storage(f, COMPACT_DATASETS)
        if not bad:  # every stored image belongs to a pair: at most two a pair
            counts = {"index.json's images": entry.get("images", m), "attribute images": f.attrs.get("images")}
            bad += [f"images/name holds {m:,} images, {what} says {v!r}" for what, v in counts.items()
                    if not isinstance(v, (int, np.integer)) or v != m]
            if m > 2 * n:
                bad.append(f"images/name holds {m:,} images for {n:,} pairs (at most 2 a pair)")
        if not bad and n:
            for d in ("pairs/from", "pairs/to"):
                v = f[d][:]
                if v.min() < 0 or v.max() >= m:
                    bad.append(f"{d} indexes outside 0..{m - 1}")
        if not bad:
            bad += _check_names(f["images/name"][:], "images/name")
    else:
        missing = [d for d in DENSE_DATASETS if d not in f]
        if missing:
            return [f"missing datasets {missing}"]
        bad += _check_types(f, DENSE_TYPES)
        shapes = {"condition": (n, h, w, 3), "target": (n, h, w, 3), "pose": (n, h, w, 18),
                  "mask": (n, h, w, 1), "keypoints": (n, 18, 3), "from": (n,), "to": (n,),
                  "flip": (n,)}
        bad += [f"{d} has shape {f[d].shape}, expected {s}" for d, s in shapes.items() if f[d].shape != s]
        if not bad:
            bad += _check_storage(f, DENSE_DATASETS)
        if not bad and "images" in entry and f.attrs.get("images") != entry["images"]:
            bad.append(f"attribute images={f.attrs.get('images')!r}, index.json says {entry['images']!r}")
        if not bad:
            bad += _check_names(f["from"][:], "from") + _check_names(f["to"][:], "to")
    return bad


def _check_types(f: h5py.File, types: dict) -> list[str]:
    """Each dataset has the type the writer gives it (a float32 where int32 indices belong
    would otherwise pass verify and stop fit with a TypeError)."""
    bad = []
    for name, want in types.items():
        dt = f[name].dtype
        if want == "str":
            info = h5py.check_string_dtype(dt)
            ok = info is not None and info.length is None
        elif want == "bytes":
            ok = h5py.check_string_dtype(dt) is None and h5py.check_vlen_dtype(dt) == np.dtype(np.uint8)
        else:
            ok = dt == np.dtype(want)
        if not ok:
            bad.append(f"{name} has type {dt}, expected {TYPE_WORDS.get(want, want)}")
    return bad


def _check_storage(f: h5py.File, names) -> list[str]:
    """What a dataset declares must be stored in this file before anything reads it: a 14 KB
    shard declaring 10^8 names (unwritten data reads as fill values) would otherwise cost GBs.
    Uncompressed data must be fully stored, and no dataset may claim more than the file
    holds; the one compressed dataset (images/mask) is read a chunk (one mask) at a time."""
    size = f.id.get_filesize()
    bad = []
    for name in names:
        ds = f[name]
        stored = ds.id.get_storage_size()
        filtered = ds.id.get_create_plist().get_nfilters() > 0
        per = VLEN_MIN_BYTES if ds.dtype.kind == "O" else ds.dtype.itemsize
        need = math.prod(ds.shape) * per
        if stored > size or (not filtered and stored < need):
            bad.append(f"{name} declares shape {ds.shape} ({need:,} bytes) but stores {stored:,} "
                       f"bytes in a {size:,}-byte file")
        elif filtered and name != "images/mask":  # read whole: its size must be what is stored
            bad.append(f"{name} is compressed; pgkit stores it uncompressed")
        elif filtered and ds.chunks != (1,) + ds.shape[1:]:
            bad.append(f"{name} is compressed in chunks {ds.chunks}, expected one per image {(1,) + ds.shape[1:]}")
    return bad


def _check_names(raw, dataset: str) -> list[str]:
    """Image names stored in a shard pass the same check as every other name pgkit reads."""
    for k, b in enumerate(raw):
        name = b.decode() if isinstance(b, bytes) else str(b)
        if name.strip() and name[0] != "/" and name[1:2] != ":" and ".." not in name \
                and "\\" not in name and "\0" not in name:
            continue  # plainly relative: skip check_relative's PurePosixPath (10x the cost)
        try:
            check_relative(name)
        except PgkitError as exc:
            return [f"{dataset}[{k}]: {exc.reason}"]
    return []


def verify(shards: str | os.PathLike, show_progress: bool = False) -> list[str]:
    """Re-check every shard's sha256 and schema against index.json. Returns problems
    ("<shard path>: <reason>"); an empty list means the directory is sound."""
    shards = Path(shards)
    index = read_index(shards)
    problems = []
    entries = index.get("shards", [])  # split totals: read_index refuses an index they miss
    for entry in progress(entries, desc="verify", unit="shard", disable=None if show_progress else True):
        path = shards / entry["file"]
        if not path.is_file():
            problems.append(f"{path}: missing")
            continue
        size = path.stat().st_size
        if "bytes" in entry and size != entry["bytes"]:
            problems.append(f"{path}: size {size:,} bytes, index.json records {entry['bytes']:,}")
            continue
        digest = file_sha256(path)
        if digest != entry["sha256"]:
            problems.append(f"{path}: sha256 {digest[:12]}... differs from index.json's {entry['sha256'][:12]}...")
            continue
        try:
            with open_shard(path) as f:
                problems += [f"{path}: {p}" for p in _check_schema(f, entry, index)]
        except PgkitError as exc:
            problems.append(str(exc))
        except (OSError, ValueError, KeyError) as exc:  # h5py's words for a damaged structure
            problems.append(f"{path}: not a readable shard ({exc})")
    return problems


# ---------------------------------------------------------------- commands

@click.command("verify")
@click.argument("shards", type=click.Path(exists=True, file_okay=False, path_type=Path))
@debug_option
def verify_command(shards: Path):
    """Re-check every shard of SHARDS against index.json: sha256 and schema.

    Each shard listed in index.json must exist, hash to the listed sha256, open as HDF5 and
    carry the attributes and dataset shapes of its layout (docs/shards.md); split totals
    must add up. Prints one line per problem (naming the shard) and exits 1 if any is found,
    0 otherwise.

    \b
    Example:
      pgprep verify data/shards
      ok: 4 shards, 1268 pairs (train 1120, test 148), compact layout
    """
    problems = verify(shards, show_progress=True)
    index = read_index(shards)
    if problems:
        for p in problems:
            click.echo(f"bad: {p}", err=True)
        click.echo(f"error: {len(problems)} problem(s) in {shards}; first: {problems[0]}", err=True)
        sys.exit(1)
    splits = index.get("splits", {})
    total = sum(int(s["pairs"]) for s in splits.values())
    per = ", ".join(f"{k} {v['pairs']}" for k, v in splits.items())
    click.echo(f"ok: {len(index['shards'])} shards, {total} pairs ({per}), {index['layout']} layout")


@click.command("inspect")
@click.argument("shards", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--datasets/--no-datasets", default=True, show_default=True,
              help="Also list the first shard's datasets (shape, dtype, chunks, compression).")
@debug_option
def inspect_command(shards: Path, datasets: bool):
    """Summarise a shard directory: pairs, images, bytes per pair, attributes.

    Reads index.json and the shards' attributes (no hashing; use `pgprep verify` for that).

    \b
    Example:
      pgprep inspect data/shards
      | split | shards | pairs | images | bytes     | bytes/pair |
      |-------|--------|-------|--------|-----------|------------|
      | train | 3      | 1120  | 410    | 2,310,554 | 2063       |
      ...
      attributes: layout=compact, image_size=[64, 64], pose=disk r=4 ...
    """
    index = read_index(shards)
    rows = []
    for split in index.get("splits", {}):
        entries = [e for e in index["shards"] if e["split"] == split]
        pairs = sum(int(e["pairs"]) for e in entries)
        images = sum(int(e.get("images", 0)) for e in entries)
        size = sum((shards / e["file"]).stat().st_size for e in entries if (shards / e["file"]).exists())
        rows.append([split, len(entries), pairs, images, size, round(size / pairs) if pairs else 0])
    echo_table(rows, ["split", "shards", "pairs", "images", "bytes", "bytes/pair"])
    pose = index.get("pose", {})
    click.echo(f"layout: {index['layout']}  image_size: {index['image_size']}  "
               f"pose: {pose.get('kind')} radius={pose.get('radius')} sigma={pose.get('sigma')}  "
               f"normalisation: {index.get('normalisation')}")
    removed = index.get("removed", [])
    if removed:
        click.echo(f"removed at pack time: {len(removed)} input(s), "
                   f"{sum(r['pairs'] for r in removed)} pair(s); e.g. {removed[0]['image']}: {removed[0]['reason']}")
    if index["shards"]:
        first = shards / index["shards"][0]["file"]
        with open_shard(first) as f:
            click.echo(f"attributes of {first.name}:")
            for k in sorted(f.attrs):
                v = f.attrs[k]
                v = v.tolist() if isinstance(v, np.ndarray) else v
                click.echo(f"  {k}: {v}")
            if datasets:
                rows = []
                f.visititems(lambda name, obj: rows.append(
                    [name, obj.shape, obj.dtype, obj.chunks, obj.compression]) if isinstance(obj, h5py.Dataset) else None)
                echo_table(rows, ["dataset", "shape", "dtype", "chunks", "compression"])
