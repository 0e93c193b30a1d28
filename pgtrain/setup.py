"""Run setup for `pgtrain fit`: what a call does with RUN, the options it trains with, and the
device, data, run record and position the step loop (pgtrain/loop.py) starts from.

The resume / overwrite policy (`plan`), by what RUN holds:
- no checkpoints/last.pt: a new run with `presets.resolve(preset or "g1", tiny, **overrides)`
  (also under `--resume`); RUN must not hold an options.json or stats.jsonl that `pgtrain fit`
  did not write (`rundir.check_fresh_run`, in `write_options`);
- a checkpoint, no `--resume`: a finished run asked for again with the same options (the
  COSMETIC ones aside) has nothing to do; anything else is refused (continue with `--resume`
  or choose another -o);
- a checkpoint and `--resume`: the checkpoint's options, of which only `presets.RESUMABLE`
  ones (step counts, stage, logging and device) may change; another preset is refused; the
  data must be the checkpoint's unless `allow_new_data` (`rundir.check_same_data`); a run
  already at its last stage's last step has nothing to do.
The numeric options, given and saved, are checked first (`rundir.check_options`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch.utils.data import Dataset

from pgprep import geometry
from pgprep.atomic import write_json_atomic
from pgprep.errors import PgkitError
from pgtrain import checkpoint, dist, presets, rundir
from pgtrain.presets import Options

if TYPE_CHECKING:
    from pgtrain.trainer import Trainer


def last_checkpoint(run: Path) -> Path:
    return Path(run) / "checkpoints" / "last.pt"


# ---------------------------------------------------------------- the resume / overwrite policy

@dataclasses.dataclass(frozen=True)
class Plan:
    """What a `fit` call does with RUN: train with `options` (from `checkpoint` when it
    continues one), or nothing (`done` says why)."""

    options: Options | None
    checkpoint: dict | None = None
    notes: tuple[str, ...] = ()      # said before training ("RUN: note")
    done: str | None = None          # set: nothing to do, for this reason

    def result(self, run: Path) -> dict:
        """fit's return value when there is nothing to do: the run's last logged record."""
        final = self.checkpoint.get("final", {}) if self.checkpoint is not None else {}
        return {**final, "run": str(run), "checkpoint": str(last_checkpoint(run))}


def plan(run: Path, preset: str | None, overrides: dict, *, tiny: bool = False, resume: bool = False,
         shards=None, allow_new_data: bool = False) -> Plan:
    """The policy above for a `fit(shards, run, preset, tiny=, resume=, **overrides)` call;
    raises PgkitError where it refuses."""
    if overrides.get("clip") == 0:
        overrides = {**overrides, "clip": None}
    last_path = last_checkpoint(run)
    ck = checkpoint.load(last_path) if last_path.exists() else None
    rundir.check_options(overrides)  # the Python API's overrides: the CLI's types checked them already
    if ck is None:
        return Plan(presets.resolve(preset or "g1", tiny=tiny, **overrides))
    saved = ck["options"]
    rundir.check_options(saved, last_path)
    fresh = presets.resolve(preset or saved["preset"], tiny=tiny or saved.get("tiny", False), **overrides)
    if not resume:
        if ck.get("done") and comparable(saved) == comparable(fresh.to_dict()):
            return Plan(None, ck, done="already trained with these options; nothing to do")
        raise PgkitError(run, f"already holds a run (stage {ck['stage']}, step {ck['step']}); "
                              "pass --resume to continue it, or choose another -o")
    opts = options_from_checkpoint(saved, overrides, preset, run)
    note = rundir.check_same_data(run, saved, rundir.data_identity(shards), allow_new_data)
    notes = (note,) if note else ()
    end = opts.stages[-1]
    if int(ck["stage"]) == end and int(ck["step"]) >= (opts.steps1 if end == 1 else opts.steps2):
        return Plan(opts, ck, notes, done=f"already trained to stage {end} step {ck['step']}; nothing to do")
    return Plan(opts, ck, notes)


def options_from_checkpoint(saved: dict, overrides: dict, preset: str | None, run: Path) -> Options:
    """The checkpoint's options with the RESUMABLE `overrides` applied; any other change refused."""
    names = {f.name for f in dataclasses.fields(Options)}
    opts = Options(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in saved.items() if k in names})
    if preset not in (None, opts.preset):
        raise PgkitError(run, f"was trained with --preset {opts.preset}, not {preset}")
    changes = {}
    for k, v in overrides.items():
        if k in presets.RESUMABLE:
            changes[k] = v
        elif getattr(opts, k) != v:
            raise PgkitError(run, f"cannot change {k} from {getattr(opts, k)!r} to {v!r} when resuming")
    opts = dataclasses.replace(opts, **changes)
    presets.validate(opts)
    return opts


def comparable(d: dict) -> dict:
    """The options that make two runs the same run (COSMETIC ones dropped), JSON-shaped."""
    names = {f.name for f in dataclasses.fields(Options)} - presets.COSMETIC
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items() if k in names}


# ---------------------------------------------------------------- device and data

def pick_device(name: str = "auto") -> torch.device:
    """"auto" -> cuda, then mps, then cpu; an explicit device must exist."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise PgkitError(None, f"--device {name}: CUDA is not available here")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise PgkitError(None, f"--device {name}: MPS is not available here")
    return dev


def choose_data_path(name: str, shards) -> str:
    """"raw" (uint8 bytes through the loader, pose maps and normalising on `device`) or
    "float" (float32 items made in the loader). "auto" is raw everywhere: on a GPU it moves
    16x fewer bytes and leaves the maps to the device; on CPU it measured faster too
    (docs/gpu.md). A Dataset passed instead of a shard directory is used as is."""
    if isinstance(shards, Dataset):
        return "raw" if getattr(shards, "raw", False) else "float"
    return "raw" if name == "auto" else name


def open_split(shards, split: str, raw: bool = False) -> Dataset | None:
    if isinstance(shards, Dataset):
        return shards if split == "train" else None
    from pgtrain.data import PairDataset

    try:
        return PairDataset(shards, split, raw=raw)
    except PgkitError:
        if split == "train":
            raise
        return None


def image_size_of(ds: Dataset) -> tuple[int, int]:
    size = getattr(ds, "image_size", None)
    if size is None:
        size = tuple(ds[0]["condition"].shape[-2:])
    return int(size[0]), int(size[1])


def pose_of(ds: Dataset) -> dict:
    """The pose-map settings the data was packed with (raw batches render P_B with them)."""
    return getattr(ds, "pose", None) or geometry.DEFAULT_POSE


# ---------------------------------------------------------------- the run's record and start

def run_record(opts: Options, size: tuple[int, int], pose: dict, shards, info: dist.DistInfo,
               device: torch.device, data_path: str) -> dict:
    """options.json, also every checkpoint's "options": the resolved options, what the data
    is (size, pose settings, path and index.json digest: what --resume compares) and where
    it ran."""
    record = {**opts.to_dict(), "image_size": list(size), "pose_kind": pose["kind"],
              "pose_radius": pose["radius"], "pose_sigma": pose["sigma"],
              "shards": str(shards) if not isinstance(shards, Dataset) else type(shards).__name__,
              "world_size": info.world_size, "device_used": str(device), "data_path_used": data_path}
    record.update(rundir.data_identity(shards))  # what --resume compares (pgtrain.rundir)
    return record


def check_checkpoint_shapes(ck: dict, opts: Options, size: tuple[int, int], path: Path) -> None:
    """A checkpoint's networks against the shapes `opts` imply, on the meta device: nothing of
    the wrong width is allocated before the mismatch is named."""
    spec = {**opts.to_dict(), "image_size": list(size)}
    for k in ("g1", "g2", "d"):
        if k in ck["nets"] and (k == "g1" or opts.discriminator is not None):
            checkpoint.check_state_shapes(k, spec, ck["nets"][k], path)


def write_options(run: Path, record: dict, fresh: bool) -> None:
    """RUN/options.json, written before training; a fresh run first checks that it replaces
    only files `pgtrain fit` wrote."""
    if fresh:
        rundir.check_fresh_run(run)
    run.mkdir(parents=True, exist_ok=True)
    with rundir.writing(run / "options.json"):
        write_json_atomic(run / "options.json", record)


@dataclasses.dataclass
class Start:
    """Where the step loop begins: stage, generator step within it, the Stage-1 steps G1 has
    had (Stage 2's global_step offset) and the data position."""

    stage: int
    step: int = 0
    stage1_steps: int = 0
    data: dict = dataclasses.field(default_factory=lambda: {"epoch": 0, "batch": 0})


def start(trainer: Trainer, ck: dict | None, opts: Options, run: Path, info: dist.DistInfo) -> Start:
    """Restore a checkpoint into `trainer` (networks, optimisers, RNG states), or seed a new
    run (a Stage-2-only run takes G1 from --init-from or RUN/checkpoints/stage1.pt). Seeds are
    offset by rank."""
    if ck is not None:
        trainer.load_state_dict(ck, last_checkpoint(run))
        at = Start(int(ck["stage"]), int(ck["step"]), int(ck.get("stage1_steps", 0)), ck["data"])
        checkpoint.set_rng_state(ck["rng"])
        if info.rank:
            torch.manual_seed(dist.rank_seed(opts.seed, info) * 1_000_003 + at.step)
        return at
    at = Start(opts.stages[0])
    if opts.stages[0] == 2:
        source = Path(opts.init_from) if opts.init_from else run / "checkpoints" / "stage1.pt"
        if not source.exists():
            raise PgkitError(source, "Stage 2 needs a trained G1: pass --init-from CKPT "
                                     "(a Stage-1 run's checkpoints/stage1.pt or last.pt)")
        at.stage1_steps = load_stage1(trainer, source)
    torch.manual_seed(dist.rank_seed(opts.seed, info))
    return at


def load_stage1(trainer: Trainer, source: Path) -> int:
    """Initialise G1 for a Stage-2-only run; returns the Stage-1 steps G1 received."""
    ck = checkpoint.load(source)
    saved = ck["options"]
    if list(saved["image_size"]) != list(trainer.spec["image_size"]):
        raise PgkitError(source, f"G1 was trained at image size {saved['image_size']}, "
                                 f"the data is {trainer.spec['image_size']}")
    for k in ("channels", "fc_dim"):
        if saved.get(k) != trainer.spec[k]:
            raise PgkitError(source, f"G1 has {k}={saved.get(k)}, this run asks for {trainer.spec[k]}")
    checkpoint.load_weights(trainer.g1, ck["nets"]["g1"], source, "G1")
    return int(ck.get("stage1_steps", ck["step"] if ck["stage"] == 1 else 0))
