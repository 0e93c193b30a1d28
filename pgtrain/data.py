"""PairDataset: the training pairs of a shard directory (either layout) as torch tensors.

Default items are the seed's example in CHW: float32 `condition`, `target` (3,H,W) in [-1,1]
(I_A, I_B), `pose` (18,H,W) in [-1,1] (P_B, rendered from the target's keypoints with the
pose settings recorded in index.json), `mask` (1,H,W) in {0,1} (M_B), plus `from`, `to`
(image names) and `flip`.

`raw=True` items carry only bytes: uint8 `condition`, `target` (3,H,W), uint8 `mask`
(1,H,W) and the target's `keypoints` (18,3) (flip applied). `to_device_batch` turns a
collated raw batch into exactly the default batch on the training device, so DataLoader
workers move ~0.4 MB per pair at 256x256 instead of 6.5 MB.

HDF5 files are opened lazily, once per process, so the dataset pickles into DataLoader
workers (and DistributedSampler ranks) without carrying open handles.

Integrity: index.json is validated on read (pgprep.shards.read_index). Making the dataset
re-hashes the split's shards against index.json's sha256 (`check="sha256"`; ~1.1 s a GB
from the page cache), or checks only their size and first/last MiB (`check="quick"`, ~4 ms
a shard); the default `"auto"` re-hashes up to FULL_HASH_LIMIT bytes (a compact DeepFashion
is ~0.7 GB) and is quick above. Every process that opens a shard (DataLoader workers too)
re-checks size + quick digest and its attributes against index.json, so a shard altered
later still stops with a PgkitError naming it, before any of its pairs is read.
"""

from __future__ import annotations

import bisect
import ctypes
import math
import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from pgprep import shards as shard_format
from pgprep.errors import PgkitError

# glibc serves the ~200 KB buffers of each decode from fresh mmaps and returns freed heap to
# the OS, so a worker page-faults most of every batch's ~30 MB back in (~2 us a fault on the
# benchmark machine). A DataLoader worker only loads data, so there it keeps its peak heap
# instead: measured 37 -> 9 page faults and 7-14% less worker CPU a pair on the raw path.
# The training process itself is never changed.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters, glibc <malloc.h>
_tuned_pid: int | None = None


def _keep_heap_in_worker() -> None:
    global _tuned_pid
    if _tuned_pid == os.getpid():
        return
    _tuned_pid = os.getpid()
    if torch.utils.data.get_worker_info() is None:
        return
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc: leave the allocator alone
        return
    mallopt(_M_MMAP_THRESHOLD, 16 << 20)  # setting the trim threshold disables the adaptive one
    mallopt(_M_TRIM_THRESHOLD, 1 << 30)


FULL_HASH_LIMIT = 8 << 30  # check="auto": full sha256 of a split up to 8 GiB (~9 s), quick above
CHECKS = ("auto", "sha256", "quick")


class PairDataset(Dataset):
    """Pairs of one split of a pgkit shard directory (SPEC.md)."""

    def __init__(self, shards_dir: str | os.PathLike, split: str = "train", raw: bool = False,
                 pose_kind: str | None = None, pose_radius: float | None = None,
                 pose_sigma: float | None = None, check: str = "auto"):
        if check not in CHECKS:
            raise PgkitError(None, f"check must be one of {CHECKS}, got {check!r}")
        self.root = Path(shards_dir)
        self.index = shard_format.read_index(self.root)
        if split not in self.index.get("splits", {}):
            raise PgkitError(self.root / shard_format.INDEX,
                             f"no split {split!r} (has {sorted(self.index.get('splits', {}))})")
        self.split = split
        self.raw = raw
        p = self.index.get("pose", shard_format.pose_settings())
        self.pose = shard_format.pose_settings(pose_kind or p["kind"],
                                               p["radius"] if pose_radius is None else pose_radius,
                                               p["sigma"] if pose_sigma is None else pose_sigma)
        self.layout = self.index["layout"]
        entries = [e for e in self.index["shards"] if e["split"] == split and e["pairs"] > 0]
        self.readers = [shard_format.ShardReader(self.root / e["file"], e, self.index) for e in entries]
        full = check == "sha256" or (check == "auto" and sum(e.get("bytes", 0) for e in entries) <= FULL_HASH_LIMIT)
        for e, r in zip(entries, self.readers, strict=True):
            if full:  # opening (r.f) does the quick check (size, digest) itself
                shard_format.check_shard_file(r.path, e, full=True)
            r.f  # noqa: B018 - opening checks size, quick digest, attributes and shapes
            r.close()  # workers open their own handle
        self._starts = np.cumsum([0] + [int(e["pairs"]) for e in entries]).tolist()

    @property
    def image_size(self) -> tuple[int, int]:
        h, w = self.index["image_size"]
        return int(h), int(w)

    def __len__(self) -> int:
        return self._starts[-1]

    def locate(self, i: int) -> tuple[shard_format.ShardReader, int]:
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"pair {i} out of range 0..{len(self) - 1}")
        k = bisect.bisect_right(self._starts, i) - 1
        return self.readers[k], i - self._starts[k]

    def __getitem__(self, i: int) -> dict:
        _keep_heap_in_worker()
        reader, j = self.locate(int(i))
        if self.raw:
            return self._raw_item(reader, j, reader.raw(j))
        ex = reader.example(j, self.pose)
        a, b, flip = reader.names(j)
        return {"condition": torch.from_numpy(ex["condition"]), "target": torch.from_numpy(ex["target"]),
                "pose": torch.from_numpy(ex["pose"]), "mask": torch.from_numpy(ex["mask"]),
                "from": a, "to": b, "flip": flip}

    def __getitems__(self, indices) -> list[dict]:
        """[self[i] for i in indices]. torch's DataLoader calls this with a whole batch's
        indices; on the raw path the pairs are grouped by shard so each shard reads its JPEG
        bytes in one HDF5 call (ShardReader.raw_many): ~90 us less a pair than two single
        reads. The float path is dominated by pose maps and normalisation, so it loops."""
        if not self.raw:
            return [self[i] for i in indices]
        _keep_heap_in_worker()
        by_shard: dict[shard_format.ShardReader, list[tuple[int, int]]] = {}
        for pos, i in enumerate(indices):
            reader, j = self.locate(int(i))
            by_shard.setdefault(reader, []).append((pos, j))
        out: list = [None] * len(indices)
        for reader, todo in by_shard.items():
            for (pos, j), ex in zip(todo, reader.raw_many([j for _, j in todo]), strict=True):
                out[pos] = self._raw_item(reader, j, ex)
        return out

    @staticmethod
    def _raw_item(reader: shard_format.ShardReader, j: int, ex: dict) -> dict:
        a, b, flip = reader.names(j)
        return {"condition": torch.from_numpy(ex["condition"]),
                "target": torch.from_numpy(ex["target"]),
                "keypoints": torch.from_numpy(np.array(ex["keypoints"], np.float32)),
                "mask": torch.from_numpy(ex["mask"]), "from": a, "to": b, "flip": flip}

    def close(self) -> None:
        for r in self.readers:
            r.close()


def pose_maps_torch(keypoints: torch.Tensor, size: tuple[int, int], kind: str = "disk",
                    radius: float = 4.0, sigma: float = 6.0) -> torch.Tensor:
    """(B, 18, 3) keypoints -> (B, 18, H, W) maps on keypoints' device; the same arithmetic
    as pgprep.geometry.pose_maps (float32), so disks match exactly and Gaussians to ~1e-7."""
    kp = keypoints.to(torch.float32)
    h, w = size
    dev = kp.device
    present = (kp[..., 2] > 0) & (kp[..., 0] >= 0) & (kp[..., 1] >= 0)
    if kind == "disk":
        return _disk_maps(kp, present, size, radius)
    ys = torch.arange(h, dtype=torch.float32, device=dev)[None, None, :, None]
    xs = torch.arange(w, dtype=torch.float32, device=dev)[None, None, None, :]
    dy2 = (ys - kp[..., 1, None, None]) ** 2
    dx2 = (xs - kp[..., 0, None, None]) ** 2
    present = present[..., None, None]
    if kind == "gaussian":  # separable, like the numpy reference
        k = float(np.float32(-0.5 / (sigma * sigma)))  # a float32 constant, not a host-to-device copy
        v = torch.exp(dy2 * k) * torch.exp(dx2 * k)
        return torch.where(present, v * 2.0 - 1.0, torch.full_like(v, -1.0))
    raise ValueError(f"pose map kind must be 'disk' or 'gaussian', got {kind!r}")


def _disk_maps(kp: torch.Tensor, present: torch.Tensor, size: tuple[int, int],
               radius: float) -> torch.Tensor:
    """Disk maps touching only a (2R+1)^2 window around each joint instead of every pixel
    (B*18*H*W work becomes a fill plus B*18*(2R+1)^2); the same float32 test per pixel as
    pgprep.geometry.pose_maps, so the result is identical. Written with a scatter (no
    nonzero(), no tensor made from a Python number), so on a GPU it never waits for the device."""
    h, w = size
    dev = kp.device
    lead = kp.shape[:-2]
    kp = kp.reshape(-1, kp.shape[-2], 3)
    present = present.reshape(kp.shape[:2])[..., None, None]
    out = torch.full((kp.shape[0], kp.shape[1], h, w), -1.0, dtype=torch.float32, device=dev)
    r = int(math.ceil(radius)) + 1
    off = torch.arange(-r, r + 1, device=dev)
    cx = torch.floor(kp[..., 0].clamp(-2 * r - w, 2 * w + 2 * r)).long()
    cy = torch.floor(kp[..., 1].clamp(-2 * r - h, 2 * h + 2 * r)).long()
    py = (cy[..., None] + off)[..., :, None]  # (B, 18, 2r+1, 1)
    px = (cx[..., None] + off)[..., None, :]  # (B, 18, 1, 2r+1)
    dy2 = (py.to(torch.float32) - kp[..., 1, None, None]) ** 2
    dx2 = (px.to(torch.float32) - kp[..., 0, None, None]) ** 2
    r2 = float(np.float32(radius) * np.float32(radius))  # the float32 square, as the reference
    hit = ((dy2 + dx2) <= r2) & present & (py >= 0) & (py < h) & (px >= 0) & (px < w)
    n, j = kp.shape[:2]
    where = (py.clamp(0, h - 1) * w + px.clamp(0, w - 1)).reshape(n, j, -1)  # misses clamp, write -1
    value = (hit.to(torch.float32) * 2 - 1).reshape(n, j, -1)
    out.view(n, j, h * w).scatter_reduce_(2, where, value, reduce="amax")
    return out.reshape(lead + out.shape[1:])


def to_device_batch(batch: dict, device, pose_kind: str = "disk", radius: float = 4.0,
                    sigma: float = 6.0, non_blocking: bool = True) -> dict:
    """A collated raw batch (PairDataset(raw=True)) -> the default float batch on `device`:
    images normalised as (x - 127.5) / 127.5, pose maps rendered from the keypoints, mask
    as float {0,1}. Names and flips pass through."""
    dev = torch.device(device)
    cond = batch["condition"].to(dev, non_blocking=non_blocking)
    tgt = batch["target"].to(dev, non_blocking=non_blocking)
    kp = batch["keypoints"].to(dev, non_blocking=non_blocking)
    mask = batch["mask"].to(dev, non_blocking=non_blocking)
    h, w = cond.shape[-2:]
    out = {"condition": (cond.to(torch.float32) - 127.5) / 127.5,
           "target": (tgt.to(torch.float32) - 127.5) / 127.5,
           "pose": pose_maps_torch(kp, (h, w), pose_kind, radius, sigma),
           "mask": mask.to(torch.float32)}
    for k in ("from", "to", "flip"):
        if k in batch:
            out[k] = batch[k]
    return out


def pose_options(dataset: PairDataset) -> dict:
    """Keyword arguments of to_device_batch that match the dataset's pose settings."""
    return {"pose_kind": dataset.pose["kind"], "radius": dataset.pose["radius"],
            "sigma": dataset.pose["sigma"]}


__all__ = ["PairDataset", "to_device_batch", "pose_maps_torch", "pose_options"]
