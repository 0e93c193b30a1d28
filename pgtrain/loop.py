"""`pgtrain fit`: train G1 (Stage 1), then G2 against a pair / triplet / WGAN discriminator.

The recipe, in the paper's symbols (I_A condition, I_B target, P_B target pose, M_B mask):

- Stage 1: G1(I_A, P_B) minimises the pose-mask L1 ||(G1 - I_B) * (1 + M_B)||_1 (the seed;
  pg2-official: PG²'s released plain L1).
- Stage 2 (G1 frozen): per generator step, `critic_steps` discriminator steps, each on a new
  batch, then one G2 step on the last batch (pg2-official: the G2 step first, on its own batch):
  D step: one D pass over the real and fake sets (pair D: (I_A, I_B) vs (I_A, G2); triplet
  classifier: I_B vs G2 and I_A), BCE or Wasserstein loss (+ gradient penalty), then clipping;
  G step (D frozen, D's gradient flows into G2): adversarial + l1_weight * pose-mask L1.
  Every setting's source: docs/training.md, "Provenance".

Data order is a pure function of (seed, epoch): a checkpoint stores the epoch and the batch
position, the RNG states, networks and optimisers, so `--resume` continues exactly.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import time
from collections.abc import Callable
from pathlib import Path

import click
import torch
from torch.utils.data import DataLoader, Dataset
from torch.utils.data import default_collate as collate

from pgprep import geometry
from pgprep.atomic import write_json_atomic
from pgprep.cliutil import progress
from pgprep.errors import PgkitError
from pgtrain import checkpoint, dist, losses, nets, presets, rundir
from pgtrain.presets import Options
from pgtrain.rundir import OptionType
from pgtrain.stats import StatsWriter

SAMPLE_COLUMNS = ["condition", "target pose", "stage-1", "stage-2", "target"]


# ---------------------------------------------------------------- devices and data

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
    (README, "Table 1 on a GPU"). A Dataset passed instead of a shard directory is used as is."""
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


class BatchStream:
    """Endless batches; epoch e's order = randperm(n) seeded by (seed, e), drop_last.

    The global batch k of an epoch is perm[k*B:(k+1)*B]; DDP rank r takes its r-th slice, so
    W processes with B/W each see exactly the samples one process with B would.

    One DataLoader serves the whole run: its batch sampler walks from (epoch, batch) through
    the epochs without end, so the workers start once and keep `prefetch` batches each in
    flight across epoch ends. `state()` counts the batches handed out, not those prefetched,
    so a checkpoint resumes exactly. `pin` pins batches (CUDA only) for non-blocking copies.
    """

    def __init__(self, dataset: Dataset, batch_size: int, seed: int, info: dist.DistInfo,
                 workers: int = 0, epoch: int = 0, batch: int = 0, pin: bool = False,
                 prefetch: int = 4):
        if batch_size % info.world_size:
            raise PgkitError(None, f"--batch-size {batch_size} is not divisible by {info.world_size} processes")
        self.dataset, self.batch_size, self.seed, self.info = dataset, batch_size, seed, info
        self.local = batch_size // info.world_size
        self.workers, self.pin, self.prefetch = workers, pin, prefetch
        self.epoch, self.batch = epoch, batch
        n = len(dataset)
        self.per_epoch = n // batch_size
        if self.per_epoch == 0:
            raise PgkitError(getattr(dataset, "root", None),
                             f"{n} training pairs are fewer than the batch size {batch_size}")
        self._it = None

    def _epoch_batches(self, epoch: int, start: int) -> list[list[int]]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        perm = torch.randperm(len(self.dataset), generator=g).tolist()
        r, b, B = self.info.rank, self.local, self.batch_size  # noqa: N806
        return [perm[k * B + r * b: k * B + (r + 1) * b] for k in range(start, self.per_epoch)]

    def _order(self, epoch: int, start: int):
        while True:
            yield from self._epoch_batches(epoch, start)
            epoch, start = epoch + 1, 0

    def __next__(self) -> dict:
        if self._it is None:
            stream = self

            class Order:  # the batch sampler: an iterable over every later batch of the run
                def __iter__(self):
                    return stream._order(stream.epoch, stream.batch)

            loader = DataLoader(self.dataset, batch_sampler=Order(), num_workers=self.workers,
                                pin_memory=self.pin and torch.cuda.is_available(), collate_fn=collate,
                                prefetch_factor=self.prefetch if self.workers else None)
            self._it = iter(loader)
        if self.batch >= self.per_epoch:
            self.epoch, self.batch = self.epoch + 1, 0
        out = next(self._it)
        self.batch += 1
        return out

    def state(self) -> dict:
        return {"epoch": self.epoch, "batch": self.batch}

    def close(self) -> None:
        """Stop the workers (a later batch starts them again from the current position)."""
        self._it = None


# ---------------------------------------------------------------- the recipe

class Trainer:
    """The networks, optimisers and one training step of each stage.

    Every network is built up front from `options.seed`, so Stage 2 starts from the same G2
    and D whether or not the run was interrupted in between.
    """

    def __init__(self, o: Options, image_size, device: torch.device, info: dist.DistInfo | None = None):
        self.o, self.device, self.info = o, device, info or dist.DistInfo()
        self.spec = {**o.to_dict(), "image_size": list(image_size)}
        # bf16 autocast on GPUs; amp_cpu forces it on CPU (the GPU dtype mix, tests/test_gpu_path.py)
        self.amp = o.amp and (device.type == "cuda" or (o.amp_cpu and device.type == "cpu"))
        # channels_last: standard on CUDA; on CPU it measured 12-17 % faster (benchmarks/bench_train.py)
        self.channels_last = device.type in ("cuda", "cpu") if o.channels_last is None else o.channels_last
        torch.manual_seed(o.seed)
        self.g1 = self._place(nets.build("g1", self.spec))
        self.g2 = self.d = None
        self.opt = {"g1": self._optimizer(self.g1.parameters(), o.lr, o.optimizer1, (o.beta1, o.beta2))}
        if o.discriminator is not None:
            self.g2 = self._place(nets.build("g2", self.spec))
            self.d = self._place(nets.build("d", self.spec))
            betas2 = tuple(o.betas2) if o.betas2 else (o.beta1, o.beta2)
            self.opt["g2"] = self._optimizer(self.g2.parameters(), o.lr2 or o.lr, o.optimizer, betas2)
            self.opt["d"] = self._optimizer(self.d.parameters(), o.lr_d or o.lr2 or o.lr, o.optimizer, betas2)
            if o.clip:  # the critic lives inside the clip box from the start
                losses.clip_weights(self.d, o.clip)
        # DDP wrappers for the forward passes whose gradients must be averaged over ranks
        self.g1_t, self.g2_t, self.d_t = self.g1, self.g2, self.d
        if self.info.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP  # noqa: N817

            ids = [device.index] if device.type == "cuda" else None
            self.g1_t = DDP(self.g1, device_ids=ids)
            if self.g2 is not None:
                self.g2_t = DDP(self.g2, device_ids=ids)
                self.d_t = DDP(self.d, device_ids=ids)

    def _place(self, m: torch.nn.Module) -> torch.nn.Module:
        m = m.to(self.device)
        return m.to(memory_format=torch.channels_last) if self.channels_last else m

    def _optimizer(self, params, lr: float, kind: str, betas: tuple[float, float]) -> torch.optim.Optimizer:
        if kind == "rmsprop":  # PyTorch's defaults (alpha 0.99, eps 1e-8), as in Arjovsky et al.'s WGAN code
            return torch.optim.RMSprop(params, lr=lr)
        # fused: one kernel for all parameters instead of ~10 per tensor (launch-bound at batch 4)
        return torch.optim.Adam(params, lr=lr, betas=betas, fused=self.device.type == "cuda" or None)

    def autocast(self):
        if not self.amp:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    # pose-map settings for raw batches (fit sets the data's own)
    pose: dict = geometry.DEFAULT_POSE

    def compile(self) -> None:
        """torch.compile the training forward passes (G1's in Stage 1, G2's and D's in
        Stage 2); parameters are shared, so checkpoints and eval-mode passes are unchanged."""
        self.g1_t = torch.compile(self.g1_t)
        if self.g2 is not None:
            self.g2_t, self.d_t = torch.compile(self.g2_t), torch.compile(self.d_t)

    def to_device(self, batch: dict) -> dict:
        """A collated batch on the training device (channels_last where set). A raw batch
        (PairDataset(raw=True): uint8 images and masks, keypoints) is normalised and its pose
        maps rendered there: the same tensors the float path brings (tests/test_gpu_path.py)."""
        if "keypoints" in batch:
            from pgtrain.data import to_device_batch

            batch = to_device_batch(batch, self.device, self.pose["kind"], self.pose["radius"],
                                    self.pose["sigma"])
        out = {}
        for k, v in batch.items():
            if torch.is_tensor(v) and v.is_floating_point():
                v = v.to(self.device, non_blocking=True)
                if self.channels_last and v.ndim == 4:
                    v = v.contiguous(memory_format=torch.channels_last)
            out[k] = v
        return out

    # -- Stage 1
    def stage1_step(self, batch: dict) -> dict[str, torch.Tensor]:
        b = self.to_device(batch)
        self.g1.train()
        with self.autocast():
            out = self.g1_t(b["condition"], b["pose"])
        loss = losses.STAGE1[self.o.stage1_loss](out.float(), b["target"], b["mask"])
        self.opt["g1"].zero_grad(set_to_none=True)
        loss.backward()
        self.opt["g1"].step()
        return {"l1": loss.detach()}

    # -- Stage 2
    @torch.no_grad()
    def g1_output(self, b: dict) -> torch.Tensor:
        self.g1.eval()
        with self.autocast():
            return self.g1(b["condition"], b["pose"]).float()

    def d_input(self, b: dict, x: torch.Tensor) -> torch.Tensor:
        """What D classifies for image x: the pair D sees (I_A, x), the seed's and PG²'s
        triplet classifier x alone, the triplet-pose extension (x, P_B)."""
        if self.o.discriminator == "pair":
            return torch.cat([b["condition"], x], 1)
        if self.o.discriminator == "triplet-pose":
            return torch.cat([x, b["pose"]], 1)
        return x

    def d_scores(self, d, b: dict, fake: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(real scores, [fake scores...]): I_B is real; G2's output is fake, and for the
        triplet classifiers so is I_A. One forward over the concatenated sets, as
        trainer256.py runs D on concat([I_B, G2, I_A]): batch norm sees them together."""
        sets = [b["target"], fake] + ([] if self.o.discriminator == "pair" else [b["condition"]])
        scores = d(torch.cat([self.d_input(b, x) for x in sets])).float()
        real, *fakes = scores.split(fake.shape[0])
        return real, fakes

    def g2_output(self, b: dict, g1_out: torch.Tensor) -> torch.Tensor:
        """G2's output for batch b, with gradients (the G step backpropagates through it)."""
        with self.autocast():
            return self.g2_t(g1_out, b["condition"])

    def d_step(self, b: dict, g1_out: torch.Tensor, fake: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """One D step; `fake` is G2's output for b if the caller has it already (not updated here)."""
        self.d.train()
        if fake is None:
            with torch.no_grad(), self.autocast():
                fake = self.g2(g1_out, b["condition"])
        fake = fake.detach().float()
        with self.autocast():
            real, fakes = self.d_scores(self.d_t, b, fake)
        loss = losses.discriminator_loss(self.o.adversarial, real, fakes)
        out = {"d": loss.detach(), "d_real": real.detach().mean(), "d_fake": fakes[0].detach().mean()}
        if self.o.gp:
            gp = losses.gradient_penalty(self.d, self.d_input(b, b["target"]), self.d_input(b, fake))
            loss = loss + self.o.gp * gp
            out["gp"] = gp.detach()
        self.opt["d"].zero_grad(set_to_none=True)
        loss.backward()
        self.opt["d"].step()
        if self.o.clip:
            losses.clip_weights(self.d, self.o.clip)
        return out

    def g_step(self, b: dict, g1_out: torch.Tensor, fake: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """G2 minimises adv_weight * adversarial + l1_weight * (L1 + masked L1). The
        adversarial term scores G2's output ("g2"), or every fake set ("fakes": trainer256.py
        takes the mean over [G2, I_A], whose I_A half reaches G2 only through batch norm).
        `fake` = g2_output(b, g1_out) if the caller computed it already."""
        self.d.requires_grad_(False)  # D's gradient reaches G2, D itself is not updated
        try:
            if fake is None:
                fake = self.g2_output(b, g1_out)
            with self.autocast():
                _, fakes = self.d_scores(self.d, b, fake)
            scored = fakes[0] if self.o.g_adversarial_on == "g2" else torch.cat(fakes)
            adv = losses.generator_loss(self.o.adversarial, scored)
            l1 = losses.pose_mask_l1(fake.float(), b["target"], b["mask"])
            loss = self.o.adv_weight * adv + self.o.l1_weight * l1
            self.opt["g2"].zero_grad(set_to_none=True)
            loss.backward()
            self.opt["g2"].step()
        finally:
            self.d.requires_grad_(True)
        return {"g": loss.detach(), "g_adv": adv.detach(), "l1": l1.detach()}

    def stage2_step(self, next_batch: Callable[[], dict]) -> dict[str, torch.Tensor]:
        """`critic_steps` D steps, each on a new batch, and one G2 step: on the last D batch
        (seed, WGAN), or first, on its own batch (PG²'s train loop: g_optim2 then d_optim)."""
        out: dict[str, torch.Tensor] = {}
        if self.o.g_step_first:
            b = self.to_device(next_batch())
            out.update(self.g_step(b, self.g1_output(b)))
        for i in range(self.o.critic_steps):
            b = self.to_device(next_batch())
            g1_out = self.g1_output(b)
            # the G step reuses the last D batch: run G2 on it once, with gradients, for both
            fake = self.g2_output(b, g1_out) if i == self.o.critic_steps - 1 and not self.o.g_step_first else None
            out.update(self.d_step(b, g1_out, fake))
        if not self.o.g_step_first:
            out.update(self.g_step(b, g1_out, fake))
        return out

    # -- state
    def modules(self) -> dict[str, torch.nn.Module]:
        return {k: m for k, m in (("g1", self.g1), ("g2", self.g2), ("d", self.d)) if m is not None}

    def state_dict(self) -> dict:
        return {"nets": {k: m.state_dict() for k, m in self.modules().items()},
                "optims": {k: o.state_dict() for k, o in self.opt.items()}}

    def load_state_dict(self, ck: dict, path=None) -> None:
        for k, m in self.modules().items():
            if k in ck["nets"]:
                checkpoint.load_weights(m, ck["nets"][k], path, k.upper())
        for k, o in self.opt.items():
            if k in ck.get("optims", {}):
                o.load_state_dict(ck["optims"][k])


# ---------------------------------------------------------------- samples

@torch.no_grad()
def write_samples(path: Path, trainer: Trainer, batch: dict, stage: int) -> None:
    """condition | target pose | stage-1 | stage-2 | target, one row per sample pair."""
    from pgprep import draw

    b = trainer.to_device(batch)
    s1 = trainer.g1_output(b)
    s2 = None
    if stage == 2 and trainer.g2 is not None:
        trainer.g2.eval()
        with trainer.autocast():
            s2 = trainer.g2(s1, b["condition"]).float()
    rows = []
    for i in range(b["condition"].shape[0]):
        blank = torch.zeros_like(s1[i])  # mid-grey until Stage 2 exists
        rows.append([b["condition"][i], draw.pose_map_image(b["pose"][i]), s1[i].clamp(-1, 1),
                     (s2[i] if s2 is not None else blank).clamp(-1, 1), b["target"][i]])
    with rundir.writing(path):
        draw.save_png(path, draw.grid(rows, col_labels=SAMPLE_COLUMNS))


# ---------------------------------------------------------------- fit

def _options_from_checkpoint(saved: dict, overrides: dict, preset: str | None, run: Path) -> Options:
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


def _comparable(d: dict) -> dict:
    names = {f.name for f in dataclasses.fields(Options)} - presets.COSMETIC
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items() if k in names}


def _load_stage1(trainer: Trainer, source: Path) -> int:
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


def fit(shards, run, preset: str | None = None, *, allow_new_data: bool = False, **kwargs) -> dict:
    """Train a preset on SHARDS (a shard directory or any Dataset of PairDataset items) into RUN.

    Keywords: tiny, resume, test_data, callback and the options of `presets.resolve`.
    Returns the last logged record (step, stage, losses) plus `run` and `checkpoint`.
    `callback(stage, step, losses)` runs after every step (after any checkpoint of that step).
    RUN is locked for the whole call (pgtrain.rundir): a second fit into it stops with a
    message; temporary files a killed fit left in RUN are removed first. `--resume` on other
    data (SHARDS path or index.json content) stops unless `allow_new_data`.
    """
    run = Path(run)
    lock = rundir.RunLock(run) if dist.detect().is_main else None
    try:
        if lock is not None:
            removed = rundir.clean_stale_temps(run)
            if removed:
                print(f"{run}: removed {len(removed)} temporary file(s) a killed run left behind: "
                      + ", ".join(str(p.relative_to(run)) for p in removed))
        return _fit(shards, run, preset, allow_new_data=allow_new_data, **kwargs)
    finally:
        if lock is not None:
            lock.release()


def _fit(shards, run: Path, preset: str | None = None, *, tiny: bool = False, resume: bool = False,
         allow_new_data: bool = False, test_data: Dataset | None = None,
         callback: Callable[[int, int, dict], None] | None = None, **overrides) -> dict:
    if overrides.get("clip") == 0:
        overrides["clip"] = None
    last_path = run / "checkpoints" / "last.pt"
    ck = checkpoint.load(last_path) if last_path.exists() else None
    rundir.check_options(overrides)  # the Python API's overrides: the CLI's types checked them already
    if ck is not None:
        rundir.check_options(ck["options"], last_path)
    if ck is None:
        opts = presets.resolve(preset or "g1", tiny=tiny, **overrides)
    else:
        fresh = presets.resolve(preset or ck["options"]["preset"], tiny=tiny or ck["options"].get("tiny", False),
                                **overrides)
        if not resume:
            if ck.get("done") and _comparable(ck["options"]) == _comparable(fresh.to_dict()):
                print(f"{run}: already trained with these options; nothing to do")
                return {**ck.get("final", {}), "run": str(run), "checkpoint": str(last_path)}
            raise PgkitError(run, f"already holds a run (stage {ck['stage']}, step {ck['step']}); "
                                  "pass --resume to continue it, or choose another -o")
        opts = _options_from_checkpoint(ck["options"], overrides, preset, run)
        note = rundir.check_same_data(run, ck["options"], rundir.data_identity(shards), allow_new_data)
        if note:
            print(f"{run}: {note}")
        end = opts.stages[-1]
        if int(ck["stage"]) == end and int(ck["step"]) >= (opts.steps1 if end == 1 else opts.steps2):
            print(f"{run}: already trained to stage {end} step {ck['step']}; nothing to do")
            return {**ck.get("final", {}), "run": str(run), "checkpoint": str(last_path)}

    device = pick_device(opts.device)
    info = dist.init(device)
    device = dist.local_device(device, info)
    data_path = choose_data_path(opts.data_path, shards)
    train_ds = open_split(shards, "train", raw=data_path == "raw")
    sample_ds = test_data if test_data is not None else (open_split(shards, "test") or train_ds)
    size = image_size_of(train_ds)
    pose = getattr(train_ds, "pose", None) or geometry.DEFAULT_POSE
    record = {**opts.to_dict(), "image_size": list(size), "pose_kind": pose["kind"],
              "pose_radius": pose["radius"], "pose_sigma": pose["sigma"],
              "shards": str(shards) if not isinstance(shards, Dataset) else type(shards).__name__,
              "world_size": info.world_size, "device_used": str(device), "data_path_used": data_path}
    record.update(rundir.data_identity(shards))  # what --resume compares (pgtrain.rundir)
    if ck is not None:  # shapes first, on the meta device: nothing of the wrong width is allocated
        spec = {**opts.to_dict(), "image_size": list(size)}
        for k in ("g1", "g2", "d"):
            if k in ck["nets"] and (k == "g1" or opts.discriminator is not None):
                checkpoint.check_state_shapes(k, spec, ck["nets"][k], last_path)
    if info.is_main:
        if ck is None:
            rundir.check_fresh_run(run)
        run.mkdir(parents=True, exist_ok=True)
        with rundir.writing(run / "options.json"):
            write_json_atomic(run / "options.json", record)

    trainer = Trainer(opts, size, device, info)
    stage_at, step_at, stage1_steps = opts.stages[0], 0, 0
    data_pos = {"epoch": 0, "batch": 0}
    if ck is not None:
        trainer.load_state_dict(ck, last_path)
        stage_at, step_at = int(ck["stage"]), int(ck["step"])
        stage1_steps = int(ck.get("stage1_steps", 0))
        data_pos = ck["data"]
        checkpoint.set_rng_state(ck["rng"])
        if info.rank:
            torch.manual_seed(dist.rank_seed(opts.seed, info) * 1_000_003 + step_at)
    else:
        if opts.stages[0] == 2:
            source = Path(opts.init_from) if opts.init_from else run / "checkpoints" / "stage1.pt"
            if not source.exists():
                raise PgkitError(source, "Stage 2 needs a trained G1: pass --init-from CKPT "
                                         "(a Stage-1 run's checkpoints/stage1.pt or last.pt)")
            stage1_steps = _load_stage1(trainer, source)
        torch.manual_seed(dist.rank_seed(opts.seed, info))
    trainer.pose = pose
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: pick the fastest conv kernels once
    if opts.compile:
        trainer.compile()
    workers = opts.workers if opts.workers is not None else (0 if device.type == "cpu" else 4)
    stream = BatchStream(train_ds, opts.batch_size, opts.seed, info, workers=workers,
                         pin=device.type == "cuda", **data_pos)
    sample_batch = collate([sample_ds[i] for i in range(min(opts.sample_count, len(sample_ds)))])
    stats = StatsWriter(run, info.is_main, keep_until=(stage_at, step_at) if ck is not None else None)
    last: dict = dict(ck.get("final", {})) if ck is not None else {}

    finished = []
    pending: list[tuple[int, dict]] = []  # (step, losses on the device) not yet checked

    def save(stage: int, step: int, done: bool, extra: tuple[str, ...] = ()) -> None:
        if done:
            finished.append(True)
        if info.is_main:
            state = {"options": record, "stage": stage, "step": step, "done": done,
                     "stage1_steps": stage1_steps, "data": stream.state(),
                     "rng": checkpoint.rng_state(), "final": last, **trainer.state_dict()}
            for name in ("last", *extra):
                checkpoint.save(run / "checkpoints" / f"{name}.pt", state)
        dist.barrier(info)

    try:
        for stage in opts.stages:
            if stage < stage_at:
                continue
            total = opts.steps1 if stage == 1 else opts.steps2
            start = step_at if stage == stage_at else 0
            offset = 0 if stage == 1 else stage1_steps
            bar = progress(total=total, desc=f"stage {stage}", unit="step",
                           disable=None if info.is_main else True)
            bar.update(start)
            t0, since = time.perf_counter(), 0
            for step in range(start + 1, total + 1):
                if stage == 1:
                    out = trainer.stage1_step(next(stream))
                else:
                    out = trainer.stage2_step(lambda: next(stream))
                # The losses stay on the device until a step that logs, checkpoints or calls back:
                # then one device-to-host copy brings every step's since the last, so the host
                # never waits for the GPU in between; a NaN/inf is still named by its first step
                # and stops the run before any checkpoint holds it.
                pending.append((step, out))
                if (callback is not None or step % opts.log_every == 0 or step == total
                        or step % opts.ckpt_every == 0):
                    rows = torch.stack([torch.stack([v.float() for v in o.values()])
                                        for _, o in pending]).tolist()
                    bad = next(((s, k, v) for (s, o), row in zip(pending, rows, strict=True)
                                for k, v in zip(o, row, strict=True) if not math.isfinite(v)), None)
                    values = dict(zip(out, rows[-1], strict=True))
                    pending.clear()
                    if dist.any_over_ranks(bad is not None, info, device):
                        s, k, v = bad or (step, "on another rank", float("nan"))
                        kept = checkpoint.describe(last_path) if last_path.exists() else "no checkpoint yet"
                        raise PgkitError(run, f"loss {k} became {v} at stage {stage} step {s}; stopped "
                                              f"(kept {kept}); try a lower --lr")
                since += 1
                if stage == 1:
                    stage1_steps = step
                if step % opts.log_every == 0 or step == total:
                    dt = time.perf_counter() - t0
                    values = dist.mean_over_ranks(values, info, device)
                    pairs = since * opts.batch_size * opts.batches_per_step(stage)
                    last = {"step": step, "stage": stage, "global_step": offset + step, **values,
                            "samples_per_s": round(pairs / max(dt, 1e-9), 2)}
                    stats.write(last)
                    bar.set_postfix({k: f"{v:.4g}" for k, v in values.items()
                                     if k in ("l1", "d", "g_adv")} | {"samples/s": last["samples_per_s"]})
                    t0, since = time.perf_counter(), 0
                bar.update(1)
                if info.is_main and (step % opts.sample_every == 0 or step == total):
                    write_samples(run / "samples" / f"step-{offset + step:07d}.png", trainer, sample_batch, stage)
                if step % opts.ckpt_every == 0 or step == total:
                    final = step == total and stage == opts.stages[-1]
                    save(stage, step, final, ("stage1",) if stage == 1 and step == total else ())
                if callback is not None:
                    callback(stage, step, values)
            bar.close()
        if not finished:  # the last stage had no steps to run (e.g. --steps2 0)
            end = opts.stages[-1]
            save(end, opts.steps1 if end == 1 else opts.steps2, True)
    finally:
        stream.close()
        stats.close()
    return {**last, "run": str(run), "checkpoint": str(last_path)}


# ---------------------------------------------------------------- CLI

@click.command("fit")
@click.argument("shards", type=click.Path(exists=True, file_okay=False))
@click.option("-o", "--output", "run", required=True, type=click.Path(file_okay=False),
              help="Run directory (options.json, stats.jsonl, samples/, checkpoints/).")
@click.option("--preset", type=click.Choice(list(presets.PRESETS)), default=None,
              help="The system to train (see below) [g1].")
@click.option("--tiny", is_flag=True, help="CPU-sized: width 16, batch 8, 600 + 200 steps, lr 1e-3 then 1e-4.")
@click.option("--stage", type=click.Choice(["1", "2", "both"]), default=None,
              help="Train Stage 1, Stage 2, or both [both].")
@click.option("--init-from", type=click.Path(dir_okay=False), default=None,
              help="Stage 2: take G1 from this checkpoint (default RUN/checkpoints/stage1.pt).")
@click.option("--steps1", type=OptionType("steps1"), default=None, help="Stage-1 (G1) steps [40000].")
@click.option("--steps2", type=OptionType("steps2"), default=None, help="Stage-2 (G2) generator steps [25000].")
@click.option("--batch-size", type=OptionType("batch_size"), default=None, help="Global batch size [4].")
@click.option("--channels", type=OptionType("channels"), default=None, help="Base width of G1/G2 [128, PG²].")
@click.option("--d-channels", type=OptionType("d_channels"), default=None, help="Base width of D [channels/2].")
@click.option("--lr", type=OptionType("lr"), default=None, help="Learning rate, every network [5e-5].")
@click.option("--lr2", type=OptionType("lr2"), default=None, help="Stage-2 learning rate, G2 and D [--lr].")
@click.option("--lr-d", type=OptionType("lr_d"), default=None, help="D's learning rate [--lr2].")
@click.option("--optimizer1", type=click.Choice(["adam", "rmsprop"]), default=None,
              help="Stage-1 optimiser [adam, every preset].")
@click.option("--optimizer", type=click.Choice(["adam", "rmsprop"]), default=None,
              help="Stage-2 optimiser, G2 and D [adam; rmsprop for wgan-triplet]")
@click.option("--beta1", type=OptionType("beta1"), default=None, help="Adam beta1 [0.5].")
@click.option("--stage1-loss", type=click.Choice(["pose-mask-l1", "l1"]), default=None,
              help="G1's loss [pose-mask-l1 (seed); l1 for pg2-official].")
@click.option("--g-adversarial-on", type=click.Choice(["g2", "fakes"]), default=None,
              help="G2's adversarial term on D(G2) or on every fake set [g2; fakes for pg2-official].")
@click.option("--diffmap-init", type=OptionType("diffmap_init"), default=None,
              help="Scale of G2's last-layer init [1 = PG²'s Glorot; 0.1 with --tiny].")
@click.option("--l1-weight", type=OptionType("l1_weight"), default=None, help="G2's pose-mask L1 weight [50].")
@click.option("--adv-weight", type=OptionType("adv_weight"), default=None, help="G2's adversarial weight [1].")
@click.option("--critic-steps", type=OptionType("critic_steps"), default=None, help="D steps per G2 step [1; wgan 10].")
@click.option("--clip", type=OptionType("clip"), default=None, help="Critic weight clip, 0 = off [wgan 0.01].")
@click.option("--gp", type=OptionType("gp"), default=None, help="WGAN-GP weight, 0 = off (needs --d-norm none).")
@click.option("--d-norm", type=click.Choice(["batch", "none"]), default=None, help="D normalisation [batch].")
@click.option("--seed", type=OptionType("seed"), default=None, help="Seed of weights and data order [0].")
@click.option("--device", default=None, help="auto | cpu | cuda | cuda:N | mps [auto].")
@click.option("--amp/--no-amp", default=None, help="bf16 autocast on GPU [on].")
@click.option("--channels-last/--no-channels-last", default=None, help="Memory format [on for CUDA and CPU].")
@click.option("--workers", type=OptionType("workers"), default=None, help="DataLoader workers [0 on CPU, 4 on GPU].")
@click.option("--data-path", type=click.Choice(["auto", "raw", "float"]), default=None,
              help="raw: uint8 bytes to the device, pose maps rendered there; float: float32 "
                   "items from the loader [auto: raw].")
@click.option("--compile/--no-compile", "compile", default=None, help="torch.compile the training passes [off].")
@click.option("--log-every", type=OptionType("log_every"), default=None, help="stats.jsonl every N steps [50].")
@click.option("--sample-every", type=OptionType("sample_every"), default=None, help="Sample grid every N steps [1000].")
@click.option("--ckpt-every", type=OptionType("ckpt_every"), default=None, help="Checkpoint every N steps [1000].")
@click.option("--resume", is_flag=True, help="Continue the run in RUN from checkpoints/last.pt.")
@click.option("--allow-new-data", is_flag=True,
              help="With --resume: continue on SHARDS even if it is not the data the checkpoint "
                   "was trained on (another path or a changed index.json).")
def command(shards, run, preset, tiny, resume, allow_new_data, **options):
    """Train G1 (Stage 1) and G2 with a discriminator (Stage 2) on SHARDS into RUN.

    \b
    pgtrain fit data/shards -o runs/g1  --preset g1             # G1 only, 40k steps
    pgtrain fit data/shards -o runs/pg2 --preset pg2            # G1 then G2 + PG² pair D
    pgtrain fit data/shards -o runs/wt  --preset wgan-triplet   # RMSProp, 10 critic steps
    pgtrain fit data/shards -o runs/t   --preset pg2 --tiny     # CPU-sized, minutes
    pgtrain fit data/shards -o runs/pg2 --resume                # continue where it stopped
    torchrun --nproc_per_node 4 -m pgtrain fit data/shards -o runs/pg2 --preset pg2

    \b
    Presets (the seed's Table 1): g1 = G1 alone; pg2 = G1 + G2 + the pair D
    (real (I_A, I_B), fake (I_A, G2)); triplet = G2 vs the one-image classifier
    (I_B real; G2 and I_A fake); wgan-triplet = that classifier as a WGAN critic
    (RMSProp in Stage 2, clip 0.01, 10 critic steps); pg2-official = Ma et al.'s
    released configuration (batch 1, Adam 2e-5, 22k + 58k steps, plain-L1 Stage 1).
    Extensions: triplet-pose (the classifier given P_B), wgan-gp-triplet (gradient
    penalty). Defaults are the seed's schedule (batch 4, 40k + 25k steps, lr 5e-5);
    every option above overrides them. Sources: docs/training.md.

    \b
    Two runs for the stages: `--stage 1` into RUN, then `--resume --stage 2` on RUN,
    or `--stage 2 --init-from RUN/checkpoints/stage1.pt -o RUN2`.
    RUN holds options.json, stats.jsonl, samples/step-NNNNNNN.png (condition |
    target pose | stage-1 | stage-2 | target) and checkpoints/{last,stage1}.pt.
    A loss that becomes NaN/inf stops the run (exit 1), keeping the last checkpoint.
    One fit per RUN at a time (RUN/.lock); --resume refuses other SHARDS (path or
    index.json) unless --allow-new-data; a full disk stops with the file's name.
    """
    overrides = {k: v for k, v in options.items() if v is not None}
    out = fit(shards, run, preset, tiny=tiny, resume=resume, allow_new_data=allow_new_data, **overrides)
    shown = {k: v for k, v in out.items() if k not in ("run", "checkpoint")}
    click.echo(json.dumps(shown))
    click.echo(f"run: {out['run']}  checkpoint: {out['checkpoint']}")
