"""pgtrain figures: files exist, have content, and the numbers in them are right."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from test_evaluate import make_tiny_run

from pgprep.geometry import read_rgb
from pgtrain.figures import gradient_magnitude, loss_curves, sharpness


@pytest.fixture(scope="module")
def tiny_run(shards_dir, tmp_path_factory):
    return make_tiny_run(tmp_path_factory.mktemp("run") / "run", shards_dir)


def test_gradient_magnitude_of_a_step_and_a_blur():
    img = np.zeros((20, 20, 3), np.uint8)
    img[:, 10:] = 255
    g = gradient_magnitude(img)
    assert g[5, 9] == pytest.approx(0.5) and g[5, 10] == pytest.approx(0.5) and g[5, 3] == 0
    blurred = cv2.GaussianBlur(img, (7, 7), 2)
    assert sharpness([blurred])["rms"] < 0.7 * sharpness([img])["rms"]
    checker = ((np.indices((40, 40)).sum(0) // 2) % 2 * 255).astype(np.uint8)[..., None].repeat(3, 2)
    soft = cv2.GaussianBlur(checker, (7, 7), 1.5)
    assert sharpness([soft])["mean"] < 0.5 * sharpness([checker])["mean"]


def test_loss_curves_draw_every_loss():
    recs = [{"step": s, "stage": 1, "l1": 1 / s} for s in range(1, 40)]
    recs += [{"step": s, "stage": 2, "l1": 0.1, "g": float(s), "samples_per_s": 3.0} for s in range(1, 10)]
    img = loss_curves(recs)
    assert img.shape[0] == 240 and img.shape[1] == 2 * 420      # two panels: l1, g (not samples_per_s)
    blue = (img[..., 2] > 150) & (img[..., 0] < 100)            # stage 1 line
    red = (img[..., 0] > 150) & (img[..., 2] < 100)             # stage 2 lines
    assert blue[:, :420].sum() > 100 and red[:, 420:].sum() > 100 and blue[:, 420:].sum() == 0


@pytest.mark.slow
def test_figures_command_writes_nonblank_pngs(tiny_run, shards_dir, tmp_path):
    from pgtrain.cli import main

    r = CliRunner().invoke(main, ["figures", str(tiny_run), "--data", str(shards_dir), "--n", "3",
                                  "-o", str(tmp_path), "--device", "cpu"])
    assert r.exit_code == 0, r.output
    for name in ("strip.png", "sharpness.png", "curves.png"):
        img = read_rgb(tmp_path / name)
        assert img.std() > 10, name                      # not blank
    strip = read_rgb(tmp_path / "strip.png")
    assert strip.shape[0] > 3 * 64 and strip.shape[1] > 5 * 64   # 3 rows x 5 columns
    scores = json.loads((tmp_path / "sharpness.json").read_text())["sharpness"]
    assert set(scores) == {"stage-1", "stage-2", "target"}
    assert all(v["mean"] > 0 and v["rms"] >= v["mean"] for v in scores.values())
    assert "sharpness (mean / RMS gradient magnitude)" in r.output
    again = CliRunner().invoke(main, ["figures", str(tiny_run), "--data", str(shards_dir), "--n", "3",
                                      "-o", str(tmp_path), "--device", "cpu"])
    assert again.exit_code == 0 and "up to date" in again.output


def test_curves_need_no_data_and_missing_log_is_an_error(tiny_run, tmp_path):
    from pgtrain.cli import main

    r = CliRunner().invoke(main, ["figures", str(tiny_run), "--kind", "curves", "-o", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "curves.png").is_file()
    empty = tmp_path / "norun"
    empty.mkdir()
    r = CliRunner().invoke(main, ["figures", str(empty), "--kind", "curves"])
    assert r.exit_code == 1 and "stats.jsonl" in r.output
