"""`pgtrain demo`: the whole pipeline, end to end, and the model beats the copy baseline."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from pgtrain.cli import main as pgtrain_main

pytestmark = pytest.mark.slow

LAST_LINE = re.compile(r"^baseline-ssim=(\d\.\d{4}) model-ssim=(\d\.\d{4})$")


def test_demo_runs_every_stage_and_beats_the_copy_baseline(tmp_path):
    # a reduced demo (the default trains 5x longer): 60 items, 300 + 40 steps, ~40 s on 2 cores
    out = tmp_path / "demo"
    args = ["demo", str(out), "--items", "60", "--steps1", "300", "--steps2", "40", "--jobs", "1"]
    r = CliRunner().invoke(pgtrain_main, args)
    assert r.exit_code == 0, r.output
    m = LAST_LINE.match(r.output.strip().splitlines()[-1])
    assert m, r.output[-500:]
    baseline, model = float(m.group(1)), float(m.group(2))
    assert model >= baseline + 0.03, (baseline, model)

    summary = json.loads((out / "demo.json").read_text())
    report = json.loads((out / "run" / "eval.json").read_text())
    assert summary["eval"]["model"]["ssim_pg2"] == pytest.approx(model, abs=1e-4)
    assert report["baseline"]["ssim_pg2"] == pytest.approx(baseline, abs=1e-4)
    for name in ("strip.png", "sharpness.png", "curves.png"):
        assert (out / "run" / "figures" / name).stat().st_size > 1000
    for path in ("synth/Eval/list_eval_partition.txt", "work/images.csv", "work/pairs-train.csv",
                 "shards/index.json", "run/options.json", "run/checkpoints/last.pt"):
        assert (out / path).is_file(), path

    # a rerun finds every stage complete and prints the same result
    r2 = CliRunner().invoke(pgtrain_main, args)
    assert r2.exit_code == 0, r2.output
    assert r2.output.strip().splitlines()[-1] == m.group(0)
    assert "nothing to do" in r2.output
