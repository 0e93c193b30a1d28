"""Checkpoints: atomic save/load of the whole training state, and generators for inference.

A checkpoint (`RUN/checkpoints/last.pt`, `stage1.pt` at the end of Stage 1) is a plain dict
of tensors and Python scalars (loaded with `weights_only=True`: nothing executes):
`format`, `version`, `options`, `stage`, `step` (generator steps done in that stage),
`done`, `nets` / `optims` (state dicts by name: g1, g2, d), `data` (sampler epoch and batch
position), `rng` (torch, cuda, numpy, python states), `final` (last logged stats).
"""

from __future__ import annotations

import os
import random
import re
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


def load(path, device="cpu") -> dict:
    path = Path(path)
    if not path.exists():
        raise PgkitError(path, "no such checkpoint")
    try:
        ck = torch.load(path, map_location=device, weights_only=True)  # never weights_only=False
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a bad file
        raise PgkitError(path, load_failure(exc)) from None
    if not isinstance(ck, dict) or ck.get("format") != FORMAT:
        raise PgkitError(path, "not a pgkit checkpoint")
    if ck.get("version") != VERSION:
        raise PgkitError(path, f"checkpoint version {ck.get('version')} (this pgkit reads {VERSION})")
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


def load_generators(run_dir, device="cpu", which: str = "last") -> Generators:
    """G1 (and G2 once Stage 2 has trained) of a run, in eval mode, on `device`."""
    from pgtrain import nets

    path = resolve_path(run_dir, which)
    ck = load(path, device="cpu")
    opts = ck["options"]
    g1 = nets.build("g1", opts)
    load_weights(g1, ck["nets"]["g1"], path, "G1")
    g2 = None
    if "g2" in ck["nets"] and ck["stage"] == 2 and ck["step"] > 0:  # G2 has trained
        g2 = nets.build("g2", opts)
        load_weights(g2, ck["nets"]["g2"], path, "G2")
    dev = torch.device(device)
    g1 = g1.to(dev).eval()
    if g2 is not None:
        g2 = g2.to(dev).eval()
    return Generators(g1, g2, opts)


def describe(path: os.PathLike) -> str:
    ck = load(path)
    return f"{path}: stage {ck['stage']}, step {ck['step']}{' (done)' if ck.get('done') else ''}"
