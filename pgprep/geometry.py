"""Image and mask geometry shared by every stage and by the trainer.

- images: `read_rgb` decodes (and refuses truncated/empty files), `normalise` maps uint8 to
  [-1, 1] as (x - 127.5) / 127.5.
- pose maps: one channel per COCO-18 joint, PG²'s solid disk (radius 4) or a Gaussian
  (sigma 6); values in [-1, 1]; missing joints are all -1. Vectorised over joints and pixels.
- body masks: PG²'s morphological mask from the limbs (disks along each limb with both ends
  present, then a 5x5 dilation and a 5x5 erosion).
- sizes and fitting: `parse_hw` (the one HxW parser), `Letterbox` (aspect-kept fit on white,
  its keypoint transform and content box; ingest, filter and generate), `Crop` (PATN's 256x176).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import cv2
import numpy as np

from pgprep import imageio, skeleton
from pgprep.errors import PgkitError

POSE_KINDS = ("disk", "gaussian")
DEFAULT_POSE = {"kind": "disk", "radius": 4.0, "sigma": 6.0}  # PG² / PATN values at 256 px
PG2_HEIGHT = 256


def size_scale(size: tuple[int, int]) -> float:
    """How much larger than PG²'s 256-px DeepFashion images an image of `size` (H, W) is.
    By the height: a standing catalogue person spans it, and PATN's 256x176 crops keep it."""
    return float(size[0]) / PG2_HEIGHT


def scaled_pose(size: tuple[int, int], radius: float | None = None, sigma: float | None = None) -> tuple[float, float]:
    """Pose-map radius and sigma for images of `size`: given values as they are, missing ones
    PG²'s radius 4 / PATN's sigma 6 scaled by `size_scale` (64 px: 1 and 1.5; 512 px: 8 and 12)."""
    s = size_scale(size)
    return (float(radius) if radius is not None else round(DEFAULT_POSE["radius"] * s, 4),
            float(sigma) if sigma is not None else round(DEFAULT_POSE["sigma"] * s, 4))


# ---------------------------------------------------------------- images

def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """Decode an image file to upright uint8 RGB (H, W, 3) under the one reading policy of
    `pgprep.imageio` (JPEG/PNG/WebP, EXIF orientation applied, trailers ignored, pixel limit).
    Raises PgkitError naming the file if it is empty, truncated, too large or unreadable."""
    return imageio.read_rgb(path)


def decode_rgb(data: bytes, path: str | os.PathLike | None = None) -> np.ndarray:
    """`read_rgb` for bytes already in memory."""
    return imageio.decode(data, path)


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


def read_mask(path: str | os.PathLike, size: tuple[int, int] | None = None) -> np.ndarray:
    """A mask PNG -> uint8 (H, W) in {0, 1}, read under the image policy (`decode_mask`)."""
    return decode_mask(imageio.read_bytes(path, "mask"), path, size)


def decode_mask(data: bytes, path: str | os.PathLike | None = None,
                size: tuple[int, int] | None = None) -> np.ndarray:
    """Mask PNG bytes -> uint8 (H, W) in {0, 1}. The header is checked before any pixel is
    decoded: an empty or truncated file, another format, more pixels than the image limit,
    or (with `size`, (H, W)) another size than the image's is a PgkitError naming `path`;
    a 900 KB PNG declaring 30000x30000 costs nothing."""
    try:
        info = imageio.probe(data, path)
    except PgkitError as exc:
        raise PgkitError(path, f"unusable mask: {exc.reason}") from None
    if info.format != "PNG":
        raise PgkitError(path, f"unusable mask: a {info.format} file, not a PNG")
    if size is not None and (info.height, info.width) != (int(size[0]), int(size[1])):
        raise PgkitError(path, f"mask is {info.height}x{info.width} (HxW), expected {int(size[0])}x{int(size[1])}")
    m = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    if m is None or m.shape != (info.height, info.width):
        raise PgkitError(path, "unusable mask: the PNG's pixel data does not decode")
    return (m > 0).astype(np.uint8)


def normalise(img_uint8: np.ndarray) -> np.ndarray:
    """uint8 -> float32 in [-1, 1] as (x - 127.5) / 127.5 (the seed's normalisation)."""
    return (img_uint8.astype(np.float32) - 127.5) / 127.5


def denormalise(img: np.ndarray) -> np.ndarray:
    """[-1, 1] float -> uint8, rounding and clipping."""
    return np.clip(np.rint(np.asarray(img, np.float32) * 127.5 + 127.5), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- pose maps

def disk_pixels(x: np.ndarray, y: np.ndarray, radius: float, row_range: tuple[int, int],
                col_range: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixels whose centre lies within `radius` of each sub-pixel point (x[p], y[p]) and inside
    [row_range) x [col_range): (point index, row, col) arrays, one entry per pixel.

    Vectorised over points: every point's square window of offsets is one index array.
    Shared by the disk pose maps and the body-mask disks, so both draw identical disks.
    """
    half = int(np.ceil(radius)) + 1
    off = np.arange(-half, half + 1)
    px = np.rint(x).astype(np.int64)[:, None, None] + off[None, None, :]  # (P, 1, K)
    py = np.rint(y).astype(np.int64)[:, None, None] + off[None, :, None]  # (P, K, 1)
    dy2 = (py.astype(np.float32) - y[:, None, None]) ** 2
    dx2 = (px.astype(np.float32) - x[:, None, None]) ** 2
    hit = ((dy2 + dx2 <= np.float32(radius) ** 2) & (px >= col_range[0]) & (px < col_range[1])
           & (py >= row_range[0]) & (py < row_range[1]))
    pi, yi, xi = np.nonzero(hit)
    return pi, py[pi, yi, 0], px[pi, 0, xi]


def pose_maps(kp: np.ndarray, size: tuple[int, int], kind: str = "disk", radius: float = 4.0,
              sigma: float = 6.0) -> np.ndarray:
    """Render COCO-18 keypoints (18, 3) or (N, 18, 3) to float32 maps (18, H, W) / (N, 18, H, W).

    disk (PG²): 1 where the pixel centre (integer x = column, y = row) lies within `radius`
    of the joint, i.e. dy² + dx² <= radius² in float32; gaussian (PATN family):
    exp(-(dx² + dy²) / (2 sigma²)). Both are mapped {0..1} -> {-1..1}; a missing joint's
    channel is all -1. Keypoints keep their sub-pixel position (PG² truncated them to ints).

    No Python loop over pixels or joints: the disk scatters the few pixels of every disk
    window into a map of -1 (the window offsets of all joints are one index array); the
    Gaussian is separable, exp(-dy²/2s²) * exp(-dx²/2s²), one outer product per channel.
    """
    kp = np.asarray(kp, dtype=np.float32)
    single = kp.ndim == 2
    kp = kp.reshape(-1, skeleton.N_JOINTS, 3)
    n = kp.shape[0]
    h, w = int(size[0]), int(size[1])
    ok = skeleton.present(kp) & np.isfinite(kp[..., :2]).all(axis=-1)  # (N, 18)
    if kind == "disk":
        out = np.full((n, skeleton.N_JOINTS, h, w), -1.0, np.float32)
        b, j = np.nonzero(ok)
        if b.size:
            pi, rows, cols = disk_pixels(kp[b, j, 0], kp[b, j, 1], radius, (0, h), (0, w))
            out[b[pi], j[pi], rows, cols] = 1.0
    elif kind == "gaussian":
        k = np.float32(-0.5 / (sigma * sigma))
        ys = np.arange(h, dtype=np.float32)
        xs = np.arange(w, dtype=np.float32)
        gy = np.exp((ys[None, None, :] - kp[..., 1, None]) ** 2 * k)  # (N, 18, H)
        gx = np.exp((xs[None, None, :] - kp[..., 0, None]) ** 2 * k)  # (N, 18, W)
        gx = np.where(ok[..., None], gx, 0.0).astype(np.float32)  # no inf * 0 = nan
        gy = np.where(ok[..., None], 2.0 * gy, 0.0).astype(np.float32)  # missing: 0 - 1 = -1
        # 2 gy gx - 1 as one batched matmul with inner size 2: [2gy, -1] @ [gx; 1]; a single
        # pass over the output instead of a product and a subtraction.
        a = np.stack([gy, np.full_like(gy, -1.0)], axis=-1)  # (N, 18, H, 2)
        c = np.stack([gx, np.ones_like(gx)], axis=-2)  # (N, 18, 2, W)
        out = np.matmul(a, c)
    else:
        raise ValueError(f"pose map kind must be one of {POSE_KINDS}, got {kind!r}")
    return out[0] if single else out


# ---------------------------------------------------------------- body masks

def limb_points(kp: np.ndarray, radius: float = 4.0) -> np.ndarray:
    """Centres of PG²'s disks, (P, 2) x, y: for each of the 23 limbs with both ends present,
    both ends and the int(len / radius) - 1 evenly spaced points between them."""
    kp = np.asarray(kp, np.float32)
    ok = skeleton.present(kp) & np.isfinite(kp[:, :2]).all(axis=-1)
    pts = []
    for a, b in skeleton.LIMBS:
        if not (ok[a] and ok[b]):
            continue
        p0, p1 = kp[a, :2], kp[b, :2]
        n = int(np.hypot(*(p1 - p0)) / radius)
        t = np.arange(0, max(n, 1) + 1, dtype=np.float32) / max(n, 1)
        pts.append(p0[None] + (p1 - p0)[None] * t[:, None])
    return np.concatenate(pts) if pts else np.zeros((0, 2), np.float32)


def body_mask(kp: np.ndarray, size: tuple[int, int], radius: float = 4, close: int = 5) -> np.ndarray:
    """PG²'s body mask: uint8 (H, W) in {0, 1}.

    Every pixel whose centre lies within `radius` of one of the `limb_points` (the same
    sub-pixel rule as the disk pose maps), then a `close` x `close` dilation followed by an
    erosion (0 disables it; must be odd so the square is centred). PG² truncated the disk
    centres to integers; keeping them sub-pixel makes the construction commute with
    mirroring, so a flipped pair's mask is exactly `np.fliplr` of the stored one. Disks
    whose centre lies just outside the image still cover their inside part (as in PG²).
    """
    h, w = int(size[0]), int(size[1])
    close = int(close)
    if close < 0 or (close and close % 2 == 0):
        raise ValueError(f"close must be 0 or an odd size, got {close}")
    pad = int(np.ceil(radius)) + close + 1
    canvas = np.zeros((h + 2 * pad, w + 2 * pad), np.uint8)
    pts = limb_points(kp, radius)
    if len(pts):
        _, rows, cols = disk_pixels(pts[:, 0], pts[:, 1], radius, (-pad, h + pad), (-pad, w + pad))
        canvas[rows + pad, cols + pad] = 1
    if close:
        k = np.ones((close, close), np.uint8)
        canvas = cv2.erode(cv2.dilate(canvas, k), k)  # default borders: the frame edge is neutral
    return np.ascontiguousarray(canvas[pad:pad + h, pad:pad + w])


# ---------------------------------------------------------------- the centre crop (PATN's 256x176)

@dataclass(frozen=True)
class Crop:
    """A centre crop to `width` columns of images of `source_size` (H, W), starting at column `x0`.

    The one definition of the crop every stage uses: `pgprep filter --crop W` makes it
    (`Crop.centre`), moves the keypoints into it (`keypoints`) and records it in work.json
    (`to_json`); `pgprep masks` draws at its `size` (images.csv and work.json already hold it);
    `pgprep pack` cuts the pixels (`image`) and writes shards of `size`; the trainer and the
    evaluation read that size from index.json. PATN's benchmark crop is
    `Crop.centre((256, 256), 176)`: columns 40..215 (x0 = 40), keypoint x -= 40.
    """

    x0: int
    width: int
    source_size: tuple[int, int]

    @classmethod
    def centre(cls, source_size: tuple[int, int], width: int) -> Crop:
        h, w = int(source_size[0]), int(source_size[1])
        if not 0 < int(width) <= w:
            raise PgkitError(None, f"crop width {width} does not fit images of {h}x{w} (HxW); "
                                   f"choose 1..{w}")
        return cls((w - int(width)) // 2, int(width), (h, w))

    @property
    def size(self) -> tuple[int, int]:
        """(H, W) after the crop."""
        return self.source_size[0], self.width

    def image(self, img: np.ndarray, where: str | os.PathLike | None = None) -> np.ndarray:
        """The crop of an (H, W, ...) image of `source_size`; PgkitError naming `where` otherwise."""
        if tuple(img.shape[:2]) != tuple(self.source_size):
            raise PgkitError(where, f"image is {img.shape[0]}x{img.shape[1]} (HxW), the crop is made "
                                    f"for {self.source_size[0]}x{self.source_size[1]}")
        return np.ascontiguousarray(img[:, self.x0:self.x0 + self.width])

    def keypoints(self, kp: np.ndarray) -> tuple[np.ndarray, int]:
        """(keypoints in the crop, joints dropped): detected joints move by x -= x0; those
        that land outside the crop's columns [0, width - 1] become missing (-1, -1, 0), as an
        estimator run on the cropped image would not report them. (..., 18, 3) in and out."""
        kp = np.array(kp, np.float32, copy=True)
        det = skeleton.present(kp)
        kp[..., 0] = np.where(det, kp[..., 0] - self.x0, kp[..., 0])
        out = det & ((kp[..., 0] < 0) | (kp[..., 0] > self.width - 1))
        kp[out] = (-1.0, -1.0, 0.0)
        return kp, int(out.sum())

    def to_json(self) -> dict:
        return {"x0": self.x0, "width": self.width, "source_size": list(self.source_size)}

    @classmethod
    def from_json(cls, doc, where: str | os.PathLike | None = None) -> Crop | None:
        """The crop recorded in work.json (None: no crop); PgkitError naming `where` if malformed."""
        if doc is None:
            return None
        try:
            crop = cls.centre(tuple(int(v) for v in doc["source_size"]), int(doc["width"]))
        except (KeyError, TypeError, ValueError, PgkitError):
            raise PgkitError(where, f"malformed crop record {doc!r}; rerun `pgprep filter`") from None
        if crop.x0 != doc.get("x0"):
            raise PgkitError(where, f"crop record {doc!r} is not a centre crop; rerun `pgprep filter`")
        return crop


# ---------------------------------------------------------------- sizes and the letterbox fit

def parse_hw(text, lo: int = 1, hi: int | None = None, what: str = "size") -> tuple[int, int]:
    """The one HxW parser: `256` -> (256, 256); `256x176` (or `256X176`, an (h, w) pair) ->
    (256, 176), height x width as everywhere in pgkit. PgkitError when malformed or a side is
    outside lo..hi."""
    if isinstance(text, (tuple, list)) and len(text) == 2:
        h, w = text
    elif isinstance(text, (int, np.integer)):
        h = w = text
    else:
        m = re.fullmatch(r"\s*(\d+)\s*(?:[xX]\s*(\d+))?\s*", str(text))
        if not m:
            raise PgkitError(None, f"{what} must be N or HxW (e.g. 256 or 256x176), got {text!r}")
        h, w = m.group(1), m.group(2) or m.group(1)
    try:
        h, w = int(h), int(w)
    except (TypeError, ValueError):
        raise PgkitError(None, f"{what} must be N or HxW (e.g. 256 or 256x176), got {text!r}") from None
    if min(h, w) < lo or (hi is not None and max(h, w) > hi):
        raise PgkitError(None, f"{what} {h}x{w} (HxW) is outside {lo}..{hi if hi is not None else 'any'}")
    return h, w


def fit_keypoints(kp: np.ndarray, scale: float, pad_x: float, pad_y: float) -> np.ndarray:
    """COCO-18 keypoints (..., 18, 3) of an upright image -> the letterboxed frame: (x, y) ->
    ((x + 0.5) * scale - 0.5 + pad_x, (y + 0.5) * scale - 0.5 + pad_y), pixel centres as
    cv2.resize samples them. Missing joints stay missing."""
    kp = np.array(kp, np.float32, copy=True)
    ok = skeleton.present(kp)
    kp[..., 0] = np.where(ok, (kp[..., 0] + 0.5) * scale - 0.5 + pad_x, kp[..., 0])
    kp[..., 1] = np.where(ok, (kp[..., 1] + 0.5) * scale - 0.5 + pad_y, kp[..., 1])
    return kp


@dataclass(frozen=True)
class Letterbox:
    """An upright image of `src` (h, w) scaled to fit `dst` (H, W), aspect ratio kept, centred
    on white: DeepFashion's padding. The one definition `pgprep ingest` (photos -> ROOT),
    `pgprep filter` (where the photo lies in its padding) and `pgtrain generate` (any input ->
    the model's size) share."""

    src: tuple[int, int]
    dst: tuple[int, int]
    scale: float
    new_h: int
    new_w: int
    pad_x: int
    pad_y: int

    @classmethod
    def fit(cls, src: tuple[int, int], dst: tuple[int, int]) -> Letterbox:
        (h, w), (H, W) = (int(v) for v in src), (int(v) for v in dst)  # noqa: N806
        scale = min(H / h, W / w)
        nh, nw = cls._scaled(src, dst, scale)
        return cls((h, w), (H, W), scale, nh, nw, (W - nw) // 2, (H - nh) // 2)

    @classmethod
    def from_record(cls, src: tuple[int, int], dst: tuple[int, int], scale: float, pad_x: int,
                    pad_y: int) -> Letterbox:
        """The letterbox a record (ROOT/ingest.csv: original size, size, scale, pads) describes."""
        nh, nw = cls._scaled(src, dst, float(scale))
        return cls((int(src[0]), int(src[1])), (int(dst[0]), int(dst[1])), float(scale), nh, nw, int(pad_x), int(pad_y))

    @staticmethod
    def _scaled(src: tuple[int, int], dst: tuple[int, int], scale: float) -> tuple[int, int]:
        (h, w), (H, W) = src, dst  # noqa: N806
        return min(int(H), max(1, round(int(h) * scale))), min(int(W), max(1, round(int(w) * scale)))

    @property
    def identity(self) -> bool:
        return self.src == self.dst

    @property
    def box(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) of the photo inside the padded image (x1, y1 exclusive)."""
        return (float(self.pad_x), float(self.pad_y), float(self.pad_x + self.new_w), float(self.pad_y + self.new_h))

    def image(self, rgb: np.ndarray, fill: int = 255) -> np.ndarray:
        """uint8 (H, W, 3): area-averaged when shrinking, bicubic when enlarging."""
        if self.identity:
            return rgb
        interp = cv2.INTER_AREA if self.scale < 1 else cv2.INTER_CUBIC
        small = rgb if (self.new_h, self.new_w) == rgb.shape[:2] else \
            cv2.resize(rgb, (self.new_w, self.new_h), interpolation=interp)
        out = np.full((*self.dst, 3), fill, np.uint8)
        out[self.pad_y:self.pad_y + self.new_h, self.pad_x:self.pad_x + self.new_w] = small
        return out

    def keypoints(self, kp: np.ndarray) -> np.ndarray:
        """Keypoints (..., 18, 3) of the source image in the letterboxed frame (`fit_keypoints`)."""
        if self.identity:
            return np.array(kp, np.float32, copy=True)
        return fit_keypoints(kp, self.scale, self.pad_x, self.pad_y)
