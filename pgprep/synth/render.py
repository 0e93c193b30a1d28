"""Drawing people: body parts as filled polygons and ellipses, painted far-to-near.

A person is drawn at `k` times the output size into a uint8 map whose value is
`part * 16 + material` (material: skin, hair, upper garment, ...); the map is coloured
through a lookup table (the upper garment through its pattern texture), shaded so limbs look
round and part boundaries show, and reduced to the output size with area averaging, which
anti-aliases every edge. The result is premultiplied colour plus coverage, so people and
the studio background compose exactly.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

from pgprep.synth.body import Body, P, Pose, View, joints3d
from pgprep.synth.clothing import Look, texture

SHIFT = 4  # cv2 fixed-point bits: sub-pixel precise shapes
ONE = 1 << SHIFT

# materials (low 4 bits of the map)
SKIN, HAIR, UPPER, LOWER, SHOES, PRINT, EYES, LIPS, COLLAR, BROWS = range(1, 11)
# parts (high 4 bits): boundaries between different parts are darkened
HEAD, NECK, TORSO, PELVIS, R_ARM, L_ARM, R_LEG, L_LEG, HAIRP, R_FOOT, L_FOOT = range(1, 12)

_CIRCLE = np.stack([np.cos(np.linspace(0, 2 * np.pi, 14, endpoint=False)),
                    np.sin(np.linspace(0, 2 * np.pi, 14, endpoint=False))], axis=1)


def _capsule(p0, p1, r0: float, r1: float) -> np.ndarray:
    pts = np.concatenate([p0[None, :2] + r0 * _CIRCLE, p1[None, :2] + r1 * _CIRCLE])
    return cv2.convexHull(pts.astype(np.float32))[:, 0, :]


def _hull(pts2: np.ndarray) -> np.ndarray:
    return cv2.convexHull(np.asarray(pts2, np.float32))[:, 0, :]


def _section(y: float, hw: float, hd: float, cx: float = 0.0, cz: float = 0.0, n: int = 12) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([cx + hw * np.cos(t), np.full(n, y), cz + hd * np.sin(t)], axis=1)


class Canvas:
    """A list of (shape, value) draw calls, executed in order into one uint8 map."""

    def __init__(self):
        self.calls: list[tuple] = []

    def poly(self, pts: np.ndarray, material: int, part: int, convex: bool = True) -> None:
        self.calls.append(("poly" if convex else "fpoly", pts, part * 16 + material))

    def capsule(self, p0, p1, r0, r1, material, part) -> None:
        self.poly(_capsule(p0, p1, r0, r1), material, part)

    def ellipse(self, centre, axes, angle_deg, material, part) -> None:
        self.calls.append(("ellipse", (centre, axes, angle_deg), part * 16 + material))

    def render(self, shape: tuple[int, int]) -> np.ndarray:
        m = np.zeros(shape, np.uint8)
        for kind, geo, value in self.calls:
            if kind == "ellipse":
                (cx, cy), (ax, ay), ang = geo
                if ax < 0.3 or ay < 0.3:
                    continue
                cv2.ellipse(m, (int(round(cx * ONE)), int(round(cy * ONE))),
                            (int(round(ax * ONE)), int(round(ay * ONE))), float(ang), 0, 360,
                            int(value), -1, cv2.LINE_8, SHIFT)
            else:
                pts = np.round(np.asarray(geo, np.float64) * ONE).astype(np.int32)
                if kind == "poly":
                    cv2.fillConvexPoly(m, pts, int(value), cv2.LINE_8, SHIFT)
                else:
                    cv2.fillPoly(m, [pts], int(value), cv2.LINE_8, SHIFT)
        return m


def _arm(cv: Canvas, pr: np.ndarray, b: Body, look: Look, s: float, side: str) -> None:
    pre = side + "_"
    sho, elb, wri, hand = (pr[P[pre + n]] for n in ("shoulder", "elbow", "wrist", "hand"))
    ua = fa = R_ARM if side == "r" else L_ARM
    rua, rfa = b.r_upper_arm * s, b.r_forearm * s
    cv.capsule(wri, hand, 0.8 * rfa, 0.75 * rfa, SKIN, fa)
    if look.sleeves == "long":
        g = 1.18 if not look.jacket else 1.3
        cv.capsule(sho, elb, rua * g, rua * 0.9 * g, UPPER, ua)
        cv.capsule(elb, wri, rfa * g, rfa * 0.85 * g, UPPER, fa)
    else:
        cv.capsule(sho, elb, rua, rua * 0.85, SKIN, ua)
        cv.capsule(elb, wri, rfa, rfa * 0.75, SKIN, fa)
        if look.sleeves == "short":
            end = sho + 0.5 * (elb - sho)
            cv.capsule(sho, end, rua * 1.18, rua * 1.22, UPPER, ua)


def _leg(cv: Canvas, pr: np.ndarray, b: Body, look: Look, s: float, side: str) -> None:
    pre = side + "_"
    hip, kne, ank, toe = (pr[P[pre + n]] for n in ("hip", "knee", "ankle", "toe"))
    th, ft = (R_LEG, R_FOOT) if side == "r" else (L_LEG, L_FOOT)
    sh = th
    rth, rsh = b.r_thigh * s, b.r_shin * s
    shoe = lambda: cv.capsule(ank, toe, 0.75 * rsh, 0.62 * rsh, SHOES, ft)  # noqa: E731
    if toe[2] < ank[2]:
        shoe()
    if look.lower_kind == "trousers":
        g = look.loose
        cv.capsule(hip, kne, rth * g, rth * 0.75 * g, LOWER, th)
        cv.capsule(kne, ank, rsh * 1.05 * g, rsh * 0.8 * g, LOWER, sh)
    else:
        cv.capsule(hip, kne, rth, rth * 0.68, SKIN, th)
        cv.capsule(kne, ank, rsh, rsh * 0.6, SKIN, sh)
        if look.lower_kind == "shorts":
            f = (look.lower_hem - b.hip_y) / b.thigh
            cv.capsule(hip, hip + f * (kne - hip), rth * 1.2, rth * 1.05, LOWER, th)
    if toe[2] >= ank[2]:
        shoe()


def _front_polygon(view: View, pts_local: np.ndarray, z: float) -> np.ndarray:
    p3 = np.concatenate([pts_local, np.full((len(pts_local), 1), z)], axis=1)
    return view.project(p3)[:, :2]


def _print(cv: Canvas, view: View, b: Body, look: Look) -> None:
    """The front print (logo) or a jacket's open front, on the chest; hidden from behind."""
    if view.facing[1] < 0.5 or look.print_shape is None:
        return
    z = b.torso_hd * 1.08
    if look.print_shape == "panel":
        w = 0.032
        quad = np.array([(-w, b.shoulder_y + 0.02), (w, b.shoulder_y + 0.02), (w * 0.8, look.upper_hem),
                         (-w * 0.8, look.upper_hem)])
        cv.poly(_front_polygon(view, quad, z), PRINT, TORSO)
        return
    r, cy = look.print_size, 0.29
    shape = look.print_shape
    t = np.linspace(0, 2 * np.pi, 20, endpoint=False)
    if shape in ("circle", "ring"):
        pts = np.stack([r * np.cos(t), cy + r * np.sin(t)], 1)
    elif shape == "star":
        a = np.linspace(-np.pi / 2, 1.5 * np.pi, 10, endpoint=False)
        rr = np.where(np.arange(10) % 2 == 0, r * 1.2, r * 0.5)
        pts = np.stack([rr * np.cos(a), cy + rr * np.sin(a)], 1)
    elif shape == "triangle":
        pts = np.array([(0, cy - r), (r * 1.05, cy + 0.75 * r), (-r * 1.05, cy + 0.75 * r)])
    elif shape == "diamond":
        pts = np.array([(0, cy - r * 1.2), (r * 0.8, cy), (0, cy + r * 1.2), (-r * 0.8, cy)])
    elif shape == "square":
        pts = np.array([(-r, cy - r), (r, cy - r), (r, cy + r), (-r, cy + r)])
    else:  # bars: a word-like block of three lines
        for k, wk in enumerate((1.4, 1.0, 1.2)):
            y0 = cy - r + k * 0.75 * r
            bar = np.array([(-wk * r, y0), (wk * r, y0), (wk * r, y0 + 0.45 * r), (-wk * r, y0 + 0.45 * r)])
            cv.poly(_front_polygon(view, bar, z), PRINT, TORSO, convex=False)
        return
    cv.poly(_front_polygon(view, pts, z), PRINT, TORSO, convex=shape != "star")
    if shape == "ring":
        inner = np.stack([0.55 * r * np.cos(t), cy + 0.55 * r * np.sin(t)], 1)
        cv.poly(_front_polygon(view, inner, z), UPPER, TORSO)


def _head_point(b: Body, off) -> np.ndarray:
    """A body-frame point at offset `off` from the centre of the head."""
    return np.array([off[0], b.head_ry + off[1], off[2]])


def _head(cv: Canvas, view: View, pr: np.ndarray, b: Body, look: Look, s: float, hair_back_later: bool) -> None:
    fx, fc = view.facing
    hc = pr[P["head"]]
    ax = s * np.hypot(b.head_rx * fc, b.head_rz * fx)
    ay = s * b.head_ry
    ang = np.rad2deg(view.roll)
    back = fc < -0.3
    if fc > -0.2 and abs(fx) < 0.75:  # ears stick out at the sides
        for e in ("r_ear", "l_ear"):
            cv.ellipse(pr[P[e]][:2], (0.012 * s, 0.019 * s), ang, SKIN, HEAD)
    if look.hair_style == "bun":
        bun3 = _head_point(b, (0.0, -0.85 * b.head_ry, -0.55 * b.head_rz))
        bun = view.project(bun3[None])[0]
        if bun[2] < hc[2]:
            cv.ellipse(bun[:2], (0.032 * s, 0.028 * s), ang, HAIR, HAIRP)
    cv.ellipse(hc[:2], (ax, ay), ang, SKIN, HEAD)
    if not back:
        nose = pr[P["nose"]]
        if abs(fx) > 0.5:
            cv.ellipse(nose[:2], (0.011 * s, 0.012 * s), ang, SKIN, HEAD)
        for e in ("r_eye", "l_eye"):
            p = pr[P[e]]
            vis = p[2] - hc[2]
            if vis > 0.25 * b.head_rz:
                wx = 0.0075 * s * min(1.0, 0.35 + vis / b.head_rz)
                cv.ellipse(p[:2], (wx, 0.0055 * s), ang, EYES, HEAD)
                brow = np.array([p[0] - 1.4 * wx, p[1] - 0.014 * s]), np.array([p[0] + 1.4 * wx, p[1] - 0.016 * s])
                cv.capsule(brow[0], brow[1], 0.0022 * s, 0.0022 * s, BROWS, HEAD)
        m = pr[P["mouth"]]
        if m[2] - hc[2] > 0.2 * b.head_rz:
            cv.ellipse(m[:2], (0.013 * s * max(0.4, fc), 0.0045 * s), ang, LIPS, HEAD)
    # hair cap: the top of the head and, towards the back of the head, down to the nape
    a2, b2 = ax * 1.08, ay * 1.1
    hc = hc + (0.0, -0.05 * ay, 0.0)
    if back:
        cv.ellipse(hc[:2], (a2, b2), ang, HAIR, HAIRP)
    else:
        down_back = 12 + 70 * abs(fx)
        down_front = 12 - 45 * abs(fx)
        left, right = (down_back, down_front) if fx > 0 else (down_front, down_back)
        t = np.deg2rad(np.linspace(180 - left, 360 + right, 24))
        outer = np.stack([hc[0] + a2 * np.cos(t), hc[1] + b2 * np.sin(t)], 1)
        tin = t[::-1]
        shift_x = 0.25 * ax * fx
        inner = np.stack([hc[0] + shift_x + 0.9 * ax * np.cos(tin),
                          hc[1] - 0.38 * ay + 0.55 * ay * np.sin(tin)], 1)
        inner[:, 1] = np.minimum(inner[:, 1], hc[1] - 0.3 * ay)
        cv.poly(np.concatenate([outer, inner]), HAIR, HAIRP, convex=False)
    if look.hair_style == "bun":
        bun3 = _head_point(b, (0.0, -0.85 * b.head_ry, -0.55 * b.head_rz))
        bun = view.project(bun3[None])[0]
        if bun[2] >= hc[2]:
            cv.ellipse(bun[:2], (0.032 * s, 0.028 * s), ang, HAIR, HAIRP)
    if hair_back_later:
        _long_hair(cv, view, pr, b, look, s)


def _long_hair(cv: Canvas, view: View, pr: np.ndarray, b: Body, look: Look, s: float) -> None:
    if look.hair_style != "long":
        return
    fx, fc = view.facing
    hc = pr[P["head"]]
    w = s * (b.head_rx * 1.15) * (0.55 + 0.45 * abs(fc))
    cx = hc[0] - 0.45 * s * b.head_rz * fx
    top, bot = hc[1] - 0.2 * s * b.head_ry, hc[1] + s * look.hair_len
    pts = np.array([(cx - w, top), (cx + w, top), (cx + 1.1 * w, bot), (cx - 1.1 * w, bot)])
    cv.poly(pts, HAIR, HAIRP)
    cv.ellipse((cx, bot), (1.1 * w, 0.02 * s), 0.0, HAIR, HAIRP)


def person(body: Body, look: Look, pose: Pose, view: View) -> tuple[Canvas, np.ndarray]:
    """Draw calls for one person, far to near, and the projected points (internal pixels)."""
    b, s = body, view.scale
    pts3 = joints3d(b, pose)
    pr = view.project(pts3)
    fx, fc = view.facing
    cv = Canvas()
    torso_z = 0.0

    def arm_depth(side):
        return 0.5 * (pr[P[side + "_elbow"], 2] + pr[P[side + "_wrist"], 2])

    arms = sorted(("r", "l"), key=arm_depth)
    behind = [a for a in arms if arm_depth(a) < torso_z - 0.035]
    front = [a for a in arms if a not in behind]
    for a in behind:
        _arm(cv, pr, b, look, s, a)
    hair_back_later = fc < -0.3
    if not hair_back_later:
        _long_hair(cv, view, pr, b, look, s)
    for side in sorted(("r", "l"), key=lambda sd: pr[P[sd + "_knee"], 2]):
        _leg(cv, pr, b, look, s, side)
    # pelvis / skirt / dress / floor-length gown (lower garment)
    if look.lower_kind == "gown":  # hides both legs down to the hem: hull of rings along each leg
        top = _section(0.40, b.waist_hw + 0.008, b.torso_hd * 0.95)
        hip_s = _section(b.hip_y, b.hip_hw + 0.012, b.torso_hd * 1.1)
        rings = []
        for side in ("r", "l"):
            hip, kne, ank = (pts3[P[side + n]] for n in ("_hip", "_knee", "_ankle"))
            rings.append(_section(kne[1], b.r_thigh * 1.5 + 0.03, b.r_thigh * 1.5 + 0.03, kne[0], kne[2]))
            t = (look.lower_hem - hip[1]) / max(ank[1] - hip[1], 1e-6)
            c = hip + t * (ank - hip)
            flare = b.r_thigh * 1.5 + 0.05
            rings.append(_section(look.lower_hem, flare, flare, c[0] + (0.02 if side == "l" else -0.02), c[2]))
        cv.poly(_hull(view.project(np.concatenate([top, hip_s] + rings))[:, :2]), LOWER, PELVIS)
    elif look.lower_kind in ("skirt", "dress"):
        ring = []
        for side in ("r", "l"):
            hip, kne = pts3[P[side + "_hip"]], pts3[P[side + "_knee"]]
            f = (look.lower_hem - b.hip_y) / b.thigh
            c = hip + f * (kne - hip)
            flare = b.r_thigh * 1.35 + 0.02 + 0.04 * (look.lower_hem - 0.66)
            ring.append(_section(c[1], flare, flare, c[0] + (0.01 if side == "l" else -0.01), c[2]))
        top = _section(0.40, b.waist_hw + 0.008, b.torso_hd * 0.95)
        hip_s = _section(b.hip_y, b.hip_hw + 0.012, b.torso_hd * 1.1)
        cv.poly(_hull(view.project(np.concatenate([top, hip_s] + ring))[:, :2]), LOWER, PELVIS)
    else:
        secs = [_section(0.40, b.waist_hw + 0.008, b.torso_hd * 0.95),
                _section(b.hip_y, b.hip_hw + 0.006, b.torso_hd * 1.02),
                _section(b.hip_y + 0.055, b.hip_hw * 0.9, b.torso_hd * 0.9)]
        for s0, s1 in zip(secs, secs[1:], strict=False):
            cv.poly(_hull(view.project(np.concatenate([s0, s1]))[:, :2]), LOWER, PELVIS)
    # neck, then the upper garment over its base
    cv.capsule(pr[P["neck"]], pr[P["head"]] + (pr[P["mouth"]] - pr[P["head"]]) * 0.6,
               b.r_neck * s, b.r_neck * s * 0.95, SKIN, NECK)
    loose = 0.012 if look.jacket else 0.006
    hem = look.upper_hem
    secs = [
        _section(b.neck_y - 0.022, b.r_neck * 1.7, 0.03),
        _section(b.shoulder_y - 0.012, b.shoulder_hw * 0.9, 0.04),
        _section(b.shoulder_y + 0.025, b.shoulder_hw + b.r_upper_arm * 0.5 + loose, b.torso_hd * 0.9),
        _section(0.30, b.chest_hw + loose + 0.006, b.torso_hd * (1.1 if b.female else 1.0)),
        _section(0.39, b.waist_hw + loose + 0.004, b.torso_hd * 0.95),
        _section(hem, b.hip_hw + loose + 0.004 + 0.1 * max(0.0, hem - b.hip_y), b.torso_hd * 1.05),
    ]
    for s0, s1 in zip(secs, secs[1:], strict=False):
        cv.poly(_hull(view.project(np.concatenate([s0, s1]))[:, :2]), UPPER, TORSO)
    if fc > 0.2:  # neckline
        neck = pr[P["neck"]]
        cv.ellipse(neck[:2] + (0, -0.004 * s), (b.r_neck * s * 1.05 * max(0.3, fc), 0.018 * s), 0.0,
                   SKIN, NECK)
        if look.collar:
            for sx in (-1, 1):
                tri = np.array([(0.0, b.neck_y + 0.022), (sx * 0.034, b.neck_y - 0.004),
                                (sx * 0.03, b.neck_y + 0.03)])
                cv.poly(_front_polygon(view, tri, b.torso_hd * 0.6), COLLAR, TORSO)
    _print(cv, view, b, look)
    _head(cv, view, pr, b, look, s, hair_back_later)
    for a in front:
        _arm(cv, pr, b, look, s, a)
    return cv, pr


SEAM_DARK = 0.72  # brightness where one body part overlaps another


def palette(look: Look) -> np.ndarray:
    """(256, 1, 3) uint8 lookup table: material -> RGB; material + 16 -> its seam colour."""
    lut = np.zeros((32, 3), np.float32)
    lut[SKIN], lut[HAIR], lut[UPPER] = look.skin, look.hair, look.upper
    lut[LOWER], lut[SHOES], lut[PRINT] = look.lower, look.shoes, look.print_colour
    lut[EYES] = (40, 30, 30)
    lut[LIPS] = np.asarray(look.skin) * (0.72, 0.5, 0.5)
    lut[COLLAR] = np.asarray(look.upper2 if look.pattern == "solid" else look.upper) * 0.92
    lut[BROWS] = np.asarray(look.hair) * 0.55 + 20
    lut[16:] = lut[:16] * SEAM_DARK
    out = np.zeros((256, 1, 3), np.uint8)
    out[:32, 0] = np.clip(np.rint(lut), 0, 255)
    return out


def colourise(m: np.ndarray, look: Look, px_per_unit: float, phase: tuple[float, float]
              ) -> tuple[np.ndarray, np.ndarray]:
    """Label map -> (premultiplied uint8 RGB, coverage uint8 0/255), both at the map's size.

    Part boundaries (seams) are darkened; `phase` anchors the garment pattern to the body.
    """
    part = m >> 4
    seam = np.zeros(m.shape, np.uint8)
    inside = part > 0
    seam[1:] |= (part[1:] != part[:-1]) & inside[1:] & inside[:-1]
    seam[:, 1:] |= (part[:, 1:] != part[:, :-1]) & inside[:, 1:] & inside[:, :-1]
    mat = (m & 15) | (seam << 4)
    rgb = cv2.LUT(cv2.merge([mat, mat, mat]), palette(look))
    if look.pattern != "solid":
        upper = (mat & 15) == UPPER
        x, y, w, h = cv2.boundingRect(upper.view(np.uint8))
        if w and h:
            tex = texture(look, (h, w), px_per_unit, (phase[0] + x, phase[1] + y))
            tex = tex * np.where(seam[y:y + h, x:x + w], SEAM_DARK, 1.0).astype(np.float32)[..., None]
            np.copyto(rgb[y:y + h, x:x + w], tex.astype(np.uint8), where=upper[y:y + h, x:x + w, None])
    return rgb, (m > 0).view(np.uint8) * np.uint8(255)


def shading(alpha: np.ndarray, px_per_unit: float, light: tuple[float, float],
            frame: tuple[float, float, float]) -> np.ndarray:
    """Brightness factor per pixel: darker towards a body's outline (limbs look round) and a
    gentle left-right / top-bottom light gradient. `frame` = (x0, y0, step) places the crop in
    the whole image (fractions of its side)."""
    sigma = max(0.7, 0.02 * px_per_unit)
    blur = cv2.GaussianBlur(alpha, (0, 0), sigma)
    shade = 0.62 + 0.38 * np.minimum(1.0, blur * 1.25)
    h, w = alpha.shape
    x0, y0, step = frame
    gx = light[0] * (1 - 2 * (x0 + step * np.arange(w, dtype=np.float32)))[None, :]
    gy = light[1] * (1 - 2 * (y0 + step * np.arange(h, dtype=np.float32)))[:, None]
    return shade * (1.0 + gx + gy)


@functools.lru_cache(maxsize=4)
def _noise_tile(size: int) -> np.ndarray:
    """A fixed field of unit Gaussian colour noise; images take random windows of it (cheap)."""
    rng = np.random.default_rng(20180101 + size)
    return rng.standard_normal((size + 64, size + 64, 3), dtype=np.float32)


@functools.lru_cache(maxsize=4)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    yy = np.linspace(-1, 1, size, dtype=np.float32)[:, None]
    xx = np.linspace(-1, 1, size, dtype=np.float32)[None, :]
    return xx, yy, (xx * xx + yy * yy) / 2


def sample_studio(rng: np.random.Generator) -> tuple:
    """One photo shoot's backdrop (per item): base colour, light gradient x/y, vignette."""
    base = rng.uniform(220, 246) + rng.normal(0, 3, 3)
    return (tuple(float(v) for v in base), float(rng.uniform(-8, 8)), float(rng.uniform(-4, 10)),
            float(rng.uniform(0, 10)))


def background(rng: np.random.Generator, size: int, studio: tuple | None = None) -> np.ndarray:
    """A light studio backdrop: off-white/grey, a gentle lighting gradient, mild colour noise.

    `studio` (from sample_studio) is the item's shoot; each image varies it slightly.
    """
    base, gx, gy, vig = studio if studio is not None else sample_studio(rng)
    base = (np.asarray(base) + rng.normal(0, 1.5)).astype(np.float32)
    xx, yy, r2 = _grid(size)
    g = np.float32(gx + rng.uniform(-1.5, 1.5)) * xx - np.float32(gy + rng.uniform(-1.5, 1.5)) * yy
    g -= np.float32(vig) * r2
    dy, dx = rng.integers(0, 64, 2)
    out = _noise_tile(size)[dy:dy + size, dx:dx + size] * np.float32(rng.uniform(0.8, 1.6))
    out += g[..., None]
    out += base
    return out


def floor_shadow(bg: np.ndarray, centre: tuple[float, float], width: float, strength: float) -> None:
    """Darken a soft ellipse of the backdrop where the feet stand (in place)."""
    h, w = bg.shape[:2]
    sigma = max(1.0, 0.15 * width)
    pad = width + 3 * sigma
    x0, x1 = max(0, int(centre[0] - pad)), min(w, int(centre[0] + pad) + 1)
    y0, y1 = max(0, int(centre[1] - 0.12 * width - 3 * sigma)), min(h, int(centre[1] + 0.12 * width + 3 * sigma) + 1)
    if x1 <= x0 or y1 <= y0:
        return
    m = np.zeros((y1 - y0, x1 - x0), np.float32)
    cv2.ellipse(m, (int(round((centre[0] - x0) * ONE)), int(round((centre[1] - y0) * ONE))),
                (int(round(width * ONE)), int(round(0.12 * width * ONE))), 0, 0, 360, 1.0, -1,
                cv2.LINE_AA, SHIFT)
    m = cv2.GaussianBlur(m, (0, 0), sigma)
    bg[y0:y1, x0:x1] *= (1.0 - strength * m)[..., None]
