"""pgtrain generate end to end on a tiny checkpoint; the fit-to-model transform by hand."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from test_evaluate import make_tiny_run

from pgprep import skeleton
from pgprep.formats import write_openpose_json, write_patn_csv
from pgprep.geometry import Letterbox, read_rgb
from pgtrain.generate import describe_fit


@pytest.fixture(scope="module")
def tiny_run(shards_dir, tmp_path_factory):
    return make_tiny_run(tmp_path_factory.mktemp("run") / "run", shards_dir)


def _person(synth_root):
    import pandas as pd

    truth = pd.read_csv(synth_root / "truth.csv")
    row = truth[(truth["kind"] == "person")].iloc[0]
    return synth_root / row["image"], skeleton.from_columns(row)


def test_fit_scales_pads_and_moves_keypoints():
    f = Letterbox.fit((128, 88), (64, 64))  # the one letterbox of pgprep.geometry (ingest's too)
    assert f.scale == 0.5 and (f.pad_x, f.pad_y) == (10, 0)
    img = np.zeros((128, 88, 3), np.uint8)
    out = f.image(img)
    assert out.shape == (64, 64, 3)
    assert (out[:, :10] == 255).all() and (out[:, 54:] == 255).all() and (out[:, 10:54] == 0).all()
    kp = skeleton.empty()
    kp[0] = (40, 100, 1)
    moved = f.keypoints(kp)  # pixel centres: (40.5 * 0.5 - 0.5 + 10, 100.5 * 0.5 - 0.5)
    assert tuple(moved[0]) == (29.75, 49.75, 1) and tuple(moved[1]) == (-1, -1, 0)
    assert Letterbox.fit((64, 64), (64, 64)).identity
    assert "padded with white by 10px" in describe_fit(f, "condition")


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


# ------------------------------------------------------------------ issue 13: formats, frames, no person

def test_output_format_follows_the_extension_or_is_refused(tmp_path):
    from pgprep.errors import PgkitError
    from pgtrain.generate import output_format, save_image

    img = np.zeros((8, 8, 3), np.uint8)
    img[:, :4] = 200
    for ext, magic in ((".jpg", b"\xff\xd8\xff"), (".JPEG", b"\xff\xd8\xff"), (".png", b"\x89PNG"),
                       (".webp", b"RIFF")):
        p = tmp_path / f"o{ext}"
        save_image(p, img)  # before: PNG bytes whatever the name
        assert p.read_bytes().startswith(magic)
    np.testing.assert_array_equal(read_rgb(tmp_path / "o.webp"), img)  # lossless WebP
    for bad in ("o.gif", "o.tif", "out"):
        with pytest.raises(PgkitError, match="use .png, .jpg/.jpeg or .webp"):
            output_format(tmp_path / bad)


def test_save_image_bytes_are_the_geometry_encoders_plus_the_mark(tmp_path):
    """Issue 21: save_image encodes PNG / JPEG through pgprep.geometry (its own cv2 calls are
    gone); the files are byte for byte what it wrote before."""
    from pgprep.atomic import mark_image
    from pgtrain.generate import MARK, save_image

    img = np.random.default_rng(0).integers(0, 256, (16, 12, 3), dtype=np.uint8)
    bgr = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    for ext, params in ((".png", []), (".jpg", [cv2.IMWRITE_JPEG_QUALITY, 95]),
                        (".webp", [cv2.IMWRITE_WEBP_QUALITY, 101])):
        save_image(tmp_path / f"o{ext}", img)
        before = mark_image(cv2.imencode(ext, bgr, params)[1].tobytes(), MARK)
        assert (tmp_path / f"o{ext}").read_bytes() == before, ext


def test_a_pose_of_unknown_frame_with_an_odd_condition_is_refused():
    from pgprep.errors import PgkitError
    from pgtrain.generate import check_pose_frame

    kp = skeleton.empty()
    kp[0], kp[10] = (120, 30, 0.9), (130, 250, 0.9)  # a pose from a 256x256 frame
    # before: silently taken to be in the 560x420 condition's frame and misplaced
    with pytest.raises(PgkitError, match=r"frame is unknown: the condition is 560x420 \(HxW\) and the model "
                                         r"256x256; say which frame .* --pose-size HxW"):
        check_pose_frame(kp, None, (560, 420), (256, 256), "p.json", False)
    assert check_pose_frame(kp, (256, 256), (560, 420), (256, 256), "p.json", True) == (256, 256)
    assert check_pose_frame(kp, None, (256, 256), (256, 256), "p.json", False) == (256, 256)
    with pytest.raises(PgkitError, match=r"r_ankle at \(130.0, 250.0\) lies outside the 128x128 \(HxW\) frame "
                                         r"\(--pose-size\)"):
        check_pose_frame(kp, (128, 128), (560, 420), (256, 256), "p.json", True)


@pytest.mark.slow
def test_generate_cli_writes_jpeg_refuses_gif_and_warns_on_an_empty_condition(tiny_run, synth_root, tmp_path,
                                                                               monkeypatch):
    import pgtrain.generate as gen
    from pgtrain.cli import main

    img_path, kp = _person(synth_root)
    js = tmp_path / "pose_keypoints.json"
    write_openpose_json(js, [kp])
    monkeypatch.setattr(gen, "_estimator", lambda: (lambda rgb: []))  # an estimator that finds nobody
    blank = tmp_path / "wall.png"
    cv2.imwrite(str(blank), np.full((64, 64, 3), 240, np.uint8))
    out = tmp_path / "out.jpg"
    r = CliRunner().invoke(main, ["generate", str(tiny_run), "--condition", str(blank), "--pose",
                                  str(js), "-o", str(out), "--separate", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert "warning: the pose estimator finds no person in the condition wall.png" in r.stderr
    assert out.read_bytes()[:3] == b"\xff\xd8\xff" and (tmp_path / "out-stage1.jpg").read_bytes()[:3] == b"\xff\xd8\xff"
    r = CliRunner().invoke(main, ["generate", str(tiny_run), "--condition", str(blank), "--pose", str(js),
                                  "-o", str(tmp_path / "out.gif"), "--device", "cpu"])
    assert r.exit_code == 1 and "use .png, .jpg/.jpeg or .webp" in r.output and not (tmp_path / "out.gif").exists()
    big = tmp_path / "big.png"
    cv2.imwrite(str(big), cv2.resize(cv2.imread(str(img_path)), (96, 128)))
    r = CliRunner().invoke(main, ["generate", str(tiny_run), "--condition", str(big), "--pose", str(js),
                                  "-o", str(tmp_path / "o.png"), "--device", "cpu"])
    assert r.exit_code == 1 and "--pose-size" in r.output


# ------------------------------------------------------------------ issue 18 items 14, 25: outputs

@pytest.mark.slow
def test_generate_never_overwrites_a_file_it_did_not_write(tiny_run, synth_root, tmp_path):
    """`-o mine.png`, `-o` a training photo and `--separate` over an unrelated res-stage1.png
    were all replaced; now only pgkit's own (marked) images are, any other file needs --force,
    and nothing is written when one output is refused."""
    from pgtrain.cli import main

    img_path, kp = _person(synth_root)
    js = tmp_path / "pose_keypoints.json"
    write_openpose_json(js, [kp])
    args = ["generate", str(tiny_run), "--condition", str(img_path), "--pose", str(js), "--device", "cpu",
            "--no-check-person"]
    mine = tmp_path / "mine.png"
    mine.write_bytes(b"my holiday photo")
    r = CliRunner().invoke(main, [*args, "-o", str(mine)])
    assert r.exit_code == 1 and f"{mine}: exists and was not written by pgkit" in r.output, r.output
    assert mine.read_bytes() == b"my holiday photo"
    photo = tmp_path / "01_3_back.jpg"  # a training photo, as in ROOT/img/...
    photo.write_bytes(img_path.read_bytes())
    r = CliRunner().invoke(main, [*args, "-o", str(photo)])
    assert r.exit_code == 1 and "not written by pgkit" in r.output and photo.read_bytes() == img_path.read_bytes()

    res, stage1 = tmp_path / "res.png", tmp_path / "res-stage1.png"
    stage1.write_bytes(b"unrelated")
    r = CliRunner().invoke(main, [*args, "-o", str(res), "--separate"])
    assert r.exit_code == 1 and f"{stage1}: exists and was not written by pgkit" in r.output
    assert not res.exists() and stage1.read_bytes() == b"unrelated"
    stage1.unlink()
    r = CliRunner().invoke(main, [*args, "-o", str(res), "--separate"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, [*args, "-o", str(res), "--separate"])  # its own outputs: replaced
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, [*args, "-o", str(mine), "--force"])
    assert r.exit_code == 0 and read_rgb(mine).shape[0] > 64, r.output
    link = tmp_path / "link.png"
    link.symlink_to(res)
    r = CliRunner().invoke(main, [*args, "-o", str(link), "--force"])
    assert r.exit_code == 1 and "symbolic link" in r.output


def test_generate_upscale_is_bounded(tiny_run, tmp_path, monkeypatch):
    """--upscale 400 asked for 2 GB; now 1..64 (usage error) and within PGKIT_MAX_PIXELS."""
    import click

    from pgtrain.cli import main
    from pgtrain.generate import side_by_side

    r = CliRunner().invoke(main, ["generate", str(tiny_run), "--condition", __file__, "--pose", __file__,
                                  "-o", str(tmp_path / "o.png"), "--upscale", "400"])
    assert r.exit_code == 2 and "--upscale" in r.output and "400 is not in the range 1<=x<=64" in r.output
    res = {k: np.zeros((64, 64, 3), np.uint8) for k in ("condition", "pose", "stage1", "stage2")}
    assert side_by_side(res, 2).shape[1] >= 4 * 128
    monkeypatch.setenv("PGKIT_MAX_PIXELS", "100000")
    with pytest.raises(click.BadParameter, match="4 makes a picture of 262,144 pixels, over the limit of 100,000"):
        side_by_side(res, 4)
