"""`pgtrain fit`: train G1 (Stage 1), then G2 against a pair / triplet / WGAN discriminator.

`fit` reads top to bottom: lock RUN, plan what to do with it (pgtrain/setup.py: the resume /
overwrite policy), set up the device, data, networks and start position, then the step loop,
which logs to stats.jsonl, draws sample grids and checkpoints. One step of each stage, in the
paper's symbols, is `Trainer.stage1_step` / `Trainer.stage2_step` (pgtrain/trainer.py); the
data order, a pure function of (seed, epoch), is `BatchStream` (pgtrain/batches.py). A
checkpoint stores the networks, optimisers, RNG states and the data position, so `--resume`
continues exactly.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path

import click
import torch
from torch.utils.data import Dataset
from torch.utils.data import default_collate as collate

from pgprep.cliutil import progress
from pgprep.errors import PgkitError
from pgtrain import checkpoint, dist, presets, rundir, setup
from pgtrain.batches import BatchStream
from pgtrain.rundir import OptionType
from pgtrain.setup import choose_data_path, image_size_of, open_split, pick_device
from pgtrain.stats import StatsWriter
from pgtrain.trainer import Trainer

SAMPLE_COLUMNS = ["condition", "target pose", "stage-1", "stage-2", "target"]


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
    plan = setup.plan(run, preset, overrides, tiny=tiny, resume=resume, shards=shards,
                      allow_new_data=allow_new_data)
    for note in plan.notes:
        print(f"{run}: {note}")
    if plan.done:
        print(f"{run}: {plan.done}")
        return plan.result(run)
    opts, ck, last_path = plan.options, plan.checkpoint, setup.last_checkpoint(run)

    # device, data and the run record (options.json) before anything is built
    device = pick_device(opts.device)
    info = dist.init(device)
    device = dist.local_device(device, info)
    data_path = choose_data_path(opts.data_path, shards)
    train_ds = open_split(shards, "train", raw=data_path == "raw")
    sample_ds = test_data if test_data is not None else (open_split(shards, "test") or train_ds)
    size, pose = image_size_of(train_ds), setup.pose_of(train_ds)
    record = setup.run_record(opts, size, pose, shards, info, device, data_path)
    if ck is not None:
        setup.check_checkpoint_shapes(ck, opts, size, last_path)
    if info.is_main:
        setup.write_options(run, record, fresh=ck is None)

    # networks, optimisers, RNG and data position: restored from the checkpoint, or new
    trainer = Trainer(opts, size, device, info)
    at = setup.start(trainer, ck, opts, run, info)
    stage1_steps = at.stage1_steps
    trainer.pose = pose
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: pick the fastest conv kernels once
    if opts.compile:
        trainer.compile()
    workers = opts.workers if opts.workers is not None else (0 if device.type == "cpu" else 4)
    stream = BatchStream(train_ds, opts.batch_size, opts.seed, info, workers=workers,
                         pin=device.type == "cuda", **at.data)
    sample_batch = collate([sample_ds[i] for i in range(min(opts.sample_count, len(sample_ds)))])
    stats = StatsWriter(run, info.is_main, keep_until=(at.stage, at.step) if ck is not None else None)
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
            if stage < at.stage:
                continue
            total = opts.steps1 if stage == 1 else opts.steps2
            start = at.step if stage == at.stage else 0
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
                    values, bad = _to_host(pending)
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


def _to_host(pending: list[tuple[int, dict]]) -> tuple[dict, tuple | None]:
    """One device-to-host copy of the pending steps' losses (emptied): the last step's values,
    and the first non-finite (step, loss name, value), or None."""
    rows = torch.stack([torch.stack([v.float() for v in o.values()]) for _, o in pending]).tolist()
    bad = next(((s, k, v) for (s, o), row in zip(pending, rows, strict=True)
                for k, v in zip(o, row, strict=True) if not math.isfinite(v)), None)
    values = dict(zip(pending[-1][1], rows[-1], strict=True))
    pending.clear()
    return values, bad


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
