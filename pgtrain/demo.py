"""`pgtrain demo OUT`: the whole method on synthetic people, sized for a 2-core CPU.

synth -> filter -> pairs -> masks -> pack -> fit (G1 then G2 with the PG² pair D) -> eval ->
figures. Every stage is the same library function the CLI runs, so the demo is also the
shortest end-to-end test of the pipeline. A rerun skips stages whose output is complete.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import click

from pgprep.atomic import write_text_atomic
from pgprep.cliutil import debug_option


@dataclass(frozen=True)
class DemoSize:
    """How big the demo is. The defaults finish in a few minutes on 2 CPU cores."""

    items: int = 160          # synthetic items (2-6 images each)
    size: int = 64            # image side in pixels
    seed: int = 0
    preset: str = "pg2"       # G1 + G2 + PG² pair discriminator
    channels: int = 16        # base width of the networks (PG²'s is 128)
    batch_size: int = 8
    steps1: int = 600         # Stage-1 (G1) steps (1500 before issue 21, so that install + demo fit in 5 minutes)
    steps2: int = 100         # Stage-2 (G2 + D) steps
    lr: float = 1e-3          # Stage 1
    lr2: float = 5e-5         # Stage 2, the seed's lr (1e-4 tinted G2's output after 300 steps)
    eval_limit: int | None = None  # test pairs scored (None = all)


def _say(msg: str) -> None:
    click.echo(msg, err=True)


def prepare_data(root: Path, work: Path, shards: Path, *, items: int, size: int, seed: int,
                 jobs: int | None = None, stage=None) -> Path:
    """synth -> filter -> pairs -> masks -> pack into root, work, shards (the demo's data; also
    benchmarks/table1_proxy.py). `stage(name, fn, *args, **kw)` wraps each call (timings)."""
    from pgprep.filter import run_filter
    from pgprep.masks import run_masks
    from pgprep.pack import run_pack
    from pgprep.pairs import run_pairs
    from pgprep.synth import synthesize

    stage = stage or (lambda _name, fn, *a, **kw: fn(*a, **kw))
    stage("synth", synthesize, root, items=items, seed=seed, size=size, jobs=jobs)
    stage("filter", run_filter, root, root / "pose" / "openpose", work)
    stage("pairs", run_pairs, work, seed=seed)
    stage("masks", run_masks, work, jobs=jobs, scale=True)
    stage("pack", run_pack, work, shards, layout="compact", jobs=jobs)
    return shards


def run_demo(out: str | Path, size: DemoSize = DemoSize(), jobs: int | None = None) -> dict:
    """Run every stage into OUT; returns a summary with the paths and the test-split SSIMs."""
    from pgtrain.evaluate import evaluate
    from pgtrain.figures import make_figures
    from pgtrain.loop import fit

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    root, work, shards, run = out / "synth", out / "work", out / "shards", out / "run"
    timings: dict[str, float] = {}
    t_start = time.perf_counter()

    def stage(name: str, fn, *args, **kwargs):
        _say(f"[demo] {name} ...")
        t0 = time.perf_counter()
        result = fn(*args, **kwargs)
        timings[name] = round(time.perf_counter() - t0, 1)
        return result

    prepare_data(root, work, shards, items=size.items, size=size.size, seed=size.seed, jobs=jobs, stage=stage)
    stage("fit", fit, shards, run, preset=size.preset, tiny=True, channels=size.channels,
          batch_size=size.batch_size, steps1=size.steps1, steps2=size.steps2, lr=size.lr, lr2=size.lr2,
          seed=size.seed, resume=True)
    report = stage("eval", evaluate, run, shards, split="test", limit=size.eval_limit)
    figures = stage("figures", make_figures, run, shards, out=run / "figures")
    summary = {"out": str(out), "root": str(root), "work": str(work), "shards": str(shards),
               "run": str(run), "figures": [str(p) for p in figures], "size": asdict(size),
               "seconds": timings, "total_seconds": round(time.perf_counter() - t_start, 1), "eval": report}
    write_text_atomic(out / "demo.json", json.dumps(summary, indent=2, default=str) + "\n")
    return summary


@click.command("demo")
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--items", default=DemoSize.items, show_default=True, help="Synthetic items to render.")
@click.option("--size", "image_size", default=DemoSize.size, show_default=True, help="Image side in pixels.")
@click.option("--steps1", default=DemoSize.steps1, show_default=True, help="Stage-1 (G1) steps.")
@click.option("--steps2", default=DemoSize.steps2, show_default=True, help="Stage-2 (G2 + D) steps.")
@click.option("--channels", default=DemoSize.channels, show_default=True, help="Base network width.")
@click.option("--seed", default=DemoSize.seed, show_default=True)
@click.option("--jobs", type=int, default=None, help="Parallel jobs for data preparation (default: all cores).")
@debug_option
def command(out, items, image_size, steps1, steps2, channels, seed, jobs):
    """The whole pipeline on synthetic people, CPU-sized: a trained model and its pictures.

    \b
    pgtrain demo out/demo                      # ~4 minutes on 2 CPU cores
    pgtrain demo out/demo --steps1 200 --steps2 50 --items 40   # a quick smoke run

    \b
    Writes OUT/synth (a DeepFashion-shaped tree), OUT/work (images.csv, pairs, masks),
    OUT/shards (HDF5 + index.json), OUT/run (options.json, stats.jsonl, samples/,
    checkpoints/, eval.json, figures/) and OUT/demo.json. The last line printed is
    `baseline-ssim=X model-ssim=Y` on the test split (PG² SSIM convention), where the
    baseline returns the condition image unchanged. Rerunning skips finished stages.
    """
    size = DemoSize(items=items, size=image_size, seed=seed, steps1=steps1, steps2=steps2,
                    channels=channels)
    s = run_demo(out, size, jobs=jobs)
    ev = s["eval"]
    click.echo("")
    click.echo(f"synthetic set : {s['root']}")
    click.echo(f"work dir      : {s['work']}  (images.csv, rejects.csv, pairs-*.csv, masks/)")
    click.echo(f"shards        : {s['shards']}")
    click.echo(f"run           : {s['run']}  (options.json, stats.jsonl, samples/, checkpoints/)")
    for p in s["figures"]:
        click.echo(f"figure        : {p}")
    click.echo(f"stage seconds : {s['seconds']}")
    click.echo(f"demo time     : {s['total_seconds']:.0f} s in all (this run; stages already complete are skipped)")
    click.echo("")
    click.echo(ev.get("table", ""))
    click.echo("")
    click.echo(f"baseline-ssim={ev['baseline']['ssim_pg2']:.4f} model-ssim={ev['model']['ssim_pg2']:.4f}")
