"""Body geometry: a posed 3-D stick skeleton in COCO-18 order and the view it is seen from.

Body-frame units are the standing height (top of the head y=0, soles y=1). x points to the
person's left (the image's right in a front view), y down, z towards the camera in a front
view. A view turns the body about the vertical axis (yaw: 0 front, +-90 side, 180 back) and
projects orthographically, so left/right, foreshortening and occlusion order follow from the
geometry instead of from per-view rules.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pgprep.skeleton import JOINTS

# Extra body points beyond the 18 COCO joints, used for drawing and framing.
EXTRA = ("head", "r_hand", "l_hand", "r_toe", "l_toe", "mid_hip", "mouth", "head_top")
POINTS = JOINTS + EXTRA
P = {name: i for i, name in enumerate(POINTS)}

# DeepFashion view names -> (image number in the file name, yaw range in degrees).
VIEW_NUMBER = {"front": 1, "side": 2, "back": 3, "full": 4, "additional": 5}


@dataclass(frozen=True)
class Body:
    """Proportions of one person (fixed per item), in units of standing height."""

    female: bool
    shoulder_hw: float   # half-width between the shoulder joints
    chest_hw: float
    waist_hw: float
    hip_hw: float        # outer half-width of the hips
    hip_joint_hw: float
    torso_hd: float      # torso half-depth
    r_upper_arm: float
    r_forearm: float
    r_thigh: float
    r_shin: float
    r_neck: float
    head_rx: float
    head_ry: float
    head_rz: float
    upper_arm: float
    forearm: float
    thigh: float  # the shin reaches from the knee to the ankle at y = 0.955
    neck_y: float = 0.178
    shoulder_y: float = 0.19
    hip_y: float = 0.475


def sample_body(rng: np.random.Generator, female: bool) -> Body:
    u = rng.uniform
    build = u(-1, 1)  # slim .. broad
    if female:
        sh, ch, wa, hi = 0.100 + 0.008 * build, 0.088, 0.074, 0.102 + 0.010 * build
    else:
        sh, ch, wa, hi = 0.118 + 0.010 * build, 0.100, 0.088, 0.094 + 0.006 * build
    thick = 1.0 + 0.12 * build
    return Body(
        female=female, shoulder_hw=sh, chest_hw=ch + 0.008 * build, waist_hw=wa + 0.010 * build,
        hip_hw=hi, hip_joint_hw=hi * 0.62, torso_hd=u(0.055, 0.07),
        r_upper_arm=0.030 * thick, r_forearm=0.024 * thick, r_thigh=0.052 * thick,
        r_shin=0.035 * thick, r_neck=0.026 + 0.004 * (not female),
        head_rx=u(0.049, 0.055), head_ry=u(0.062, 0.067), head_rz=u(0.056, 0.062),
        upper_arm=u(0.165, 0.18), forearm=u(0.14, 0.155), thigh=u(0.235, 0.25),
    )


@dataclass(frozen=True)
class Pose:
    """One image's pose: view yaw, small roll, and per-side limb angles (radians)."""

    yaw: float
    roll: float
    arms: tuple  # ((abduction, flexion, elbow, twist, hand_down) right, (...) left)
    legs: tuple  # ((abduction, flexion, knee) right, (...) left)


def view_yaw(rng: np.random.Generator, view: str) -> float:
    d = rng.uniform
    if view in ("front", "full"):
        deg = d(-14, 14)
    elif view == "side":
        deg = rng.choice([-1, 1]) * d(62, 88)
    elif view == "back":
        deg = 180 + d(-14, 14)
    else:  # additional: three-quarter views, now and then from behind
        deg = rng.choice([-1, 1]) * (d(25, 55) if rng.random() < 0.8 else d(125, 150))
    return float(np.deg2rad(deg))


def sample_pose(rng: np.random.Generator, view: str) -> Pose:
    r = np.deg2rad
    u = rng.uniform
    arms = []
    style = rng.choice(["hang", "hang", "relaxed", "hip", "bent", "wide"])
    for _side in range(2):
        s = style if rng.random() < 0.75 else rng.choice(["hang", "relaxed", "bent"])
        if s == "hang":
            a = (r(u(5, 14)), r(u(-8, 12)), r(u(0, 20)), r(u(0, 30)), 0.0)
        elif s == "relaxed":
            a = (r(u(8, 22)), r(u(-5, 20)), r(u(15, 45)), r(u(0, 40)), 0.0)
        elif s == "hip":
            a = (r(u(38, 50)), r(u(-8, 4)), r(u(72, 85)), r(u(84, 90)), 1.5)
        elif s == "bent":
            a = (r(u(6, 18)), r(u(0, 20)), r(u(45, 85)), r(u(45, 80)), 0.0)
        else:  # wide
            a = (r(u(25, 45)), r(u(-5, 15)), r(u(0, 30)), r(u(0, 40)), 0.0)
        arms.append(a)
    stance = u(0.5, 1.0) if rng.random() < 0.3 else u(0, 0.5)
    legs = []
    lead = rng.integers(2)
    for side in range(2):
        abd = r(1.5 + 9 * stance + u(-1, 1.5))
        flex = r(u(4, 16)) if side == lead and rng.random() < 0.6 else r(u(-6, 4))
        knee = r(u(2, 18)) if side == lead else r(u(0, 5))
        legs.append((abd, flex, knee))
    return Pose(yaw=view_yaw(rng, view), roll=float(r(u(-3, 3))), arms=tuple(arms), legs=tuple(legs))


def _unit(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v)
    return v / n if n > 1e-9 else v


def _limb_dir(sx: float, abduction: float, flexion: float) -> np.ndarray:
    """Direction of a limb hanging down, swung outwards (abduction) and forwards (flexion)."""
    return np.array([sx * np.sin(abduction) * np.cos(flexion), np.cos(abduction) * np.cos(flexion),
                     np.sin(flexion)])


def _bend(u: np.ndarray, toward: np.ndarray, angle: float) -> np.ndarray:
    """Rotate unit vector u by `angle` towards the component of `toward` orthogonal to u."""
    p = _unit(toward - np.dot(toward, u) * u)
    return np.cos(angle) * u + np.sin(angle) * p


def joints3d(body: Body, pose: Pose) -> np.ndarray:
    """(len(POINTS), 3) body-frame positions of the COCO-18 joints and the extra points."""
    b = body
    pts = np.zeros((len(POINTS), 3))
    hy = b.head_ry
    head = np.array([0.0, hy, 0.0])
    pts[P["head"]] = head
    pts[P["head_top"]] = (0.0, 0.0, 0.0)
    pts[P["nose"]] = head + (0.0, 0.16 * hy, b.head_rz * 0.98)
    pts[P["r_eye"]] = head + (-0.38 * b.head_rx, -0.08 * hy, b.head_rz * 0.82)
    pts[P["l_eye"]] = head + (0.38 * b.head_rx, -0.08 * hy, b.head_rz * 0.82)
    pts[P["r_ear"]] = head + (-0.98 * b.head_rx, 0.05 * hy, -0.1 * b.head_rz)
    pts[P["l_ear"]] = head + (0.98 * b.head_rx, 0.05 * hy, -0.1 * b.head_rz)
    pts[P["mouth"]] = head + (0.0, 0.52 * hy, b.head_rz * 0.8)
    pts[P["neck"]] = (0.0, b.neck_y, 0.0)
    fwd = np.array([0.0, 0.0, 1.0])
    for side, sx in ((0, -1.0), (1, 1.0)):
        pre = "r_" if side == 0 else "l_"
        abd, flex, elbow, twist, hand_down = pose.arms[side]
        sho = np.array([sx * b.shoulder_hw, b.shoulder_y, 0.0])
        up = _limb_dir(sx, abd, flex)
        inward = np.array([-sx, 0.0, 0.0])
        bend_to = np.cos(twist) * _unit(fwd - np.dot(fwd, up) * up) + np.sin(twist) * inward
        fore = _bend(up, bend_to, elbow)
        elb = sho + b.upper_arm * up
        wri = elb + b.forearm * fore
        pts[P[pre + "shoulder"]] = sho
        pts[P[pre + "elbow"]] = elb
        pts[P[pre + "wrist"]] = wri
        # hands continue the forearm; on the hips they turn down along the body
        pts[P[pre + "hand"]] = wri + 0.075 * _unit(fore + hand_down * np.array([0.0, 1.0, 0.0]))
        abd, flex, knee = pose.legs[side]
        hip = np.array([sx * b.hip_joint_hw, b.hip_y, 0.0])
        th = _limb_dir(sx, abd, flex)
        sh = _bend(th, -fwd, knee)
        kne = hip + b.thigh * th
        shin_len = (0.955 - b.hip_y - b.thigh)  # ankles at 0.955 when standing straight
        ank = kne + shin_len * sh
        pts[P[pre + "hip"]] = hip
        pts[P[pre + "knee"]] = kne
        pts[P[pre + "ankle"]] = ank
        pts[P[pre + "toe"]] = ank + (sx * 0.012, 0.03, 0.085)
    pts[P["mid_hip"]] = (0.0, b.hip_y, 0.0)
    return pts


@dataclass(frozen=True)
class View:
    """Yaw/roll about the mid-hip, then orthographic projection to image pixels.

    Image x = tx + scale * X', y = ty + scale * Y' (pixel centres at integer coordinates).
    """

    yaw: float
    roll: float
    scale: float = 1.0
    tx: float = 0.0
    ty: float = 0.0
    origin_y: float = 0.475

    @property
    def rotation(self) -> np.ndarray:
        c, s = np.cos(self.yaw), np.sin(self.yaw)
        ry = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
        cr, sr = np.cos(self.roll), np.sin(self.roll)
        rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
        return rz @ ry

    @property
    def facing(self) -> tuple[float, float]:
        """(image-x component of the facing direction, towards-camera component)."""
        return float(np.sin(self.yaw)), float(np.cos(self.yaw))

    def rotate(self, pts: np.ndarray) -> np.ndarray:
        p = np.asarray(pts, float) - (0.0, self.origin_y, 0.0)
        return p @ self.rotation.T + (0.0, self.origin_y, 0.0)

    def project(self, pts: np.ndarray) -> np.ndarray:
        """(..., 3) body frame -> (..., 3) image x, y and depth (larger = nearer the camera)."""
        q = self.rotate(pts)
        return np.stack([self.tx + self.scale * q[..., 0], self.ty + self.scale * q[..., 1],
                         q[..., 2]], axis=-1)

    def placed(self, scale: float, tx: float, ty: float) -> View:
        return View(self.yaw, self.roll, scale, tx, ty, self.origin_y)
