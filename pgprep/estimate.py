"""`pgprep pose`: BlazePose keypoints for every image, written as OpenPose JSON.

MediaPipe's two BlazePose models, taken from the `mediapipe==0.10.21` wheel and run with
`ai-edge-litert` (mediapipe itself is never imported: it would pin numpy < 2):

1. the pose detector (224x224 letterboxed input in [-1, 1]; 2254 SSD anchors) finds each
   person as a box plus 4 alignment keypoints (0 mid-hip, 1 a point encoding the full-body
   size and rotation, 2 mid-shoulder, 3 the same for the upper body); scores are sigmoids,
   overlapping boxes are merged by weighted non-maximum suppression;
2. per person, the region of interest is a square centred on the mid-hip, side
   2 |kp1 - kp0| x 1.25, rotated so that mid-hip -> kp1 points up (pose_detection_to_roi);
3. the landmark model (pose_landmark_full, 256x256 input in [0, 1]) gives 33 landmarks
   (x, y, z, visibility, presence) plus 2 alignment landmarks (33 mid-hip, 34 full-body
   size/rotation), a pose flag and a segmentation mask; when that run leaves doubt (flag <
   DOUBT_FLAG, a leg joint of middling visibility, or its own ROI from landmarks 33/34 moved
   by more than DOUBT_ROI) the landmarks are run a second time in the ROI of landmarks 33/34
   (MediaPipe's tracking ROI) and the run with the better flag is kept; a person needs flag
   >= min_presence and must not repeat one already found;
4. when the image holds foreground that the people found do not cover (a blob of more than
   DOUBT_UNCOVERED of the image differing from the background colour), they are painted out
   (segmentation mask, dilated, filled with the median colour of the rest) and steps 1-3 run
   again, which finds a second person that the detector had merged into or ranked below the
   first; with nobody found at all, the mirrored image is tried;
5. landmarks are mapped back to image pixels and to COCO-18 (neck = mid-shoulders) with
   score = sigmoid(visibility) x sigmoid(presence); landmarks outside the image or with
   visibility < min_visibility are missing (BlazePose also predicts out-of-view joints).

Parameters follow MediaPipe's graphs: pose_detection_cpu.pbtxt (anchors, decoding, NMS),
pose_detection_to_roi.pbtxt and tensors_to_pose_landmarks_and_segmentation.pbtxt.
`refine` and `second_pass` = "always" run steps 3-4 for every image (pgkit 0.1.0's behaviour,
the same bytes); "auto" (default) only on doubt: 2.3 model runs per image instead of 4, 1.7x
the speed at the same accuracy (docs/pose.md has the measurements and the trade-off table).
"""

from __future__ import annotations

import functools
import importlib.util
import math
import os
import threading
from pathlib import Path

import click
import numpy as np

from pgprep import formats, imageio, skeleton
from pgprep.errors import PgkitError
from pgprep.parallel import BACKENDS, default_jobs, run_jobs

ESTIMATORS = ("mediapipe",)
INSTALL = 'pip install "pgkit[pose]" && pip install --no-deps mediapipe==0.10.21'
DETECTOR = "modules/pose_detection/pose_detection.tflite"
LANDMARKER = "modules/pose_landmark/pose_landmark_full.tflite"
IMAGE_EXTS = imageio.EXTENSIONS  # the one reading policy: JPEG, PNG, WebP

# SsdAnchorsCalculatorOptions of pose_detection_cpu.pbtxt
ANCHORS = {"input_size": 224, "strides": (8, 16, 32, 32, 32), "offset": 0.5,
           "aspect_ratios": (1.0,), "interpolated_scale_aspect_ratio": 1.0, "fixed_anchor_size": True}
DET_SIZE = 224
LMK_SIZE = 256
ROI_SCALE = 1.25          # RectTransformationCalculator scale_x / scale_y (full-body ROI)
NMS_IOU = 0.3             # NonMaxSuppressionCalculator min_suppression_threshold
SCORE_CLIP = 100.0        # score_clipping_thresh
MIN_DETECTION = 0.5       # detector score threshold for a candidate
MIN_VISIBILITY = 0.3      # landmarks less likely visible than this are reported missing
CANDIDATES = 6            # detector candidates (after NMS) given to the landmark model
SAME_PERSON_OVERLAP = 0.6  # body-box overlap (of the smaller box) above which two are one person
PASS_MODES = ("auto", "always", "never")  # refinement run and second detector pass: on doubt, always, never
DOUBT_FLAG = 0.99         # refine a landmark run whose pose flag is below this ...
DOUBT_ROI = 0.1           # ... or whose own ROI moved (centre / side, |log side ratio|) by more
DOUBT_LEGS = 0.6          # ... or that is unsure (visibility in [min_visibility, this)) of a hip, knee or ankle
LEG_LANDMARKS = slice(23, 29)  # BlazePose 23-28: hips, knees, ankles (what completeness is decided on)
DOUBT_UNCOVERED = 0.01    # second pass if uncovered foreground forms a blob > this of the image
DOUBT_GRID = 64           # the uncovered-foreground test runs on the image shrunk to this long side
FOREGROUND_DIFF = 30      # grey levels (max over RGB) from the background colour = foreground
# BlazePose's 33 landmarks mirrored (left <-> right), for the mirrored-image retry
MIRROR = np.array([0, 4, 5, 6, 1, 2, 3, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15, 18, 17, 20, 19, 22, 21,
                   24, 23, 26, 25, 28, 27, 30, 29, 32, 31])


def model_paths() -> tuple[Path, Path]:
    """The two .tflite files inside the installed mediapipe wheel (mediapipe is not imported)."""
    try:
        import ai_edge_litert.interpreter  # noqa: F401 - the runtime must really import
    except ImportError as exc:
        raise PgkitError(None, f"the pose estimator needs ai-edge-litert ({exc}) and the mediapipe "
                               f"model files: {INSTALL}") from None
    spec = importlib.util.find_spec("mediapipe")
    for base in (spec.submodule_search_locations or []) if spec else []:
        det, lmk = Path(base) / DETECTOR, Path(base) / LANDMARKER
        if det.is_file() and lmk.is_file():
            return det, lmk
    raise PgkitError(None, f"the BlazePose model files (mediapipe/{DETECTOR}, mediapipe/{LANDMARKER}) "
                           f"are not installed: {INSTALL}")


def ssd_anchors(input_size: int = DET_SIZE, strides=ANCHORS["strides"], offset: float = 0.5) -> np.ndarray:
    """(N, 2) anchor centres in [0, 1] for MediaPipe's SsdAnchorsCalculator with fixed-size anchors.

    Consecutive layers with the same stride share one feature map; each layer contributes one
    anchor per aspect ratio (1.0) plus the interpolated-scale anchor, i.e. 2 per cell and layer.
    With fixed_anchor_size all widths and heights are 1, so only centres matter.
    """
    out, i = [], 0
    while i < len(strides):
        j = i
        while j < len(strides) and strides[j] == strides[i]:
            j += 1
        per_cell = 2 * (j - i)
        n = math.ceil(input_size / strides[i])
        ys, xs = np.meshgrid((np.arange(n) + offset) / n, (np.arange(n) + offset) / n, indexing="ij")
        centres = np.stack([xs.ravel(), ys.ravel()], axis=1)
        out.append(np.repeat(centres, per_cell, axis=0))
        i = j
    return np.concatenate(out).astype(np.float32)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.clip(np.asarray(x, np.float64), -SCORE_CLIP, SCORE_CLIP)))


def decode_detections(raw_boxes: np.ndarray, raw_scores: np.ndarray, anchors: np.ndarray,
                      min_score: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(boxes (n, 4) x0 y0 x1 y1, keypoints (n, 4, 2), scores (n,)) in [0, 1] letterbox coordinates."""
    scores = _sigmoid(raw_scores.reshape(-1))
    keep = scores >= min_score
    r, a, s = raw_boxes.reshape(-1, 12)[keep] / DET_SIZE, anchors[keep], scores[keep]
    cx, cy = r[:, 0] + a[:, 0], r[:, 1] + a[:, 1]  # reverse_output_order: x, y, w, h
    w, h = r[:, 2], r[:, 3]
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    kps = r[:, 4:].reshape(-1, 4, 2) + a[:, None, :]
    return boxes, kps, s


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    x0, y0 = np.maximum(box[0], boxes[:, 0]), np.maximum(box[1], boxes[:, 1])
    x1, y1 = np.minimum(box[2], boxes[:, 2]), np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])  # noqa: E731
    return inter / np.maximum(area(box) + area(boxes) - inter, 1e-9)


def weighted_nms(boxes, kps, scores, iou: float = NMS_IOU):
    """MediaPipe's WEIGHTED NMS: each cluster (IoU > iou with its best box) is replaced by the
    score-weighted mean of its boxes and keypoints, keeping the best score."""
    order = np.argsort(-scores)
    boxes, kps, scores = boxes[order], kps[order], scores[order]
    out = []
    alive = np.ones(len(scores), bool)
    for i in range(len(scores)):
        if not alive[i]:
            continue
        members = alive & (_iou(boxes[i], boxes) > iou)
        members[i] = True
        w = scores[members][:, None]
        out.append((
            (boxes[members] * w).sum(0) / w.sum(),
            (kps[members] * w[:, :, None]).sum(0) / w.sum(),
            float(scores[i])))
        alive &= ~members
    return out


def roi_from_detection(kps_px: np.ndarray) -> tuple[float, float, float, float]:
    """(cx, cy, side, rotation) in pixels/radians: centre mid-hip, rotated so kp0 -> kp1 is up."""
    (x0, y0), (x1, y1) = kps_px[0], kps_px[1]
    rotation = math.pi / 2 - math.atan2(-(y1 - y0), x1 - x0)
    rotation = rotation - 2 * math.pi * math.floor((rotation + math.pi) / (2 * math.pi))
    side = 2.0 * math.hypot(x1 - x0, y1 - y0) * ROI_SCALE
    return float(x0), float(y0), float(side), float(rotation)


def roi_matrix(cx, cy, side, rotation, out_size: int = LMK_SIZE) -> np.ndarray:
    """2x3 affine mapping ROI-crop pixels (u, v) to image pixels."""
    c, s = math.cos(rotation), math.sin(rotation)
    k = side / out_size
    # image = centre + R @ ((u, v) - out_size / 2) * k
    return np.array([[c * k, -s * k, cx - (c * k * out_size / 2) + (s * k * out_size / 2)],
                     [s * k, c * k, cy - (s * k * out_size / 2) - (c * k * out_size / 2)]], np.float64)


class BlazePose:
    """Detector + landmark interpreters (one per worker process or thread).

    Per image: detector candidates (score >= `min_detection`, at most `candidates` after NMS)
    -> landmarks in the detection's ROI -> landmarks again in the ROI of the model's own
    alignment landmarks 33/34 (MediaPipe's tracking step; fixes ROIs from poor detector
    keypoints; `refine`) -> kept if the pose flag >= `min_presence` and not the same person
    as one already kept. Then the kept people are painted out (their segmentation masks
    filled with the background colour) and the detector runs once more to find people it
    had hidden behind the first (`second_pass`). If nobody is found, the mirrored image is
    tried. `refine` / `second_pass`: "always", "never", or "auto" = only when the first run
    leaves doubt (`refine_doubt`, `uncovered_foreground`); True / False mean always / never.
    `threads`: the interpreters' thread count.
    """

    def __init__(self, min_detection: float = MIN_DETECTION, min_presence: float = 0.5,
                 max_people: int = 4, min_visibility: float = MIN_VISIBILITY,
                 candidates: int = CANDIDATES, second_pass: str | bool = "auto",
                 refine: str | bool = "auto", threads: int = 1):
        from ai_edge_litert.interpreter import Interpreter

        det, lmk = model_paths()
        self.det = Interpreter(model_path=str(det), num_threads=threads)
        self.lmk = Interpreter(model_path=str(lmk), num_threads=threads)
        self.det.allocate_tensors()
        self.lmk.allocate_tensors()
        self._det_in = self.det.get_input_details()[0]["index"]
        out = {d["shape"][-1]: d["index"] for d in self.det.get_output_details()}
        self._det_boxes, self._det_scores = out[12], out[1]
        self._lmk_in = self.lmk.get_input_details()[0]["index"]
        lo = {tuple(d["shape"][1:]): d["index"] for d in self.lmk.get_output_details()}
        self._lmk_points, self._lmk_flag = lo[(195,)], lo[(1,)]
        self._lmk_seg = lo[(LMK_SIZE, LMK_SIZE, 1)]
        self.anchors = ssd_anchors()
        self.min_detection, self.min_presence, self.max_people = min_detection, min_presence, max_people
        self.min_visibility, self.candidates = min_visibility, candidates
        self.second_pass, self.refine = pass_mode(second_pass), pass_mode(refine)
        self.runs = {"detector": 0, "landmarks": 0, "refined": 0, "second_pass": 0}  # per instance

    def detect(self, rgb: np.ndarray) -> list[tuple[np.ndarray, float]]:
        """Alignment keypoints (4, 2) in image pixels + score, one per candidate, best first."""
        import cv2

        h, w = rgb.shape[:2]
        scale = DET_SIZE / max(h, w)
        nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
        pad_y, pad_x = (DET_SIZE - nh) // 2, (DET_SIZE - nw) // 2
        canvas = np.zeros((DET_SIZE, DET_SIZE, 3), np.float32)
        canvas[pad_y:pad_y + nh, pad_x:pad_x + nw] = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA)
        canvas[pad_y:pad_y + nh, pad_x:pad_x + nw] = canvas[pad_y:pad_y + nh, pad_x:pad_x + nw] / 127.5 - 1.0
        self.det.set_tensor(self._det_in, canvas[None])
        self.det.invoke()
        self.runs["detector"] += 1
        boxes, kps, scores = decode_detections(self.det.get_tensor(self._det_boxes)[0],
                                               self.det.get_tensor(self._det_scores)[0],
                                               self.anchors, self.min_detection)
        return [((kp * DET_SIZE - (pad_x, pad_y)) / scale, score)
                for _, kp, score in weighted_nms(boxes, kps, scores)[: self.candidates]]

    def landmarks(self, rgb: np.ndarray, align: np.ndarray) -> tuple[np.ndarray, float, np.ndarray, np.ndarray]:
        """(39, 5) landmarks: x, y in image pixels, z, visibility and presence probabilities;
        the pose flag; the 2x3 ROI matrix (crop pixels -> image pixels); the segmentation
        logits of the crop (256, 256)."""
        import cv2

        m = roi_matrix(*roi_from_detection(align))
        crop = cv2.warpAffine(rgb, m, (LMK_SIZE, LMK_SIZE), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        self.lmk.set_tensor(self._lmk_in, (crop.astype(np.float32) / 255.0)[None])
        self.lmk.invoke()
        self.runs["landmarks"] += 1
        pts = self.lmk.get_tensor(self._lmk_points).reshape(39, 5).astype(np.float64)
        flag = float(self.lmk.get_tensor(self._lmk_flag).reshape(-1)[0])
        out = pts.copy()
        out[:, :2] = np.concatenate([pts[:, :2], np.ones((39, 1))], axis=1) @ m.T
        out[:, 3:5] = _sigmoid(pts[:, 3:5])
        seg = self.lmk.get_tensor(self._lmk_seg)[0, :, :, 0].astype(np.float32)  # a copy
        return out, flag, m, seg

    @staticmethod
    def mask(seg: np.ndarray, m: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        """Boolean person mask in image pixels from a landmark run's segmentation logits."""
        import cv2

        return cv2.warpAffine(seg, m, (shape[1], shape[0]), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=-100.0) > 0

    @staticmethod
    def refine_doubt(flag: float, align: np.ndarray, lm: np.ndarray, min_visibility: float = MIN_VISIBILITY) -> bool:
        """True if a landmark run leaves doubt: pose flag < DOUBT_FLAG; or a hip, knee or ankle
        it is unsure of (visibility in [min_visibility, DOUBT_LEGS): whether it is reported, and
        where, decides completeness downstream); or the ROI of its own alignment landmarks
        33/34 differs from the ROI it ran in (`align`) by more than DOUBT_ROI (centre shift /
        side, or |log| of the side ratio): the crop was poor."""
        legs = lm[LEG_LANDMARKS, 3]
        if flag < DOUBT_FLAG or ((legs >= min_visibility) & (legs < DOUBT_LEGS)).any():
            return True
        x0, y0, s0, _ = roi_from_detection(align)
        x1, y1, s1, _ = roi_from_detection(lm[33:35, :2])
        if not (s0 > 0 and s1 > 0):
            return True
        return math.hypot(x1 - x0, y1 - y0) / s0 > DOUBT_ROI or abs(math.log(s1 / s0)) > DOUBT_ROI

    def _person(self, rgb: np.ndarray, align: np.ndarray):
        """(landmarks, flag, roi matrix, segmentation) of the better of the detection's run and
        the refinement run (`refine`), or None if not a person."""
        first = self.landmarks(rgb, align)
        best = first
        if self.refine == "always" or (self.refine == "auto"
                                       and self.refine_doubt(first[1], align, first[0], self.min_visibility)):
            self.runs["refined"] += 1
            refined = self.landmarks(rgb, first[0][33:35, :2])
            best = refined if refined[1] >= first[1] else first
        return best if best[1] >= self.min_presence else None

    @staticmethod
    def uncovered_foreground(rgb: np.ndarray, segs: list[tuple[np.ndarray, np.ndarray]]) -> float:
        """Largest blob of foreground that the people found do not cover, as a fraction of the
        image: the doubt signal for the second pass. `segs`: (segmentation logits, ROI matrix)
        per person. On the image shrunk to DOUBT_GRID px: person masks dilated by 2 % of the
        image, background = median colour of the rest, foreground = more than FOREGROUND_DIFF
        grey levels from it in some channel."""
        import cv2

        h, w = rgb.shape[:2]
        scale = min(1.0, DOUBT_GRID / max(h, w))
        sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
        small = cv2.resize(rgb, (sw, sh), interpolation=cv2.INTER_AREA)
        to_small = np.array([[sw / w], [sh / h]])
        person = np.zeros((sh, sw), bool)
        for seg, m in segs:
            person |= cv2.warpAffine(seg, m * to_small, (sw, sh), flags=cv2.INTER_LINEAR,
                                     borderMode=cv2.BORDER_CONSTANT, borderValue=-100.0) > 0
        k = max(3, round(0.02 * max(sh, sw))) | 1
        person = cv2.dilate(person.astype(np.uint8), np.ones((k, k), np.uint8)) > 0
        if person.all():
            return 0.0
        background = np.median(small[~person], axis=0)
        fg = (np.abs(small.astype(np.int16) - background.astype(np.int16)).max(axis=2) > FOREGROUND_DIFF) & ~person
        n, _, stats, _ = cv2.connectedComponentsWithStats(fg.astype(np.uint8), connectivity=8)
        return float(stats[1:, cv2.CC_STAT_AREA].max()) / (sw * sh) if n > 1 else 0.0

    def _find(self, rgb: np.ndarray, people: list, masks: list | None = None) -> None:
        """Add the people found in `rgb` to `people`; (segmentation, ROI matrix) of each to
        `masks` if given."""
        for align, _ in self.detect(rgb):
            if len(people) >= self.max_people:
                return
            found = self._person(rgb, align)
            if found is None:
                continue
            lm, flag, m, seg = found
            if any(same_person(lm, other) for other, _ in people):
                continue
            people.append((lm, flag))
            if masks is not None:
                masks.append((seg, m))

    def find_people(self, rgb: np.ndarray) -> list[tuple[np.ndarray, float]]:
        """(39, 5) landmarks (see `landmarks`) and pose flag of each person, detector order."""
        import cv2

        people, segs = [], []
        self._find(rgb, people, segs if self.second_pass != "never" else None)
        if (people and len(people) < self.max_people and self.second_pass != "never"
                and (self.second_pass == "always" or self.uncovered_foreground(rgb, segs) > DOUBT_UNCOVERED)):
            self.runs["second_pass"] += 1
            hidden = np.logical_or.reduce([self.mask(seg, m, rgb.shape[:2]) for seg, m in segs])
            k = max(3, round(0.02 * max(rgb.shape[:2]))) | 1
            hidden = cv2.dilate(hidden.astype(np.uint8), np.ones((k, k), np.uint8)) > 0
            if (~hidden).any():
                painted = rgb.copy()
                painted[hidden] = np.median(rgb[~hidden], axis=0).astype(rgb.dtype)
                self._find(painted, people)
        if not people:  # the detector is not mirror-symmetric: a second look
            w = rgb.shape[1]
            self._find(np.ascontiguousarray(rgb[:, ::-1]), people)
            for lm, _ in people:
                lm[:, 0] = w - 1 - lm[:, 0]
                lm[:33] = lm[MIRROR]
        return people

    def to_coco(self, lm: np.ndarray, width: int, height: int) -> np.ndarray:
        """COCO-18 (18, 3) from (39, 5) landmarks: score = visibility x presence; joints outside
        the image or with visibility below `min_visibility` are missing."""
        xy, vis, pres = lm[:33, :2], lm[:33, 3], lm[:33, 4]
        inside = (xy[:, 0] >= 0) & (xy[:, 0] <= width - 1) & (xy[:, 1] >= 0) & (xy[:, 1] <= height - 1)
        keep = inside & (vis >= self.min_visibility)
        kp33 = np.concatenate([xy, np.maximum(vis * pres, 1e-3)[:, None]], axis=1).astype(np.float32)
        kp33[~keep] = (-1, -1, 0)  # OpenPose never reports joints outside the frame
        return skeleton.from_blazepose(kp33)

    def __call__(self, rgb: np.ndarray) -> list[np.ndarray]:
        """COCO-18 skeletons (18, 3) of the people in an RGB uint8 image."""
        h, w = rgb.shape[:2]
        return [self.to_coco(lm, w, h) for lm, _ in self.find_people(rgb)]


def pass_mode(value: str | bool) -> str:
    """"auto" | "always" | "never"; True / False (the old boolean options) = "always" / "never"."""
    if isinstance(value, bool):
        return "always" if value else "never"
    if value not in PASS_MODES:
        raise PgkitError(None, f"pass mode must be one of {', '.join(PASS_MODES)}, got {value!r}")
    return value


def same_person(a: np.ndarray, b: np.ndarray, overlap: float = SAME_PERSON_OVERLAP) -> bool:
    """True if two landmark sets (39, >=2) describe one person: their body boxes (33 landmarks)
    overlap by more than `overlap` of the smaller box (two candidates of one person converge
    to the same landmarks after the refinement pass; people side by side overlap far less)."""
    def box(lm):
        xy = lm[:33, :2]
        return np.array([*xy.min(0), *xy.max(0)])
    ba, bb = box(a), box(b)
    iw = max(0.0, min(ba[2], bb[2]) - max(ba[0], bb[0]))
    ih = max(0.0, min(ba[3], bb[3]) - max(ba[1], bb[1]))
    area = lambda q: max((q[2] - q[0]) * (q[3] - q[1]), 1e-9)  # noqa: E731
    return iw * ih / min(area(ba), area(bb)) > overlap


_models = threading.local()  # interpreters are not thread-safe: one model per (dask) worker thread


def _model(min_detection: float, min_presence: float, max_people: int, min_visibility: float,
           second_pass: str, refine: str, threads: int) -> BlazePose:
    key = (min_detection, min_presence, max_people, min_visibility, second_pass, refine, threads)
    if getattr(_models, "key", None) != key:
        _models.model = BlazePose(min_detection, min_presence, max_people, min_visibility,
                                  second_pass=second_pass, refine=refine, threads=threads)
        _models.key = key
    return _models.model


def _estimate_chunk(items: list[tuple[str, str]], opts: tuple) -> list[tuple[str, int, str | None]]:
    """Worker (loky process or dask worker thread): (image path, json path) pairs -> (image,
    people, error); writes each JSON atomically, so a killed run leaves only finished files."""
    from pgprep.geometry import read_rgb

    model = _model(*opts)
    out = []
    for img_path, json_path in items:
        try:
            rgb = read_rgb(img_path)
        except PgkitError as exc:
            out.append((img_path, 0, exc.reason))
            continue
        people = model(rgb)
        formats.write_openpose_json(json_path, people)
        out.append((img_path, len(people), None))
    return out


def image_dir(root: Path) -> Path:
    """ROOT/img, or ROOT itself for a Market-1501 release (its folders are the tree to mirror)."""
    from pgprep import market

    return root if not (root / "img").is_dir() and market.is_market_root(root) else root / "img"


def list_images(root: Path) -> list[str]:
    """Image paths relative to ROOT/img (Market-1501: to ROOT, below its three folders), sorted."""
    from pgprep import market

    img = image_dir(root)
    if img == root:
        return sorted(f"{d}/{p.name}" for d in market.FOLDERS if (root / d).is_dir()
                      for p in (root / d).iterdir() if p.suffix.lower() in IMAGE_EXTS and p.is_file())
    if not img.is_dir():
        raise PgkitError(root, "not a DeepFashion-style tree: expected ROOT/img/<MEN|WOMEN>/<Category>/"
                               "id_XXXXXXXX/*.jpg")
    return sorted(p.relative_to(img).as_posix() for p in img.rglob("*")
                  if p.suffix.lower() in IMAGE_EXTS and p.is_file())


def estimate_poses(root, out, estimator: str = "mediapipe", jobs: int | None = None, *,
                   min_detection: float = MIN_DETECTION, min_presence: float = 0.5, max_people: int = 4,
                   min_visibility: float = MIN_VISIBILITY, second_pass: str | bool = "auto",
                   refine: str | bool = "auto", threads: int = 1, limit: int | None = None,
                   backend: str = "loky", scheduler: str | None = None,
                   cluster_options: dict | None = None) -> dict:
    """Run BlazePose on every image under ROOT/img; write OUT/<tree>/<stem>_keypoints.json.

    Resumable: images whose JSON exists are skipped. Returns counts: images, done, skipped,
    failed (unreadable images, listed in `errors`), people, with_person.
    `backend`/`scheduler`/`cluster_options` as for `pgprep.parallel.run_jobs`: loky (processes
    on this machine) or dask (every worker must see ROOT and OUT at the same paths); the JSON
    is the same bytes on both.
    """
    if estimator not in ESTIMATORS:
        raise PgkitError(None, f"unknown estimator {estimator!r}; available: {', '.join(ESTIMATORS)}")
    model_paths()  # fail early, with the install command
    root, out = Path(root), Path(out)
    images = list_images(root)
    if limit is not None:
        images = images[:limit]
    todo = [(str(image_dir(root) / rel), str(out / formats.openpose_json_name(rel))) for rel in images]
    todo = [t for t in todo if not os.path.exists(t[1])]
    counts = {"images": len(images), "skipped": len(images) - len(todo), "done": 0, "failed": 0,
              "people": 0, "with_person": 0, "errors": {}}
    if not todo:
        return counts
    from pgprep.cliutil import progress

    opts = (float(min_detection), float(min_presence), int(max_people), float(min_visibility),
            pass_mode(second_pass), pass_mode(refine), int(threads))
    n_jobs = jobs if jobs is not None else default_jobs()
    chunk = max(1, min(64, len(todo) // max(1, 4 * n_jobs)))
    chunks = [todo[i:i + chunk] for i in range(0, len(todo), chunk)]
    bar = progress(total=len(todo), desc="pose", unit="img")
    for res in run_jobs(functools.partial(_estimate_chunk, opts=opts), chunks, jobs=n_jobs, backend=backend,
                        scheduler=scheduler, cluster_options=cluster_options):
        for img_path, n, err in res:
            if err:
                counts["failed"] += 1
                counts["errors"][img_path] = err
            else:
                counts["done"] += 1
                counts["people"] += n
                counts["with_person"] += int(n > 0)
        bar.update(len(res))
    bar.close()
    return counts


@click.command("pose")
@click.argument("root", type=click.Path(file_okay=False, path_type=Path))
@click.option("-o", "--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Directory for the OpenPose JSON files (mirrors ROOT/img).")
@click.option("--estimator", type=click.Choice(ESTIMATORS), default="mediapipe", show_default=True,
              help="Pose estimator.")
@click.option("--jobs", type=int, default=None,
              help="Parallel workers (default: all cores; workers for a local dask cluster).")
@click.option("--backend", type=click.Choice(BACKENDS), default="loky", show_default=True,
              help="joblib backend: loky (processes on this machine) or dask (a dask.distributed "
                   "cluster); the same JSON bytes on both.")
@click.option("--scheduler", default=None, metavar="ADDR",
              help="dask scheduler address, e.g. tcp://10.0.0.5:8786 (default: a LocalCluster).")
@click.option("--threads", type=int, default=1, show_default=True,
              help="Interpreter threads per worker process (one worker per core, 1 thread each, is fastest).")
@click.option("--min-detection", type=float, default=MIN_DETECTION, show_default=True,
              help="Person detector score threshold for a candidate (the landmark model's "
                   "pose flag then decides).")
@click.option("--min-presence", type=float, default=0.5, show_default=True,
              help="Landmark model pose-presence threshold.")
@click.option("--min-visibility", type=float, default=MIN_VISIBILITY, show_default=True,
              help="Landmarks with a lower visibility probability are reported missing.")
@click.option("--second-pass", "second_pass", type=click.Choice(PASS_MODES), default="auto", show_default=True,
              help="Paint out the people found and run the detector again (finds a second person): "
                   "auto = only when foreground outside the people found is left (docs/pose.md).")
@click.option("--no-second-pass", "second_pass", flag_value="never", hidden=True)
@click.option("--refine", type=click.Choice(PASS_MODES), default="auto", show_default=True,
              help="Rerun the landmark model in its own ROI: auto = only when the first run is "
                   "unsure (pose flag < 0.99, a hip/knee/ankle of visibility 0.3-0.6, or its ROI "
                   "moved by > 10 %). `--refine always "
                   "--second-pass always` is pgkit 0.1.0's slower behaviour, the same bytes.")
@click.option("--max-people", type=int, default=4, show_default=True, help="People per image at most.")
@click.option("--limit", type=int, default=None, help="Only the first N images (sorted), for a trial.")
def command(root, out, estimator, jobs, backend, scheduler, threads, min_detection, min_presence,
            min_visibility, second_pass, refine, max_people, limit):
    """Run BlazePose on every image of ROOT/img and write OpenPose JSON keypoints.

    One POSES/<tree below img/>/<stem>_keypoints.json per image, COCO-18 order, several
    `people` entries when several persons are found, score = visibility x presence of the
    landmark; landmarks outside the image or less likely visible than --min-visibility
    are left out (0, 0, 0).
    `pgprep filter ROOT --poses POSES` ingests them like any OpenPose output.

    \b
    Example:
      pgprep pose data/synth -o data/poses --jobs 2
      pgprep filter data/synth --poses data/poses -o data/work
      pgprep pose data/deepfashion -o data/poses --backend dask --scheduler tcp://10.0.0.5:8786

    \b
    Needs the optional extra (models from the mediapipe wheel, run with LiteRT;
    mediapipe itself is never imported):
      pip install "pgkit[pose]" && pip install --no-deps mediapipe==0.10.21

    Resumable: images whose JSON already exists are skipped, so an interrupted run
    continues where it stopped and a finished one does nothing.
    """
    counts = estimate_poses(root, out, estimator=estimator, jobs=jobs, min_detection=min_detection,
                            min_presence=min_presence, max_people=max_people,
                            min_visibility=min_visibility, second_pass=second_pass, refine=refine,
                            threads=threads, limit=limit, backend=backend, scheduler=scheduler)
    if counts["skipped"] == counts["images"]:
        click.echo(f"pose: all {counts['images']} images already have keypoints in {out}; nothing to do")
        return
    from pgprep.cliutil import echo_table

    echo_table([[counts["images"], counts["skipped"], counts["done"], counts["with_person"],
                 counts["people"], counts["failed"]]],
               ["images", "already done", "processed", "with a person", "people", "unreadable"])
    for path, err in list(counts["errors"].items())[:10]:
        click.echo(f"unreadable: {path}: {err}")
