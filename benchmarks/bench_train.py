"""Training cost per preset: step time, samples/s, peak memory, FLOPs, and the seed's schedule.

    python benchmarks/bench_train.py            # quick (~1-2 minutes on 2 cores)
    python benchmarks/bench_train.py --full     # PG² width at 256x256 on every preset (long)

- step time / samples/s / peak RSS: one fresh subprocess per configuration (so the peak
  resident memory is that configuration's alone), a warm-up step, then timed steps on a
  fixed random batch. A Stage-2 step of wgan-triplet is 10 critic steps + 1 G2 step.
- FLOPs per step: torch.utils.flop_counter on the meta device (shapes only, no compute),
  so PG²'s 256x256 / width-128 networks are counted for every preset in milliseconds.
- the seed's schedule (40k Stage-1 + 25k Stage-2 steps, batch 4) projected on one GPU from
  those FLOPs at an assumed sustained throughput (A100 bf16, 30 % of its 312 TFLOP/s peak).
- channels_last and torch.compile: the same G1 step at 64x64 / width 16 on CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PRESETS = ("g1", "pg2", "triplet", "wgan-triplet", "pg2-official")
GPU_TFLOPS = 790.0 * 0.40  # assumed: an H200's measured bf16 peak at issue 14's 40 % MFU goal


def random_batch(size: int, b: int, device, g=None) -> dict:
    """A device batch of noise shaped as PairDataset's (condition, target, pose in [-1, 1], a
    0/1 mask), drawn from `g` (default: a generator seeded 0). gpu_check uses it too."""
    import torch

    g = torch.Generator().manual_seed(0) if g is None else g
    h = w = size
    return {"condition": torch.rand(b, 3, h, w, generator=g).mul(2).sub(1).to(device),
            "target": torch.rand(b, 3, h, w, generator=g).mul(2).sub(1).to(device),
            "pose": torch.rand(b, 18, h, w, generator=g).mul(2).sub(1).to(device),
            "mask": (torch.rand(b, 1, h, w, generator=g) > 0.5).float().to(device)}


def count_flops(step) -> float:
    """FLOPs of one call of `step` (torch.utils.flop_counter; on meta tensors, shapes only).
    gpu_check uses it too."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as fc:
        step()
    return float(fc.get_total_flops())


def _trainer(preset: str, size: int, channels: int, batch: int, device, **kw):
    import torch

    from pgtrain.loop import Trainer
    from pgtrain.presets import resolve

    o = resolve(preset, channels=channels, batch_size=batch, device="cpu", **kw)
    return Trainer(o, (size, size), torch.device(device)), o


def _step_fn(tr, preset: str, b: dict):
    if preset == "g1":
        return lambda: tr.stage1_step(b)
    return lambda: tr.stage2_step(lambda: b)


def flops_per_step(preset: str, size: int, channels: int, batch: int) -> float:
    """FLOPs of one training step (Stage 1 for g1, Stage 2 otherwise), counted on meta."""
    tr, _ = _trainer(preset, size, channels, batch, "meta")
    return count_flops(_step_fn(tr, preset, _batch_meta(size, batch)))


def _batch_meta(size: int, b: int):
    import torch

    m = torch.device("meta")
    return {"condition": torch.empty(b, 3, size, size, device=m), "target": torch.empty(b, 3, size, size, device=m),
            "pose": torch.empty(b, 18, size, size, device=m), "mask": torch.empty(b, 1, size, size, device=m)}


def measure_one(cfg: dict) -> dict:
    """Run in a fresh process: time `steps` steps after one warm-up, report peak RSS."""
    import resource

    import torch

    torch.set_num_threads(cfg.get("threads", 1))
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tr, _ = _trainer(cfg["preset"], cfg["size"], cfg["channels"], cfg["batch"], "cpu",
                     channels_last=cfg.get("channels_last", True))
    b = random_batch(cfg["size"], cfg["batch"], "cpu")
    step = _step_fn(tr, cfg["preset"], b)
    if cfg.get("compile"):
        tr.compile()
    t0 = time.perf_counter()
    if cfg.get("warmup", True):
        step()
    warm = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(cfg["steps"]):
        step()
    dt = (time.perf_counter() - t0) / cfg["steps"]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"step_s": dt, "warmup_s": warm, "peak_mib": peak / 1024, "extra_mib": (peak - base) / 1024}


def _subprocess(cfg: dict) -> dict:
    env = {**os.environ, "PYTHONPATH": str(HERE.parent) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run([sys.executable, __file__, "--one", json.dumps(cfg)], capture_output=True,
                         text=True, env=env, timeout=3600)
    if out.returncode:
        raise RuntimeError(f"bench config {cfg} failed: {out.stderr.strip().splitlines()[-1:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(quick: bool = True) -> list[dict]:
    sys.path.insert(0, str(HERE.parent))
    rows: list[dict] = []

    def add(name, value, unit, note=""):
        rows.append({"benchmark": name, "value": value, "unit": unit, "note": note})

    # 1. FLOPs at PG²'s size, each preset at its own batch (meta device, no compute)
    from pgtrain.presets import PRESETS as OPTIONS

    flops = {p: flops_per_step(p, 256, 128, OPTIONS[p].batch_size) for p in PRESETS}
    s1 = {p: flops_per_step("g1", 256, 128, OPTIONS[p].batch_size) for p in PRESETS}
    for p in PRESETS:
        add(f"train flops/step {p} 256px w128 b{OPTIONS[p].batch_size}", round(flops[p] / 1e12, 3), "TFLOP",
            "Stage 1 step" if p == "g1" else "Stage 2 step (critic steps + G2 step)")
    # 2. each preset's schedule on one GPU, from the FLOP count (an estimate, not a measurement)
    for p in PRESETS:
        o = OPTIONS[p]
        total = s1[p] * o.steps1 + (flops[p] * o.steps2 if p != "g1" else 0)
        add(f"schedule {p} projected 1 GPU", round(total / (GPU_TFLOPS * 1e12) / 3600, 2), "h",
            f"{o.steps1 // 1000}k+{o.steps2 // 1000}k steps, batch {o.batch_size}, at {GPU_TFLOPS:.0f} "
            "TFLOP/s (H200 bf16 at 40 % MFU, assumed)")

    # 3. measured on CPU
    tiny = [dict(preset=p, size=64, channels=16, batch=8, steps=3 if p != "wgan-triplet" else 1) for p in PRESETS]
    if quick:
        pg2_size = [dict(preset="g1", size=256, channels=128, batch=1, steps=1, warmup=False),
                    dict(preset="pg2", size=256, channels=128, batch=1, steps=1, warmup=False)]
        mid = [dict(preset="g1", size=256, channels=16, batch=4, steps=2)]
    else:
        pg2_size = [dict(preset=p, size=256, channels=128, batch=4, steps=2) for p in PRESETS]
        mid = [dict(preset=p, size=256, channels=16, batch=4, steps=3) for p in PRESETS]
    for cfg in tiny + mid + pg2_size:
        r = _subprocess(cfg)
        tag = f"{cfg['preset']} {cfg['size']}px w{cfg['channels']} b{cfg['batch']}"
        add(f"train step {tag}", round(r["step_s"] * 1000, 1), "ms/step", "CPU, 1 thread, channels_last")
        pairs = cfg["batch"] * (10 if cfg["preset"] == "wgan-triplet" else 1)
        add(f"train samples/s {tag}", round(pairs / r["step_s"], 2), "pairs/s",
            "pairs consumed (wgan: 10 critic batches per step)")
        add(f"train peak RSS {tag}", round(r["peak_mib"]), "MiB", f"+{r['extra_mib']:.0f} MiB over torch import")

    # 4. channels_last / torch.compile on CPU (G1 step, 64x64, width 16, batch 8)
    base = dict(preset="g1", size=64, channels=16, batch=8, steps=5)
    ref = _subprocess(base)["step_s"]
    cl = ref
    ref = _subprocess({**base, "channels_last": False})["step_s"]
    add("channels_last effect G1 64px w16 b8", round(cl / ref, 2), "x step time",
        f"contiguous {ref * 1000:.0f} -> channels_last {cl * 1000:.0f} ms (the CPU default)")
    if not quick:
        comp = _subprocess({**base, "compile": True, "steps": 10})
        add("torch.compile effect G1 64px w16 b8", round(comp["step_s"] / cl, 2), "x step time",
            f"{cl * 1000:.0f} -> {comp['step_s'] * 1000:.0f} ms, compile {comp['warmup_s']:.0f} s")
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--full", action="store_true")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        sys.path.insert(0, str(HERE.parent))
        print(json.dumps(measure_one(json.loads(args.one))))
        return 0
    from pgprep.cliutil import format_table

    rows = run(quick=not args.full)
    print(format_table([[r["benchmark"], r["value"], r["unit"], r["note"]] for r in rows],
                       ["benchmark", "value", "unit", "note"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
