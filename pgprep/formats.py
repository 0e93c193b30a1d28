"""Keypoint file formats: OpenPose JSON, the PATN annotation CSV, PG²-style pose pickles.

All readers return COCO-18 skeletons in pgprep.skeleton's convention ((18, 3) float32 x, y,
score; missing = -1, -1, 0) and raise PgkitError naming the file (and line) on bad input.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pgprep import skeleton
from pgprep.atomic import write_text_atomic
from pgprep.errors import PgkitError, UnsafePickleError

# Resource limits on keypoint sources (docs/reliability.md). A keypoint file is small; these
# bound what a hostile one can make us read or build, far above any real file.
MAX_JSON_BYTES = 16 << 20        # one OpenPose JSON file (a 100-person file is ~30 KB)
MAX_CSV_BYTES = 1 << 30          # a PATN annotation CSV (DeepFashion's: ~10 MB)
MAX_CSV_ROW_CHARS = 64 << 10     # one CSV row (a real one is ~200 characters)
MAX_COORD = 1e6                  # |value| above this is not a pixel coordinate or a score
PICKLE_MAX_BYTES = 512 << 20     # a pose pickle (PG²'s for all of DeepFashion: ~40 MB)
PICKLE_MAX_DEPTH = 6             # container levels in one entry (PG²'s peaks use 3)
PICKLE_MAX_RECORD_ELEMENTS = 100_000     # elements of one entry, shared references counted
PICKLE_MAX_TOTAL_ELEMENTS = 20_000_000   # ... of all accepted entries of one file


def _check_size(path, limit: int, what: str) -> None:
    try:
        size = os.stat(path).st_size
    except OSError as exc:
        raise PgkitError(path, f"cannot read {what} ({exc.strerror})") from None
    if size > limit:
        raise PgkitError(path, f"{what} of {size:,} bytes is larger than the {limit}-byte limit")


def _number(v, where: str) -> float:
    """A JSON/pickle scalar as a float, or ValueError saying why it is not a coordinate."""
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise ValueError(f"{where}: {type(v).__name__} is not a number")
    try:
        f = float(v)
    except OverflowError:
        digits = int(int(v).bit_length() * 0.30103) + 1
        raise ValueError(f"{where}: integer of about {digits} digits is too large") from None
    if not np.isfinite(f):
        raise ValueError(f"non-finite keypoint value {f} at {where}")
    if abs(f) > MAX_COORD:
        raise ValueError(f"keypoint value {f:g} at {where} is beyond ±{MAX_COORD:g} (not a pixel coordinate)")
    return f


def _numbers(values, what: str, width: int = 3) -> np.ndarray:
    """A flat list of JSON numbers -> float64 array; `where` names the joint (index // width)."""
    if not isinstance(values, list):
        raise ValueError(f"{what}: expected a list of numbers, found {type(values).__name__}")
    out = np.empty(len(values), np.float64)
    for i, v in enumerate(values):
        where = f"{what}, joint {i // width}"
        if isinstance(v, (list, dict)):
            raise ValueError(f"{where}: nested {type(v).__name__} where a number belongs")
        out[i] = _number(v, where)
    return out


def _loads(text: str) -> object:
    """json.loads whose every failure (syntax, integer digit limit, nesting) is a ValueError."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise
    except RecursionError:
        raise ValueError("nested too deeply") from None
    except ValueError as exc:  # an integer of more than sys.get_int_max_str_digits() digits
        if "integer string conversion" in str(exc):
            raise ValueError(f"an integer of more than {sys.get_int_max_str_digits():,} digits "
                             "is not a usable number") from None
        raise ValueError(f"not a usable number ({exc})") from None

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


def read_openpose_people(path: str | os.PathLike, offframe: bool = False) -> tuple[list[np.ndarray], str]:
    """(skeletons, kind) where kind is 'COCO-18', 'BODY_25' or 'empty' (no people).

    Raises PgkitError on unreadable/malformed files (also: integers too large for a float,
    nesting too deep, files over MAX_JSON_BYTES), on a keypoint list of another length and on
    non-finite or huge values (beyond ±MAX_COORD), which would otherwise silently become
    missing joints. `offframe`: see `skeleton.from_openpose_list`.
    """
    _check_size(path, MAX_JSON_BYTES, "OpenPose JSON")
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise PgkitError(path, f"cannot read OpenPose JSON ({exc})") from None
    try:
        doc = _loads(text)
    except json.JSONDecodeError as exc:
        raise PgkitError(path, f"malformed JSON at line {exc.lineno}: {exc.msg}") from None
    except ValueError as exc:
        raise PgkitError(path, f"malformed JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("people"), list):
        raise PgkitError(path, "not OpenPose output: expected an object with a 'people' list")
    out, kinds = [], set()
    for i, person in enumerate(doc["people"]):
        vals = person.get("pose_keypoints_2d") if isinstance(person, dict) else None
        if not isinstance(vals, list):
            raise PgkitError(path, f"people[{i}] has no pose_keypoints_2d list")
        try:
            arr = _numbers(vals, f"people[{i}]")
            out.append(skeleton.from_openpose_list(arr, offframe))
        except ValueError as exc:
            msg = str(exc)
            raise PgkitError(path, msg if f"people[{i}]" in msg else f"people[{i}]: {msg}") from None
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


def _patn_list(field: str, what: str) -> np.ndarray:
    vals = _loads(field)
    if not isinstance(vals, list) or len(vals) != 18:
        n = f"{len(vals)} values" if isinstance(vals, list) else f"a {type(vals).__name__}"
        raise ValueError(f"the {what} holds {n}, expected 18 numbers")
    return _numbers(vals, what, width=1)


def read_patn_csv(path: str | os.PathLike, x_offset: float = 0.0) -> CsvRead:
    """Read a PATN annotation CSV; malformed rows are recorded with the file and line number.

    -1 marks a missing joint (in either list); any other value is a detected joint, also a
    negative one (left of / above the frame: the filter judges it by its frame margin).
    `x_offset` is added to every detected x (use 40 for annotations of 256x176 centre crops to
    map them back onto the 256x256 image). A UTF-8 byte-order mark is accepted.
    """
    _check_size(path, MAX_CSV_BYTES, "annotation CSV")
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise PgkitError(path, f"cannot read annotation CSV ({exc})") from None
    lines = text.splitlines()
    if not lines or lines[0].replace(" ", "") != PATN_HEADER:
        raise PgkitError(path, f"not a PATN annotation CSV: first line must be '{PATN_HEADER}'")
    fname = Path(path).name
    res = CsvRead()
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        parts = line.split(":")
        name = parts[0].strip()[:300]
        where = f"at line {lineno} of {fname}"
        try:
            if len(line) > MAX_CSV_ROW_CHARS:
                raise ValueError(f"row of {len(line):,} characters is longer than the "
                                 f"{MAX_CSV_ROW_CHARS:,}-character limit")
            if len(parts) != 3:
                raise ValueError(f"expected 3 ':'-separated fields, found {len(parts)}")
            ys = _patn_list(parts[1], "y list")
            xs = _patn_list(parts[2], "x list")
        except ValueError as exc:  # json errors are ValueErrors
            msg = str(exc)
            if msg.startswith(("non-finite", "keypoint value")):
                res.errors[name or f"line {lineno}"] = f"{msg} {where}"
            else:
                res.errors[name or f"line {lineno}"] = f"malformed annotation row {where}: {msg}"
            continue
        kp = skeleton.empty()
        ok = (ys != -1) & (xs != -1)
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


def load_pickle_safely(path: str | os.PathLike, max_bytes: int | None = None):
    """Load a pickle with the restricted unpickler (raises UnsafePickleError on anything else).

    `max_bytes`: refuse larger files before reading them (PgkitError).
    """
    if max_bytes is not None:
        _check_size(path, max_bytes, "pickle")
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


class _TooBig(ValueError):
    """An entry that would expand beyond PICKLE_MAX_DEPTH / PICKLE_MAX_RECORD_ELEMENTS."""


_CONTAINERS = (list, tuple, set, frozenset, dict)


def _expanded_size(obj, memo: dict[int, tuple[int, int]]) -> int:
    """Elements of `obj` as if every shared reference were a copy (what np.asarray or a
    loop would build), without building anything. `memo` (id -> (elements, height)) makes the
    walk linear in the distinct objects, so a 1 KB pickle of shared lists costs 1 KB of work.
    Raises _TooBig past PICKLE_MAX_DEPTH levels, PICKLE_MAX_RECORD_ELEMENTS elements or on a
    container that contains itself.
    """
    limit, max_depth = PICKLE_MAX_RECORD_ELEMENTS, PICKLE_MAX_DEPTH

    def leaf(x) -> tuple[int, int] | None:
        if isinstance(x, np.ndarray):
            if x.dtype.kind not in "biuf":
                raise _TooBig(f"holds a numpy array of dtype {x.dtype} (object arrays are not keypoints)")
            return x.size + 1, x.ndim
        return None if isinstance(x, _CONTAINERS) else (1, 0)

    def children(x):
        return [v for kv in x.items() for v in kv] if isinstance(x, dict) else list(x)

    root = leaf(obj)
    if root is not None:
        if root[0] > limit:
            raise _TooBig(f"expands to more than {limit:,} elements")
        return root[0]
    on_path: set[int] = set()
    stack = [(obj, 1, False)]
    while stack:
        node, depth, done = stack.pop()
        key = id(node)
        if done:
            on_path.discard(key)
            n, h = 1, 0
            for c in children(node):
                cn, ch = leaf(c) or memo[id(c)]
                n, h = min(n + cn, limit + 1), max(h, ch)
            memo[key] = (n, h + 1)
            if n > limit:
                raise _TooBig(f"expands to more than {limit:,} elements (shared references counted "
                              "each time they are reached)")
            continue
        if key in memo:
            continue
        if depth > max_depth:
            raise _TooBig(f"is nested more than {max_depth} levels deep")
        on_path.add(key)
        stack.append((node, depth, True))
        for c in children(node):
            if leaf(c) is not None:
                continue
            if id(c) in on_path:
                raise _TooBig("contains itself (a reference cycle)")
            if id(c) in memo:
                if depth + memo[id(c)][1] > max_depth:
                    raise _TooBig(f"is nested more than {max_depth} levels deep")
                continue
            stack.append((c, depth + 1, False))
    n, h = memo[id(obj)]
    if h > max_depth:
        raise _TooBig(f"is nested more than {max_depth} levels deep")
    return n


def _xy_score(row, where: str, n_min: int = 2) -> tuple[float, ...]:
    """(x, y[, score]) of one array row or peak: numbers only, within ±MAX_COORD."""
    if isinstance(row, np.ndarray):
        row = row.tolist()
    if not isinstance(row, (list, tuple)) or len(row) < n_min:
        raise ValueError(f"{where}: expected (x, y[, score]), found "
                         f"{type(row).__name__}{f' of {len(row)}' if isinstance(row, (list, tuple)) else ''}")
    return tuple(_number(v, where) for v in row[:3])


def _is_row(x) -> bool:
    """An array row (x, y[, score]) of numbers, as opposed to a list of peaks."""
    if isinstance(x, np.ndarray):
        return x.ndim == 1 and x.size in (2, 3)
    return isinstance(x, (list, tuple)) and len(x) in (2, 3) and \
        all(not isinstance(v, _CONTAINERS + (np.ndarray,)) for v in x)


def pose_from_pickle_value(value) -> tuple[np.ndarray, int]:
    """One pickle entry -> (COCO-18 skeleton, persons seen). ValueError says what is wrong.

    Accepted values: an (18, 2)/(18, 3) array-like (x, y[, score]) — in (18, 2), -1 marks a
    missing joint; with a score, score <= 0 does — or PG²'s `all_peaks`: 18 lists of peaks
    `(x, y, score[, id])`. Several peaks for a joint mean several people; the strongest peak is
    kept, and the count is returned. Detected joints keep negative coordinates (the filter
    judges them by its frame margin); every value must be a finite number within ±MAX_COORD.
    """
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf":
            raise ValueError(f"a numpy array of dtype {value.dtype} is not keypoints")
        if value.ndim != 2 or value.shape[0] != 18 or value.shape[1] not in (2, 3):
            raise ValueError(f"an array of shape {value.shape}; expected (18, 2) or (18, 3)")
        value = value.tolist()
    if not isinstance(value, (list, tuple)) or len(value) != 18:
        raise ValueError("expected 18 keypoints as an (18, 2|3) array or 18 lists of peaks")
    kp = skeleton.empty()
    if all(_is_row(r) for r in value) and len({len(r) for r in value}) == 1:
        for j, r in enumerate(value):
            x, y, *score = _xy_score(r, f"joint {j}")
            if score:
                if score[0] > 0:
                    kp[j] = (x, y, score[0])
            elif x != -1 and y != -1:
                kp[j] = (x, y, 1.0)
        return kp, 1
    persons = 1
    for j, peaks in enumerate(value):
        if peaks is None:
            continue
        if isinstance(peaks, np.ndarray):
            peaks = list(peaks) if peaks.ndim == 2 else None
        if not isinstance(peaks, (list, tuple)):
            raise ValueError(f"joint {j}: expected a list of peaks (x, y, score[, id]), "
                             f"found {type(peaks).__name__}")
        if not peaks:
            continue
        persons = max(persons, len(peaks))
        best = None
        for p in peaks:
            x, y, *score = _xy_score(p, f"joint {j}")
            s = score[0] if score else 1.0
            if best is None or s > best[2]:
                best = (x, y, s)
        kp[j] = (best[0], best[1], best[2] if best[2] > 0 else 1e-3)
    return kp, persons


def read_pose_pickle(path: str | os.PathLike) -> tuple[dict[str, tuple[np.ndarray, int]], dict[str, str]]:
    """A PG²-style pickle: dict image-name -> pose. Returns ({name: (kp, persons)}, {name: error}).

    Bounded (docs/reliability.md): files over PICKLE_MAX_BYTES are refused unread; an entry
    nested deeper than PICKLE_MAX_DEPTH or larger than PICKLE_MAX_RECORD_ELEMENTS (shared
    references counted each time they are reached) is a per-entry error; accepted entries
    together above PICKLE_MAX_TOTAL_ELEMENTS refuse the whole file (PgkitError).
    """
    obj = load_pickle_safely(path, max_bytes=PICKLE_MAX_BYTES)
    if not isinstance(obj, dict):
        raise PgkitError(path, f"pose pickle must hold a dict of image name -> keypoints, found {type(obj).__name__}")
    fname = Path(path).name
    poses, errors = {}, {}
    memo: dict[int, tuple[int, int]] = {}
    total = 0
    for i, (name, value) in enumerate(obj.items(), start=1):
        if isinstance(name, bytes):
            name = name.decode("utf-8", errors="replace")
        if not isinstance(name, str):
            errors[f"entry {i}"] = (f"bad pose in {fname}: entry {i} has key {_short(name)} "
                                    f"({type(name).__name__}), which is not an image name")
            continue
        try:
            total += _expanded_size(value, memo)
            if total > PICKLE_MAX_TOTAL_ELEMENTS:
                raise PgkitError(path, f"pose pickle expands to more than {PICKLE_MAX_TOTAL_ELEMENTS:,} "
                                       "elements in all (shared references counted each time they "
                                       "are reached); refused")
            poses[name] = pose_from_pickle_value(value)
        except _TooBig as exc:
            errors[name] = f"bad pose in {fname}: entry {exc}"
        except ValueError as exc:
            errors[name] = f"bad pose in {fname}: {exc}"
    return poses, errors


def _short(x) -> str:
    """A bounded description of a pickled key (never str() of a huge int or a long string)."""
    if isinstance(x, int) and x.bit_length() < 64:
        return str(x)
    return f"<{type(x).__name__}>"
