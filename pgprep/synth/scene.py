"""One catalogue photo: framing, the studio backdrop, distractors, and what a detector reports.

`compose` places a posed person in the frame the way DeepFashion In-shop does (standing,
75-90 % of the image height, roughly centred) or, for distractor images, crops it
(`cut_off`: the frame ends between hips and knees; `close_up`: head and shoulders;
`cut_knees`: just above the knees, with the knees an estimator squeezes into the frame) or
adds a second person (`two_people`). `long_gown` (a floor-length skirt hides the legs) and
`knee_dress` (a knee-length dress above visible knees) are whole people, hard cases for the
completeness rule (`pgprep synth --hard-cases`). It returns the image, the silhouette, the true keypoints of
the main person and detector-like keypoints of everybody visible.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from pgprep import skeleton
from pgprep.synth.body import Body, P, View, joints3d, sample_body, sample_pose
from pgprep.synth.clothing import Look, sample_look
from pgprep.synth.render import background, colourise, floor_shadow, person, shading

KINDS = ("person", "two_people", "cut_off", "close_up", "cut_knees", "long_gown", "knee_dress")
# Framed like a standing catalogue person, the whole body in the picture (complete = 1).
WHOLE = ("person", "two_people", "long_gown", "knee_dress")
# BlazePose's knees in a frame cut just above them (issue 20, real shop photos): placed inside
# the frame 25-40 px of 256 above the bottom edge, visibility x presence 0.3-0.5, no ankles.
SQUEEZED_KNEE_ROOM = (0.09, 0.16)   # fraction of the image height above the bottom edge
SQUEEZED_KNEE_SCORE = (0.3, 0.5)
J = skeleton.J
FACE = (J["nose"], J["r_eye"], J["l_eye"])
LIGHT = (0.06, 0.03)  # brightness gradient across the frame (x, y)


@dataclass
class Shot:
    image: np.ndarray          # uint8 (S, S, 3) RGB
    silhouette: np.ndarray     # uint8 (S, S): 255 main person, 128 another person, 0 backdrop
    truth: np.ndarray          # (18, 3) true keypoints of the main person, out of frame = missing
    detections: list           # list of (18, 3): main person first
    persons: int
    complete: int


def supersampling(size: int) -> int:
    """Draw at k x the output size (at least 256 px) and area-average down: anti-aliasing."""
    return max(2, math.ceil(256 / size))


def _extent(body: Body, unit: np.ndarray) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) of a unit-scale projected person, padded by limb thickness."""
    top = unit[P["head"], 1] - body.head_ry * 1.1
    bottom = max(unit[P["r_toe"], 1], unit[P["l_toe"], 1], unit[P["r_ankle"], 1], unit[P["l_ankle"], 1]) + 0.03
    xs = unit[:, 0]
    return float(xs.min() - 0.07), float(top), float(xs.max() + 0.07), float(bottom)


def _place(rng: np.random.Generator, body: Body, unit: np.ndarray, size: int, kind: str,
           frac: tuple[float, float] = (0.76, 0.9)) -> tuple[float, float, float]:
    """(scale, tx, ty) placing a unit-scale projected person in a size x size frame."""
    x0, y0, x1, y1 = _extent(body, unit)
    mid_x = 0.5 * (unit[P["r_hip"], 0] + unit[P["l_hip"], 0])
    S = float(size)
    if kind in WHOLE:
        s = rng.uniform(*frac) * S / (y1 - y0)
        s = min(s, 0.97 * S / (x1 - x0))
        top = (S - s * (y1 - y0)) / 2 + rng.uniform(-0.025, 0.025) * S
        top = float(np.clip(top, 0.005 * S, S - s * (y1 - y0) - 0.005 * S))
        cx = S / 2 + rng.uniform(-0.04, 0.04) * S
        tx = cx - s * mid_x
        tx = float(np.clip(tx, -s * x0 + 0.01 * S, S - s * x1 - 0.01 * S)) if s * (x1 - x0) < 0.98 * S else tx
        return s, tx, top - s * y0
    top = rng.uniform(0.02, 0.08) * S
    if kind == "cut_knees":  # the frame ends just above the higher knee
        knee_y = min(unit[P["r_knee"], 1], unit[P["l_knee"], 1]) - y0
        s = (S - top) / (knee_y - rng.uniform(0.012, 0.035))
    elif kind == "cut_off":  # the frame ends between hips and knees
        s = rng.uniform(1.35, 1.65) * S / (y1 - y0)
        knee_y = min(unit[P["r_knee"], 1], unit[P["l_knee"], 1]) - y0
        s = max(s, (1.04 * S - top) / knee_y)
    else:  # close_up: head and shoulders, hips out of frame
        s = rng.uniform(2.2, 2.8) * S / (y1 - y0)
        hip_y = min(unit[P["r_hip"], 1], unit[P["l_hip"], 1]) - y0
        s = max(s, (1.06 * S - top) / hip_y)
    cx = S / 2 + rng.uniform(-0.03, 0.03) * S
    return s, cx - s * mid_x, top - s * y0


def in_frame(kp: np.ndarray, size: int) -> np.ndarray:
    return (kp[:, 0] >= 0) & (kp[:, 1] >= 0) & (kp[:, 0] <= size - 1) & (kp[:, 1] <= size - 1)


def _truth(projected: np.ndarray, size: int) -> np.ndarray:
    kp = skeleton.empty()
    xy = projected[: skeleton.N_JOINTS, :2]
    ok = in_frame(xy, size)
    kp[ok, :2] = xy[ok]
    kp[ok, 2] = 1.0
    return kp


def detect(rng: np.random.Generator, truth: np.ndarray, depth: np.ndarray, view: View, size: int,
           visible: np.ndarray | None = None) -> np.ndarray:
    """What a bottom-up detector would report: jittered joints, scores 0.3-0.95, misses.

    `depth` holds the joints' depth (larger = nearer). Faces are not found from behind; in
    side views the far eye and ear are hidden and far limbs are sometimes lost; ~3 % of
    joints are missed at random; joints outside the frame (or `visible == False`) are absent.
    """
    kp = truth.copy()
    ok = skeleton.present(truth)
    if visible is not None:
        ok &= visible
    height = max(1.0, view.scale)
    kp[:, :2] += rng.normal(0, rng.uniform(0.007, 0.014) * height, (skeleton.N_JOINTS, 2))
    score = 0.3 + 0.65 * rng.beta(4.0, 1.6, skeleton.N_JOINTS)
    miss = rng.random(skeleton.N_JOINTS) < 0.03
    fx, fc = view.facing
    if fc < -0.45:  # seen from behind: no face
        miss[list(FACE)] = True
        miss[[J["r_ear"], J["l_ear"]]] |= rng.random(2) < 0.4
    far = "r" if depth[J["r_shoulder"]] < depth[J["l_shoulder"]] else "l"
    if abs(fx) > 0.6:
        miss[[J[far + "_eye"], J[far + "_ear"]]] = True
        for name, p in (("elbow", 0.3), ("wrist", 0.3), ("knee", 0.15), ("ankle", 0.15), ("hip", 0.1)):
            miss[J[f"{far}_{name}"]] |= rng.random() < p
            score[J[f"{far}_{name}"]] *= 0.75
    elif abs(fx) > 0.3 and fc > 0:
        miss[J[far + "_ear"]] |= rng.random() < 0.7
    kp[:, 2] = np.clip(score, 0.3, 0.95)
    keep = ok & ~miss & in_frame(kp[:, :2], size)
    kp[~keep] = (-1.0, -1.0, 0.0)
    return kp


def hide_legs(rng: np.random.Generator, det: np.ndarray) -> np.ndarray:
    """A floor-length skirt: the knees are not reported; an ankle only now and then (a shoe
    under the hem), weakly. What BlazePose gives for hidden legs after `pgprep pose` drops
    landmarks with visibility < 0.3 (issue 20: rejected as `incomplete: missing legs`)."""
    det = det.copy()
    for side in ("r", "l"):
        det[J[side + "_knee"]] = (-1.0, -1.0, 0.0)
        a = J[side + "_ankle"]
        if rng.random() < 0.85 or det[a, 2] <= 0:
            det[a] = (-1.0, -1.0, 0.0)
        else:
            det[a, 2] = rng.uniform(0.3, 0.45)
    return det


def squeeze_knees(rng: np.random.Generator, det: np.ndarray, projected: np.ndarray, size: int) -> np.ndarray:
    """A frame cut just above the knees, as BlazePose reports it: both knees (out of frame)
    placed inside it `SQUEEZED_KNEE_ROOM` of the height above the bottom edge, below their
    hips' x, with low scores; no ankles."""
    det = det.copy()
    for side in ("r", "l"):
        k = J[side + "_knee"]
        x = float(np.clip(projected[k, 0] + rng.normal(0, 0.01 * size), 0, size - 1))
        y = size * (1.0 - rng.uniform(*SQUEEZED_KNEE_ROOM))
        det[k] = (x, y, rng.uniform(*SQUEEZED_KNEE_SCORE))
        det[J[side + "_ankle"]] = (-1.0, -1.0, 0.0)
    return det


def _draw(body: Body, look: Look, pose, view: View, size: int, k: int):
    """Render one person at k x and reduce it to output size.

    Returns (box, premultiplied float32 RGB, coverage float32, projected points): the images
    cover only `box` = (r0, r1, c0, c1) of the frame, where the person is.
    """
    inner = view.placed(view.scale * k, view.tx * k + (k - 1) / 2, view.ty * k + (k - 1) / 2)
    cv, _ = person(body, look, pose, inner)
    m = cv.render((size * k, size * k))
    pr = view.project(joints3d(body, pose))
    x, y, w, h = cv2.boundingRect(m)
    if not (w and h):
        return (0, 0, 0, 0), np.zeros((0, 0, 3), np.float32), np.zeros((0, 0), np.float32), pr
    pad = 3
    c0, r0 = max(0, x // k - pad), max(0, y // k - pad)
    c1, r1 = min(size, -(-(x + w) // k) + pad), min(size, -(-(y + h) // k) + pad)
    crop = m[r0 * k:r1 * k, c0 * k:c1 * k]
    rgb, alpha = colourise(crop, look, inner.scale, (c0 * k - inner.tx, r0 * k - inner.ty))
    dsize = (c1 - c0, r1 - r0)
    rgb = cv2.resize(rgb, dsize, interpolation=cv2.INTER_AREA).astype(np.float32)
    alpha = cv2.resize(alpha, dsize, interpolation=cv2.INTER_AREA).astype(np.float32) * np.float32(1 / 255)
    shade = shading(alpha, view.scale, LIGHT, (c0 / size, r0 / size, 1.0 / size))
    rgb *= shade[..., None]
    return (r0, r1, c0, c1), rgb, alpha, pr


def _paint(out: np.ndarray, sil: np.ndarray, drawn, value: int) -> np.ndarray:
    """Compose a drawn person over `out` (in place) and mark it in the silhouette; returns
    the person's coverage over the whole frame."""
    (r0, r1, c0, c1), rgb, alpha, _ = drawn
    win = out[r0:r1, c0:c1]
    win *= (1.0 - alpha)[..., None]
    win += rgb
    full = np.zeros(sil.shape, np.float32)
    full[r0:r1, c0:c1] = alpha
    sil[full > 0.5] = value
    return full


def compose(rng: np.random.Generator, body: Body, look: Look, view_name: str, size: int,
            kind: str = "person", studio: tuple | None = None) -> Shot:
    """Render one image of an item (`studio`: the item's backdrop, see render.sample_studio)."""
    k = supersampling(size)
    pose = sample_pose(rng, view_name)
    v0 = View(pose.yaw, pose.roll, origin_y=body.hip_y)
    unit = v0.project(joints3d(body, pose))
    frac = (0.7, 0.82) if kind == "two_people" else (0.76, 0.9)
    s, tx, ty = _place(rng, body, unit, size, kind, frac)
    view = v0.placed(s, tx, ty)
    out = background(rng, size, studio)
    sil = np.zeros((size, size), np.uint8)
    dets_other = []
    if kind == "two_people":
        look2 = sample_look(rng)
        body2 = sample_body(rng, look2.gender == "WOMEN")
        pose2 = sample_pose(rng, str(rng.choice(["front", "side", "additional", "back"])))
        v2 = View(pose2.yaw, pose2.roll, origin_y=body2.hip_y)
        unit2 = v2.project(joints3d(body2, pose2))
        x0, y0, x1, y1 = _extent(body2, unit2)
        s2 = s * rng.uniform(0.6, 0.85)
        main_mid = tx + s * 0.5 * (unit[P["r_hip"], 0] + unit[P["l_hip"], 0])
        side = 1 if main_mid < size / 2 else -1
        mid2 = main_mid + side * rng.uniform(0.2, 0.38) * size
        tx2 = mid2 - s2 * 0.5 * (unit2[P["r_hip"], 0] + unit2[P["l_hip"], 0])
        tx2 = float(np.clip(tx2, -s2 * x0, size - 1 - s2 * x1))
        feet = ty + s * _extent(body, unit)[3]
        ty2 = feet - rng.uniform(0.02, 0.08) * size - s2 * y1
        view2 = v2.placed(s2, tx2, ty2)
        floor_shadow(out, (tx2 + s2 * 0.5 * (x0 + x1), ty2 + s2 * (y1 - 0.02)), 0.16 * s2, 0.12)
        drawn2 = _draw(body2, look2, pose2, view2, size, k)
        _paint(out, sil, drawn2, 128)
        pr2 = drawn2[3]
        truth2 = _truth(pr2, size)
        other = (truth2, pr2[: skeleton.N_JOINTS, 2], view2)
    if kind in WHOLE:
        feet_x = tx + s * 0.5 * (unit[P["r_toe"], 0] + unit[P["l_toe"], 0])
        feet_y = ty + s * (_extent(body, unit)[3] - 0.02)
        floor_shadow(out, (feet_x, feet_y), 0.16 * s, 0.14)
    drawn = _draw(body, look, pose, view, size, k)
    alpha = _paint(out, sil, drawn, 255)
    pr = drawn[3]
    truth = _truth(pr, size)
    dets = [detect(rng, truth, pr[: skeleton.N_JOINTS, 2], view, size)]
    if kind == "long_gown":
        dets[0] = hide_legs(rng, dets[0])
    elif kind == "cut_knees":
        dets[0] = squeeze_knees(rng, dets[0], pr[: skeleton.N_JOINTS], size)
    if kind == "two_people":
        t2, d2, v2_ = other
        xy = np.clip(np.rint(t2[:, :2]).astype(int), 0, size - 1)
        visible = alpha[xy[:, 1], xy[:, 0]] < 0.5  # joints hidden behind the main person
        dets_other.append(detect(rng, t2, d2, v2_, size, visible))
    image = cv2.convertScaleAbs(out)  # rounds and saturates to uint8
    complete = int(kind in WHOLE)
    return Shot(image, sil, truth, dets + dets_other, 1 + (kind == "two_people"), complete)
