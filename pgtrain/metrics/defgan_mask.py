"""Deformable GAN's mask for mask-SSIM / mask-IS (`pose_utils.produce_ma_mask`), also PATN's.

Read in AliaksandrSiarohin/pose-gan pose_utils.py:108-143 (commit 8693ec4; PATN's
tool/pose_utils.py is the same function): for each of PG²'s 23 limbs with both ends
present, the rectangle of half-width 4 around the segment (vertices f ± n, t ± n, n the
normal scaled to 4) filled by skimage.draw.polygon; a disk of radius 4 (strict: distance < 4,
skimage.draw.circle) at every present keypoint; then a 5x5 square dilation followed by an
erosion (skimage.morphology, scipy.ndimage's 'reflect' borders). The target's keypoints
are used, and the same mask multiplies the target and the generated image.

Reimplemented with numpy: the polygon fill is the even-odd ray test skimage runs on integer
pixel centres (half-open in the row direction), so borders fall the same way; tests compare
with skimage.draw.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

from pgprep.skeleton import LIMBS as MASK_LIMBS  # PG²'s 23 mask limbs, 0-based

RADIUS = 4
CLOSE = 5


def _fill_polygon(mask: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> None:
    """skimage.draw.polygon(rows, cols, shape): pixel (r, c) is set when the even-odd test
    says its centre is inside (ray towards +c; an edge counts for r in [r_i, r_j))."""
    h, w = mask.shape
    if not (np.all(np.isfinite(rows)) and np.all(np.isfinite(cols))):
        return                       # a zero-length limb: the normal is NaN, nothing is drawn
    r0, r1 = max(0, int(rows.min())), min(h - 1, int(np.ceil(rows.max())))
    c0, c1 = max(0, int(cols.min())), min(w - 1, int(np.ceil(cols.max())))
    if r0 > r1 or c0 > c1:
        return
    rr, cc = np.mgrid[r0:r1 + 1, c0:c1 + 1].astype(np.float64)
    inside = np.zeros(rr.shape, bool)
    j = len(rows) - 1
    for i in range(len(rows)):
        yi, yj, xi, xj = rows[i], rows[j], cols[i], cols[j]
        crosses = ((yi <= rr) & (rr < yj)) | ((yj <= rr) & (rr < yi))
        with np.errstate(divide="ignore", invalid="ignore"):
            x_at = (xj - xi) * (rr - yi) / (yj - yi) + xi
        inside ^= crosses & (cc < x_at)
        j = i
    mask[r0:r1 + 1, c0:c1 + 1] |= inside


def _fill_disk(mask: np.ndarray, r: float, c: float, radius: float) -> None:
    """skimage.draw.circle(r, c, radius, shape): pixels strictly within `radius`."""
    h, w = mask.shape
    r0, r1 = max(0, int(np.floor(r - radius))), min(h - 1, int(np.ceil(r + radius)))
    c0, c1 = max(0, int(np.floor(c - radius))), min(w - 1, int(np.ceil(c + radius)))
    if r0 > r1 or c0 > c1:
        return
    rr, cc = np.mgrid[r0:r1 + 1, c0:c1 + 1]
    mask[r0:r1 + 1, c0:c1 + 1] |= ((rr - r) / radius) ** 2 + ((cc - c) / radius) ** 2 < 1


def defgan_mask(kp: np.ndarray, size: tuple[int, int], radius: float = RADIUS) -> np.ndarray:
    """uint8 (H, W) {0, 1} mask from COCO-18 keypoints (18, 3) = (x, y, visible)."""
    h, w = int(size[0]), int(size[1])
    kp = np.asarray(kp, np.float64)
    present = (kp[:, 2] > 0) & np.all(np.isfinite(kp[:, :2]), axis=1)
    yx = kp[:, [1, 0]]
    mask = np.zeros((h, w), bool)
    for f, t in MASK_LIMBS:
        if not (present[f] and present[t]):
            continue
        d = yx[f] - yx[t]
        with np.errstate(divide="ignore", invalid="ignore"):
            n = radius * np.array([-d[1], d[0]]) / np.linalg.norm(d)
        v = np.array([yx[f] + n, yx[f] - n, yx[t] - n, yx[t] + n])
        _fill_polygon(mask, v[:, 0], v[:, 1])
    for i in np.flatnonzero(present):
        _fill_disk(mask, yx[i, 0], yx[i, 1], radius)
    square = np.ones((CLOSE, CLOSE), bool)
    mask = ndimage.grey_dilation(mask.astype(np.uint8), footprint=square, mode="reflect")
    mask = ndimage.grey_erosion(mask, footprint=square, mode="reflect")
    return mask.astype(np.uint8)


def defgan_masks(keypoints: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(N, 18, 3) keypoints -> (N, 1, H, W) float {0, 1} masks."""
    kps = keypoints.detach().to("cpu", torch.float64).numpy()
    out = np.stack([defgan_mask(k, size) for k in kps]) if len(kps) else np.zeros((0,) + tuple(size), np.uint8)
    return torch.from_numpy(out).unsqueeze(1).float()
