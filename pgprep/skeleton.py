"""The one place that knows the COCO-18 skeleton (OpenPose order).

Keypoints are held as float32 arrays of shape (18, 3): columns x (image column), y (image row),
score. A missing joint is (-1, -1, 0). Stacks of skeletons have shape (..., 18, 3).
"""

from __future__ import annotations

import numpy as np

JOINTS = (
    "nose", "neck",
    "r_shoulder", "r_elbow", "r_wrist",
    "l_shoulder", "l_elbow", "l_wrist",
    "r_hip", "r_knee", "r_ankle",
    "l_hip", "l_knee", "l_ankle",
    "r_eye", "l_eye", "r_ear", "l_ear",
)
N_JOINTS = 18
J = {name: i for i, name in enumerate(JOINTS)}

MISSING = -1.0

# Mirroring an image turns the person's right side into the left: x -> W-1-x, and the joint
# channels swap r_* <-> l_*. new[i] = old[FLIP_PERM[i]].
FLIP_PERM = np.array([0, 1, 5, 6, 7, 2, 3, 4, 11, 12, 13, 8, 9, 10, 15, 14, 17, 16])

# PG²'s 23 limbs (1-based in its code), used for body masks and drawing; 0-based here.
_LIMBS_1BASED = [
    (2, 3), (2, 6), (3, 4), (4, 5), (6, 7), (7, 8), (2, 9), (9, 10), (10, 11), (2, 12),
    (12, 13), (13, 14), (2, 1), (1, 15), (15, 17), (1, 16), (16, 18), (2, 17), (2, 18),
    (9, 12), (12, 6), (9, 3), (17, 18),
]
LIMBS = tuple((a - 1, b - 1) for a, b in _LIMBS_1BASED)

# The 17 bones of the OpenPose COCO skeleton, for drawing stick figures (no face triangle).
BONES = (
    (1, 2), (2, 3), (3, 4), (1, 5), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11),
    (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),
)

# Source index per COCO-18 joint. BODY_25 drops 8 (mid-hip) and the feet 19-24.
BODY25_TO_COCO18 = np.array([0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18])

# MS-COCO 17 order: nose, l_eye, r_eye, l_ear, r_ear, l_sho, r_sho, l_elb, r_elb, l_wri,
# r_wri, l_hip, r_hip, l_knee, r_knee, l_ank, r_ank. Neck (-1) = mid-shoulders.
COCO17_TO_COCO18 = np.array([0, -1, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3])
COCO17_SHOULDERS = (5, 6)

# BlazePose 33 landmarks: 0 nose, 2 l_eye, 5 r_eye, 7 l_ear, 8 r_ear, 11 l_shoulder,
# 12 r_shoulder, 13/14 elbows, 15/16 wrists, 23/24 hips, 25/26 knees, 27/28 ankles (left first).
BLAZEPOSE_TO_COCO18 = np.array([0, -1, 12, 14, 16, 11, 13, 15, 24, 26, 28, 23, 25, 27, 5, 2, 8, 7])
BLAZEPOSE_SHOULDERS = (11, 12)


def empty() -> np.ndarray:
    """A skeleton with every joint missing."""
    kp = np.full((N_JOINTS, 3), MISSING, dtype=np.float32)
    kp[:, 2] = 0
    return kp


def present(kp: np.ndarray) -> np.ndarray:
    """Boolean mask (..., 18) of joints that were detected."""
    kp = np.asarray(kp)
    return (kp[..., 2] > 0) & (kp[..., 0] >= 0) & (kp[..., 1] >= 0)


def clean(kp: np.ndarray) -> np.ndarray:
    """Canonical form: float32 (18, 3), missing joints exactly (-1, -1, 0)."""
    kp = np.array(kp, dtype=np.float32, copy=True).reshape(N_JOINTS, 3)
    bad = ~present(kp) | ~np.isfinite(kp).all(axis=-1)
    kp[bad] = (MISSING, MISSING, 0.0)
    return kp


def flip(kp: np.ndarray, width: int) -> np.ndarray:
    """Mirror skeleton(s) horizontally in an image `width` pixels wide, swapping left/right."""
    kp = np.asarray(kp, dtype=np.float32)
    out = kp[..., FLIP_PERM, :].copy()
    ok = present(out)
    out[..., 0] = np.where(ok, (width - 1) - out[..., 0], MISSING)
    return out


def _mid(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if a[2] > 0 and b[2] > 0 and a[0] >= 0 and b[0] >= 0:
        return np.array([(a[0] + b[0]) / 2, (a[1] + b[1]) / 2, min(a[2], b[2])], np.float32)
    return np.array([MISSING, MISSING, 0.0], np.float32)


def _gather(src: np.ndarray, index: np.ndarray, neck_from: tuple[int, int] | None) -> np.ndarray:
    src = np.asarray(src, dtype=np.float32)
    out = empty()
    for j, s in enumerate(index):
        if s >= 0:
            out[j] = src[s, :3]
    if neck_from is not None:
        out[J["neck"]] = _mid(src[neck_from[0]], src[neck_from[1]])
    return clean(out)


def from_body25(kp25: np.ndarray) -> np.ndarray:
    """(25, 3) OpenPose BODY_25 -> (18, 3) COCO-18."""
    return _gather(np.asarray(kp25).reshape(25, 3), BODY25_TO_COCO18, None)


def from_coco17(kp17: np.ndarray) -> np.ndarray:
    """(17, 3) MS-COCO keypoints (x, y, score/visibility) -> COCO-18 with neck = mid-shoulders."""
    return _gather(np.asarray(kp17).reshape(17, 3), COCO17_TO_COCO18, COCO17_SHOULDERS)


def from_blazepose(kp33: np.ndarray) -> np.ndarray:
    """(33, 3) BlazePose landmarks in pixels (x, y, score) -> COCO-18, neck = mid-shoulders."""
    return _gather(np.asarray(kp33)[:, :3].reshape(33, 3), BLAZEPOSE_TO_COCO18, BLAZEPOSE_SHOULDERS)


def to_openpose_list(kp: np.ndarray) -> list[float]:
    """COCO-18 -> OpenPose's flat `pose_keypoints_2d` (missing joints are 0, 0, 0)."""
    kp = clean(kp)
    out = kp.copy()
    out[~present(kp)] = 0.0
    return [round(float(v), 3) for v in out.reshape(-1)]


def from_openpose_list(values, offframe: bool = False) -> np.ndarray:
    """OpenPose `pose_keypoints_2d` (COCO-18: 54 values, BODY_25: 75) -> COCO-18 (18, 3);
    score <= 0 is missing. With `offframe`, a detected joint (score > 0) keeps negative
    coordinates, so the filter can judge it by its frame margin; otherwise the canonical
    form (`clean`) is returned."""
    arr = np.asarray(values, dtype=np.float32).reshape(-1)
    if arr.size == 54:
        kp = arr.reshape(18, 3).copy()
    elif arr.size == 75:
        kp = arr.reshape(25, 3)[BODY25_TO_COCO18]  # every COCO-18 joint has a BODY_25 one
    else:
        raise ValueError(f"pose_keypoints_2d has {arr.size} values; expected 54 (COCO-18) or 75 (BODY_25)")
    kp[kp[:, 2] <= 0] = (MISSING, MISSING, 0.0)
    return kp if offframe else clean(kp)


def bbox(kp: np.ndarray) -> tuple[float, float, float, float] | None:
    """(x0, y0, x1, y1) of the present joints, or None if none are present."""
    ok = present(kp)
    if not ok.any():
        return None
    xy = np.asarray(kp)[ok, :2]
    return float(xy[:, 0].min()), float(xy[:, 1].min()), float(xy[:, 0].max()), float(xy[:, 1].max())


# Column names used for keypoints in images.csv and friends.
KP_COLUMNS = [f"{a}{j}" for j in range(N_JOINTS) for a in ("x", "y", "c")]


def to_columns(kp: np.ndarray) -> dict[str, float]:
    kp = clean(kp)
    return {f"{a}{j}": round(float(kp[j, k]), 2) for j in range(N_JOINTS) for k, a in enumerate("xyc")}


def from_columns(row) -> np.ndarray:
    """Keypoints from a mapping or DataFrame row with x0..x17, y0..y17, c0..c17."""
    return clean(np.array([[row[f"x{j}"], row[f"y{j}"], row[f"c{j}"]] for j in range(N_JOINTS)],
                          dtype=np.float32))


def frame_columns(frame) -> np.ndarray:
    """All keypoints of a DataFrame as (N, 18, 3), vectorised."""
    xs = frame[[f"x{j}" for j in range(N_JOINTS)]].to_numpy(np.float32)
    ys = frame[[f"y{j}" for j in range(N_JOINTS)]].to_numpy(np.float32)
    cs = frame[[f"c{j}" for j in range(N_JOINTS)]].to_numpy(np.float32)
    kp = np.stack([xs, ys, cs], axis=-1)
    bad = ~present(kp)
    kp[bad] = (MISSING, MISSING, 0.0)
    return kp
