"""The training path measured on one GPU, in one command: a table printed and written to
benchmarks/RESULTS-gpu.md (+ .json).

    PYTHONPATH=. python3 benchmarks/gpu_check.py                        # one H200: <= 8 minutes
    python benchmarks/gpu_check.py --device cpu --quick --out /tmp/gc   # CI: tiny sizes, seconds

What it measures (256x256, width 128 unless --quick):
- synthetic shards made here: pgprep synth -> filter -> pairs -> masks -> pack (the CLI);
- per preset (g1, pg2, triplet, wgan-triplet, pg2-official at batch 4; g1 at 16;
  pg2-official at its own batch 1): step time after warm-up (a Stage-2 step = critic_steps
  D steps + one G2 step; g1 = a Stage-1 step), samples/s, model FLOPs per step (counted with
  torch.utils.flop_counter on that very step), MFU against --peak-tflops (H200 bf16 dense,
  measured ~790), peak GPU memory;
- the Table 1 schedules in hours, projected from those measured step times;
- bf16 vs fp32: Stage-1 loss after 100 steps from the same seed and batches;
- the loader (BatchStream + Trainer.to_device, as fit uses them) with --workers workers on
  the raw uint8 path and the float path, and `fit` itself end to end on both;
- torch.compile on / off (G1 step); a one-process DDP step (NCCL on CUDA, gloo on CPU).

Every measurement runs in its own try/except: a failure is a row saying so, never an abort.
A global --budget skips the rows not yet started once it is spent. Needs only torch, h5py,
numpy, click, pandas, scipy, opencv and joblib (what the GPU machine has).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

import torch  # noqa: E402
from bench_train import count_flops, random_batch  # noqa: E402  (the same noise and FLOP count)

PRESET_ROWS = (("g1", 4), ("g1", 16), ("pg2", 4), ("triplet", 4), ("wgan-triplet", 4),
               ("pg2-official", 4), ("pg2-official", 1))
SEED_ROWS = ("g1", "pg2", "triplet", "wgan-triplet")  # the seed's Table 1 (Stage 1 shared)
SCHEDULE_ROWS = (*SEED_ROWS, "pg2-official")
STEP_METRICS = ("step time", "samples/s", "flops/step", "MFU", "peak memory")


@dataclasses.dataclass
class Config:
    device: torch.device
    quick: bool
    size: int
    channels: int
    workers: int
    peak_tflops: float | None
    budget: float
    warmup: int
    steps1: int        # timed Stage-1 steps
    steps2: int        # timed Stage-2 steps
    compare_steps: int  # bf16 vs fp32
    loader_pairs: int
    fit_steps: int
    items: int
    compile: bool


def make_config(args) -> Config:
    dev = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if dev.type == "cuda" and dev.index is None:  # DDP wants an index
        dev = torch.device("cuda", torch.cuda.current_device())
    peak = args.peak_tflops if args.peak_tflops is not None else (790.0 if dev.type == "cuda" else None)
    if args.quick:
        torch.set_num_threads(1)  # tiny networks on a shared CI box: no thread oversubscription
        return Config(dev, True, 32, 8, min(args.workers, 2), peak, args.budget or 300.0, 1, 2, 1, 3,
                      48, 4, 10, args.compile)
    return Config(dev, False, 256, 128, args.workers, peak, args.budget or 450.0, 5, 20, 10, 100,
                  3000, 200, 30, True)


# ---------------------------------------------------------------- the table

class Table:
    def __init__(self, cfg: Config):
        self.cfg, self.rows, self.t0 = cfg, {}, time.perf_counter()
        self.planned = planned_rows()

    def set(self, row: str, value, unit: str = "", note: str = "", status: str = "ok") -> None:
        assert row in self.planned, row
        self.rows[row] = {"row": row, "value": value, "unit": unit, "status": status, "note": note}

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def run(self, rows: list[str], fn) -> None:
        """fn() fills `rows`; an exception fills them with the error, the budget skips them."""
        if self.elapsed() > self.cfg.budget:
            for r in rows:
                self.set(r, None, status="skipped", note=f"time budget {self.cfg.budget:.0f} s spent")
            return
        print(f"[{self.elapsed():6.1f} s] {rows[0]} ...", file=sys.stderr, flush=True)
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - every failure becomes a row, never an abort
            msg = f"{type(e).__name__}: {str(e).strip().splitlines()[0][:160] if str(e).strip() else ''}"
            traceback.print_exc(file=sys.stderr)
            for r in rows:
                if r not in self.rows:
                    self.set(r, None, status="error", note=msg)
        finally:
            for r in rows:
                if r not in self.rows:
                    self.set(r, None, status="error", note="not measured (see the rows above)")
            _free(self.cfg.device)

    def ordered(self) -> list[dict]:
        return [self.rows[r] for r in self.planned]


def planned_rows() -> list[str]:
    rows = ["shards"]
    for p, b in PRESET_ROWS:
        rows += [f"{m} {p} b{b}" for m in STEP_METRICS]
    rows += [f"schedule hours {p}" for p in SCHEDULE_ROWS] + ["schedule hours seed's four rows"]
    rows += ["bf16 vs fp32 stage-1 loss", "loader raw", "loader float", "fit raw", "fit float",
             "compile off g1 b4", "compile on g1 b4", "ddp 1-process g1 b4", "ddp 1-process pg2 b4"]
    return rows


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e5 else f"{v:.0f}"
    return str(v)


def render(rows: list[dict]) -> tuple[str, str]:
    from pgprep.cliutil import format_table

    cells = [[r["row"], _fmt(r["value"]), r["unit"], r["status"], r["note"]] for r in rows]
    text = format_table(cells, ["row", "value", "unit", "status", "note"])
    md = ["| row | value | unit | status | note |", "|---|---|---|---|---|"]
    md += ["| " + " | ".join(c.replace("|", "/") for c in row) + " |" for row in cells]
    return text, "\n".join(md)


# ---------------------------------------------------------------- helpers

def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _free(device: torch.device) -> None:
    import gc

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _pgprep(*args: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "PGKIT_NO_PROGRESS": "1"}
    out = subprocess.run([sys.executable, "-m", "pgprep", *args], capture_output=True, text=True, env=env)
    if out.returncode:
        raise RuntimeError(f"pgprep {args[0]}: {(out.stderr or out.stdout).strip().splitlines()[-1:]}")


def build_shards(cfg: Config, tmp: Path) -> Path:
    root, work, shards = tmp / "root", tmp / "work", tmp / "shards"
    jobs = str(max(1, min(16, os.cpu_count() or 1)))
    _pgprep("synth", str(root), "--items", str(cfg.items), "--size", str(cfg.size), "--jobs", jobs)
    _pgprep("filter", str(root), "--poses", str(root / "pose" / "openpose"), "-o", str(work))
    _pgprep("pairs", str(work))
    _pgprep("masks", str(work), "--jobs", jobs)
    _pgprep("pack", str(work), "-o", str(shards), "--jobs", jobs)
    return shards


def _options(preset: str, cfg: Config, batch: int, **kw):
    from pgtrain import presets

    if preset not in presets.PRESETS:
        raise KeyError(f"preset {preset!r} is not defined in this pgkit (has {', '.join(presets.PRESETS)})")
    return presets.resolve(preset, channels=cfg.channels, batch_size=batch, device=str(cfg.device), **kw)


def _trainer(o, cfg: Config, info=None):
    from pgtrain.loop import Trainer

    return Trainer(o, (cfg.size, cfg.size), cfg.device, info)


class Batches:
    """Device batches: from the shards (raw path, as fit feeds them) or random if none."""

    def __init__(self, cfg: Config, shards: Path | None):
        self.cfg, self.shards, self.cache = cfg, shards, {}

    def get(self, tr, batch: int, n: int = 8) -> list[dict]:
        key = batch
        if key not in self.cache:
            self.cache[key] = self._make(batch, n)
        return [tr.to_device(b) for b in self.cache[key]]

    def _make(self, batch: int, n: int) -> list[dict]:
        s, dev = self.cfg.size, self.cfg.device
        if self.shards is not None:
            from pgtrain.data import PairDataset, pose_options, to_device_batch
            from pgtrain.dist import DistInfo
            from pgtrain.loop import BatchStream

            ds = PairDataset(self.shards, raw=True)
            if len(ds) >= batch:
                stream = BatchStream(ds, batch, 0, DistInfo())
                return [to_device_batch(next(stream), dev, **pose_options(ds)) for _ in range(n)]
        g = torch.Generator().manual_seed(0)
        return [random_batch(s, batch, dev, g) for _ in range(n)]


def _step_fn(tr, o, batches: list[dict], stage: int):
    k = [0]

    def nxt():
        k[0] += 1
        return batches[k[0] % len(batches)]

    if stage == 1:
        return lambda: tr.stage1_step(nxt())
    return lambda: tr.stage2_step(nxt)


def _time(step, n: int, warmup: int, device: torch.device) -> float:
    for _ in range(warmup):
        step()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(n):
        step()
    _sync(device)
    return (time.perf_counter() - t0) / n


# ---------------------------------------------------------------- measurements

def measure_preset(t: Table, cfg: Config, data: Batches, preset: str, batch: int, times: dict) -> None:
    dev = cfg.device
    o = _options(preset, cfg, batch)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.cuda.reset_peak_memory_stats(dev)
    tr = _trainer(o, cfg)
    stage = 1 if o.discriminator is None else 2
    bs = data.get(tr, batch)
    if stage == 2 and preset not in SEED_ROWS:  # its own Stage 1 (pg2-official: batch 1, plain L1)
        times[(preset, batch, 1)] = _time(_step_fn(tr, o, bs, 1), cfg.steps1, cfg.warmup, dev)
    step = _step_fn(tr, o, bs, stage)
    n = cfg.steps1 if stage == 1 else cfg.steps2
    dt = _time(step, n, cfg.warmup, dev)
    times[(preset, batch, stage)] = dt
    pairs = batch * o.batches_per_step(stage)
    tag = f"{preset} b{batch}"
    what = "Stage-1 step" if stage == 1 else f"Stage-2 step ({o.critic_steps} D + 1 G2)"
    amp = "bf16 autocast" if tr.amp else "fp32"
    t.set(f"step time {tag}", dt * 1000, "ms", f"{what}, {cfg.size}px w{cfg.channels}, {amp}, mean of {n}"
          + ("" if data.shards is not None else ", random batches (no shards)"))
    t.set(f"samples/s {tag}", pairs / dt, "pairs/s", f"{pairs} pairs a step")
    flops = count_flops(step)
    t.set(f"flops/step {tag}", flops / 1e12, "TFLOP", "FlopCounterMode on one real step (fwd + bwd)")
    if cfg.peak_tflops:
        t.set(f"MFU {tag}", 100 * flops / dt / (cfg.peak_tflops * 1e12), "%", f"of {cfg.peak_tflops:.0f} TFLOP/s")
    else:
        t.set(f"MFU {tag}", None, status="n/a", note="no peak for this device (--peak-tflops)")
    if dev.type == "cuda":
        t.set(f"peak memory {tag}", torch.cuda.max_memory_allocated(dev) / 2**30, "GiB",
              "torch.cuda.max_memory_allocated")
    else:
        t.set(f"peak memory {tag}", None, status="n/a", note="GPU only")


def schedule_hours(t: Table, times: dict) -> None:
    from pgtrain import presets

    total, parts = 0.0, []
    for p in SCHEDULE_ROWS:
        row = f"schedule hours {p}"
        o = presets.PRESETS.get(p)
        b = o.batch_size if o is not None else 4
        s1 = times.get(("g1", b, 1)) if p != "pg2-official" else times.get((p, b, 1))
        s2 = times.get((p, b, 2))
        if o is None or s1 is None or (o.discriminator is not None and s2 is None):
            t.set(row, None, status="error", note=f"needs the step times of {p} at batch {b}")
            continue
        h1 = o.steps1 * s1 / 3600
        h2 = o.steps2 * s2 / 3600 if o.discriminator is not None else 0.0
        t.set(row, h1 + h2, "h", f"{o.steps1} x {s1 * 1000:.1f} ms + {o.steps2 if o.discriminator else 0} x "
              f"{(s2 or 0) * 1000:.1f} ms at batch {b} (measured steps; no data waits, eval or checkpoints)")
        if p in SEED_ROWS:
            parts.append(h2 if p != "g1" else h1)
    if len(parts) == len(SEED_ROWS):
        total = sum(parts)
        t.set("schedule hours seed's four rows", total, "h", "G1 once (40k) + three Stage-2 runs (25k each); goal <= 3")
    else:
        t.set("schedule hours seed's four rows", None, status="error", note="a row above is missing")


def bf16_vs_fp32(t: Table, cfg: Config, data: Batches) -> None:
    losses = {}
    for amp in (True, False):
        o = _options("g1", cfg, 4, amp=amp, amp_cpu=amp)
        tr = _trainer(o, cfg)
        bs = data.get(tr, 4)
        out = None
        for k in range(cfg.compare_steps):
            out = tr.stage1_step(bs[k % len(bs)])
        losses[amp] = float(out["l1"])
        del tr
    a, b = losses[True], losses[False]
    t.set("bf16 vs fp32 stage-1 loss", 100 * abs(a - b) / abs(b), "% rel. diff",
          f"g1 b4 after {cfg.compare_steps} steps, same seed and batches: bf16 {a:.5f}, fp32 {b:.5f}"
          + (" (fp32 convs may use TF32: torch's default)" if cfg.device.type == "cuda" else ""))


def loader(t: Table, cfg: Config, shards: Path | None) -> None:
    from pgtrain.data import PairDataset
    from pgtrain.dist import DistInfo
    from pgtrain.loop import BatchStream

    if shards is None:
        raise RuntimeError("no shards (see the shards row)")
    o = _options("g1", cfg, 16)
    tr = _trainer(o, cfg)
    for path in ("raw", "float"):
        ds = PairDataset(shards, raw=path == "raw")
        tr.pose = ds.pose
        stream = BatchStream(ds, 16, 0, DistInfo(), workers=cfg.workers, pin=cfg.device.type == "cuda")
        try:
            tr.to_device(next(stream))  # workers started, first batch in
            _sync(cfg.device)
            n, t0 = 0, time.perf_counter()
            while n < cfg.loader_pairs:
                b = tr.to_device(next(stream))
                n += b["condition"].shape[0]
            _sync(cfg.device)
            rate = n / (time.perf_counter() - t0)
        finally:
            stream.close()
        t.set(f"loader {path}", rate, "pairs/s",
              f"{cfg.workers} workers, batch 16, {n} pairs incl. to_device on {cfg.device.type} "
              f"({'uint8 bytes, maps on the device' if path == 'raw' else 'float32 items, maps in workers'})")


def fit_rows(t: Table, cfg: Config, shards: Path | None, tmp: Path) -> None:
    from pgtrain.loop import fit
    from pgtrain.stats import read_stats

    if shards is None:
        raise RuntimeError("no shards (see the shards row)")
    for path in ("raw", "float"):
        run = tmp / f"fit-{path}"
        shutil.rmtree(run, ignore_errors=True)
        with contextlib.redirect_stdout(sys.stderr):
            fit(shards, run, "g1", steps1=cfg.fit_steps, channels=cfg.channels, batch_size=4,
                device=str(cfg.device), data_path=path, workers=cfg.workers,
                log_every=max(1, cfg.fit_steps // 3), sample_every=10**9, ckpt_every=10**9)
        rec = read_stats(run)[-1]
        t.set(f"fit {path}", rec["samples_per_s"], "pairs/s",
              f"pgtrain fit g1 b4, {cfg.workers} workers, last {max(1, cfg.fit_steps // 3)} of "
              f"{cfg.fit_steps} steps (data waits included)")


def compile_rows(t: Table, cfg: Config, data: Batches) -> None:
    o = _options("g1", cfg, 4)
    tr = _trainer(o, cfg)
    bs = data.get(tr, 4)
    off = _time(_step_fn(tr, o, bs, 1), cfg.steps1, cfg.warmup, cfg.device)
    t.set("compile off g1 b4", off * 1000, "ms", "eager")
    if not cfg.compile:
        t.set("compile on g1 b4", None, status="skipped", note="--quick on CPU (compiling takes minutes); --compile forces")
        return
    tr.compile()
    t0 = time.perf_counter()
    step = _step_fn(tr, o, bs, 1)
    step()
    _sync(cfg.device)
    first = time.perf_counter() - t0
    on = _time(step, cfg.steps1, cfg.warmup, cfg.device)
    t.set("compile on g1 b4", on * 1000, "ms", f"{off / on:.2f}x eager; first step (compiling) {first:.0f} s")


def ddp_rows(t: Table, cfg: Config, data: Batches) -> None:
    import torch.distributed as tdist

    from pgtrain.dist import DistInfo

    class OneProcess(DistInfo):  # a world of one that still takes the DDP code path
        @property
        def enabled(self) -> bool:
            return True

    backend = "nccl" if cfg.device.type == "cuda" else "gloo"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tdist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1,
                             timeout=datetime.timedelta(seconds=120))
    try:
        for preset in ("g1", "pg2"):
            row = f"ddp 1-process {preset} b4"
            try:
                o = _options(preset, cfg, 4)
                stage = 1 if o.discriminator is None else 2
                res = {}
                for name, info in (("ddp", OneProcess()), ("plain", None)):
                    tr = _trainer(o, cfg, info)
                    bs = data.get(tr, 4)
                    torch.manual_seed(1)
                    first = _step_fn(tr, o, bs, stage)
                    losses = [first() for _ in range(2)]
                    dt = _time(first, cfg.steps1 if stage == 1 else cfg.steps2, cfg.warmup, cfg.device)
                    res[name] = (dt, [float(v) for v in losses[-1].values()])
                    del tr
                diff = max(abs(a - b) for a, b in zip(res["ddp"][1], res["plain"][1], strict=True))
                t.set(row, res["ddp"][0] * 1000, "ms",
                      f"{backend}, world 1, DDP-wrapped; plain {res['plain'][0] * 1000:.1f} ms; "
                      f"losses after 2 steps differ by {diff:.2g}")
            except Exception as e:  # noqa: BLE001
                t.set(row, None, status="error", note=f"{type(e).__name__}: {str(e)[:160]}")
    finally:
        tdist.destroy_process_group()


def pillow_stand_in() -> str | None:
    """pgprep.imageio imports Pillow when loaded, and pgtrain imports it through pgprep.geometry;
    the GPU machine has no Pillow. Training never reads images through it (shards decode with
    OpenCV), so without Pillow a stand-in module lets pgtrain import and the step rows run
    on random batches; the shard pipeline (filter, pack) still needs the real one and says so."""
    try:
        import PIL.Image  # noqa: F401
        return None
    except ImportError:
        import types

        def missing(*_a, **_k):
            raise ImportError("Pillow is not installed (gpu_check's stand-in)")

        pil, image = types.ModuleType("PIL"), types.ModuleType("PIL.Image")
        pil.UnidentifiedImageError = type("UnidentifiedImageError", (OSError,), {})
        image.Image = type("Image", (), {})
        image.DecompressionBombWarning = type("DecompressionBombWarning", (RuntimeWarning,), {})
        image.DecompressionBombError = type("DecompressionBombError", (Exception,), {})
        image.open = image.Exif = missing
        pil.Image = image
        sys.modules["PIL"], sys.modules["PIL.Image"] = pil, image
        return "Pillow is not installed: pgtrain imported with a stand-in; shards need Pillow (pgprep.imageio)"


# ---------------------------------------------------------------- main

def machine(cfg: Config) -> str:
    if cfg.device.type == "cuda":
        p = torch.cuda.get_device_properties(cfg.device)
        dev = f"{p.name}, {p.total_memory / 2**30:.0f} GiB, CUDA {torch.version.cuda}"
    else:
        dev = f"CPU only ({os.cpu_count()} cores, {platform.processor() or platform.machine()})"
    return f"{dev}; torch {torch.__version__}; Python {platform.python_version()}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default=None, help="cuda | cuda:N | cpu [cuda if present]")
    ap.add_argument("--quick", action="store_true", help="tiny sizes (32px, width 8): seconds, for CI")
    ap.add_argument("--out", default=str(HERE), help="a directory (gets RESULTS-gpu.md/.json) or a .md path")
    ap.add_argument("--budget", type=float, default=None, help="seconds; later rows are skipped [450; quick 300]")
    ap.add_argument("--workers", type=int, default=14, help="DataLoader workers for the loader rows [14]")
    ap.add_argument("--peak-tflops", type=float, default=None, help="MFU denominator [790 on CUDA]")
    ap.add_argument("--compile", action="store_true", help="measure torch.compile in --quick too")
    args = ap.parse_args(argv)
    os.environ.setdefault("PGKIT_NO_PROGRESS", "1")
    pil_note = pillow_stand_in()
    cfg = make_config(args)
    out = Path(args.out)
    md_path = out if out.suffix == ".md" else out / "RESULTS-gpu.md"
    md_path.parent.mkdir(parents=True, exist_ok=True)
    t = Table(cfg)
    tmp = Path(tempfile.mkdtemp(prefix="gpu_check_"))
    shards: list[Path | None] = [None]
    times: dict = {}
    try:
        def make():
            t0 = time.perf_counter()
            shards[0] = build_shards(cfg, tmp)
            from pgtrain.data import PairDataset

            n = len(PairDataset(shards[0]))
            t.set("shards", n, "train pairs", f"pgprep synth ({cfg.items} items, {cfg.size}px) -> pack, "
                  f"{time.perf_counter() - t0:.0f} s")

        t.run(["shards"], make)
        data = Batches(cfg, shards[0])
        for p, b in PRESET_ROWS:
            t.run([f"{m} {p} b{b}" for m in STEP_METRICS],
                  lambda p=p, b=b: measure_preset(t, cfg, data, p, b, times))
        t.run([f"schedule hours {p}" for p in SCHEDULE_ROWS] + ["schedule hours seed's four rows"],
              lambda: schedule_hours(t, times))
        t.run(["bf16 vs fp32 stage-1 loss"], lambda: bf16_vs_fp32(t, cfg, data))
        t.run(["loader raw", "loader float"], lambda: loader(t, cfg, shards[0]))
        t.run(["fit raw", "fit float"], lambda: fit_rows(t, cfg, shards[0], tmp))
        t.run(["compile off g1 b4", "compile on g1 b4"], lambda: compile_rows(t, cfg, data))
        t.run(["ddp 1-process g1 b4", "ddp 1-process pg2 b4"], lambda: ddp_rows(t, cfg, data))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    rows = t.ordered()
    text, md = render(rows)
    head = (f"# gpu_check results\n\nMeasured on: {machine(cfg)}; "
            f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; "
            f"`{' '.join(['python', 'benchmarks/gpu_check.py', *(argv if argv is not None else sys.argv[1:])])}`; "
            f"{t.elapsed():.0f} s of a {cfg.budget:.0f} s budget.\n"
            f"Sizes: {cfg.size}x{cfg.size}, width {cfg.channels}{' (--quick)' if cfg.quick else ''}. "
            "status: ok = measured here; error / skipped / n/a say why not."
            + (f"\n**{pil_note}.**" if pil_note else "") + "\n\n")
    md_path.write_text(head + md + "\n")
    md_path.with_suffix(".json").write_text(json.dumps(
        {"machine": machine(cfg), "quick": cfg.quick, "planned": t.planned, "rows": rows,
         "seconds": round(t.elapsed(), 1)}, indent=1))
    print(text)
    print(f"wrote {md_path} ({t.elapsed():.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
