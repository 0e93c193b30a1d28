"""Table 1 on the proxy: one G1, then every Stage-2 preset from it, on one synthetic set, on CPU.

    python benchmarks/table1_proxy.py                      # ~15-20 minutes on 2 cores
    python benchmarks/table1_proxy.py --quick              # a smoke run in ~2 minutes
    python benchmarks/table1_proxy.py --l1-weight 50 --adv-weight 1   # the seed's weights

What it does, into --out (default benchmarks/out/table1-proxy):
1. the demo's data: `pgprep synth` (64x64), filter, pairs, masks, pack;
2. `pgtrain fit --preset g1` (width 16, the `--tiny` profile) once;
3. for each Stage-2 preset, `pgtrain fit --preset P --stage 2 --init-from g1/...stage1.pt`
   with the same Stage-2 budget (steps, lr, batch) for every row — on the proxy the rows
   differ only in what defines them (D's input, labels, losses, optimiser, step order);
4. `pgtrain eval` of each run (SSIM in both conventions, mask-SSIM, sharpness), FID of every
   row against one shared set of real training targets, then the table (markdown) and
   benchmarks/RESULTS-table1-proxy.md.

Sharpness = mean Sobel gradient magnitude of the luminance (pgtrain.metrics.sharpness); the
"gap closed" column is (sharpness(row) - sharpness(G1)) / (sharpness(targets) - sharpness(G1)).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

STAGE2 = ("pg2", "triplet", "wgan-triplet", "pg2-official", "triplet-pose")


def prepare_data(out: Path, items: int, size: int, seed: int) -> Path:
    from pgtrain.demo import prepare_data as demo_data

    return demo_data(out / "synth", out / "work", out / "shards", items=items, size=size, seed=seed, jobs=1)


def fid_of_rows(runs: dict[str, Path], shards: Path, limit: int, real_limit: int) -> dict[str, float]:
    """FID (2015-12-05 Inception) of each run's outputs on the first `limit` test pairs,
    against `real_limit` training targets; one Inception and one reference for all rows."""
    import torch
    from torch.utils.data import DataLoader, Subset

    from pgtrain.checkpoint import load_generators
    from pgtrain.data import PairDataset, pose_options, to_device_batch
    from pgtrain.metrics import MetricContext, ScoreBatch
    from pgtrain.metrics.fid import GaussianStats, frechet_distance
    from pgtrain.metrics.inception import shared_inception

    net = shared_inception(MetricContext(device="cpu"))

    def stats_of(images) -> tuple:
        st = GaussianStats()
        for x in images:
            st.update(net.features(ScoreBatch.quantise(x)))
        return st.mean_cov()

    def batches(split, n):
        ds = PairDataset(shards, split, raw=True)
        loader = DataLoader(Subset(ds, range(min(n, len(ds)))), batch_size=25)
        for raw in loader:
            yield to_device_batch(raw, "cpu", **pose_options(ds))

    with torch.inference_mode():
        ref = stats_of(b["target"] for b in batches("train", real_limit))
        out = {"copy condition": frechet_distance(*stats_of(b["condition"] for b in batches("test", limit)), *ref),
               "real targets": frechet_distance(*stats_of(b["target"] for b in batches("test", limit)), *ref)}
        for name, run in runs.items():
            gens = load_generators(run, device="cpu")
            row = "G1" if gens.g2 is None else name

            def outputs(gens=gens):
                for b in batches("test", limit):
                    y = gens.g1(b["condition"], b["pose"])
                    yield y if gens.g2 is None else gens.g2(y, b["condition"])

            out[row] = frechet_distance(*stats_of(outputs()), *ref)
    return {k: float(v) for k, v in out.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(HERE / "out" / "table1-proxy"))
    ap.add_argument("--items", type=int, default=160)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--channels", type=int, default=16)
    ap.add_argument("--steps1", type=int, default=1500)
    ap.add_argument("--lr", type=float, default=1e-3, help="Stage-1 lr (the demo's)")
    ap.add_argument("--steps2", type=int, default=300)
    ap.add_argument("--lr2", type=float, default=5e-5, help="Stage-2 lr, G2 and D, every row (the seed's)")
    ap.add_argument("--l1-weight", type=float, default=None, help="G2's L1 weight [each preset's: 50]")
    ap.add_argument("--adv-weight", type=float, default=None, help="G2's adversarial weight [1]")
    ap.add_argument("--presets", default=",".join(STAGE2))
    ap.add_argument("--eval-limit", type=int, default=200, help="test pairs scored")
    ap.add_argument("--fid-real", type=int, default=400, help="training targets in FID's real set")
    ap.add_argument("--tag", default="", help="suffix of the Stage-2 run folders (sweeps reuse data and G1)")
    ap.add_argument("--no-fid", action="store_true", help="skip FID (Inception on CPU is the slow part)")
    ap.add_argument("--quick", action="store_true", help="40 items, 200 + 60 steps, 100 pairs: a smoke run")
    ap.add_argument("--results", default=str(HERE / "RESULTS-table1-proxy.md"))
    a = ap.parse_args(argv)
    if a.quick:
        a.items, a.steps1, a.steps2, a.eval_limit, a.fid_real = 40, 200, 60, 100, 100
    if a.quick or a.tag:
        a.results = str(Path(a.out) / f"RESULTS-table1-proxy{'-' + a.tag if a.tag else ''}.md")

    import torch

    from pgtrain.evaluate import evaluate
    from pgtrain.loop import fit

    torch.set_num_threads(max(1, torch.get_num_threads()))
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    shards = prepare_data(out, a.items, a.size, a.seed)
    common = dict(tiny=True, channels=a.channels, seed=a.seed, device="cpu", resume=True,
                  log_every=50, sample_every=10_000, ckpt_every=10_000)
    fit(shards, out / "g1", "g1", steps1=a.steps1, lr=a.lr, **common)
    stage1 = out / "g1" / "checkpoints" / "stage1.pt"
    extra = {k: v for k, v in (("l1_weight", a.l1_weight), ("adv_weight", a.adv_weight)) if v is not None}
    runs = {"G1": out / "g1"}
    for p in [p for p in a.presets.split(",") if p]:
        name = f"{p}-{a.tag}" if a.tag else p
        fit(shards, out / name, p, stage="2", init_from=str(stage1), steps2=a.steps2, lr=a.lr,
            lr2=a.lr2, batch_size=8, **extra, **common)
        runs[p] = out / name
    train_s = time.perf_counter() - t0

    reports = {name: evaluate(run, shards, split="test", limit=a.eval_limit, device="cpu",
                              show_progress=False) for name, run in runs.items()}
    fid = {} if a.no_fid else fid_of_rows(runs, shards, a.eval_limit, a.fid_real)

    g1_rep = reports["G1"]
    s_g1 = g1_rep["rows"]["stage1"]["sharpness"]
    s_real = g1_rep["rows"]["real"]["sharpness"]
    rows = [("copy condition", g1_rep["rows"]["baseline"]), ("G1", g1_rep["rows"]["stage1"])]
    rows += [(name, rep["rows"]["stage2"]) for name, rep in reports.items() if name != "G1"]
    rows += [("real targets", g1_rep["rows"]["real"])]
    head = "| row | SSIM (PG²) | SSIM (PATN) | mask-SSIM | sharpness | gap closed | FID |\n|---|---|---|---|---|---|---|"
    lines = [head]
    summary = {}
    for name, v in rows:
        gap = (v["sharpness"] - s_g1) / (s_real - s_g1) if s_real != s_g1 else float("nan")
        summary[name] = {"ssim_pg2": v["ssim_pg2"], "ssim_patn": v["ssim_patn"],
                         "mask_ssim": v["mask_ssim_pg2"], "sharpness": v["sharpness"],
                         "gap_closed": gap, "fid": fid.get(name)}
        lines.append(f"| {name} | {v['ssim_pg2']:.4f} | {v['ssim_patn']:.4f} | {v['mask_ssim_pg2']:.4f} | "
                     f"{v['sharpness']:.5f} | {gap:+.0%} | {fid.get(name, float('nan')):.1f} |")
    table = "\n".join(lines)
    total_s = time.perf_counter() - t0
    cmd = "python benchmarks/table1_proxy.py " + " ".join(sys.argv[1:] if argv is None else argv)
    note = (f"{a.items} synthetic items at {a.size}x{a.size}; G1 width {a.channels}, {a.steps1} steps at lr "
            f"{a.lr}; every Stage-2 row {a.steps2} steps at lr {a.lr2}, batch 8"
            + (f", {extra}" if extra else "") + f"; {a.eval_limit} test pairs, FID real set "
            f"{a.fid_real} training targets. Training {train_s / 60:.1f} min, total {total_s / 60:.1f} min.")
    print(table)
    print(note)
    Path(a.results).write_text(f"# Table 1 on the proxy\n\n`{cmd.strip()}`\n\n{table}\n\n{note}\n")
    (out / "table1-proxy.json").write_text(json.dumps({"rows": summary, "note": note}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
