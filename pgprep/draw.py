"""Pictures users look at: skeletons, pose maps, mask overlays and labelled grids.

Every figure in pgkit (pgprep preview, the trainer's sample grids, pgtrain figures) is built
from these few functions, so a skeleton looks the same everywhere: the person's right side
is drawn in warm colours, the left side in cool colours, the spine and head in green.
All functions take and return uint8 RGB arrays (H, W, 3).
"""

from __future__ import annotations

import os

import cv2
import numpy as np

from pgprep import skeleton
from pgprep.atomic import write_bytes_atomic
from pgprep.geometry import encode_png

# One colour per COCO-18 joint: right side warm (red/orange), left side cool (blue/cyan).
_RIGHT, _LEFT, _MID = (235, 64, 52), (52, 120, 235), (60, 180, 75)
JOINT_COLOURS = np.array([
    (60, 180, 75), (60, 180, 75),                      # nose, neck
    (235, 64, 52), (245, 130, 48), (255, 200, 40),     # r shoulder, elbow, wrist
    (52, 120, 235), (70, 190, 230), (140, 100, 240),   # l shoulder, elbow, wrist
    (200, 30, 90), (240, 90, 120), (250, 160, 160),    # r hip, knee, ankle
    (20, 60, 160), (40, 140, 170), (100, 200, 200),    # l hip, knee, ankle
    (235, 64, 52), (52, 120, 235), (235, 64, 52), (52, 120, 235),  # r eye, l eye, r ear, l ear
], dtype=np.uint8)

BACKGROUND = (255, 255, 255)


def _side_colour(a: int, b: int) -> tuple[int, int, int]:
    names = skeleton.JOINTS[a] + skeleton.JOINTS[b]
    if "r_" in names and "l_" not in names:
        return _RIGHT
    if "l_" in names and "r_" not in names:
        return _LEFT
    return _MID


def to_uint8(x) -> np.ndarray:
    """A [-1, 1] image (torch tensor or array; CHW or HWC; 1 or 3 channels) -> uint8 HWC RGB."""
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    x = np.asarray(x)
    if x.dtype == np.uint8:
        img = x
    else:
        img = np.clip(np.rint(x.astype(np.float32) * 127.5 + 127.5), 0, 255).astype(np.uint8)
    if img.ndim == 2:
        img = img[:, :, None]
    if img.ndim == 3 and img.shape[0] in (1, 3) and img.shape[-1] not in (1, 3):
        img = np.transpose(img, (1, 2, 0))
    if img.shape[-1] == 1:
        img = np.repeat(img, 3, axis=-1)
    return np.ascontiguousarray(img)


def skeleton_image(kp: np.ndarray, size: tuple[int, int], canvas: np.ndarray | None = None,
                   thickness: int | None = None) -> np.ndarray:
    """Stick figure of a COCO-18 skeleton, on black or on a copy of `canvas` (uint8 HWC)."""
    h, w = size
    img = np.zeros((h, w, 3), np.uint8) if canvas is None else np.array(canvas, np.uint8, copy=True)
    kp = skeleton.clean(kp)
    ok = skeleton.present(kp)
    t = thickness or max(1, round(min(h, w) / 96))
    r = max(1, round(t * 1.5))
    shift = 4  # sub-pixel drawing
    s = float(1 << shift)
    for a, b in skeleton.BONES:
        if ok[a] and ok[b]:
            p = (int(round(kp[a, 0] * s)), int(round(kp[a, 1] * s)))
            q = (int(round(kp[b, 0] * s)), int(round(kp[b, 1] * s)))
            cv2.line(img, p, q, _side_colour(a, b), t, cv2.LINE_AA, shift)
    for j in np.flatnonzero(ok):
        c = (int(round(kp[j, 0] * s)), int(round(kp[j, 1] * s)))
        cv2.circle(img, c, r << shift, tuple(int(v) for v in JOINT_COLOURS[j]), -1, cv2.LINE_AA, shift)
    return img


def pose_map_image(pose) -> np.ndarray:
    """(18, H, W) pose maps in [-1, 1] -> uint8 RGB, each joint in its colour on black."""
    if hasattr(pose, "detach"):
        pose = pose.detach().float().cpu().numpy()
    p = (np.asarray(pose, np.float32) + 1.0) / 2.0  # (18, H, W) in [0, 1]
    p = np.clip(p, 0.0, 1.0)
    rgb = np.einsum("jhw,jc->hwc", p, JOINT_COLOURS.astype(np.float32))
    return np.clip(rgb, 0, 255).astype(np.uint8)


def mask_overlay(img: np.ndarray, mask: np.ndarray, color=(255, 0, 0), alpha: float = 0.4) -> np.ndarray:
    """Tint the pixels where `mask` is non-zero (mask: (H, W), (1, H, W) or (H, W, 1))."""
    img = to_uint8(img)
    if hasattr(mask, "detach"):
        mask = mask.detach().cpu().numpy()
    m = np.asarray(mask).squeeze() > 0
    out = img.astype(np.float32)
    out[m] = (1 - alpha) * out[m] + alpha * np.asarray(color, np.float32)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _label_height(width: int) -> int:
    """Height of the column-label band above cells `width` pixels wide."""
    return max(12, min(24, width // 6))


def _row_label_width(width: int) -> int:
    """Width of the row-label column left of cells `width` pixels wide."""
    return max(72, int(width * 0.8))


def _put_label(img: np.ndarray, text: str, x: int, y: int, w: int, h: int) -> None:
    scale = h / 30.0
    while scale > 0.2:
        (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        if tw <= w - 2:
            break
        scale *= 0.85
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    org = (x + max(0, (w - tw) // 2), y + (h + th) // 2)
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (30, 30, 30), 1, cv2.LINE_AA)


def _put_lines(img: np.ndarray, text: str, x: int, y: int, w: int, h: int) -> None:
    """Row labels: words wrapped onto as many lines as fit the cell, centred vertically."""
    lines = text.split() or [""]  # one word per line
    line_h = max(10, min(18, h // max(1, len(lines))))
    y0 = y + max(0, (h - line_h * len(lines)) // 2)
    for i, line in enumerate(lines):
        _put_label(img, line, x, y0 + i * line_h, w, line_h)


def grid(rows, col_labels=None, row_labels=None, pad: int = 2) -> np.ndarray:
    """Lay out rows of same-size uint8 images on white, with optional column/row labels."""
    rows = [[to_uint8(im) for im in row] for row in rows]
    if not rows or not rows[0]:
        raise ValueError("grid needs at least one image")
    h, w = rows[0][0].shape[:2]
    ncol = max(len(r) for r in rows)
    top = _label_height(w) if col_labels else 0
    left = _row_label_width(w) if row_labels else 0
    H = top + len(rows) * (h + pad) + pad
    W = left + ncol * (w + pad) + pad
    out = np.full((H, W, 3), BACKGROUND, np.uint8)
    if col_labels:
        for c, text in enumerate(col_labels[:ncol]):
            _put_label(out, str(text), left + pad + c * (w + pad), 0, w, top)
    for r, row in enumerate(rows):
        y = top + pad + r * (h + pad)
        if row_labels and r < len(row_labels):
            _put_lines(out, str(row_labels[r]), 0, y, left, h)
        for c, im in enumerate(row):
            if im.shape[:2] != (h, w):
                im = cv2.resize(im, (w, h), interpolation=cv2.INTER_AREA)
            x = left + pad + c * (w + pad)
            out[y:y + h, x:x + w] = im
    return out


def save_png(path: str | os.PathLike, img: np.ndarray) -> None:
    """Write a uint8 RGB image as PNG, atomically."""
    write_bytes_atomic(path, encode_png(to_uint8(img)))
