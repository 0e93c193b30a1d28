"""pgprep pose: BlazePose (MediaPipe models via LiteRT) -> OpenPose JSON."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from pgprep import formats, skeleton
from pgprep.cli import main
from pgprep.errors import PgkitError
from pgprep.estimate import (
    INSTALL,
    BlazePose,
    estimate_poses,
    roi_from_detection,
    roi_matrix,
    same_person,
    ssd_anchors,
    weighted_nms,
)

skdata = pytest.importorskip("skimage.data", reason="scikit-image (test extra) provides the photo")


@pytest.fixture(scope="module")
def model():
    return BlazePose()


@pytest.fixture(scope="module")
def astronaut():
    return skdata.astronaut()  # 512x512 RGB photo, upper body of one person facing the camera


def test_anchors_follow_the_ssd_layout():
    a = ssd_anchors()
    # 28x28 cells x 2 (stride 8) + 14x14 x 2 (stride 16) + 7x7 x 6 (three stride-32 layers)
    assert a.shape == (28 * 28 * 2 + 14 * 14 * 2 + 7 * 7 * 6, 2) == (2254, 2)
    np.testing.assert_allclose(a[0], [0.5 / 28, 0.5 / 28])
    np.testing.assert_allclose(a[2], [1.5 / 28, 0.5 / 28])  # x runs fastest, 2 anchors per cell
    np.testing.assert_allclose(a[28 * 2], [0.5 / 28, 1.5 / 28])
    np.testing.assert_allclose(a[1568], [0.5 / 14, 0.5 / 14])
    np.testing.assert_allclose(a[1960:1966], [[0.5 / 7, 0.5 / 7]] * 6)
    np.testing.assert_allclose(a[-1], [6.5 / 7, 6.5 / 7])


def test_weighted_nms_by_hand():
    boxes = np.array([[0, 0, 1, 1], [0.1, 0, 1.1, 1], [5, 5, 6, 6]], np.float32)
    kps = np.stack([np.full((4, 2), v, np.float32) for v in (1.0, 2.0, 7.0)])
    out = weighted_nms(boxes, kps, np.array([0.6, 0.2, 0.9], np.float32))
    assert [round(s, 3) for *_, s in out] == [0.9, 0.6]
    np.testing.assert_allclose(out[1][0], [0.025, 0, 1.025, 1], atol=1e-6)  # (0.6*0 + 0.2*0.1)/0.8
    np.testing.assert_allclose(out[1][1], np.full((4, 2), 1.25), atol=1e-6)


def test_roi_upright_and_rotated():
    cx, cy, side, rot = roi_from_detection(np.array([[100, 200], [100, 120]], float))
    assert (cx, cy, rot) == (100, 200, 0) and side == pytest.approx(2 * 80 * 1.25)
    m = roi_matrix(cx, cy, side, rot)
    np.testing.assert_allclose(m @ [128, 128, 1], [100, 200])
    np.testing.assert_allclose(m @ [128, 0, 1], [100, 200 - side / 2])
    # person lying to the right (head at +x): the crop's "up" must point along +x
    *_, rot = roi_from_detection(np.array([[100, 200], [180, 200]], float))
    assert rot == pytest.approx(math.pi / 2)
    m = roi_matrix(100, 200, 200, rot)
    np.testing.assert_allclose(m @ [128, 0, 1], [200, 200], atol=1e-9)


def test_astronaut_face_and_shoulders(model, astronaut):
    people = model(astronaut)
    assert len(people) == 1
    kp = people[0]
    j = skeleton.J
    # hand-checked on the photo: face around x 175-265, y 95-140; shoulders near y 215-240
    for name in ("nose", "r_eye", "l_eye", "r_ear", "l_ear"):
        assert 170 < kp[j[name], 0] < 270 and 95 < kp[j[name], 1] < 140 and kp[j[name], 2] > 0.9
    assert kp[j["r_eye"], 0] < kp[j["nose"], 0] < kp[j["l_eye"], 0]  # facing us: her right is our left
    assert kp[j["r_eye"], 1] < kp[j["nose"], 1]
    assert kp[j["r_shoulder"], 0] < 160 < 270 < kp[j["l_shoulder"], 0]
    np.testing.assert_allclose(kp[j["neck"], :2], (kp[j["r_shoulder"], :2] + kp[j["l_shoulder"], :2]) / 2)
    assert (kp[[j["r_knee"], j["l_knee"], j["r_ankle"], j["l_ankle"]], 2] == 0).all()  # out of frame


def test_rotated_photo_gives_rotated_joints(model, astronaut):
    h = astronaut.shape[0]
    a = model(astronaut)[0]
    b = model(np.ascontiguousarray(np.rot90(astronaut, k=-1)))[0]  # clockwise: (x, y) -> (h-1-y, x)
    ok = (a[:, 2] > 0.5) & (b[:, 2] > 0.5)
    assert ok.sum() >= 8
    expect = np.stack([h - 1 - a[:, 1], a[:, 0]], axis=1)
    err = np.linalg.norm(expect[ok] - b[ok, :2], axis=1)
    assert np.median(err) < 0.02 * h and err.max() < 0.08 * h


def test_two_people_two_entries(model, astronaut):
    two = np.concatenate([astronaut, astronaut[:, ::-1]], axis=1)
    people = model(two)
    assert len(people) == 2
    noses = sorted(p[skeleton.J["nose"], 0] for p in people)
    assert noses[0] < 512 < noses[1]
    assert model(np.zeros((96, 96, 3), np.uint8)) == []


def test_estimate_poses_writes_mirrored_json_and_resumes(tmp_path, astronaut):
    root = tmp_path / "root"
    imgs = ["WOMEN/Tees/id_00000001/01_1_front.jpg", "MEN/Denim/id_00000002/02_1_front.jpg",
            "MEN/Denim/id_00000002/02_2_side.jpg"]
    for rel in imgs[:2]:
        p = root / "img" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(p), cv2.cvtColor(cv2.resize(astronaut, (256, 256)), cv2.COLOR_RGB2BGR))
    (root / "img" / imgs[2]).write_bytes(b"")  # unreadable
    out = tmp_path / "poses"
    res = CliRunner().invoke(main, ["pose", str(root), "-o", str(out), "--jobs", "1"])
    assert res.exit_code == 0, res.output
    assert "unreadable: " in res.output and "empty image file" in res.output
    for rel in imgs[:2]:
        people, kind = formats.read_openpose_people(out / formats.openpose_json_name(rel))
        assert kind == "COCO-18" and len(people) == 1
        assert 85 < people[0][skeleton.J["nose"], 0] < 135  # 512 -> 256: about half the photo's
    assert not (out / formats.openpose_json_name(imgs[2])).exists()
    first = out / formats.openpose_json_name(imgs[0])
    first.write_text('{"people": []}')  # a finished image is not redone
    counts = estimate_poses(root, out, jobs=1)
    assert counts["skipped"] == 2 and counts["done"] == 0 and counts["failed"] == 1
    assert first.read_text() == '{"people": []}'
    res = CliRunner().invoke(main, ["pose", str(tmp_path / "nothing"), "-o", str(out)])
    assert res.exit_code == 1 and "not a DeepFashion-style tree" in res.output


def _astronaut_tree(root, astronaut, n=3):
    """ROOT/img with `n` 256-px photos: the astronaut, her mirror image, the two side by side."""
    two = np.concatenate([astronaut, astronaut[:, ::-1]], axis=1)
    photos = [astronaut, np.ascontiguousarray(astronaut[:, ::-1]), two][:n]
    rels = []
    for k, rgb in enumerate(photos):
        rel = f"WOMEN/Tees/id_0000000{k + 1}/01_1_front.jpg"
        p = root / "img" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        h, w = rgb.shape[:2]
        cv2.imwrite(str(p), cv2.cvtColor(cv2.resize(rgb, (256 * w // h, 256)), cv2.COLOR_RGB2BGR))
        rels.append(rel)
    return rels


@pytest.mark.slow
def test_dask_cluster_writes_the_same_json_bytes_as_loky(tmp_path, astronaut):
    from distributed import LocalCluster

    root = tmp_path / "root"
    rels = _astronaut_tree(root, astronaut)
    runs = {"in-process": estimate_poses(root, tmp_path / "in-process", jobs=1),
            "loky": estimate_poses(root, tmp_path / "loky", jobs=2, backend="loky"),
            # a LocalCluster started by pose itself (in-process worker, TCP on loopback) ...
            "dask": estimate_poses(root, tmp_path / "dask", jobs=1, backend="dask",
                                   cluster_options={"processes": False})}
    # ... and a running scheduler reached by its address, as `pgprep pose --scheduler` does
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, protocol="tcp",
                      host="127.0.0.1", dashboard_address=None) as cluster:
        (tmp_path / "remote" / formats.openpose_json_name(rels[0])).parent.mkdir(parents=True)
        (tmp_path / "remote" / formats.openpose_json_name(rels[0])).write_bytes(
            (tmp_path / "loky" / formats.openpose_json_name(rels[0])).read_bytes())  # done before
        res = CliRunner().invoke(main, ["pose", str(root), "-o", str(tmp_path / "remote"), "--backend", "dask",
                                        "--scheduler", cluster.scheduler_address])
        assert res.exit_code == 0, res.output
        assert "already done" in res.output
    for name, counts in runs.items():
        assert counts["done"] == 3 and counts["people"] == runs["loky"]["people"] >= 4, (name, counts)
    for rel in rels:
        ref = (tmp_path / "loky" / formats.openpose_json_name(rel)).read_bytes()
        for other in ("in-process", "dask", "remote"):
            assert (tmp_path / other / formats.openpose_json_name(rel)).read_bytes() == ref, (other, rel)
    again = estimate_poses(root, tmp_path / "dask", backend="dask", cluster_options={"processes": False})
    assert again["skipped"] == 3 and again["done"] == 0  # resumable: nothing left to do


def test_old_behaviour_is_selectable_and_doubt_decides_the_extra_runs(tmp_path, astronaut):
    root = tmp_path / "root"
    rels = _astronaut_tree(root, astronaut)
    estimate_poses(root, tmp_path / "auto", jobs=1)
    estimate_poses(root, tmp_path / "old", jobs=1, refine="always", second_pass="always")
    estimate_poses(root, tmp_path / "old-bool", jobs=1, refine=True, second_pass=True)
    for rel in rels:
        name = formats.openpose_json_name(rel)
        assert (tmp_path / "old" / name).read_bytes() == (tmp_path / "old-bool" / name).read_bytes()
        auto, old = (formats.read_openpose_json(tmp_path / d / name) for d in ("auto", "old"))
        assert len(auto) == len(old)
        for a, o in zip(auto, old, strict=True):
            both = skeleton.present(a) & skeleton.present(o)
            assert both.sum() >= 8 and np.median(np.linalg.norm(a[both, :2] - o[both, :2], axis=1)) < 3  # px of 256
    # the model runs of each mode: on the photo (a cluttered background: foreground is left
    # uncovered, so "auto" doubts and paints out like "always") and on a synthetic catalogue shot
    import pandas as pd

    from pgprep.geometry import read_rgb
    from pgprep.synth import synthesize

    synthesize(tmp_path / "synth", items=1, seed=0, size=256, jobs=1)
    truth = pd.read_csv(tmp_path / "synth" / "truth.csv")
    shot = read_rgb(tmp_path / "synth" / truth.image[truth.kind == "person"].iloc[0])
    runs = {}
    for mode in ("always", "auto", "never"):
        for name, rgb in (("photo", read_rgb(root / "img" / rels[0])), ("shot", shot)):
            m = BlazePose(refine=mode, second_pass=mode)
            assert len(m(rgb)) == 1
            runs[mode, name] = dict(m.runs)
    for name in ("photo", "shot"):
        assert runs["always", name] == {"detector": 2, "landmarks": 2, "refined": 1, "second_pass": 1}
        assert runs["never", name] == {"detector": 1, "landmarks": 1, "refined": 0, "second_pass": 0}
    assert runs["auto", "photo"]["second_pass"] == 1
    assert runs["auto", "shot"]["detector"] == 1 and runs["auto", "shot"]["second_pass"] == 0
    with pytest.raises(PgkitError, match="pass mode"):
        BlazePose(refine="sometimes")


def test_doubt_signals_by_hand():
    align = np.array([[100.0, 200.0], [100.0, 120.0]])  # side 200, upright
    lm = np.zeros((39, 5))
    lm[33:35, :2] = align
    assert not BlazePose.refine_doubt(0.995, align, lm)
    assert BlazePose.refine_doubt(0.98, align, lm)            # unsure flag
    lm[25, 3] = 0.45                                           # unsure of the left knee (0.3 <= 0.45 < 0.6)
    assert BlazePose.refine_doubt(0.995, align, lm)
    lm[25, 3] = 0.2                                            # sure it is hidden: reported missing, no doubt
    assert not BlazePose.refine_doubt(0.995, align, lm)
    lm[33:35, 0] += 25                                         # ROI centre moved by 25/200 > 0.1
    assert BlazePose.refine_doubt(0.995, align, lm)
    lm[33:35, :2] = align
    lm[34, 1] = 200 - 80 * 1.2                                 # 20 % larger ROI: log(1.2) > 0.1
    assert BlazePose.refine_doubt(0.995, align, lm)
    # uncovered foreground: a grey card, the "person" left, a second figure right
    rgb = np.full((128, 128, 3), 200, np.uint8)
    rgb[20:110, 10:50] = 30
    seg = np.full((256, 256), -10.0, np.float32)
    seg[40:220, 20:100] = 10.0                                 # crop pixels; the crop maps 2:1 onto the image
    m = np.array([[0.5, 0, 0], [0, 0.5, 0]])
    assert BlazePose.uncovered_foreground(rgb, [(seg, m)]) == 0.0
    rgb[30:100, 80:110] = 60
    assert BlazePose.uncovered_foreground(rgb, [(seg, m)]) > 0.1


@pytest.mark.parametrize("shadow", ["ai_edge_litert", "mediapipe"])
def test_without_the_extra_one_line_with_the_install_command(tmp_path, shadow):
    """A broken runtime, or a mediapipe without the model files, shadows the installed one."""
    (tmp_path / "root" / "img").mkdir(parents=True)
    fake = tmp_path / "shadow" / shadow
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('not installed (test shadow)')\n"
                                      if shadow == "ai_edge_litert" else "")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "shadow"), os.getcwd()])}
    proc = subprocess.run([sys.executable, "-m", "pgprep", "pose", str(tmp_path / "root"), "-o",
                           str(tmp_path / "out")], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].endswith(INSTALL), proc.stderr
    assert ("ai-edge-litert" if shadow == "ai_edge_litert" else "model files") in lines[0]
    assert not (tmp_path / "out").exists()


def test_score_is_visibility_times_presence_and_unseen_joints_are_missing(model):
    lm = np.zeros((39, 5))
    lm[:, :2] = (50, 60)
    lm[:, 3], lm[:, 4] = 0.9, 0.8
    lm[13] = (70, 80, 0, 0.6, 0.5)      # left elbow: score 0.3
    lm[25] = (40, 90, 0, 0.2, 0.9)      # left knee: visibility below MIN_VISIBILITY (0.3)
    lm[26] = (40, 99.5, 0, 0.9, 0.9)    # right knee: below the last pixel row (99) of a 100-px image
    lm[27] = (-0.5, 90, 0, 0.9, 0.9)    # left ankle: left of the image
    kp = model.to_coco(lm, 120, 101)
    j = skeleton.J
    np.testing.assert_allclose(kp[j["l_elbow"]], (70, 80, 0.3), rtol=1e-6)
    np.testing.assert_allclose(kp[j["nose"]], (50, 60, 0.72), rtol=1e-6)
    assert kp[j["r_knee"], 2] > 0  # 99.5 <= h - 1 = 100: inside a 101-px image
    kp = model.to_coco(lm, 120, 100)
    for name in ("l_knee", "r_knee", "l_ankle"):
        assert kp[j[name], 2] == 0 and not skeleton.present(kp)[j[name]], name
    assert skeleton.present(kp).sum() == 15


def test_same_person_by_box_overlap():
    def person(x0, y0, x1, y1):
        lm = np.zeros((39, 5))
        lm[:33, 0], lm[:33, 1] = np.linspace(x0, x1, 33), np.linspace(y0, y1, 33)
        return lm
    a = person(0, 0, 100, 200)
    assert same_person(a, person(10, 10, 90, 190))        # inside: overlap 1 of the smaller box
    assert same_person(a, person(30, 0, 130, 200))        # 70 % overlap
    assert not same_person(a, person(50, 0, 150, 200))    # side by side, half overlapping
    assert not same_person(a, person(200, 0, 300, 200))
    assert not same_person(a, person(30, 0, 130, 200), overlap=0.75)


# Measured on synthesize(items=80, seed=5, size=256) (335 images, 318 single persons, 17
# distractors): detection rate 0.997, mean joint error 0.026 of the true body height (head to
# ankles); the default filter rejects all 17 distractors and 5 persons; all 7 two_people
# images give two people (3 without the second pass). The cartoons are not photos, so the
# bounds leave room: about twice the measured error, a detection rate well below the measured.
DETECTION_RATE_MIN = 0.9
MEAN_ERROR_MAX = 0.06     # of body height, averaged over the joints both sides have
JOINT_RECALL_MIN = 0.8    # true in-frame joints that the estimator reports
PERSONS = 40              # single persons checked (the first of the set; all distractors are)


@pytest.mark.slow
def test_estimator_on_synthetic_people_and_distractors(tmp_path, model):
    import pandas as pd

    from pgprep.filter import Thresholds, judge
    from pgprep.geometry import read_rgb
    from pgprep.synth import synthesize

    root = tmp_path / "root"
    synthesize(root, items=80, seed=5, size=256, jobs=1)
    truth = pd.read_csv(root / "truth.csv")
    true_kp = skeleton.frame_columns(truth)
    rows = [i for i in range(len(truth)) if truth.kind[i] != "person"]
    rows += [i for i in range(len(truth)) if truth.kind[i] == "person"][:PERSONS]
    found, errors, recall, verdict, pairs = [], [], [], {}, [0, 0]
    single = BlazePose(second_pass=False)
    for i in rows:
        row = truth.iloc[i]
        rgb = read_rgb(root / row.image)
        people = model(rgb)
        verdict[i] = judge(people, rgb.shape[1], rgb.shape[0], Thresholds())[2]
        if row.kind == "two_people":
            pairs[0] += len(people) == 2
            pairs[1] += len(single(rgb)) == 2
        if row.kind != "person":
            continue
        t = true_kp[i]
        ok = skeleton.present(t)
        height = np.ptp(t[ok, 1])
        found.append(len(people) > 0)
        if people:
            p = people[0]
            both = ok & skeleton.present(p)
            errors.append(np.linalg.norm(p[both, :2] - t[both, :2], axis=1).mean() / height)
            recall.append(both.sum() / ok.sum())
    rate, err = float(np.mean(found)), float(np.mean(errors))
    distractors = [i for i in rows if truth.kind[i] != "person"]
    caught = sum(verdict[i] is not None for i in distractors)
    wrongly = sum(verdict[i] is not None for i in rows if truth.kind[i] == "person")
    n_two = int((truth.kind == "two_people").sum())
    print(f"synthetic people: detection rate {rate:.3f}, mean joint error {err:.4f} of body height, "
          f"joint recall {np.mean(recall):.3f} (n={len(found)}); distractors rejected {caught}/"
          f"{len(distractors)}, persons rejected {wrongly}/{len(found)}; two_people as two: "
          f"{pairs[0]}/{n_two} ({pairs[1]} without the second pass)")
    assert len(distractors) >= 12 and n_two >= 5
    assert rate >= DETECTION_RATE_MIN
    assert err <= MEAN_ERROR_MAX
    assert np.mean(recall) >= JOINT_RECALL_MIN
    assert caught >= len(distractors) - 2 and wrongly <= 2
    assert pairs[0] >= n_two - 1 and pairs[0] > pairs[1]
