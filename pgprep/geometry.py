"""Image and mask geometry shared by every stage and by the trainer.

- images: `read_rgb` decodes (and refuses truncated/empty files), `normalise` maps uint8 to
  [-1, 1] as (x - 127.5) / 127.5.
- pose maps: one channel per COCO-18 joint, PG²'s solid disk (radius 4) or a Gaussian
  (sigma 6); values in [-1, 1]; missing joints are all -1. Vectorised over joints and pixels.
- body masks: PG²'s morphological mask from the limbs (disks along each limb with both ends
  present, then a 5x5 dilation and a 5x5 erosion).
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from pgprep import skeleton
from pgprep.errors import PgkitError

POSE_KINDS = ("disk", "gaussian")
DEFAULT_POSE = {"kind": "disk", "radius": 4.0, "sigma": 6.0}


# ---------------------------------------------------------------- images

def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """Decode an image file to uint8 RGB (H, W, 3). Raises PgkitError if empty/truncated/unreadable."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise PgkitError(path, f"cannot read image ({exc.strerror})") from None
    return decode_rgb(data, path)


def decode_rgb(data: bytes, path: str | os.PathLike | None = None) -> np.ndarray:
    if len(data) == 0:
        raise PgkitError(path, "empty image file")
    if data[:2] == b"\xff\xd8" and b"\xff\xd9" not in data[-64:]:
        raise PgkitError(path, "truncated JPEG (no end-of-image marker)")
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise PgkitError(path, "not a decodable image")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def encode_jpeg(rgb: np.ndarray, quality: int = 95) -> bytes:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise PgkitError(None, "JPEG encoding failed")
    return buf.tobytes()


def encode_png(img: np.ndarray) -> bytes:
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", img)
    if not ok:
        raise PgkitError(None, "PNG encoding failed")
    return buf.tobytes()


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """A mask PNG -> uint8 (H, W) in {0, 1}."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise PgkitError(path, f"cannot read mask ({exc.strerror})") from None
    m = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    if m is None:
        raise PgkitError(path, "not a decodable mask PNG")
    return (m > 0).astype(np.uint8)


def normalise(img_uint8: np.ndarray) -> np.ndarray:
    """uint8 -> float32 in [-1, 1] as (x - 127.5) / 127.5 (the seed's normalisation)."""
    return (img_uint8.astype(np.float32) - 127.5) / 127.5


def denormalise(img: np.ndarray) -> np.ndarray:
    """[-1, 1] float -> uint8, rounding and clipping."""
    return np.clip(np.rint(np.asarray(img, np.float32) * 127.5 + 127.5), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- pose maps

def pose_maps(kp: np.ndarray, size: tuple[int, int], kind: str = "disk", radius: float = 4.0,
              sigma: float = 6.0) -> np.ndarray:
    """Render COCO-18 keypoints (18, 3) or (N, 18, 3) to float32 maps (18, H, W) / (N, 18, H, W).

    disk: 1 where the pixel centre lies within `radius` of the joint; gaussian:
    exp(-d^2 / (2 sigma^2)). Both mapped {0..1} -> {-1..1}; missing joints are all -1.
    """
    kp = np.asarray(kp, dtype=np.float32)
    single = kp.ndim == 2
    kp = kp.reshape(-1, skeleton.N_JOINTS, 3)
    h, w = size
    ok = skeleton.present(kp)[..., None, None]  # (N, 18, 1, 1)
    ys = np.arange(h, dtype=np.float32)[None, None, :, None]
    xs = np.arange(w, dtype=np.float32)[None, None, None, :]
    dy2 = (ys - kp[..., 1, None, None]) ** 2  # (N, 18, H, 1)
    dx2 = (xs - kp[..., 0, None, None]) ** 2  # (N, 18, 1, W)
    if kind == "disk":
        v = (dy2 + dx2 <= np.float32(radius) ** 2).astype(np.float32)
    elif kind == "gaussian":
        # separable: exp(-(dx^2 + dy^2) / 2s^2) = exp(-dy^2/2s^2) * exp(-dx^2/2s^2)
        k = np.float32(-0.5 / (sigma * sigma))
        v = np.exp(dy2 * k) * np.exp(dx2 * k)
    else:
        raise ValueError(f"pose map kind must be one of {POSE_KINDS}, got {kind!r}")
    out = np.where(ok, v * 2.0 - 1.0, -1.0).astype(np.float32)
    return out[0] if single else out


# ---------------------------------------------------------------- body masks

def _disk_kernel(r: int) -> np.ndarray:
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    return (xx * xx + yy * yy <= r * r).astype(np.uint8)


def limb_points(kp: np.ndarray, radius: float = 4.0) -> np.ndarray:
    """Centres of PG²'s disks: both ends of each limb and int(len / radius) - 1 points between."""
    kp = np.asarray(kp, np.float32)
    ok = skeleton.present(kp)
    pts = []
    for a, b in skeleton.LIMBS:
        if not (ok[a] and ok[b]):
            continue
        p0, p1 = kp[a, :2], kp[b, :2]
        n = int(np.hypot(*(p1 - p0)) / radius)
        t = np.arange(0, max(n, 1) + 1, dtype=np.float32) / max(n, 1)
        pts.append(p0[None] + (p1 - p0)[None] * t[:, None])
    return np.concatenate(pts) if pts else np.zeros((0, 2), np.float32)


def body_mask(kp: np.ndarray, size: tuple[int, int], radius: int = 4, close: int = 5) -> np.ndarray:
    """PG²'s body mask: uint8 (H, W) in {0, 1}. `close` is the side of the square used for the
    dilation-then-erosion (0 disables it)."""
    h, w = size
    centres = np.zeros((h, w), np.uint8)
    pts = np.rint(limb_points(kp, radius)).astype(np.int64)
    inside = (pts[:, 0] >= 0) & (pts[:, 0] < w) & (pts[:, 1] >= 0) & (pts[:, 1] < h)
    pts = pts[inside]
    centres[pts[:, 1], pts[:, 0]] = 1
    mask = cv2.dilate(centres, _disk_kernel(int(radius)))
    if close:
        k = np.ones((close, close), np.uint8)
        mask = cv2.erode(cv2.dilate(mask, k), k)  # default borders: the frame edge is neutral
    return mask
