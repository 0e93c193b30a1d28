"""Keypoint file formats: OpenPose JSON, the PATN annotation CSV, PG²-style pose pickles.

All readers return COCO-18 skeletons in pgprep.skeleton's convention ((18, 3) float32 x, y,
score; missing = -1, -1, 0) and raise PgkitError naming the file (and line) on bad input.
"""

from __future__ import annotations

import io
import json
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pgprep import skeleton
from pgprep.atomic import write_text_atomic
from pgprep.errors import PgkitError, UnsafePickleError

# ---------------------------------------------------------------- OpenPose JSON

OPENPOSE_SUFFIX = "_keypoints.json"


def openpose_json_name(image_rel: str) -> str:
    """`img/A/B/01_1_front.jpg` -> `img/A/B/01_1_front_keypoints.json` (mirrors the image tree)."""
    stem, _ = os.path.splitext(image_rel)
    return stem + OPENPOSE_SUFFIX


def openpose_dict(people: list[np.ndarray]) -> dict:
    return {"version": 1.3,
            "people": [{"person_id": [-1], "pose_keypoints_2d": skeleton.to_openpose_list(p)}
                       for p in people]}


def write_openpose_json(path: str | os.PathLike, people: list[np.ndarray]) -> None:
    write_text_atomic(path, json.dumps(openpose_dict(people), separators=(",", ":")))


def read_openpose_json(path: str | os.PathLike) -> list[np.ndarray]:
    """One COCO-18 skeleton per entry of `people` (BODY_25 is converted)."""
    return read_openpose_people(path)[0]


def read_openpose_people(path: str | os.PathLike) -> tuple[list[np.ndarray], str]:
    """(skeletons, kind) where kind is 'COCO-18', 'BODY_25' or 'empty' (no people).

    Raises PgkitError on unreadable/malformed files, on a keypoint list of another length and on
    non-finite values (NaN/inf), which would otherwise silently become missing joints.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PgkitError(path, f"cannot read OpenPose JSON ({exc})") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PgkitError(path, f"malformed JSON at line {exc.lineno}: {exc.msg}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("people"), list):
        raise PgkitError(path, "not OpenPose output: expected an object with a 'people' list")
    out, kinds = [], set()
    for i, person in enumerate(doc["people"]):
        vals = person.get("pose_keypoints_2d") if isinstance(person, dict) else None
        if not isinstance(vals, list):
            raise PgkitError(path, f"people[{i}] has no pose_keypoints_2d list")
        try:
            arr = np.asarray(vals, dtype=np.float64).reshape(-1)
        except (ValueError, TypeError) as exc:
            raise PgkitError(path, f"people[{i}]: {exc}") from None
        if not np.isfinite(arr).all():
            bad = int(np.flatnonzero(~np.isfinite(arr))[0]) // 3
            raise PgkitError(path, f"non-finite keypoint value in people[{i}], joint {bad}")
        try:
            out.append(skeleton.from_openpose_list(arr))
        except ValueError as exc:
            raise PgkitError(path, f"people[{i}]: {exc}") from None
        kinds.add({54: "COCO-18", 75: "BODY_25"}[arr.size])
    if len(kinds) > 1:
        raise PgkitError(path, "mixes COCO-18 and BODY_25 people in one file")
    return out, (kinds.pop() if kinds else "empty")


# ---------------------------------------------------------------- PATN annotation CSV

PATN_HEADER = "name:keypoints_y:keypoints_x"


@dataclass
class CsvRead:
    """Skeletons by name from a CSV, plus the rows that could not be parsed."""

    poses: dict[str, np.ndarray] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)  # name (or "line N") -> reason


def write_patn_csv(path: str | os.PathLike, poses: dict[str, np.ndarray]) -> None:
    """Deformable-GAN/PATN format: `name: [y0..y17]: [x0..x17]`, missing joints -1."""
    lines = [PATN_HEADER]
    for name, kp in poses.items():
        kp = skeleton.clean(kp)
        ok = skeleton.present(kp)
        ys = [int(round(float(v))) if o else -1 for v, o in zip(kp[:, 1], ok, strict=True)]
        xs = [int(round(float(v))) if o else -1 for v, o in zip(kp[:, 0], ok, strict=True)]
        lines.append(f"{name}: {json.dumps(ys)}: {json.dumps(xs)}")
    write_text_atomic(path, "\n".join(lines) + "\n")


def read_patn_csv(path: str | os.PathLike, x_offset: float = 0.0) -> CsvRead:
    """Read a PATN annotation CSV; malformed rows are recorded with their line number.

    `x_offset` is added to every present x (use 40 for annotations of 256x176 centre crops to
    map them back onto the 256x256 image).
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PgkitError(path, f"cannot read annotation CSV ({exc})") from None
    lines = text.splitlines()
    if not lines or lines[0].replace(" ", "") != PATN_HEADER:
        raise PgkitError(path, f"not a PATN annotation CSV: first line must be '{PATN_HEADER}'")
    res = CsvRead()
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        parts = line.split(":")
        name = parts[0].strip()
        try:
            if len(parts) != 3:
                raise ValueError(f"expected 3 ':'-separated fields, found {len(parts)}")
            ys = np.asarray(json.loads(parts[1]), dtype=np.float64)
            xs = np.asarray(json.loads(parts[2]), dtype=np.float64)
            if ys.shape != (18,) or xs.shape != (18,):
                raise ValueError(f"expected 18 y and 18 x values, found {ys.size} and {xs.size}")
        except (ValueError, TypeError) as exc:  # json errors are ValueErrors
            res.errors[name or f"line {lineno}"] = f"malformed annotation row at line {lineno}: {exc}"
            continue
        if not (np.isfinite(ys).all() and np.isfinite(xs).all()):
            res.errors[name] = f"non-finite keypoint value at line {lineno}"
            continue
        kp = skeleton.empty()
        ok = (ys >= 0) & (xs >= 0)
        kp[ok, 0] = xs[ok] + x_offset
        kp[ok, 1] = ys[ok]
        kp[ok, 2] = 1.0
        res.poses[name] = kp
    return res


# ---------------------------------------------------------------- PG²-style pose pickles

_SAFE_GLOBALS = {
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("builtins", "set"), ("builtins", "frozenset"), ("builtins", "complex"),
    ("__builtin__", "set"),
    ("collections", "OrderedDict"),
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Builds only plain containers, numbers, strings and numpy arrays; never runs code."""

    def __init__(self, file, path):
        super().__init__(file, encoding="latin1")
        self._path = path

    def find_class(self, module, name):
        if (module, name) in _SAFE_GLOBALS:
            return super().find_class(module, name)
        raise UnsafePickleError(
            self._path, f"refused: pickle wants to build {module}.{name}, which could run code; "
            "only containers, numbers, strings and numpy arrays are allowed")


def load_pickle_safely(path: str | os.PathLike):
    """Load a pickle with the restricted unpickler (raises UnsafePickleError on anything else)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise PgkitError(path, f"cannot read pickle ({exc.strerror})") from None
    try:
        return _RestrictedUnpickler(io.BytesIO(data), os.fspath(path)).load()
    except UnsafePickleError:
        raise
    except Exception as exc:  # noqa: BLE001 - any decoding failure of untrusted bytes
        raise PgkitError(path, f"not a readable pickle ({type(exc).__name__}: {exc})") from None


def pose_from_pickle_value(value) -> tuple[np.ndarray, int]:
    """One pickle entry -> (COCO-18 skeleton, persons seen).

    Accepted values: an (18, 2)/(18, 3) array-like (x, y[, score]; negative = missing), or PG²'s
    `all_peaks`: 18 lists of peaks `(x, y, score[, id])`. Several peaks for a joint mean several
    people; the strongest peak is kept, and the count is returned.
    """
    arr = None
    try:
        arr = np.asarray(value, dtype=np.float32)
    except (ValueError, TypeError):
        arr = None
    if arr is not None and arr.ndim == 2 and arr.shape[0] == 18 and arr.shape[1] in (2, 3):
        if not np.isfinite(arr).all():
            raise ValueError(f"non-finite keypoint value at joint {int(np.flatnonzero(~np.isfinite(arr).all(axis=1))[0])}")
        kp = skeleton.empty()
        ok = (arr[:, 0] >= 0) & (arr[:, 1] >= 0) & np.isfinite(arr[:, :2]).all(axis=1)
        kp[ok, :2] = arr[ok, :2]
        kp[ok, 2] = arr[ok, 2] if arr.shape[1] == 3 else 1.0
        if arr.shape[1] == 3:
            kp[ok & (arr[:, 2] <= 0)] = (-1, -1, 0)
        return skeleton.clean(kp), 1
    if isinstance(value, (list, tuple)) and len(value) == 18:
        kp = skeleton.empty()
        persons = 1
        for j, peaks in enumerate(value):
            peaks = list(peaks) if peaks is not None else []
            if not peaks:
                continue
            persons = max(persons, len(peaks))
            if not all(np.isfinite(np.asarray(p[:3], dtype=np.float64)).all() for p in peaks):
                raise ValueError(f"non-finite keypoint value at joint {j}")
            best = max(peaks, key=lambda p: float(p[2]) if len(p) > 2 else 1.0)
            score = float(best[2]) if len(best) > 2 else 1.0
            kp[j] = (float(best[0]), float(best[1]), score if score > 0 else 1e-3)
        return skeleton.clean(kp), persons
    raise ValueError("expected 18 keypoints as an (18, 2|3) array or 18 lists of peaks")


def read_pose_pickle(path: str | os.PathLike) -> tuple[dict[str, tuple[np.ndarray, int]], dict[str, str]]:
    """A PG²-style pickle: dict image-name -> pose. Returns ({name: (kp, persons)}, {name: error})."""
    obj = load_pickle_safely(path)
    if not isinstance(obj, dict):
        raise PgkitError(path, f"pose pickle must hold a dict of image name -> keypoints, found {type(obj).__name__}")
    poses, errors = {}, {}
    for name, value in obj.items():
        name = name.decode() if isinstance(name, bytes) else str(name)
        try:
            poses[name] = pose_from_pickle_value(value)
        except ValueError as exc:
            errors[name] = f"bad pose in pickle: {exc}"
    return poses, errors
