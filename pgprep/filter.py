"""`pgprep filter`: ingest keypoints from any source; keep single, complete persons.

The seed report trains on DeepFashion images of "single and complete" persons without saying
how they were chosen. This stage makes the choice explicit: every image of the partition
file ends up either in `WORK/images.csv` (kept, with its COCO-18 keypoints) or in
`WORK/rejects.csv` with exactly one reason, `<code>: <detail>`.

Pose sources (detected from SRC):
  - a directory of OpenPose JSON, COCO-18 or BODY_25 (detected per file), mirroring the tree
    below `img/` or including the leading `img/`;
  - a PATN annotation CSV, names raw (`img/...jpg`) or flattened
    (`fashionWOMENTees_Tanksid0000783805_7additional.jpg`); `crop176` for 256x176 crops;
  - a PG²-style pose pickle, read with a restricted unpickler that never runs code.

Rules, in the order applied (all thresholds are options of `run_filter` and the command):
  1. the partition row is well formed, the name relative without `..`, listed once;
  2. the image exists and is a readable image (header + end marker; `check="decode"` decodes);
  3. the image has keypoints in SRC, finite, inside the frame (`frame_margin` pixels slack);
  4. exactly one person: people with at least `person_min_joints` joints scoring at least
     `min_score` are counted, smaller detections are noise;
  5. complete: the required body parts are present (`require`, default `torso,legs`: two of
     the shoulders and hips, and a knee or an ankle) and at least `min_joints` of the 18; a
     joint within `border_frac` of the image's side from its border counts only when it
     scores at least `border_min_score` (estimators park unseen joints on the border), as
     does a knee with no ankle and less than `knee_room` thighs of photo below it; legs no
     joint shows count as hidden (a gown) when the photo reaches `leg_room` torso lengths
     below the hips (`hidden_legs`);
  6. not a close-up: shoulder width at most `max_shoulder_frac` of the image width;
  7. not a small skeleton: head to lowest joint at least `min_height_frac` of the image height.
"""

from __future__ import annotations

import collections
import functools
import json
import os
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path, PurePosixPath

import click
import numpy as np
import pandas as pd

from pgprep import atomic, deepfashion, formats, geometry, imageio, market, skeleton
from pgprep.errors import PgkitError
from pgprep.parallel import default_jobs, run_jobs

STAGE = "filter"
UNMAPPED_LIST_NAMES = "unmapped-list-names.csv"  # --split-lists names that map to no image
INGEST_RECORDS = "ingest.csv"  # pgprep ingest's per-image transform: where the photo lies in its padding
PARALLEL_FROM = 5000  # images; fewer are judged in-process unless --jobs is given

# Body parts `require` can name: (joints, how many of them must be present). The defaults ask
# for 2 of the 4 torso joints and 1 of the 4 leg joints, not for every one: detectors miss
# single joints (a far hip in a side view, a shoulder under hair), while a frame that really
# ends above the knees (cut off) or at the chest (close-up) loses all four leg joints.
PARTS = {
    "head": (("nose", "r_eye", "l_eye", "r_ear", "l_ear"), 1),
    "neck": (("neck",), 1),
    "shoulders": (("r_shoulder", "l_shoulder"), 1),
    "both-shoulders": (("r_shoulder", "l_shoulder"), 2),
    "torso": (("r_shoulder", "l_shoulder", "r_hip", "l_hip"), 2),
    "hips": (("r_hip", "l_hip"), 1),
    "both-hips": (("r_hip", "l_hip"), 2),
    "legs": (("r_knee", "l_knee", "r_ankle", "l_ankle"), 1),
    "knees": (("r_knee", "l_knee"), 1),
    "both-knees": (("r_knee", "l_knee"), 2),
    "ankles": (("r_ankle", "l_ankle"), 1),
    "both-ankles": (("r_ankle", "l_ankle"), 2),
}


@dataclass(frozen=True)
class Thresholds:
    """What "single and complete" means; every field is a `run_filter` keyword and a CLI option."""

    min_score: float = 0.1          # a joint counts as present at this score or above
    person_min_joints: int = 4      # a detection with fewer confident joints is noise, not a person
    min_joints: int = 8             # confident joints the kept person must have (of 18)
    require: tuple[str, ...] = ("torso", "legs")
    max_shoulder_frac: float = 0.35  # shoulder width / image width above this = close-up
    min_height_frac: float = 0.4    # skeleton height / image height below this = small-skeleton
    border_frac: float = 0.02       # a joint this close to the border (fraction of the side) ...
    border_min_score: float = 0.8   # ... counts towards completeness only at this score or above
    frame_margin: float = 2.0       # keypoints this far outside the image are tolerated
    knee_room: float = 1.5          # a knee without an ankle needs this many thighs of photo below it,
                                    # else a score >= border_min_score (frames cut just above the knees)
    hidden_legs: str = "room"       # legs missing but hidden, not cut: "no" | "room" | "hem" (HIDDEN_LEGS)
    leg_room: float = 1.6           # ... the photo (room) and the figure (hem) reach this many torso
                                    # lengths below the hips (a standing person's ankles: ~1.7)


# How legs that no joint shows may still count (a floor-length gown hides them; a frame cut at
# the thigh does not show them): "no" never; "room": the photo reaches `leg_room` torso lengths
# below the hips (keypoints only); "hem": that, and the figure below the hips (the skirt's hem,
# the shoes) ends inside the photo at least `leg_room` torso lengths below the hips (decodes the
# few images concerned; a backdrop unlike the clothes is needed, else the legs stay missing).
HIDDEN_LEGS = ("no", "room", "hem")
LEG_PARTS = ("legs", "knees", "both-knees", "ankles", "both-ankles")
FIGURE_CONTRAST = 28  # a pixel is the figure when a channel differs this much from the backdrop


# ---------------------------------------------------------------- cheap image checks

def image_header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height), upright, from the header without decoding; None if not a usable image."""
    try:
        return imageio.probe(data).size
    except PgkitError:
        return None


def check_image(path: str | os.PathLike, decode: bool = False) -> tuple[int, int]:
    """(width, height) of a usable image, upright (EXIF orientation applied); PgkitError if
    empty, truncated, too large, or not a JPEG/PNG/WebP (the policy of `pgprep.imageio`);
    also, before anything is read, a device, FIFO or folder, or a file over the byte limit.

    Without `decode`, reads the header and checks that the image data ends (end-of-image
    marker, IEND, RIFF size), which catches empty, truncated and non-image files at a
    fraction of a decode; bytes after the end marker are tolerated.
    """
    data = imageio.read_bytes(path)
    info = imageio.probe(data, path)
    if decode:
        imageio.decode(data, path, info=info)
    return info.size


# ---------------------------------------------------------------- judging one image

def count_persons(people: list[np.ndarray], th: Thresholds) -> int:
    return sum(int((p[:, 2] >= th.min_score).sum() >= th.person_min_joints) for p in people)


def judge(people: list[np.ndarray], width: int, height: int, th: Thresholds,
          persons: int | None = None, content: tuple[float, float, float, float] | None = None,
          pixels=None) -> tuple[np.ndarray, int, str | None]:
    """(main skeleton, persons, reject reason or None) for one image's detections.

    `pixels`: a callable returning the image (uint8 RGB, in the keypoints' frame), called only
    when `hidden_legs="hem"` needs it (`hidden_legs_end`); None: legs are never taken as hidden
    by their hem.

    `content`: (x0, y0, x1, y1) of the photo inside a padded image (`pgprep ingest` records
    it); the completeness border rule applies to its edges, and joints in the padding never
    count. None: the whole image.

    `persons` overrides the count (pickles of PG²'s peaks know it, a CSV row is one person).
    A detected joint (score > 0) more than `frame_margin` px outside the image on any side,
    negative coordinates included, rejects the image; one within the margin left of / above
    the frame is moved onto its edge (0), since a negative coordinate means "missing".
    """
    inside = []
    for p in people:
        ok = (p[:, 2] > 0) & np.isfinite(p[:, :2]).all(axis=1)
        xy = p[ok, :2]
        m = th.frame_margin
        out = (xy[:, 0] > width - 1 + m) | (xy[:, 1] > height - 1 + m) | (xy[:, 0] < -m) | (xy[:, 1] < -m)
        if out.any():
            j = int(np.flatnonzero(ok)[np.flatnonzero(out)[0]])
            return p, len(people), (f"out-of-frame: {skeleton.JOINTS[j]} at ({xy[out][0, 0]:.1f}, "
                                    f"{xy[out][0, 1]:.1f}) outside the {height}x{width} (HxW) image")
        p = p.copy()
        p[ok, :2] = np.maximum(p[ok, :2], 0.0)
        inside.append(skeleton.clean(p))
    people = inside
    n = count_persons(people, th) if persons is None else persons
    if not people or n == 0:
        return skeleton.empty(), 0, (f"no-person: no detection with {th.person_min_joints}+ joints "
                                     f"scoring >= {th.min_score}")
    if n > 1:
        return people[0], n, f"multi-person: {n} persons"
    main = max(people, key=lambda p: float(p[:, 2][p[:, 2] >= th.min_score].sum()))
    conf = (main[:, 2] >= th.min_score) & skeleton.present(main)
    border = on_border(main, width, height, th, content) & conf
    counted = conf & ~border
    cut = cut_knees(main, counted, height, th, content)
    counted &= ~cut
    missing = [part for part in th.require
               if sum(counted[skeleton.J[j]] for j in PARTS[part][0]) < PARTS[part][1]]
    legs_end = None
    if missing and all(p in LEG_PARTS for p in missing):
        legs_end = hidden_legs_end(main, counted, width, height, th, content, pixels)
        if legs_end is not None:
            missing = []
    if missing:
        return main, n, ("incomplete: missing " + ", ".join(missing)
                         + _why_missing(main, conf, border, missing, th, cut))
    if counted.sum() < th.min_joints:
        return main, n, (f"incomplete: {int(counted.sum())} confident joints < {th.min_joints}"
                         + (f" ({int(border.sum())} more on the image border below score "
                            f"{th.border_min_score})" if border.any() else ""))
    rs, ls = main[skeleton.J["r_shoulder"]], main[skeleton.J["l_shoulder"]]
    if conf[skeleton.J["r_shoulder"]] and conf[skeleton.J["l_shoulder"]]:
        frac = float(np.hypot(*(rs[:2] - ls[:2]))) / width
        if frac > th.max_shoulder_frac:
            return main, n, (f"close-up: shoulder width {_distinct(frac, th.max_shoulder_frac)} of the image "
                             f"width > {th.max_shoulder_frac} (--max-shoulder-frac)")
    ys = main[conf, 1]
    frac = float(max(ys.max(), legs_end if legs_end is not None else -np.inf) - ys.min()) / height
    if frac < th.min_height_frac:
        return main, n, (f"small-skeleton: skeleton height (head to lowest joint) "
                         f"{_distinct(frac, th.min_height_frac)} of the image height < {th.min_height_frac} "
                         f"(--min-skeleton-height)")
    return main, n, None


def on_border(kp: np.ndarray, width: int, height: int, th: Thresholds,
              content: tuple[float, float, float, float] | None = None) -> np.ndarray:
    """(18,) bool: joints that do not count towards completeness because of where they are:
    within `border_frac` of the photo's side from its edge and scoring below `border_min_score`,
    or outside the photo (in the padding of an ingested image) at any score. Pose estimators
    put joints they cannot see but extrapolate (the knees of a frame cut at the thigh) on the
    frame's edge or beyond it: such a joint does not make a person complete."""
    x0, y0, x1, y1 = content if content is not None else (0.0, 0.0, float(width), float(height))
    mx, my = th.border_frac * (x1 - x0), th.border_frac * (y1 - y0)
    x, y = kp[:, 0], kp[:, 1]
    near = (x < x0 + mx) | (x > x1 - 1 - mx) | (y < y0 + my) | (y > y1 - 1 - my)
    # joints off the image are judged by `frame_margin` (out-of-frame); the padding of an ingested
    # image is no photo at all, so nothing found there counts
    outside = ((x < x0 - 1) | (x > x1) | (y < y0 - 1) | (y > y1)) if content is not None else False
    return ((near & (kp[:, 2] < th.border_min_score)) | outside) & skeleton.present(kp)


def _box(width: int, height: int, content) -> tuple[float, float, float, float]:
    return content if content is not None else (0.0, 0.0, float(width), float(height))


def _mid(kp: np.ndarray, ok: np.ndarray, names: tuple[str, str]) -> np.ndarray | None:
    idx = [skeleton.J[n] for n in names if ok[skeleton.J[n]]]
    return kp[idx, :2].mean(axis=0) if idx else None


def cut_knees(kp: np.ndarray, counted: np.ndarray, height: int, th: Thresholds,
              content: tuple[float, float, float, float] | None = None) -> np.ndarray:
    """(18,) bool: knees that do not count because the frame is probably cut just above them.

    With no ankle counted, a knee needs `knee_room` thigh lengths (its hip to it) of photo
    below it, room for a shin, or a score of at least `border_min_score`. BlazePose puts the
    knees of a frame cut just above them inside it, ~30 px of 256 above the bottom edge, with
    visibility 0.35-0.45 (issue 20); a knee it sees scores higher, and a standing person's
    knee has a shin's length of picture below it.
    """
    out = np.zeros(skeleton.N_JOINTS, bool)
    if th.knee_room <= 0 or counted[[skeleton.J["r_ankle"], skeleton.J["l_ankle"]]].any():
        return out
    bottom = _box(0, height, content)[3] - 1
    for side in ("r", "l"):
        k = skeleton.J[side + "_knee"]
        if not counted[k] or kp[k, 2] >= th.border_min_score:
            continue
        hips = [skeleton.J[f"{s}_hip"] for s in (side, "l" if side == "r" else "r") if counted[skeleton.J[f"{s}_hip"]]]
        thigh = float(kp[k, 1] - kp[hips[0], 1]) if hips else 0.0
        out[k] = thigh <= 0 or (bottom - kp[k, 1]) < th.knee_room * thigh
    return out


def hidden_legs_end(kp: np.ndarray, counted: np.ndarray, width: int, height: int, th: Thresholds,
                    content: tuple[float, float, float, float] | None = None, pixels=None) -> float | None:
    """y where hidden legs end (the hem or the feet) when no joint shows them but they are in
    the photo (`hidden_legs`, HIDDEN_LEGS); None when they may be cut off.

    The torso length L is mid-shoulders to mid-hips. "room": the photo reaches `leg_room` x L
    below the hips (a frame cut at the thigh or just above the knees reaches ~0.8 L; a standing
    person's ankles are ~1.7 L below the hips). "hem": also the figure below the hips, pixels
    unlike the backdrop in a band as wide as the torso is long, continues down at least
    `leg_room` x L and ends inside the photo: a gown's hem and the shoes above the floor.
    """
    if th.hidden_legs == "no" or (th.hidden_legs == "hem" and pixels is None):
        return None
    hip = _mid(kp, counted, ("r_hip", "l_hip"))
    sho = _mid(kp, counted, ("r_shoulder", "l_shoulder"))
    if hip is None or sho is None or hip[1] - sho[1] <= 0:
        return None
    torso = float(hip[1] - sho[1])
    x0, y0, x1, y1 = _box(width, height, content)
    need = hip[1] + th.leg_room * torso
    if need > y1 - 1:
        return None
    if th.hidden_legs == "room":
        return float(need)
    end = figure_end(pixels(), hip, torso, (x0, y0, x1, y1))
    return end if end is not None and end >= need and end < y1 - 1 - max(2.0, th.border_frac * (y1 - y0)) else None


def figure_end(rgb: np.ndarray, hip: np.ndarray, torso: float, box: tuple[float, float, float, float]) -> float | None:
    """The last row of the figure below the hips: rows of a band 1.4 torso lengths wide around
    the hips where at least 1/8 of the pixels differ from the backdrop (the median colour of the
    photo's top rows and side columns) by `FIGURE_CONTRAST`, followed down from the hips with
    gaps of at most 2 % of the height; None when the image gives no usable backdrop."""
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    photo = np.asarray(rgb)[y0:y1, x0:x1]
    if photo.ndim != 3 or min(photo.shape[:2]) < 8:
        return None
    h, w = photo.shape[:2]
    edge = max(1, h // 64)
    ring = np.concatenate([photo[:edge].reshape(-1, 3), photo[: h // 2, :edge].reshape(-1, 3),
                           photo[: h // 2, w - edge:].reshape(-1, 3)])
    backdrop = np.median(ring, axis=0)
    if (np.abs(ring.astype(np.int16) - backdrop).max(axis=1) > FIGURE_CONTRAST).mean() > 0.2:
        return None  # no plain backdrop: no evidence either way
    cx = float(hip[0]) - x0
    c0, c1 = max(0, int(cx - 0.7 * torso)), min(w, int(np.ceil(cx + 0.7 * torso)) + 1)
    r0 = max(0, int(hip[1]) - y0)
    band = photo[r0:, c0:c1].astype(np.int16)
    if band.size == 0:
        return None
    fig = (np.abs(band - backdrop).max(axis=2) > FIGURE_CONTRAST).mean(axis=1) >= 0.125
    gap, last, allowed = 0, None, max(2, int(0.02 * h))
    for i, on in enumerate(fig):
        if on:
            last, gap = i, 0
        elif last is not None:
            gap += 1
            if gap > allowed:
                break
    return None if last is None else float(last + r0 + y0)


def _why_missing(kp: np.ndarray, conf: np.ndarray, border: np.ndarray, parts: list[str], th: Thresholds,
                 cut: np.ndarray | None = None) -> str:
    """' (r_knee, l_knee not detected; r_ankle 0.42 on the border); hint' for the missing parts."""
    groups: dict[str, list[str]] = {}
    cut = cut if cut is not None else np.zeros(skeleton.N_JOINTS, bool)
    for j in dict.fromkeys(j for part in parts for j in PARTS[part][0]):
        k = skeleton.J[j]
        if conf[k] and not border[k] and not cut[k]:
            continue  # this one counts; the part lacks others
        if cut[k]:
            groups.setdefault(f"with no ankle and under {th.knee_room:g} thigh of photo below "
                              f"(counts only scoring >= {th.border_min_score}; --knee-room)",
                              []).append(f"{j} {kp[k, 2]:.2f}")
        elif border[k]:
            groups.setdefault(f"at the photo's edge (counts only inside it, scoring >= {th.border_min_score})",
                              []).append(f"{j} {kp[k, 2]:.2f}")
        elif skeleton.present(kp)[k] and not conf[k]:
            groups.setdefault(f"score < --min-score {th.min_score}", []).append(f"{j} {kp[k, 2]:.2f}")
        else:
            groups.setdefault("not detected", []).append(j)
    notes = "; ".join(f"{', '.join(js)} {what}" for what, js in groups.items())
    if not any(p in LEG_PARTS for p in parts):
        return f" ({notes})"
    if th.hidden_legs == "no":
        return f" ({notes}); if hidden by long clothes rather than cut off: --hidden-legs room"
    what = "photo" if th.hidden_legs == "room" else "figure below the hips"
    return (f" ({notes}); not hidden by long clothes: the {what} does not reach --leg-room {th.leg_room:g} "
            f"torso lengths below the hips (--hidden-legs {th.hidden_legs})")


def _distinct(value: float, limit: float) -> str:
    """`value` with the fewest decimals (2..6) that do not print it equal to `limit`."""
    for d in range(2, 7):
        text = f"{value:.{d}f}"
        if float(text) != float(f"{limit:.{d}f}"):
            return text
    return f"{value:.6f}"


def _assess(task: dict, th: Thresholds, decode: bool) -> dict:
    """One image: existence, image check, pose read (OpenPose files), judgement."""
    rec = {"image": task["image"], "split": task["split"], "item_id": task["item_id"]}
    path = task["path"]
    if not os.path.exists(path):  # a device, FIFO or folder is there: `check_image` says what it is
        rec["reason"] = "missing-image: listed in the partition but not on disk"
        return rec
    try:
        w, h = check_image(path, decode=decode)
    except PgkitError as exc:
        rec["reason"] = f"bad-image: {exc.reason}"
        return rec
    rec["width"], rec["height"] = w, h
    people, persons, kind = task.get("people"), task.get("persons"), None
    if task.get("pose_error"):
        rec["reason"] = task["pose_error"]
        return rec
    if people is None:
        jpath = next((c for c in task.get("json", ()) if os.path.isfile(c)), None)
        if jpath is None:
            rec["reason"] = "no-pose: no keypoints for this image in SRC"
            return rec
        try:
            people, kind = formats.read_openpose_people(jpath, offframe=True)
        except PgkitError as exc:
            code = "nan-keypoint" if "non-finite" in exc.reason else "bad-pose"
            rec["reason"] = f"{code}: {os.path.basename(jpath)}: {exc.reason}"
            return rec
    rec["kind"] = kind
    jw, content, crop = w, task.get("content"), None
    if task.get("crop"):
        try:
            crop = geometry.Crop.centre((h, w), task["crop"])
        except PgkitError as exc:
            rec["reason"] = f"crop: {exc.reason}"
            return rec
        jw = crop.width
        if not task.get("in_crop"):
            people, rec["crop_dropped"] = _into_crop(people, crop, w, th.frame_margin)
        if content is not None:
            content = (min(max(content[0] - crop.x0, 0.0), jw), content[1],
                       min(max(content[2] - crop.x0, 0.0), jw), content[3])
    if task.get("relaxed"):  # --keep-listed: the lists already chose the images
        th = replace(th, require=(), min_joints=0, max_shoulder_frac=float("inf"), min_height_frac=0.0)
    kp, n, reason = judge(people, jw, h, th, persons, content, functools.partial(_pixels, path, crop))
    rec["persons"], rec["kp"] = n, kp
    if reason:
        rec["reason"] = reason
    return rec


def _pixels(path: str, crop: geometry.Crop | None) -> np.ndarray | None:
    """The image in the keypoints' frame, for `hidden_legs="hem"` (the few images without legs)."""
    try:
        rgb = imageio.read_rgb(path)
        return crop.image(rgb, path) if crop is not None else rgb
    except PgkitError:
        return None


def _into_crop(people: list[np.ndarray], crop: geometry.Crop, width: int, margin: float,
               ) -> tuple[list[np.ndarray], int]:
    """Keypoints of the full image moved into `crop` (`geometry.Crop.keypoints`): joints outside
    the crop's columns become missing and are counted; joints outside the full image by more
    than `margin` are kept (shifted) so that `judge` rejects the image as out-of-frame."""
    out, dropped = [], 0
    for p in people:
        q = np.array(p, np.float32, copy=True)
        ok = (q[:, 2] > 0) & np.isfinite(q[:, :2]).all(axis=1)
        off = ok & ((q[:, 0] < -margin) | (q[:, 0] > width - 1 + margin))
        inside = ok & ~off
        q[inside, :2] = np.maximum(q[inside, :2], 0.0)  # within the margin: onto the edge, as judge does
        kp, n = crop.keypoints(np.where(off[:, None], np.float32([-1, -1, 0]), q))
        kp[off] = q[off] - np.float32([crop.x0, 0, 0])
        out.append(kp)
        dropped += n
    return out, dropped


def _assess_chunk(tasks: list[dict], th: Thresholds, decode: bool) -> list[dict]:
    return [_assess(t, th, decode) for t in tasks]


# ---------------------------------------------------------------- pose sources

def detect_source(src: Path) -> str:
    """'openpose' (directory), 'patn' (annotation CSV) or 'pickle'."""
    if src.is_dir():
        return "openpose"
    if not src.is_file():
        raise PgkitError(src, "pose source not found (expected an OpenPose JSON directory, a PATN "
                              "annotation CSV or a pose pickle)")
    with open(src, "rb") as f:
        head = f.read(64)
    if src.suffix.lower() in (".pkl", ".pickle", ".p") or head[:1] == b"\x80":
        return "pickle"
    if head.removeprefix(b"\xef\xbb\xbf").replace(b" ", b"").startswith(formats.PATN_HEADER.encode()) \
            or src.suffix.lower() == ".csv":
        return "patn"
    raise PgkitError(src, "not a recognised pose source: expected a directory of OpenPose JSON, "
                          f"a PATN CSV (first line '{formats.PATN_HEADER}') or a pickle")


def _below_img(image: str) -> str:
    parts = PurePosixPath(image).parts
    return str(PurePosixPath(*parts[1:])) if parts and parts[0] in ("img", "img_highres") else image


def _named_lookup(names: dict, images: list[str]) -> tuple[dict[str, str], set[str]]:
    """Map partition image -> key in `names` (raw, without img/, or PATN-flattened)."""
    found, used = {}, set()
    for image in images:
        candidates = [image, _below_img(image), *market.pose_keys(image)]
        try:
            candidates.append(deepfashion.flatten_name(image))
        except ValueError:
            pass
        for c in candidates:
            if c in names:
                found[image] = c
                used.add(c)
                break
    return found, used


def _source_files(src: Path, kind: str) -> list[Path]:
    if kind != "openpose":
        return [src]
    return sorted(src.rglob("*" + formats.OPENPOSE_SUFFIX))


# ---------------------------------------------------------------- the stage

def _partition_rows(root: Path, optional: bool = False) -> tuple[pd.DataFrame, list[dict]]:
    """Partition rows (image, item_id, split, line) and rejects for malformed/unsafe/duplicate rows.
    `optional` (PATN's lists set the split): a missing partition file gives no rows."""
    if optional and not (root / deepfashion.PARTITION).is_file():
        return pd.DataFrame(columns=["image", "item_id", "status", "line", "split"]), []
    frame = deepfashion.read_partition(root)
    lines = (root / deepfashion.PARTITION).read_text(encoding="utf-8", errors="replace").splitlines()
    rejects = []
    for ln in frame.attrs.get("bad_lines", []):
        text = lines[ln - 1].strip()
        rejects.append({"image": text.split()[0] if text.split() else f"line {ln}", "split": "",
                        "reason": f"partition-row: malformed partition row at line {ln}: {text[:80]!r}"})
    keep, seen = [], {}
    for r in frame.itertuples():
        try:
            deepfashion.check_relative(r.image)
        except PgkitError as exc:
            rejects.append({"image": r.image, "split": r.split, "reason": f"bad-name: line {r.line}: {exc.reason}"})
            continue
        if r.image in seen:
            rejects.append({"image": r.image, "split": r.split,
                            "reason": f"duplicate: line {r.line} repeats line {seen[r.image]}"})
            continue
        seen[r.image] = r.line
        keep.append(r.Index)
    return frame.loc[keep].reset_index(drop=True), rejects


def _apply_split_lists(root: Path, part: pd.DataFrame, rejects: list[dict], lists: list[Path],
                       ) -> tuple[pd.DataFrame, list[dict], dict]:
    """PATN's train.lst / test.lst set the split (`deepfashion.map_split_lists`): the rows of
    listed images with their split from the lists, listed images the partition lacks added
    (item id from the path), partition images in neither list rejected as `not-listed`.
    Returns (rows, rejects, {"unmapped": rows for unmapped-list-names.csv, "counts": ...})."""
    split_of, unmapped, counts = deepfashion.map_split_lists(dict(zip(("train", "test"), lists, strict=True)),
                                                             part["image"], root)
    rejects = list(rejects)
    known = set(part["image"])
    for r in part.loc[~part["image"].isin(split_of)].itertuples():
        rejects.append({"image": r.image, "split": "", "reason": f"not-listed: in neither {lists[0].name} "
                                                                 f"nor {lists[1].name} (--split-lists set the split)"})
    rows = part.loc[part["image"].isin(split_of)].copy()
    extra = [i for i in split_of if i not in known]
    if extra:
        rows = pd.concat([rows, pd.DataFrame({
            "image": extra, "item_id": [_item_of_path(i) for i in extra], "status": "listed", "line": 0})],
            ignore_index=True)
    rows["split"] = rows["image"].map(split_of)
    counts["not_listed"] = int(len(part) - (part["image"].isin(split_of)).sum())
    counts["not_in_partition"] = len(extra)
    return rows.reset_index(drop=True), rejects, {"unmapped": unmapped, "counts": counts}


def _two_lists(value: str | None) -> str | None:
    """--split-lists: exactly two comma-separated files (else a usage error, exit 2)."""
    if value is not None and len([p for p in value.split(",") if p.strip()]) != 2:
        raise click.BadParameter(f"two files, TRAIN.lst,TEST.lst (PATN's train.lst,test.lst); got {value!r}")
    return value


def _item_of_path(image: str) -> str:
    try:
        return deepfashion.item_id_of(image)
    except ValueError:
        return PurePosixPath(image).parent.name  # the folder of the item, whatever it is called


def run_filter(root, poses, work, *, crop176: bool = False, x_offset: float | None = None,
               check: str = "header", jobs: int | None = None, force: bool = False,
               dataset: str = "auto", split_lists=None, crop: int | None = None,
               poses_in_crop: bool = False, keep_listed: bool = False, **thresholds) -> dict:
    """Ingest keypoints from `poses`, write WORK/images.csv, rejects.csv, work.json.

    Thresholds: the fields of `Thresholds` (min_score, person_min_joints, min_joints, require,
    max_shoulder_frac, min_height_frac, border_frac, border_min_score, frame_margin). `crop176` /
    `x_offset`: PATN CSV x values refer to 256x176 centre crops, add 40 (or `x_offset`). `check`: "header" (cheap) or
    "decode" (decode every image). Returns counts (`kept`, `rejected`, by reason and split,
    `skipped=True` when the outputs were already up to date).

    PATN's benchmark (docs/benchmark.md): `split_lists` = (train.lst, test.lst) sets the split
    instead of the partition file (`_apply_split_lists`); with `keep_listed` the listed images
    skip the completeness, close-up and small-skeleton rules. `crop` = W centre-crops every
    image to W columns (`geometry.Crop`; 176 for PATN's 256x176): keypoints move into the crop
    (unless `poses_in_crop`: SRC already refers to the crop, as PATN's annotation CSVs do), the
    judgement, images.csv, `image_size` and every later stage use the crop (work.json `crop`).
    """
    root, src, work = Path(root), Path(poses), Path(work)
    if poses_in_crop and not crop:
        raise PgkitError(None, "poses_in_crop (--poses-in-crop) needs a crop (--crop W)")
    if keep_listed and not split_lists:
        raise PgkitError(None, "keep_listed (--keep-listed) needs the lists (--split-lists TRAIN,TEST)")
    if split_lists:
        parts = str(split_lists).split(",") if isinstance(split_lists, (str, os.PathLike)) else list(split_lists)
        split_lists = [Path(p) for p in parts if str(p).strip()]
        if len(split_lists) != 2:
            raise PgkitError(None, f"--split-lists takes two files, TRAIN.lst,TEST.lst; got {len(split_lists)}")
    dataset = market.detect_dataset(root, dataset)  # Market-1501: ROOT has bounding_box_train/ (pgprep.market)
    if dataset == market.DATASET:
        thresholds = {**market.THRESHOLDS, **thresholds}
    unknown = set(thresholds) - {f.name for f in fields(Thresholds)}
    if unknown:
        raise TypeError(f"unknown filter threshold(s): {', '.join(sorted(unknown))}")
    if thresholds.get("hidden_legs", Thresholds.hidden_legs) not in HIDDEN_LEGS:
        raise PgkitError(None, f"hidden_legs must be one of {', '.join(HIDDEN_LEGS)}, got {thresholds['hidden_legs']!r}")
    if "require" in thresholds:
        req = thresholds["require"]
        req = tuple(req.split(",")) if isinstance(req, str) else tuple(req)
        req = tuple(r.strip() for r in req if r.strip())
        bad = [r for r in req if r not in PARTS]
        if bad:
            raise PgkitError(None, f"unknown body part(s) {bad} in require; choose from {', '.join(PARTS)}")
        thresholds["require"] = req
    th = Thresholds(**thresholds)
    if check not in ("header", "decode"):
        raise PgkitError(None, f"check must be 'header' or 'decode', got {check!r}")
    if dataset == market.DATASET:
        part, rejects = market.read_release(root)
    elif not (root / "img").is_dir():
        raise PgkitError(root, "not a DeepFashion-style tree: expected ROOT/img/<MEN|WOMEN>/<Category>/"
                               f"id_XXXXXXXX/*.jpg and ROOT/{deepfashion.PARTITION} (or a Market-1501 "
                               "release: ROOT/bounding_box_train/, bounding_box_test/, query/)")
    else:
        part, rejects = _partition_rows(root, optional=bool(split_lists))  # raises if missing/unusable
    listed = None
    if split_lists:
        part, rejects, listed = _apply_split_lists(root, part, rejects, split_lists)
    kind = detect_source(src)
    offset = float(x_offset if x_offset is not None else (40.0 if crop176 else 0.0))

    images = part["image"].tolist()
    files = [root / deepfashion.PARTITION, *(root / i for i in images), *_source_files(src, kind),
             root / INGEST_RECORDS]
    options = {"poses": str(src.resolve()), "kind": kind, "offset": offset, "check": check, **asdict(th)}
    if dataset == market.DATASET:  # (absent for DeepFashion: earlier WORK directories stay up to date)
        options["dataset"] = dataset
    if split_lists or crop:  # (absent otherwise: earlier WORK directories stay up to date)
        files += [Path(p) for p in split_lists or ()]
        options.update(split_lists=[atomic.canonical_path(p) for p in split_lists or ()], crop=crop,
                       poses_in_crop=bool(poses_in_crop), keep_listed=bool(keep_listed))
    fp = atomic.fingerprint(files, options)
    outputs = [work / "images.csv", work / "rejects.csv", work / "work.json"]
    if split_lists:
        outputs.append(work / UNMAPPED_LIST_NAMES)
    if not force and atomic.is_up_to_date(work, STAGE, fp, outputs):
        info = json.loads((work / "work.json").read_text())
        return {**info.get("counts", {}), "skipped": True}

    # Load a file-based source fully before touching WORK: a refused pickle creates nothing.
    tasks = []
    source_errors: list[str] = []
    if kind == "openpose":
        for r in part.itertuples():
            names = dict.fromkeys([formats.openpose_json_name(_below_img(r.image)),
                                   formats.openpose_json_name(r.image),
                                   *map(formats.openpose_json_name, market.pose_keys(r.image))])
            tasks.append({"json": [str(src / n) for n in names]})
    else:
        if kind == "patn":
            res = formats.read_patn_csv(src, x_offset=offset)
            poses_by_name = {k: ([v], None) for k, v in res.poses.items()}
            errors = res.errors
        else:
            loaded, errors = formats.read_pose_pickle(src)
            poses_by_name = {}
            for k, (kp, n) in loaded.items():
                if offset:
                    kp = kp.copy()
                    kp[kp[:, 2] > 0, 0] += offset  # detected joints, also those left of the crop
                poses_by_name[k] = ([kp], n)
        both = {**poses_by_name, **dict.fromkeys(errors)}
        found, used = _named_lookup(both, images)
        source_errors = [f"{k}: {v}" for k, v in errors.items() if k not in used]
        for image in images:
            key = found.get(image)
            if key is None:
                tasks.append({})
            elif key in errors:
                code = "nan-keypoint" if "non-finite" in errors[key] else "bad-pose"
                tasks.append({"pose_error": f"{code}: {errors[key]}"})
            else:
                people, n = poses_by_name[key]
                tasks.append({"people": people, "persons": n})
    for t, r in zip(tasks, part.itertuples(), strict=True):
        t.update(image=r.image, item_id=r.item_id, split=r.split, path=str(root / r.image))
        if crop or keep_listed:
            t.update(crop=crop, in_crop=bool(poses_in_crop), relaxed=bool(keep_listed))
    boxes = content_boxes(root)
    for t in tasks:
        if t["image"] in boxes:
            t["content"] = boxes[t["image"]]

    records = _run_tasks(tasks, th, check == "decode", jobs)
    _reject_odd_sizes(records)

    kept_rows, kinds = [], collections.Counter()
    for rec in records:
        if rec.get("kind"):
            kinds[rec["kind"]] += 1
        if rec.get("reason"):
            rejects.append({"image": rec["image"], "split": rec["split"], "reason": rec["reason"]})
            continue
        kept_rows.append({"image": rec["image"], "item_id": rec["item_id"], "split": rec["split"],
                          "status": "kept", "width": crop or rec["width"], "height": rec["height"],
                          "persons": rec["persons"], **skeleton.to_columns(rec["kp"])})
    if not kept_rows:
        top = collections.Counter(r["reason"].split(":")[0] for r in rejects).most_common(3)
        raise PgkitError(src, f"nothing usable: 0 of {len(records)} images kept "
                              f"(most common reasons: {', '.join(f'{c} x{n}' for c, n in top) or 'none'})")
    kept = pd.DataFrame(kept_rows, columns=["image", "item_id", "split", "status", "width", "height",
                                            "persons", *skeleton.KP_COLUMNS])
    rej = pd.DataFrame(rejects, columns=["image", "split", "reason"])
    sizes = collections.Counter(zip(kept["height"], kept["width"], strict=True))
    (h, w), _ = sizes.most_common(1)[0]
    counts = summarise(kept, rej)
    source_kind = f"openpose {'+'.join(sorted(kinds))}" if kind == "openpose" else kind
    extra = {}
    if crop:
        src_size = collections.Counter((rec["height"], rec["width"]) for rec in records
                                       if "width" in rec and not rec.get("reason")).most_common(1)[0][0]
        extra["crop"] = geometry.Crop.centre(src_size, crop).to_json()
        counts["crop_dropped_joints"] = int(sum(rec.get("crop_dropped", 0) for rec in records
                                                if not rec.get("reason")))
    if listed is not None:
        extra.update(split_source="lists", split_lists=listed["counts"])
        counts["split_lists"] = {**listed["counts"], "unmapped_csv": os.fspath(work / UNMAPPED_LIST_NAMES)}
    work.mkdir(parents=True, exist_ok=True)
    atomic.clear_stamp(work, STAGE)  # a run killed between the files below must not look done
    if listed is not None:
        atomic.write_csv_atomic(work / UNMAPPED_LIST_NAMES,
                                pd.DataFrame(listed["unmapped"], columns=deepfashion.UNMAPPED_COLUMNS))
    else:
        (work / UNMAPPED_LIST_NAMES).unlink(missing_ok=True)  # of an earlier run with lists
    atomic.write_csv_atomic(work / "images.csv", kept)
    atomic.write_csv_atomic(work / "rejects.csv", rej)
    atomic.write_json_atomic(work / "work.json", {
        "root": str(root.resolve()), "dataset": dataset, "image_size": [int(h), int(w)], "poses": str(src.resolve()),
        "poses_format": source_kind, "x_offset": offset, "check": check,
        "thresholds": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(th).items()},
        "image_sizes": {f"{a}x{b}": n for (a, b), n in sizes.items()},
        "unmatched_source_errors": source_errors[:20], "counts": counts, **extra})
    atomic.mark_done(work, STAGE, fp, kept=len(kept), rejected=len(rej))
    return {**counts, "skipped": False}


def content_boxes(root: Path) -> dict[str, tuple[float, float, float, float]]:
    """image -> (x0, y0, x1, y1) of the photo inside its white padding, from ROOT/ingest.csv
    (written by `pgprep ingest`); empty when ROOT was not made by ingest."""
    try:
        rec = pd.read_csv(root / INGEST_RECORDS, usecols=["image", "scale", "pad_x", "pad_y", "orig_width",
                                                          "orig_height", "width", "height"])
    except (FileNotFoundError, ValueError, pd.errors.ParserError):
        return {}
    boxes = {}
    for r in rec.itertuples():  # the box ingest recorded, read through the one letterbox definition
        try:
            boxes[r.image] = geometry.Letterbox.from_record((r.orig_height, r.orig_width), (r.height, r.width),
                                                            r.scale, r.pad_x, r.pad_y).box
        except (TypeError, ValueError, ZeroDivisionError):
            continue  # a damaged row: the image is judged on its whole frame
    return boxes


def _reject_odd_sizes(records: list[dict]) -> None:
    """Shards hold one image size: an image whose size differs from the most common size of
    the readable images is rejected here (not at pack), with the way to fix it."""
    sizes = collections.Counter((r["height"], r["width"]) for r in records if "width" in r)
    if len(sizes) < 2:
        return
    (h, w), n = sizes.most_common(1)[0]
    for r in records:
        if "width" in r and not r.get("reason") and (r["height"], r["width"]) != (h, w):
            r["reason"] = (f"mixed-size: image is {r['height']}x{r['width']} (HxW), {n} of "
                           f"{sum(sizes.values())} images are {h}x{w}; shards hold one size: bring the "
                           f"photos to one size with `pgprep ingest PHOTOS -o ROOT --size {h}x{w}`")


def _run_tasks(tasks: list[dict], th: Thresholds, decode: bool, jobs: int | None) -> list[dict]:
    from pgprep.cliutil import progress

    # Below a few thousand images, starting worker processes costs more than it saves
    # (3,000 images: 2,300 images/s in-process vs 1,600 with 2 workers, header check).
    n_jobs = jobs if jobs is not None else (1 if len(tasks) < PARALLEL_FROM else default_jobs())
    chunk = 512
    chunks = [tasks[i:i + chunk] for i in range(0, len(tasks), chunk)]
    out: list[dict] = []
    bar = progress(total=len(tasks), desc="filter", unit="img")
    for res in run_jobs(functools.partial(_assess_chunk, th=th, decode=decode), chunks, jobs=n_jobs):
        out.extend(res)
        bar.update(len(res))
    bar.close()
    return out


def summarise(kept: pd.DataFrame, rej: pd.DataFrame) -> dict:
    """Counts of kept and rejected images, by reason code and split."""
    by = {"kept": kept.groupby("split").size().to_dict()}
    codes = rej["reason"].str.split(":").str[0] if len(rej) else pd.Series(dtype=str)
    for code, grp in rej.assign(code=codes, split=rej["split"].replace("", "?")).groupby("code"):
        by[code] = grp.groupby("split").size().to_dict()
    return {"kept": len(kept), "rejected": len(rej),
            "by_reason": {k: {s: int(n) for s, n in v.items()} for k, v in by.items()}}


def summary_rows(counts: dict) -> list[list]:
    rows = []
    for reason, per in counts["by_reason"].items():
        tr, te = per.get("train", 0), per.get("test", 0)
        rows.append([reason, tr, te, sum(per.values())])
    return rows


# ---------------------------------------------------------------- command

@click.command("filter")
@click.argument("root", type=click.Path(file_okay=False, path_type=Path))
@click.option("--poses", "poses", required=True, type=click.Path(path_type=Path),
              help="Keypoints: OpenPose JSON directory, PATN annotation CSV or pose pickle.")
@click.option("-o", "--out", "work", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="WORK directory to write images.csv, rejects.csv, work.json.")
@click.option("--crop176", is_flag=True,
              help="PATN/pickle x values refer to 256x176 crops: add 40 (keypoints only, images stay "
                   "256 wide; to train at 256x176 use --crop 176 --poses-in-crop).")
@click.option("--x-offset", type=float, default=None, help="Add this to every x (overrides --crop176).")
@click.option("--split-lists", "split_lists", default=None, metavar="TRAIN.lst,TEST.lst",
              callback=lambda ctx, param, v: _two_lists(v),
              help="PATN's train.lst,test.lst set the split instead of the partition file; names "
                   "flattened or img/...; unmapped names -> WORK/unmapped-list-names.csv; images in "
                   "neither list are rejected as not-listed.")
@click.option("--keep-listed", is_flag=True,
              help="With --split-lists: keep every listed image that reads and has one person's "
                   "keypoints (no completeness, close-up or small-skeleton rule).")
@click.option("--crop", "crop", type=click.IntRange(min=1), default=None, metavar="W",
              help="Centre-crop every image to W columns for all later stages (176: PATN's 256x176, "
                   "columns 40..215, x -= 40); recorded in work.json.")
@click.option("--poses-in-crop", is_flag=True,
              help="With --crop: SRC's keypoints already refer to the crop (PATN's "
                   "fasion-resize-annotation-*.csv).")
@click.option("--min-score", type=float, default=Thresholds.min_score, show_default=True,
              help="A joint counts as present at this score or above.")
@click.option("--person-min-joints", type=int, default=Thresholds.person_min_joints, show_default=True,
              help="Detections with fewer confident joints are ignored (not a person).")
@click.option("--min-joints", type=int, default=Thresholds.min_joints, show_default=True,
              help="Confident joints (of 18) the kept person must have.")
@click.option("--require", default=",".join(Thresholds.require), show_default=True,
              help=f"Body parts that must be present, comma-separated, from: {', '.join(PARTS)}.")
@click.option("--max-shoulder-frac", type=float, default=Thresholds.max_shoulder_frac, show_default=True,
              help="Close-up if shoulder width exceeds this fraction of the image width.")
@click.option("--min-skeleton-height", "--min-height-frac", "min_height_frac", type=float,
              default=Thresholds.min_height_frac, show_default=True,
              help="small-skeleton if head to lowest joint spans less than this fraction of the image "
                   "height (--min-height-frac is the old name).")
@click.option("--border-frac", type=float, default=Thresholds.border_frac, show_default=True,
              help="Joints this close to the border (fraction of the image side) ...")
@click.option("--border-min-score", type=float, default=Thresholds.border_min_score, show_default=True,
              help="... count towards completeness only with at least this score.")
@click.option("--frame-margin", type=float, default=Thresholds.frame_margin, show_default=True,
              help="Pixels a keypoint may lie outside the image before the image is rejected.")
@click.option("--knee-room", type=float, default=Thresholds.knee_room, show_default=True,
              help="A knee with no ankle counts only with this many thigh lengths of photo below it or "
                   "a score >= --border-min-score (a frame cut just above the knees); 0 disables.")
@click.option("--hidden-legs", type=click.Choice(HIDDEN_LEGS), default=Thresholds.hidden_legs, show_default=True,
              help="Legs no joint shows count as hidden (a floor-length gown) when: room = the photo "
                   "reaches --leg-room torso lengths below the hips; hem = that, and the figure (hem, "
                   "shoes) ends inside the photo that low (decodes those images); no = never.")
@click.option("--leg-room", type=float, default=Thresholds.leg_room, show_default=True,
              help="Torso lengths below the hips that --hidden-legs asks for.")
@click.option("--check", type=click.Choice(["header", "decode"]), default="header", show_default=True,
              help="Image check: header + end marker (fast) or a full decode.")
@click.option("--jobs", type=int, default=None,
              help=f"Worker processes (default: all cores from {PARALLEL_FROM} images on, else 1).")
@click.option("--dataset", type=click.Choice(["auto", "deepfashion", "market"]), default="auto", show_default=True,
              help="ROOT's layout: DeepFashion In-shop (img/ + Eval/) or the Market-1501 release "
                   "(bounding_box_train/, bounding_box_test/, query/); auto: by the folders ROOT has.")
@click.option("--force", is_flag=True, help="Rerun even if the outputs are up to date.")
def command(root, poses, work, crop176, x_offset, split_lists, keep_listed, crop, poses_in_crop, min_score, person_min_joints, min_joints, require,
            max_shoulder_frac, min_height_frac, border_frac, border_min_score, frame_margin, knee_room,
            hidden_legs, leg_room, check, jobs, dataset, force):
    """Keep images that show exactly one, complete person; say why each other was dropped.

    Reads ROOT/Eval/list_eval_partition.txt (train; query + gallery = test, by item),
    ingests keypoints from --poses and writes WORK/images.csv (kept images with item_id,
    split and the 18 COCO keypoints), WORK/rejects.csv (image, split, one reason each)
    and WORK/work.json, then prints kept/rejected by reason and split.

    \b
    Pose sources (detected):
      DIR        OpenPose JSON (COCO-18 or BODY_25), <tree below img/>/<stem>_keypoints.json
      FILE.csv   PATN annotation CSV, raw or flattened names (--crop176 for 176-wide crops)
      FILE.pkl   PG²-style pose pickle (a pickle that tries to run code is refused)

    \b
    Examples:
      pgprep filter data/synth --poses data/synth/pose/openpose -o data/work
      pgprep filter DeepFashion --poses fasion-resize-annotation-train.csv --crop176 -o work
      pgprep filter DeepFashion --poses poses/ -o work --require head,shoulders,hips

    \b
    PATN's benchmark split at 256x176 (docs/benchmark.md):
      pgprep filter DeepFashion --poses fasion-resize-annotation.csv --crop 176 --poses-in-crop \\
          --split-lists train.lst,test.lst --keep-listed -o work

    \b
    Market-1501 (detected when ROOT has bounding_box_train/; docs/market.md):
      pgprep filter Market-1501-v15.09.15 --poses market-annotation-train.csv -o work
      pgprep filter data/market --poses data/market/pose/openpose -o work   # pgprep synth --kind market
    Identity, camera, sequence and frame come from names like 0002_c1s1_000451_03.jpg;
    bounding_box_train is train, bounding_box_test + query test; identities -1 (junk) and
    0000 (distractors) are rejected with that reason. OpenPose JSON may mirror the folders
    or lie flat; PATN's market-annotation-*.csv use bare names. --max-shoulder-frac
    defaults to 0.8 for Market (a 64-px-wide box is never a close-up).

    Bad inputs (missing or broken images, missing or malformed poses, NaN or out-of-frame
    keypoints, malformed partition rows, names with '..') are rejected with their reason;
    the run goes on. Exit 1 only when nothing is usable or ROOT is not a DeepFashion tree.
    A rerun with unchanged inputs and options does nothing.
    """
    from pgprep.cliutil import echo_table

    given = dict(min_score=min_score, person_min_joints=person_min_joints,
                 min_joints=min_joints, require=require, max_shoulder_frac=max_shoulder_frac,
                 min_height_frac=min_height_frac, border_frac=border_frac,
                 border_min_score=border_min_score, frame_margin=frame_margin, knee_room=knee_room,
                 hidden_legs=hidden_legs, leg_room=leg_room)
    # thresholds left at their defaults take the dataset's (Thresholds, or market.THRESHOLDS)
    ctx = click.get_current_context()
    given = {k: v for k, v in given.items()
             if ctx.get_parameter_source(k) is not click.core.ParameterSource.DEFAULT}
    counts = run_filter(root, poses, work, crop176=crop176, x_offset=x_offset, check=check, jobs=jobs,
                        force=force, dataset=dataset, split_lists=split_lists, keep_listed=keep_listed,
                        crop=crop, poses_in_crop=poses_in_crop, **given)
    if counts.get("split_lists"):
        click.echo(deepfashion.list_report(counts["split_lists"], counts["by_reason"].get("kept", {})), err=True)
    if counts.get("skipped"):
        click.echo(f"filter: {work} is up to date ({counts['kept']} kept, {counts['rejected']} rejected); "
                   "nothing to do (--force to rerun)")
        return
    echo_table(summary_rows(counts), ["reason", "train", "test", "total"])
    click.echo(f"kept {counts['kept']}, rejected {counts['rejected']} -> {work}/images.csv, "
               f"{work}/rejects.csv")
