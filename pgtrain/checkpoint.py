"""Checkpoints: atomic save/load of the whole training state, and generators for inference.

A checkpoint (`RUN/checkpoints/last.pt`, `stage1.pt` at the end of Stage 1) is a plain dict
of tensors and Python scalars (loaded with `weights_only=True`: nothing executes):
`format`, `version`, `options`, `stage`, `step` (generator steps done in that stage),
`done`, `nets` / `optims` (state dicts by name: g1, g2, d), `data` (sampler epoch and batch
position), `rng` (torch, cuda, numpy, python states), `final` (last logged stats).
"""

from __future__ import annotations

import math
import os
import random
import re
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pgprep.atomic import atomic_path
from pgprep.errors import PgkitError
from pgtrain.rundir import writing

FORMAT = "pgkit-checkpoint"
VERSION = 1


def save(path, state: dict) -> None:
    """torch.save to a temporary file, renamed into place when complete. A failed write (full
    disk) removes the temporary file and raises PgkitError naming the checkpoint."""
    state = {"format": FORMAT, "version": VERSION, **state}
    with writing(path), atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_failure(exc: Exception) -> str:
    """Our words for why torch.load(weights_only=True) failed. torch's own message advises
    `weights_only=False`, which would run code from the file: never passed on."""
    import pickle

    text = str(exc)
    if isinstance(exc, pickle.UnpicklingError) or "weights_only" in text or "Weights only" in text:
        found = re.search(r"(?:GLOBAL|global) ([\w.]+)", text)
        what = f" ({found.group(1)})" if found else ""
        return ("refused: it holds Python objects other than tensors and plain values" + what +
                "; pgkit loads checkpoints without running code from them, so only checkpoints "
                "written by `pgtrain fit` can be read")
    if isinstance(exc, OSError):
        return f"cannot read it ({exc.strerror or exc})"
    if "zip archive" in text or isinstance(exc, EOFError):
        return "not a readable checkpoint: truncated or not a torch file (rerun the training " \
               "with --resume from an intact checkpoint, or retrain)"
    first = text.splitlines()[0] if text else ""
    return f"not a readable checkpoint ({type(exc).__name__}{': ' + first[:200] if first else ''})"


def npz_failure(exc: Exception) -> str:
    """Our words for why np.load(allow_pickle=False) of a .npz (or reading an array in it)
    failed; numpy's advice to allow pickles is never passed on."""
    text = str(exc)
    if "allow_pickle" in text or "Object arrays" in text:
        return ("refused: it holds an object array (pickled Python objects), which pgkit never "
                "loads; save plain numeric arrays (np.savez with float arrays)")
    if isinstance(exc, OSError) and exc.strerror:
        return f"cannot read it ({exc.strerror})"
    if isinstance(exc, TypeError):
        return f"holds an array that is not numeric ({text.splitlines()[0][:120] if text else 'unknown type'})"
    return f"not a readable .npz file ({type(exc).__name__}{': ' + text.splitlines()[0][:160] if text else ''})"


# ---------------------------------------------------------------- bounded archive readers
#
# torch's .pt and numpy's .npz are zip archives. Their readers allocate what an entry declares
# (torch: the record's uncompressed size; numpy: the .npy header's shape) before inflating it,
# so a 14 MB file of deflated zeros can demand GBs. The declarations are checked first: in all,
# the entries may unpack to at most max(limit, the file's own size) bytes (torch stores its
# records uncompressed, so a genuine file never exceeds its size), and an .npy array may not
# declare more bytes than its entry holds.

LOAD_LIMIT = 1 << 30  # bytes an archive may unpack to beyond its own size on disk
MAX_ENTRIES = 100_000  # entries in one archive (a pg2 checkpoint with Adam state has ~1,000)
NUMERIC_KINDS = "biufc"


def _open_archive(path: Path, limit: int, what: str) -> zipfile.ZipFile:
    """The zip archive at `path` once its central directory's declarations are within bounds."""
    if not path.exists():
        raise PgkitError(path, f"no such {what}")
    if not path.is_file():
        raise PgkitError(path, f"not a regular file: not a {what}")
    size = path.stat().st_size
    try:
        with open(path, "rb") as fp:
            end = zipfile._EndRecData(fp)  # the end record only: count before zipfile lists them
        if end is None:
            raise zipfile.BadZipFile("no end of central directory")
        if end[zipfile._ECD_ENTRIES_TOTAL] > MAX_ENTRIES or end[zipfile._ECD_SIZE] > size:
            raise PgkitError(path, f"{what}: its zip directory declares {end[zipfile._ECD_ENTRIES_TOTAL]:,} "
                                   f"entries in {end[zipfile._ECD_SIZE]:,} bytes (at most {MAX_ENTRIES:,}, "
                                   f"within the {size:,}-byte file): not a file pgkit can read")
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, struct.error) as exc:
        if path.suffix == ".npz":
            raise PgkitError(path, f"not a readable .npz file (not a zip archive: {exc})") from None
        raise PgkitError(path, f"not a readable {what}: truncated or not a torch file (torch.save "
                               f"writes a zip archive; this is none: {exc})") from None
    declared = sum(info.file_size for info in zf.infolist())
    if declared > max(limit, size):
        zf.close()
        raise PgkitError(path, f"{what}: its entries declare {declared:,} bytes unpacked from a "
                               f"{size:,}-byte file, over the limit of {max(limit, size):,} "
                               "(a decompression bomb, or not a file pgkit wrote)")
    return zf


def safe_torch_load(path, limit: int = LOAD_LIMIT, *, map_location="cpu", what: str = "checkpoint"):
    """torch.load(path, weights_only=True) once the archive's declared sizes are bounded
    (`_open_archive`): no code runs, and no entry can allocate more than the file holds or
    `limit` bytes in all. PgkitError naming `path` otherwise."""
    path = Path(path)
    _open_archive(path, limit, what).close()
    try:
        return torch.load(path, map_location=map_location, weights_only=True)  # never weights_only=False
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a bad file
        raise PgkitError(path, load_failure(exc)) from None


def safe_npz_load(path, limit: int = LOAD_LIMIT, *, what: str = "weights") -> dict[str, np.ndarray]:
    """{name: array} of an .npz, each .npy header (shape, dtype) read and bounded before its
    array is allocated: numeric dtypes only (no pickled objects), at most the bytes its entry
    holds and `limit` (or the file's size) in all. PgkitError naming `path` otherwise."""
    from numpy.lib import format as npy

    path = Path(path)
    zf = _open_archive(path, limit, what)
    out: dict[str, np.ndarray] = {}
    try:
        with zf:
            infos = [i for i in zf.infolist() if i.filename.endswith(".npy")]
            for info in infos:  # every header first: nothing is allocated for a file refused
                with zf.open(info) as fp:
                    version = npy.read_magic(fp)
                    reader = {(1, 0): npy.read_array_header_1_0, (2, 0): npy.read_array_header_2_0}.get(version)
                    if reader is None:
                        raise ValueError(f"{info.filename}: .npy format version {version} (pgkit reads 1.0 and 2.0)")
                    shape, _, dtype = reader(fp)
                name = info.filename[:-4]
                if dtype.hasobject:
                    raise PgkitError(path, f"{what}: refused: {name} is an object array (pickled Python "
                                           "objects), which pgkit never loads; save plain numeric arrays")
                if dtype.kind not in NUMERIC_KINDS:
                    raise PgkitError(path, f"{what}: holds an array that is not numeric ({name}: {dtype})")
                need = math.prod(shape) * dtype.itemsize
                if need > info.file_size:
                    raise PgkitError(path, f"{what}: {name} declares shape {shape} of {dtype} ({need:,} bytes) "
                                           f"but its entry holds {info.file_size:,}")
            for info in infos:
                with zf.open(info) as fp:
                    out[info.filename[:-4]] = npy.read_array(fp, allow_pickle=False)
    except PgkitError:
        raise
    except Exception as exc:  # noqa: BLE001 - a damaged archive or header: one line naming it
        raise PgkitError(path, f"{what}: {npz_failure(exc)}") from None
    return out


def load(path, device="cpu") -> dict:
    """A checkpoint written by `pgtrain fit`, bounded (`safe_torch_load`) and checked: a dict
    with this format and version, `options` an object, `nets` state dicts, `stage`, `step`."""
    path = Path(path)
    ck = safe_torch_load(path, map_location=device)
    if not isinstance(ck, dict) or ck.get("format") != FORMAT:
        raise PgkitError(path, "not a pgkit checkpoint")
    if ck.get("version") != VERSION:
        raise PgkitError(path, f"checkpoint version {ck.get('version')} (this pgkit reads {VERSION})")
    if not isinstance(ck.get("options"), dict):
        raise PgkitError(path, f"not a pgkit checkpoint: its options must be an object, got "
                               f"{type(ck.get('options')).__name__}")
    nets_ = ck.get("nets")
    if not (isinstance(nets_, dict) and all(isinstance(v, dict) for v in nets_.values())):
        raise PgkitError(path, "not a pgkit checkpoint: nets must map names to state dicts")
    if ck.get("stage") not in (1, 2) or not (isinstance(ck.get("step"), int) and ck["step"] >= 0):
        raise PgkitError(path, f"not a pgkit checkpoint: stage {ck.get('stage')!r}, step {ck.get('step')!r}")
    return ck


def rng_state() -> dict:
    np_state = np.random.get_state()
    py_state = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "python": [py_state[0], list(py_state[1]), py_state[2]],
    }


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"].cpu())
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
    n = state["numpy"]
    np.random.set_state((n[0], n[1].numpy().astype(np.uint32), *n[2:]))
    p = state["python"]
    random.setstate((p[0], tuple(p[1]), p[2]))


def resolve_path(run_dir, which: str = "last") -> Path:
    """`which`: "last", "stage1", or a path to a .pt file."""
    if which in ("last", "stage1"):
        return Path(run_dir) / "checkpoints" / f"{which}.pt"
    return Path(which)


@dataclass
class Generators:
    g1: torch.nn.Module
    g2: torch.nn.Module | None
    options: dict


def load_weights(module: torch.nn.Module, state: dict, path: os.PathLike, name: str) -> None:
    """module.load_state_dict(state), or a PgkitError naming the checkpoint when the layers
    differ (e.g. a checkpoint of pgkit's look-alike networks from before PG²'s released ones)."""
    try:
        module.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[1:2] or [str(exc)[:200]]
        raise PgkitError(path, f"its {name} does not match this pgkit's {name} ({first[0].strip()}); "
                               "it was trained with other networks: train it again") from None


def check_generator_options(opts: dict, path) -> dict:
    """The options a checkpoint's networks and pose maps are built from, checked (PgkitError
    naming the checkpoint): numbers in range (pgtrain.rundir.OPTION_RANGES), image_size two
    sides in 1..16384, pose settings finite (a pose_radius of inf would reach the pose maps)."""
    from pgprep.shards import MAX_SIDE, pose_settings
    from pgtrain.rundir import check_options

    check_options(opts, path)
    size = opts.get("image_size")
    if not (isinstance(size, (list, tuple)) and len(size) == 2 and all(
            isinstance(v, int) and not isinstance(v, bool) and 0 < v <= MAX_SIDE for v in size)):
        raise PgkitError(path, f"option image_size must be [H, W], whole numbers in 1..{MAX_SIDE}, "
                               f"got {str(size)[:60]}")
    if any(k in opts for k in ("pose_kind", "pose_radius", "pose_sigma")):
        from pgprep.geometry import DEFAULT_POSE

        pose_settings(opts.get("pose_kind", DEFAULT_POSE["kind"]), opts.get("pose_radius", DEFAULT_POSE["radius"]),
                      opts.get("pose_sigma", DEFAULT_POSE["sigma"]), where=path)
    return opts


def check_state_shapes(kind: str, opts: dict, state: dict, path) -> None:
    """PgkitError naming the checkpoint unless `state` has exactly the layers and shapes of
    nets.build(kind, opts), compared on the meta device (nothing allocated): options saying
    channels=300 beside 128-wide weights cost nothing before the error."""
    from pgtrain import nets

    name = kind.upper()
    try:
        with torch.device("meta"):
            want = nets.build(kind, opts).state_dict()
    except (TypeError, ValueError, KeyError, RuntimeError) as exc:
        raise PgkitError(path, f"its options do not describe a {name} ({type(exc).__name__}: "
                               f"{str(exc).splitlines()[0][:160] if str(exc) else ''})") from None
    missing = [k for k in want if k not in state]
    extra = [k for k in state if k not in want]
    shape = next((k for k in want if k in state and (not isinstance(state[k], torch.Tensor)
                                                     or tuple(state[k].shape) != tuple(want[k].shape))), None)
    if missing or extra or shape:
        why = (f"missing {missing[0]}" if missing else f"unexpected {extra[0]}" if extra else
               f"{shape}: the checkpoint holds {tuple(getattr(state[shape], 'shape', ()))}, its options "
               f"imply {tuple(want[shape].shape)}")
        raise PgkitError(path, f"its {name} does not match this pgkit's {name} ({why}); "
                               "it was trained with other networks: train it again")


def build_checked(kind: str, opts: dict, state: dict, path) -> torch.nn.Module:
    """nets.build(kind, opts) with `state` loaded, once `check_state_shapes` passed."""
    from pgtrain import nets

    check_state_shapes(kind, opts, state, path)
    module = nets.build(kind, opts)
    load_weights(module, state, path, kind.upper())
    return module


def load_generators(run_dir, device="cpu", which: str = "last") -> Generators:
    """G1 (and G2 once Stage 2 has trained) of a run, in eval mode, on `device`."""
    path = resolve_path(run_dir, which)
    ck = load(path, device="cpu")
    opts = check_generator_options(ck["options"], path)
    if "g1" not in ck["nets"]:
        raise PgkitError(path, "holds no G1 (nets: " + ", ".join(map(str, ck["nets"])) + ")")
    g1 = build_checked("g1", opts, ck["nets"]["g1"], path)
    g2 = None
    if "g2" in ck["nets"] and ck["stage"] == 2 and ck["step"] > 0:  # G2 has trained
        g2 = build_checked("g2", opts, ck["nets"]["g2"], path)
    dev = torch.device(device)
    g1 = g1.to(dev).eval()
    if g2 is not None:
        g2 = g2.to(dev).eval()
    return Generators(g1, g2, opts)


def describe(path: os.PathLike) -> str:
    ck = load(path)
    return f"{path}: stage {ck['stage']}, step {ck['step']}{' (done)' if ck.get('done') else ''}"
