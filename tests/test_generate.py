"""pgtrain generate end to end on a tiny checkpoint; the fit-to-model transform by hand."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from test_evaluate import make_tiny_run

from pgprep import skeleton
from pgprep.formats import write_openpose_json, write_patn_csv
from pgprep.geometry import read_rgb
from pgtrain.generate import Fit


@pytest.fixture(scope="module")
def tiny_run(shards_dir, tmp_path_factory):
    return make_tiny_run(tmp_path_factory.mktemp("run") / "run", shards_dir)


def _person(synth_root):
    import pandas as pd

    truth = pd.read_csv(synth_root / "truth.csv")
    row = truth[(truth["kind"] == "person")].iloc[0]
    return synth_root / row["image"], skeleton.from_columns(row)


def test_fit_scales_pads_and_moves_keypoints():
    f = Fit.of((128, 88), (64, 64))
    assert f.scale == 0.5 and (f.dx, f.dy) == (10, 0)
    img = np.zeros((128, 88, 3), np.uint8)
    out = f.image(img)
    assert out.shape == (64, 64, 3)
    assert (out[:, :10] == 255).all() and (out[:, 54:] == 255).all() and (out[:, 10:54] == 0).all()
    kp = skeleton.empty()
    kp[0] = (40, 100, 1)
    moved = f.keypoints(kp)
    assert tuple(moved[0]) == (30, 50, 1) and tuple(moved[1]) == (-1, -1, 0)
    assert Fit.of((64, 64), (64, 64)).identity


@pytest.mark.slow
def test_generate_end_to_end_with_json_and_csv(tiny_run, synth_root, tmp_path):
    from pgtrain.cli import main

    img_path, kp = _person(synth_root)
    big = tmp_path / "cond.png"   # a condition of another size and aspect ratio than the model's
    cv2.imwrite(str(big), cv2.resize(cv2.imread(str(img_path)), (88, 128)))
    js = tmp_path / "pose_keypoints.json"
    write_openpose_json(js, [skeleton.flip(kp, 64)])
    out = tmp_path / "out.png"
    r = CliRunner().invoke(main, ["generate", str(tiny_run), "--condition", str(big), "--pose", str(js),
                                  "--pose-size", "64x64", "-o", str(out), "--separate", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert "88x128 -> 64x64" in r.output          # the resize is reported
    sheet = read_rgb(out)
    assert sheet.shape[1] > 4 * 64 and sheet.shape[0] > 64      # four panels side by side
    s1, s2 = read_rgb(tmp_path / "out-stage1.png"), read_rgb(tmp_path / "out-stage2.png")
    assert s1.shape == s2.shape == (64, 64, 3) and s1.std() > 0 and not np.array_equal(s1, s2)

    csv = tmp_path / "ann.csv"
    write_patn_csv(csv, {"a.jpg": kp, "b.jpg": skeleton.flip(kp, 64)})
    r = CliRunner().invoke(main, ["generate", str(tiny_run), "--condition", str(img_path), "--pose", str(csv),
                                  "-o", str(tmp_path / "o2.png"), "--device", "cpu"])
    assert r.exit_code == 1 and "--name" in r.output
    r = CliRunner().invoke(main, ["generate", str(tiny_run), "--condition", str(img_path), "--pose", str(csv),
                                  "--name", "b.jpg", "-o", str(tmp_path / "o2.png"), "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert read_rgb(tmp_path / "o2.png").shape == sheet.shape


def test_generate_pose_is_what_the_model_sees(tiny_run, synth_root, tmp_path):
    from pgtrain.generate import generate

    img_path, kp = _person(synth_root)
    js = tmp_path / "p_keypoints.json"
    write_openpose_json(js, [kp])
    res = generate(tiny_run, img_path, js, flip=True)
    expect = skeleton.flip(skeleton.clean(kp), 64)
    np.testing.assert_allclose(res["keypoints"][:, :2], expect[:, :2], atol=1e-2)
    assert "pose mirrored" in " ".join(res["notes"])
    assert res["stage2"] is not None and res["condition"].shape == (64, 64, 3)


@pytest.mark.slow
def test_generate_reads_the_pose_of_another_photo(tiny_run, synth_root):
    pytest.importorskip("ai_edge_litert", reason="BlazePose runtime not installed (pip install ai-edge-litert)")
    from pgtrain.generate import generate

    img_path, kp = _person(synth_root)
    res = generate(tiny_run, img_path, img_path)
    assert res["joints"] >= 10
    ok = skeleton.present(kp) & skeleton.present(res["keypoints"])
    err = np.linalg.norm(res["keypoints"][ok, :2] - kp[ok, :2], axis=1)
    assert np.median(err) < 4.0          # the estimator's pose of the same photo, in the same frame
