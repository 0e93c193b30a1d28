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
   (x, y, z, visibility, presence); they are mapped back to image pixels and to COCO-18
   (neck = mid-shoulders) with score = sigmoid(visibility).

Parameters follow MediaPipe's graphs: pose_detection_cpu.pbtxt (anchors, decoding, NMS),
pose_detection_to_roi.pbtxt and tensors_to_pose_landmarks_and_segmentation.pbtxt.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import os
from pathlib import Path

import click
import numpy as np

from pgprep import formats, skeleton
from pgprep.errors import PgkitError

ESTIMATORS = ("mediapipe",)
INSTALL = 'pip install "pgkit[pose]" && pip install --no-deps mediapipe==0.10.21'
DETECTOR = "modules/pose_detection/pose_detection.tflite"
LANDMARKER = "modules/pose_landmark/pose_landmark_full.tflite"
IMAGE_EXTS = (".jpg", ".jpeg", ".png")

# SsdAnchorsCalculatorOptions of pose_detection_cpu.pbtxt
ANCHORS = {"input_size": 224, "strides": (8, 16, 32, 32, 32), "offset": 0.5,
           "aspect_ratios": (1.0,), "interpolated_scale_aspect_ratio": 1.0, "fixed_anchor_size": True}
DET_SIZE = 224
LMK_SIZE = 256
ROI_SCALE = 1.25          # RectTransformationCalculator scale_x / scale_y (full-body ROI)
NMS_IOU = 0.3             # NonMaxSuppressionCalculator min_suppression_threshold
SCORE_CLIP = 100.0        # score_clipping_thresh


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
    """Detector + landmark interpreters (one per worker process)."""

    def __init__(self, min_detection: float = 0.5, min_presence: float = 0.5, max_people: int = 4):
        from ai_edge_litert.interpreter import Interpreter

        det, lmk = model_paths()
        self.det = Interpreter(model_path=str(det), num_threads=1)
        self.lmk = Interpreter(model_path=str(lmk), num_threads=1)
        self.det.allocate_tensors()
        self.lmk.allocate_tensors()
        self._det_in = self.det.get_input_details()[0]["index"]
        out = {d["shape"][-1]: d["index"] for d in self.det.get_output_details()}
        self._det_boxes, self._det_scores = out[12], out[1]
        self._lmk_in = self.lmk.get_input_details()[0]["index"]
        lo = {tuple(d["shape"][1:]): d["index"] for d in self.lmk.get_output_details()}
        self._lmk_points, self._lmk_flag = lo[(195,)], lo[(1,)]
        self.anchors = ssd_anchors()
        self.min_detection, self.min_presence, self.max_people = min_detection, min_presence, max_people

    def detect(self, rgb: np.ndarray) -> list[tuple[np.ndarray, float]]:
        """Alignment keypoints (4, 2) in image pixels + score, one per person found."""
        import cv2

        h, w = rgb.shape[:2]
        scale = DET_SIZE / max(h, w)
        nh, nw = round(h * scale), round(w * scale)
        pad_y, pad_x = (DET_SIZE - nh) // 2, (DET_SIZE - nw) // 2
        canvas = np.zeros((DET_SIZE, DET_SIZE, 3), np.float32)
        canvas[pad_y:pad_y + nh, pad_x:pad_x + nw] = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA)
        canvas[pad_y:pad_y + nh, pad_x:pad_x + nw] = canvas[pad_y:pad_y + nh, pad_x:pad_x + nw] / 127.5 - 1.0
        self.det.set_tensor(self._det_in, canvas[None])
        self.det.invoke()
        boxes, kps, scores = decode_detections(self.det.get_tensor(self._det_boxes)[0],
                                               self.det.get_tensor(self._det_scores)[0],
                                               self.anchors, self.min_detection)
        found = []
        for _, kp, score in weighted_nms(boxes, kps, scores)[: self.max_people]:
            px = (kp * DET_SIZE - (pad_x, pad_y)) / scale
            found.append((px, score))
        return found

    def landmarks(self, rgb: np.ndarray, align: np.ndarray) -> tuple[np.ndarray, float]:
        """(33, 3) landmarks x, y (image pixels), visibility; and the pose presence score."""
        import cv2

        m = roi_matrix(*roi_from_detection(align))
        crop = cv2.warpAffine(rgb, m, (LMK_SIZE, LMK_SIZE), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        self.lmk.set_tensor(self._lmk_in, (crop.astype(np.float32) / 255.0)[None])
        self.lmk.invoke()
        pts = self.lmk.get_tensor(self._lmk_points).reshape(39, 5)[:33]
        flag = float(self.lmk.get_tensor(self._lmk_flag).reshape(-1)[0])
        uv1 = np.concatenate([pts[:, :2], np.ones((33, 1))], axis=1)
        xy = uv1 @ m.T
        return np.concatenate([xy, _sigmoid(pts[:, 3:4])], axis=1).astype(np.float32), flag

    def __call__(self, rgb: np.ndarray) -> list[np.ndarray]:
        """COCO-18 skeletons (18, 3) of the people in an RGB uint8 image."""
        h, w = rgb.shape[:2]
        people = []
        for align, _ in self.detect(rgb):
            lm, presence = self.landmarks(rgb, align)
            if presence < self.min_presence:
                continue
            inside = (lm[:, 0] >= 0) & (lm[:, 0] <= w - 1) & (lm[:, 1] >= 0) & (lm[:, 1] <= h - 1)
            lm[~inside] = (-1, -1, 0)  # OpenPose never reports joints outside the frame
            lm[inside, 2] = np.maximum(lm[inside, 2], 1e-3)
            people.append(skeleton.from_blazepose(lm))
        return people


@functools.lru_cache(maxsize=2)
def _model(min_detection: float, min_presence: float, max_people: int) -> BlazePose:
    return BlazePose(min_detection, min_presence, max_people)


def _estimate_chunk(items: list[tuple[str, str]], opts: tuple) -> list[tuple[str, int, str | None]]:
    """Worker: (image path, json path) pairs -> (image, people, error)."""
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


def list_images(root: Path) -> list[str]:
    """Image paths relative to ROOT/img, sorted (the tree to mirror)."""
    img = root / "img"
    if not img.is_dir():
        raise PgkitError(root, "not a DeepFashion-style tree: expected ROOT/img/<MEN|WOMEN>/<Category>/"
                               "id_XXXXXXXX/*.jpg")
    return sorted(p.relative_to(img).as_posix() for p in img.rglob("*")
                  if p.suffix.lower() in IMAGE_EXTS and p.is_file())


def estimate_poses(root, out, estimator: str = "mediapipe", jobs: int | None = None, *,
                   min_detection: float = 0.5, min_presence: float = 0.5, max_people: int = 4,
                   limit: int | None = None) -> dict:
    """Run BlazePose on every image under ROOT/img; write OUT/<tree>/<stem>_keypoints.json.

    Resumable: images whose JSON exists are skipped. Returns counts: images, done, skipped,
    failed (unreadable images, listed in `errors`), people, with_person.
    """
    if estimator not in ESTIMATORS:
        raise PgkitError(None, f"unknown estimator {estimator!r}; available: {', '.join(ESTIMATORS)}")
    model_paths()  # fail early, with the install command
    root, out = Path(root), Path(out)
    images = list_images(root)
    if limit is not None:
        images = images[:limit]
    todo = [(str(root / "img" / rel), str(out / formats.openpose_json_name(rel))) for rel in images]
    todo = [t for t in todo if not os.path.exists(t[1])]
    counts = {"images": len(images), "skipped": len(images) - len(todo), "done": 0, "failed": 0,
              "people": 0, "with_person": 0, "errors": {}}
    if not todo:
        return counts
    from pgprep.cliutil import progress

    opts = (float(min_detection), float(min_presence), int(max_people))
    n_jobs = jobs if jobs is not None else (os.cpu_count() or 1)
    chunk = max(1, min(64, len(todo) // max(1, 4 * n_jobs)))
    chunks = [todo[i:i + chunk] for i in range(0, len(todo), chunk)]
    bar = progress(total=len(todo), desc="pose", unit="img")
    if n_jobs == 1 or len(chunks) == 1:
        results = (_estimate_chunk(c, opts) for c in chunks)
    else:
        from joblib import Parallel, delayed

        results = Parallel(n_jobs=n_jobs, return_as="generator")(delayed(_estimate_chunk)(c, opts) for c in chunks)
    for res in results:
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
@click.option("--jobs", type=int, default=None, help="Worker processes (default: all cores).")
@click.option("--min-detection", type=float, default=0.5, show_default=True,
              help="Person detector score threshold.")
@click.option("--min-presence", type=float, default=0.5, show_default=True,
              help="Landmark model pose-presence threshold.")
@click.option("--max-people", type=int, default=4, show_default=True, help="People per image at most.")
@click.option("--limit", type=int, default=None, help="Only the first N images (sorted), for a trial.")
def command(root, out, estimator, jobs, min_detection, min_presence, max_people, limit):
    """Run BlazePose on every image of ROOT/img and write OpenPose JSON keypoints.

    One POSES/<tree below img/>/<stem>_keypoints.json per image, COCO-18 order, several
    `people` entries when the detector finds several persons, score = landmark visibility.
    `pgprep filter ROOT --poses POSES` ingests them like any OpenPose output.

    \b
    Example:
      pgprep pose data/synth -o data/poses --jobs 2
      pgprep filter data/synth --poses data/poses -o data/work

    \b
    Needs the optional extra (models from the mediapipe wheel, run with LiteRT;
    mediapipe itself is never imported):
      pip install "pgkit[pose]" && pip install --no-deps mediapipe==0.10.21

    Resumable: images whose JSON already exists are skipped, so an interrupted run
    continues where it stopped and a finished one does nothing.
    """
    counts = estimate_poses(root, out, estimator=estimator, jobs=jobs, min_detection=min_detection,
                            min_presence=min_presence, max_people=max_people, limit=limit)
    if counts["skipped"] == counts["images"]:
        click.echo(f"pose: all {counts['images']} images already have keypoints in {out}; nothing to do")
        return
    from pgprep.cliutil import echo_table

    echo_table([[counts["images"], counts["skipped"], counts["done"], counts["with_person"],
                 counts["people"], counts["failed"]]],
               ["images", "already done", "processed", "with a person", "people", "unreadable"])
    for path, err in list(counts["errors"].items())[:10]:
        click.echo(f"unreadable: {path}: {err}")
