"""pgprep filter: every pose format gives the same kept set; bad inputs become reasons."""

from __future__ import annotations

import json
import pickle
import shutil

import cv2
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from pgprep import deepfashion, formats, skeleton
from pgprep.cli import main
from pgprep.errors import PgkitError, UnsafePickleError
from pgprep.filter import Thresholds, check_image, image_header_size, judge, run_filter

SIZE = 64
# A standing person in a 64x64 frame, integer coordinates (the PATN CSV stores ints).
PERSON = np.array([
    (32, 8), (32, 14), (26, 15), (24, 24), (23, 32), (38, 15), (40, 24), (41, 32), (28, 33),
    (28, 45), (28, 57), (36, 33), (36, 45), (36, 57), (31, 7), (33, 7), (29, 8), (35, 8)], np.float32)


def person(dx=0.0, score=0.9):
    kp = np.concatenate([PERSON + (dx, 0), np.full((18, 1), score, np.float32)], axis=1)
    return kp.astype(np.float32)


def draw(kp, size=SIZE):
    img = np.full((size, size, 3), 230, np.uint8)
    for a, b in skeleton.BONES:
        cv2.line(img, tuple(int(v) for v in kp[a, :2]), tuple(int(v) for v in kp[b, :2]), (40, 60, 200), 3)
    return img


# image, item, status, pose (None = no pose file)
GOOD = [
    ("img/WOMEN/Tees_Tanks/id_00000001/01_1_front.jpg", "id_00000001", "train", person(0)),
    ("img/WOMEN/Tees_Tanks/id_00000001/01_2_side.jpg", "id_00000001", "train", person(-3)),
    ("img/MEN/Denim/id_00000002/02_1_front.jpg", "id_00000002", "query", person(2)),
    ("img/MEN/Denim/id_00000002/02_4_full.jpg", "id_00000002", "gallery", person(4)),
    ("img/WOMEN/Dresses/id_00000003/01_7_additional.jpg", "id_00000003", "train", person(-5)),
]


def make_root(tmp_path, rows=GOOD):
    root = tmp_path / "root"
    for image, _, _, kp in rows:
        p = root / image
        p.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(p), draw(kp if kp is not None else person()))
    deepfashion.write_partition(root, pd.DataFrame(
        [(i, item, st) for i, item, st, _ in rows], columns=["image", "item_id", "status"]))
    return root


def write_openpose(src, rows=GOOD, body25=False, with_img=False):
    for image, _, _, kp in rows:
        if kp is None:
            continue
        rel = image if with_img else image[len("img/"):]
        path = src / formats.openpose_json_name(rel)
        if body25:
            k25 = np.zeros((25, 3), np.float32)
            k25[skeleton.BODY25_TO_COCO18] = kp
            k25[8] = (kp[8] + kp[11]) / 2  # mid-hip, dropped by the conversion
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"people": [{"pose_keypoints_2d": k25.reshape(-1).tolist()}]}))
        else:
            formats.write_openpose_json(path, [kp])
    return src


def kept_set(work):
    frame = pd.read_csv(work / "images.csv")
    return frame.set_index("image")


@pytest.fixture
def root(tmp_path):
    return make_root(tmp_path)


# ------------------------------------------------------------------ formats round-trip

@pytest.mark.parametrize("fmt", ["openpose", "openpose-img", "body25", "patn", "patn-flat-176", "pickle"])
def test_every_format_gives_the_same_kept_set(root, tmp_path, fmt):
    if fmt == "openpose":
        src = write_openpose(tmp_path / "op")
    elif fmt == "openpose-img":
        src = write_openpose(tmp_path / "op", with_img=True)
    elif fmt == "body25":
        src = write_openpose(tmp_path / "op", body25=True)
    elif fmt == "patn":
        src = tmp_path / "ann.csv"
        formats.write_patn_csv(src, {i: kp for i, _, _, kp in GOOD})
    elif fmt == "patn-flat-176":  # annotations of 176-wide centre crops: x is 40 less
        src = tmp_path / "ann.csv"
        shifted = {}
        for i, _, _, kp in GOOD:
            k = kp.copy()
            k[:, 0] -= 40 - 30  # keep x >= 0 in the crop for this 64-px image: shift by 10
            shifted[deepfashion.flatten_name(i)] = k
        formats.write_patn_csv(src, shifted)
    else:
        src = tmp_path / "poses.pkl"
        src.write_bytes(pickle.dumps({i: kp[:, :2].tolist() for i, _, _, kp in GOOD}))
    kwargs = {"x_offset": 10} if fmt == "patn-flat-176" else {}
    counts = run_filter(root, src, tmp_path / "work", jobs=1, **kwargs)
    assert counts["kept"] == len(GOOD) and counts["rejected"] == 0
    kept = kept_set(tmp_path / "work")
    assert sorted(kept.index) == sorted(i for i, *_ in GOOD)
    for image, item, status, kp in GOOD:
        row = kept.loc[image]
        assert row["item_id"] == item and row["split"] == deepfashion.split_of(status)
        np.testing.assert_allclose(skeleton.from_columns(row)[:, :2], kp[:, :2], atol=0.01)
    work = json.loads((tmp_path / "work" / "work.json").read_text())
    assert work["image_size"] == [SIZE, SIZE]
    if fmt == "body25":
        assert work["poses_format"] == "openpose BODY_25"


def test_crop176_flag_adds_40(root, tmp_path):
    src = tmp_path / "ann.csv"
    formats.write_patn_csv(src, {deepfashion.flatten_name(i): kp for i, _, _, kp in GOOD})
    # these frames are 64 px wide, so allow the shifted x values with a large margin
    run_filter(root, src, tmp_path / "w0", jobs=1, frame_margin=100)
    run_filter(root, src, tmp_path / "w40", jobs=1, crop176=True, frame_margin=100)
    a, b = kept_set(tmp_path / "w0"), kept_set(tmp_path / "w40")
    xs = [f"x{j}" for j in range(18)]
    np.testing.assert_allclose(b.loc[a.index, xs].to_numpy(), a[xs].to_numpy() + 40)
    np.testing.assert_allclose(a[xs].to_numpy(), np.stack([kp[:, 0] for *_, kp in GOOD])[
        np.argsort([i for i, *_ in GOOD])][np.argsort(np.argsort(a.index))], atol=0.01)


def test_body25_hand_example_maps_to_coco18(tmp_path):
    k25 = np.zeros((25, 3), np.float32)
    for i in range(25):
        k25[i] = (10 + i, 20 + i, 0.5)
    path = tmp_path / "x_keypoints.json"
    path.write_text(json.dumps({"people": [{"pose_keypoints_2d": k25.reshape(-1).tolist()}]}))
    people, kind = formats.read_openpose_people(path)
    assert kind == "BODY_25"
    coco = people[0]
    # COCO-18 j takes BODY_25 j for j < 8 and j + 1 after (mid-hip 8 dropped).
    expect = [i if i < 8 else i + 1 for i in range(18)]
    np.testing.assert_allclose(coco[:, 0], [10 + e for e in expect])
    assert coco[skeleton.J["r_hip"]].tolist() == pytest.approx([19, 29, 0.5])
    assert coco[skeleton.J["l_ear"]].tolist() == pytest.approx([28, 38, 0.5])


# ------------------------------------------------------------------ the malicious pickle

class _Evil:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (open, (self.target, "w"))


def test_malicious_pickle_is_refused_and_creates_nothing(root, tmp_path):
    target = tmp_path / "pwned.txt"
    src = tmp_path / "poses.pkl"
    src.write_bytes(pickle.dumps({"img/x.jpg": _Evil(str(target))}))
    # proof that the pickle really would create the file with the ordinary unpickler
    probe = tmp_path / "probe.txt"
    pickle.loads(pickle.dumps(_Evil(str(probe)))).close()
    assert probe.exists()
    with pytest.raises(UnsafePickleError, match="refused"):
        run_filter(root, src, tmp_path / "work", jobs=1)
    res = CliRunner().invoke(main, ["filter", str(root), "--poses", str(src), "-o", str(tmp_path / "work")])
    assert res.exit_code == 1
    assert "refused" in res.output and "io.open" in res.output and len(res.output.strip().splitlines()) == 1
    assert not target.exists() and not (tmp_path / "work").exists()


# ------------------------------------------------------------------ bad inputs

def test_each_bad_input_is_a_reason_and_the_run_goes_on(tmp_path):
    bad = [
        ("img/WOMEN/Skirts/id_00000010/01_1_front.jpg", "id_00000010", "train", None),       # no pose
        ("img/WOMEN/Skirts/id_00000010/01_2_side.jpg", "id_00000010", "train", person(1)),   # truncated
        ("img/WOMEN/Skirts/id_00000010/01_3_back.jpg", "id_00000010", "train", person(1)),   # empty file
        ("img/WOMEN/Skirts/id_00000011/01_1_front.jpg", "id_00000011", "query", person(1)),  # bad JSON
        ("img/WOMEN/Skirts/id_00000011/01_2_side.jpg", "id_00000011", "query", person(1)),   # NaN
        ("img/WOMEN/Skirts/id_00000011/01_3_back.jpg", "id_00000011", "query", person(1)),   # out of frame
        ("img/WOMEN/Skirts/id_00000012/01_1_front.jpg", "id_00000012", "train", person(1)),  # not on disk
        ("img/WOMEN/Skirts/id_00000012/01_2_side.jpg", "id_00000012", "train", person(1)),   # not an image
    ]
    root = make_root(tmp_path, GOOD + bad)
    names = [b[0] for b in bad]
    data = (root / names[1]).read_bytes()
    (root / names[1]).write_bytes(data[: len(data) // 2])
    (root / names[2]).write_bytes(b"")
    (root / names[6]).unlink()
    (root / names[7]).write_bytes(b"this is not an image at all")
    part = root / deepfashion.PARTITION
    text = part.read_text().splitlines()
    text += ["img/WOMEN/broken_row_only_two_fields id_00000013",
             "../outside/id_00000014/01_1_front.jpg id_00000014 train",
             "/etc/id_00000015/01_1_front.jpg id_00000015 gallery",
             GOOD[0][0] + " id_00000001 train"]
    part.write_text("\n".join(text) + "\n")
    src = write_openpose(tmp_path / "op", GOOD + bad)
    (src / formats.openpose_json_name(names[3][4:])).write_text('{"people": [\n  {"pose_keypoints_2d": [1, 2,\n')
    nan = person(1).reshape(-1).tolist()
    nan[3] = float("nan")
    (src / formats.openpose_json_name(names[4][4:])).write_text(json.dumps({"people": [{"pose_keypoints_2d": nan}]}))
    formats.write_openpose_json(src / formats.openpose_json_name(names[5][4:]), [person(1) + (0, 40, 0)])

    counts = run_filter(root, src, tmp_path / "work", jobs=1)
    assert counts["kept"] == len(GOOD)
    rej = pd.read_csv(tmp_path / "work" / "rejects.csv")
    reason = dict(zip(rej["image"], rej["reason"], strict=True))
    assert reason[names[0]].startswith("no-pose:")
    assert reason[names[1]].startswith("bad-image: truncated")
    assert reason[names[2]].startswith("bad-image: empty")
    assert reason[names[3]].startswith("bad-pose:") and "line 3" in reason[names[3]]
    assert reason[names[4]].startswith("nan-keypoint:") and "joint 1" in reason[names[4]]
    assert reason[names[5]].startswith("out-of-frame:")
    assert reason[names[6]].startswith("missing-image:")
    assert reason[names[7]].startswith("bad-image: not a JPEG, PNG or WebP image")
    n = len(GOOD) + len(bad) + 3
    assert reason["img/WOMEN/broken_row_only_two_fields"] == (
        f"partition-row: malformed partition row at line {n}: "
        "'img/WOMEN/broken_row_only_two_fields id_00000013'")
    assert reason["../outside/id_00000014/01_1_front.jpg"].startswith(f"bad-name: line {n + 1}:")
    assert reason["/etc/id_00000015/01_1_front.jpg"].startswith(f"bad-name: line {n + 2}:")
    assert reason[GOOD[0][0]] == f"duplicate: line {n + 3} repeats line 3"
    assert len(rej) == len(bad) + 4
    assert set(rej.loc[rej["image"].isin(names[3:6]), "split"]) == {"test"}


def test_malformed_patn_row_names_its_line(root, tmp_path):
    src = tmp_path / "ann.csv"
    formats.write_patn_csv(src, {i: kp for i, _, _, kp in GOOD})
    lines = src.read_text().splitlines()
    name = GOOD[2][0]
    lines[3] = f"{name}: [1, 2, 3]: [oops"
    src.write_text("\n".join(lines) + "\n")
    run_filter(root, src, tmp_path / "work", jobs=1)
    rej = pd.read_csv(tmp_path / "work" / "rejects.csv")
    assert rej["image"].tolist() == [name]
    assert rej["reason"][0].startswith("bad-pose: malformed annotation row at line 4")


# ------------------------------------------------------------------ judging

def test_judge_rules_by_hand():
    th = Thresholds()
    kp, n, why = judge([person()], SIZE, SIZE, th)
    assert why is None and n == 1
    assert judge([person(), person(20)], SIZE, SIZE, th)[2] == "multi-person: 2 persons"
    speck = skeleton.empty()
    speck[:3] = (5, 5, 0.9)  # 3 joints: noise, not a person
    assert judge([person(), speck], SIZE, SIZE, th)[2] is None
    cut = person()
    cut[[9, 10, 12, 13]] = (-1, -1, 0)  # a frame 40 px high cuts at the thighs (hips at y = 33)
    assert judge([cut], SIZE, 40, th)[2] == (
        "incomplete: missing legs (r_knee, l_knee, r_ankle, l_ankle not detected); not hidden by long "
        "clothes: the photo does not reach --leg-room 1.6 torso lengths below the hips (--hidden-legs room)")
    # in the whole 64-px frame the legs have room: hidden (a gown), unless --hidden-legs no
    assert judge([cut], SIZE, SIZE, th)[2] is None
    assert judge([cut], SIZE, SIZE, Thresholds(hidden_legs="no"))[2].endswith(
        "not detected); if hidden by long clothes rather than cut off: --hidden-legs room")
    one_each = person()
    one_each[[skeleton.J["r_hip"], skeleton.J["l_shoulder"], skeleton.J["l_knee"]]] = (-1, -1, 0)
    assert judge([one_each], SIZE, SIZE, th)[2] is None  # a detector missing single joints
    strict = Thresholds(require=("both-shoulders", "both-hips"))
    assert judge([one_each], SIZE, SIZE, strict)[2].startswith(
        "incomplete: missing both-shoulders, both-hips (l_shoulder, r_hip not detected)")
    close = person()
    close[:, :2] = (close[:, :2] - (32, 8)) * 3 + (32, 10)
    close[skeleton.present(close) & ((close[:, 1] > 63) | (close[:, 0] > 63) | (close[:, 0] < 0))] = (-1, -1, 0)
    why = judge([close], SIZE, SIZE, th)[2]
    assert why.startswith("incomplete: missing legs")
    wide = person()
    wide[2, 0], wide[5, 0] = 10, 50  # shoulders 40 px apart in 64
    assert judge([wide], SIZE, SIZE, th)[2].startswith("close-up: shoulder width 0.62")
    low = person(score=0.05)
    assert judge([low], SIZE, SIZE, th)[2].startswith("no-person")
    assert judge([], SIZE, SIZE, th)[2].startswith("no-person")


def test_image_header_size_matches_decoder(tmp_path):
    for ext in (".jpg", ".png"):
        p = tmp_path / f"a{ext}"
        cv2.imwrite(str(p), np.zeros((37, 53, 3), np.uint8))
        assert image_header_size(p.read_bytes()) == (53, 37)
        assert check_image(p) == check_image(p, decode=True) == (53, 37)
    (tmp_path / "t.jpg").write_bytes((tmp_path / "a.jpg").read_bytes()[:100])
    with pytest.raises(PgkitError, match="truncated"):
        check_image(tmp_path / "t.jpg")


# ------------------------------------------------------------------ CLI and exit codes

def test_cli_success_rerun_and_exit_codes(root, tmp_path):
    src = write_openpose(tmp_path / "op")
    work = tmp_path / "work"
    runner = CliRunner()
    res = runner.invoke(main, ["filter", str(root), "--poses", str(src), "-o", str(work), "--jobs", "1"])
    assert res.exit_code == 0, res.output
    assert "| kept" in res.output and "kept 5, rejected 0" in res.output
    res = runner.invoke(main, ["filter", str(root), "--poses", str(src), "-o", str(work)])
    assert res.exit_code == 0 and "up to date" in res.output
    res = runner.invoke(main, ["filter", str(root), "--poses", str(src), "-o", str(work), "--min-joints", "12"])
    assert res.exit_code == 0 and "up to date" not in res.output
    changed = src / formats.openpose_json_name(GOOD[0][0][4:])
    formats.write_openpose_json(changed, [person(0), person(20)])  # a changed input is noticed
    res = runner.invoke(main, ["filter", str(root), "--poses", str(src), "-o", str(work), "--min-joints", "12"])
    assert res.exit_code == 0 and "kept 4, rejected 1" in res.output
    assert pd.read_csv(work / "rejects.csv")["reason"].tolist() == ["multi-person: 2 persons"]

    res = runner.invoke(main, ["filter", str(tmp_path / "op"), "--poses", str(src), "-o", str(tmp_path / "w2")])
    assert res.exit_code == 1 and "not a DeepFashion-style tree" in res.output
    assert len(res.output.strip().splitlines()) == 1
    (root / "img" / "x").mkdir()
    shutil.rmtree(src)
    src.mkdir()
    res = runner.invoke(main, ["filter", str(root), "--poses", str(src), "-o", str(tmp_path / "w3")])
    assert res.exit_code == 1 and "nothing usable" in res.output and "no-pose x5" in res.output
    assert len(res.output.strip().splitlines()) == 1
    res = runner.invoke(main, ["filter", str(root), "--poses", str(src), "-o", str(work), "--require", "tail"])
    assert res.exit_code == 1 and "unknown body part" in res.output
    res = runner.invoke(main, ["filter", "--help"])
    assert res.exit_code == 0 and len(res.output.splitlines()) > 5 and "pgprep filter" in res.output


# ------------------------------------------------------------------ against the synth truth

@pytest.fixture(scope="module")
def synth60(tmp_path_factory):
    """60 items at 64 px: about 240 images, about 5 % distractors (two people, cut off, close-up)."""
    from pgprep.synth import synthesize

    root = tmp_path_factory.mktemp("synth60") / "root"
    synthesize(root, items=60, seed=3, size=64, jobs=1)
    return root


@pytest.mark.slow
def test_filter_rejects_the_synth_distractors(synth60, tmp_path):
    counts = run_filter(synth60, synth60 / "pose" / "openpose", tmp_path / "work", jobs=1)
    truth = pd.read_csv(synth60 / "truth.csv")
    rej = pd.read_csv(tmp_path / "work" / "rejects.csv")
    kept = pd.read_csv(tmp_path / "work" / "images.csv")
    assert len(rej) + len(kept) == len(truth) == counts["kept"] + counts["rejected"]
    distractor = ((truth["persons"] != 1) | (truth["complete"] == 0)).to_numpy()
    assert distractor.sum() >= 8, "too few distractors to measure precision and recall"
    rejected = truth["image"].isin(rej["image"]).to_numpy()
    tp = (distractor & rejected).sum()
    precision, recall = tp / rejected.sum(), tp / distractor.sum()
    assert precision >= 0.95 and recall >= 0.95, (precision, recall)
    # the reason names what is wrong
    reason = dict(zip(rej["image"], rej["reason"], strict=True))
    for image, kind in zip(truth["image"], truth["kind"], strict=True):
        if kind == "two_people" and image in reason:
            assert reason[image].startswith("multi-person: 2 persons")
        if kind in ("cut_off", "close_up") and image in reason:
            assert reason[image].startswith(("incomplete:", "close-up:", "small-skeleton:"))
    # kept keypoints are the detections the synth wrote, and splits follow the partition
    part = deepfashion.read_partition(synth60).set_index("image")
    row = kept.iloc[0]
    people = formats.read_openpose_json(synth60 / "pose" / "openpose" / formats.openpose_json_name(row["image"][4:]))
    np.testing.assert_allclose(skeleton.from_columns(row), people[0], atol=0.01)
    assert (kept["split"].to_numpy() == part.loc[kept["image"], "split"].to_numpy()).all()
    assert set(kept.groupby("item_id")["split"].nunique()) == {1}


@pytest.mark.slow
def test_synth_annotation_csv_gives_the_same_kept_set_up_to_multi_person(synth60, tmp_path):
    """The PATN CSV holds one skeleton per image (no second person, no scores): same kept set
    except the two-people images, which it cannot tell apart."""
    run_filter(synth60, synth60 / "pose" / "openpose", tmp_path / "a", jobs=1)
    run_filter(synth60, synth60 / "pose" / "annotations.csv", tmp_path / "b", jobs=1)
    a, b = kept_set(tmp_path / "a"), kept_set(tmp_path / "b")
    truth = pd.read_csv(synth60 / "truth.csv").set_index("image")
    extra = set(b.index) - set(a.index)
    assert set(a.index) <= set(b.index)
    assert all(truth.loc[i, "kind"] == "two_people" for i in extra)
    xs = [f"x{j}" for j in range(18)]
    np.testing.assert_allclose(b.loc[a.index, xs].to_numpy(), a[xs].to_numpy(), atol=0.51)


# ------------------------------------------------------------------ hostile keypoint records (issue 12)

HOSTILE = [  # (image, how its keypoint record is broken)
    ("img/MEN/Denim/id_00000020/01_1_front.jpg", "310-digits"),
    ("img/MEN/Denim/id_00000020/01_2_side.jpg", "5000-digits"),
    ("img/MEN/Denim/id_00000020/01_3_back.jpg", "nested"),
    ("img/MEN/Denim/id_00000021/01_1_front.jpg", "1e308"),
    ("img/MEN/Denim/id_00000021/01_2_side.jpg", "x-30"),
]
HOSTILE_REASON = {"310-digits": ("bad-pose:", "too large"), "5000-digits": ("bad-pose:", "4,300 digits"),
                  "nested": ("bad-pose:", "nested"), "1e308": ("bad-pose:", "1e+308"),
                  "x-30": ("out-of-frame:", "r_shoulder at (-30.0")}


def _hostile_json_values(how):
    vals = [json.dumps(float(v)) for v in person(1).reshape(-1)]
    j = 3 * skeleton.J["r_shoulder"]
    vals[j] = {"310-digits": "1" + "0" * 320, "5000-digits": "1" + "0" * 5000,
               "nested": "[" * 1000 + "]" * 1000, "1e308": "1e308", "x-30": "-30"}[how]
    return vals


@pytest.mark.parametrize("fmt", ["openpose", "patn", "pickle"])
def test_hostile_keypoint_records_are_rejections_naming_the_file(tmp_path, fmt):
    rows = GOOD + [(i, "id_" + i.split("id_")[1][:8], "train", person(1)) for i, _ in HOSTILE]
    root = make_root(tmp_path, rows)
    if fmt == "openpose":
        src = write_openpose(tmp_path / "op", GOOD)
        for image, how in HOSTILE:
            path = src / formats.openpose_json_name(image[4:])
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text('{"people": [{"pose_keypoints_2d": [' + ",".join(_hostile_json_values(how)) + "]}]}")
    elif fmt == "patn":
        src = tmp_path / "ann.csv"
        formats.write_patn_csv(src, {i: kp for i, _, _, kp in GOOD})
        lines = []
        for image, how in HOSTILE:
            vals = _hostile_json_values(how)
            xs, ys = vals[0::3], vals[1::3]
            lines.append(f"{image}: [{','.join(ys)}]: [{','.join(xs)}]")
        src.write_text(src.read_text() + "\n".join(lines) + "\n")
    else:
        src = tmp_path / "poses.pkl"
        poses = {i: kp.tolist() for i, _, _, kp in GOOD}
        for image, how in HOSTILE:
            kp = person(1).tolist()
            kp[skeleton.J["r_shoulder"]][0] = {"310-digits": 10 ** 320, "5000-digits": 10 ** 400,
                                              "nested": _nest(12), "1e308": 1e308, "x-30": -30.0}[how]
            poses[image] = kp
        src.write_bytes(pickle.dumps(poses))
    counts = run_filter(root, src, tmp_path / "work", jobs=1)
    assert counts["kept"] == len(GOOD) and counts["rejected"] == len(HOSTILE)
    rej = pd.read_csv(tmp_path / "work" / "rejects.csv")
    reason = dict(zip(rej["image"], rej["reason"], strict=True))
    for image, how in HOSTILE:
        code, words = HOSTILE_REASON[how]
        if fmt == "pickle":  # a pickle holds Python ints: no digit limit, no JSON nesting limit
            words = {"5000-digits": "too large", "nested": "nested more than"}.get(how, words)
        assert reason[image].startswith(code), (how, reason[image])
        assert words in reason[image], (how, reason[image])
        if code == "bad-pose:":
            assert src.name in reason[image] or formats.openpose_json_name(image[4:]).split("/")[-1] in reason[image]


def _nest(depth):
    x = 1.0
    for _ in range(depth):
        x = [x]
    return x


def test_negative_coordinates_of_detected_joints_follow_the_frame_margin(tmp_path):
    th = Thresholds()  # frame_margin 2
    far = person()
    far[skeleton.J["l_wrist"], 0] = -30  # detected (score 0.9), 30 px left of the frame
    kp, _, why = judge([far], SIZE, SIZE, th)
    assert why == f"out-of-frame: l_wrist at (-30.0, 32.0) outside the {SIZE}x{SIZE} (HxW) image"
    near = person()
    near[skeleton.J["l_wrist"], 0] = -1.5  # inside the 2 px margin: kept, on the frame edge
    near[skeleton.J["nose"], 1] = -0.5
    kp, _, why = judge([near], SIZE, SIZE, th)
    assert why is None
    assert kp[skeleton.J["l_wrist"]].tolist() == pytest.approx([0.0, 32.0, 0.9])
    assert kp[skeleton.J["nose"]].tolist() == pytest.approx([32.0, 0.0, 0.9])
    loose = Thresholds(frame_margin=40)
    assert judge([far], SIZE, SIZE, loose)[2] is None
    assert judge([far], SIZE, SIZE, loose)[0][skeleton.J["l_wrist"], 0] == 0.0
    # an undetected joint (score 0) stays missing whatever its coordinates
    undetected = person()
    undetected[skeleton.J["l_wrist"]] = (-30, 5, 0)
    kp, _, why = judge([undetected], SIZE, SIZE, th)
    assert why is None and kp[skeleton.J["l_wrist"]].tolist() == [-1, -1, 0]


def test_patn_csv_with_a_byte_order_mark_is_accepted(root, tmp_path):
    src = tmp_path / "ann.txt"  # not named .csv: the content decides
    formats.write_patn_csv(src, {i: kp for i, _, _, kp in GOOD})
    src.write_bytes(b"\xef\xbb\xbf" + src.read_bytes())
    counts = run_filter(root, src, tmp_path / "work", jobs=1)
    assert counts["kept"] == len(GOOD) and counts["rejected"] == 0
    kept = kept_set(tmp_path / "work")
    np.testing.assert_allclose(skeleton.from_columns(kept.loc[GOOD[3][0]])[:, :2], GOOD[3][3][:, :2], atol=0.01)


# ------------------------------------------------------------------ real photos (issue 13, issue 12 items 4/9/13)

def test_a_knee_parked_on_the_bottom_border_does_not_make_a_crop_complete():
    """A thigh crop: the estimator puts both knees on the bottom edge (y 62-63 of 64) with
    middling scores and reports no ankles. Before: kept (legs = a knee); after: incomplete."""
    th = Thresholds()
    crop = person()
    crop[:, 1] = crop[:, 1] * 1.6  # the body fills more of the frame
    crop[[skeleton.J["r_ankle"], skeleton.J["l_ankle"]]] = (-1, -1, 0)
    crop[skeleton.J["r_knee"]] = (28, 63, 0.55)
    crop[skeleton.J["l_knee"]] = (36, 62.5, 0.42)
    why = judge([crop], SIZE, SIZE, th)[2]
    assert why.startswith("incomplete: missing legs (r_knee 0.55, l_knee 0.42 at the photo's edge (counts only "
                          "inside it, scoring >= 0.8); r_ankle, l_ankle not detected); not hidden by long clothes")
    assert "--leg-room" in why
    sure = crop.copy()
    sure[skeleton.J["r_knee"], 2] = 0.9  # a confidently seen knee on the edge still counts
    assert judge([sure], SIZE, SIZE, th)[2] is None
    inside = crop.copy()
    inside[skeleton.J["r_knee"], 1] = 60  # 4 px (> 2 % of 64) above the border, but no room for a shin
    assert "with no ankle and under 1.5 thigh of photo below" in judge([inside], SIZE, SIZE, th)[2]
    assert judge([inside], SIZE, SIZE, Thresholds(knee_room=0))[2] is None  # issue 13's rule alone: counts
    assert judge([crop], SIZE, SIZE, Thresholds(border_frac=0, knee_room=0))[2] is None  # both switched off


def test_small_skeleton_rule_says_what_it_measures_without_contradicting_itself():
    th = Thresholds()
    small = person()
    small[:, 1] = 8 + (small[:, 1] - 7) * (0.3996 * SIZE / 50)  # 0.3996 of the height, prints as 0.40
    why = judge([small], SIZE, SIZE, th)[2]
    assert why.startswith("small-skeleton: skeleton height (head to lowest joint) 0.3996 of the image "
                          "height < 0.4"), why
    wide = person()
    wide[2, 0], wide[5, 0] = 20.4, 42.9  # 22.5 / 64 = 0.3516 > 0.35
    assert judge([wide], SIZE, SIZE, th)[2].startswith("close-up: shoulder width 0.352 of the image width > 0.35")
    res = CliRunner().invoke(main, ["filter", "--help"])
    assert "--min-skeleton-height" in res.output and "--min-height-frac" in res.output


def test_min_height_frac_is_still_accepted(root, tmp_path):
    src = write_openpose(tmp_path / "op")
    res = CliRunner().invoke(main, ["filter", str(root), "--poses", str(src), "-o", str(tmp_path / "w"),
                                    "--min-height-frac", "0.99", "--jobs", "1"])
    assert res.exit_code == 1 and "small-skeleton x5" in res.output


def test_mixed_sizes_are_rejected_at_filter_pointing_to_ingest(tmp_path):
    root = make_root(tmp_path)
    odd = GOOD[3][0]
    cv2.imwrite(str(root / odd), np.full((80, 60, 3), 230, np.uint8))
    src = write_openpose(tmp_path / "op")
    counts = run_filter(root, src, tmp_path / "work", jobs=1)
    rej = pd.read_csv(tmp_path / "work" / "rejects.csv").set_index("image")["reason"]
    assert counts["kept"] == len(GOOD) - 1
    assert rej[odd] == ("mixed-size: image is 80x60 (HxW), 4 of 5 images are 64x64; shards hold one size: "
                        "bring the photos to one size with `pgprep ingest PHOTOS -o ROOT --size 64x64`")


def test_exif_rotated_trailing_and_webp_images_are_judged_in_their_upright_frame(tmp_path):
    """Before: the rotated photo was out-of-frame (header size not oriented), the trailer JPEG
    `truncated`, the WebP `bad-image`, the 65500x65500 header a crash at decode."""
    import io

    from PIL import Image

    rows = [("img/WOMEN/Dresses/id_00000001/01_1_front.jpg", "id_00000001", "train", person(0)),
            ("img/WOMEN/Dresses/id_00000001/01_2_side.jpg", "id_00000001", "train", person(2)),
            ("img/WOMEN/Dresses/id_00000002/01_1_front.jpg", "id_00000002", "train", person(-2)),
            ("img/WOMEN/Dresses/id_00000002/01_2_side.jpg", "id_00000002", "train", person(1)),
            ("img/WOMEN/Dresses/id_00000003/01_1_front.jpg", "id_00000003", "query", person(0))]
    tall = [(i, it, st, kp * (1, 2, 1)) for i, it, st, kp in rows]  # poses in a 128-high upright frame
    root = tmp_path / "root"
    deepfashion.write_partition(root, pd.DataFrame([r[:3] for r in rows], columns=["image", "item_id", "status"]))
    upright = np.full((128, 64, 3), 230, np.uint8)

    def jpeg(rgb, **kw):
        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, "JPEG", **kw)
        return buf.getvalue()

    ex = Image.Exif()
    ex[0x0112] = 6  # stored 128 wide x 64 high, shown upright 64 x 128
    files = [jpeg(upright), jpeg(np.ascontiguousarray(np.rot90(upright, 1)), exif=ex.tobytes()),
             jpeg(upright) + b"\x00" * 200 + b"trailer", None, None]
    buf = io.BytesIO()
    Image.fromarray(upright).save(buf, "WEBP")
    files[3] = buf.getvalue()
    bomb = bytearray(jpeg(np.zeros((8, 8, 3), np.uint8)))
    i = bomb.find(b"\xff\xc0")
    bomb[i + 5:i + 9] = (65500).to_bytes(2, "big") * 2
    files[4] = bytes(bomb)
    for (image, *_), data in zip(rows, files, strict=True):
        (root / image).parent.mkdir(parents=True, exist_ok=True)
        (root / image).write_bytes(data)
    src = write_openpose(tmp_path / "op", tall)
    for check in ("header", "decode"):
        counts = run_filter(root, src, tmp_path / f"work-{check}", jobs=1, check=check)
        kept = pd.read_csv(tmp_path / f"work-{check}" / "images.csv")
        rej = pd.read_csv(tmp_path / f"work-{check}" / "rejects.csv").set_index("image")["reason"]
        assert counts["kept"] == 4 and set(kept["height"]) == {128} and set(kept["width"]) == {64}
        assert rej[rows[4][0]].startswith("bad-image: image too large: the header claims 4,290,250,000 pixels")


def test_in_an_ingested_image_the_border_is_the_photo_edge_not_the_padding():
    """A landscape thigh crop ingested into 64x64: the photo fills rows 16..47, white above and
    below. Knees at its bottom edge (row 46) or in the padding (row 52) do not count."""
    crop = person()
    crop[:, 1] = 16 + (crop[:, 1] - 7) * 0.6
    crop[[skeleton.J["r_ankle"], skeleton.J["l_ankle"]]] = (-1, -1, 0)
    crop[skeleton.J["r_knee"]] = (28, 46.5, 0.6)
    crop[skeleton.J["l_knee"]] = (36, 52, 0.95)  # hallucinated in the white padding, however sure
    box = (0.0, 16.0, 64.0, 48.0)
    why = judge([crop], SIZE, SIZE, Thresholds(min_height_frac=0.1), content=box)[2]
    assert why.startswith("incomplete: missing legs (r_knee 0.60, l_knee 0.95 at the photo's edge"), why
    assert judge([crop], SIZE, SIZE, Thresholds(min_height_frac=0.1))[2] is None  # whole image: both count


def test_filter_reads_the_photo_box_from_ingest_csv(tmp_path):
    root = make_root(tmp_path)
    rec = pd.DataFrame([{"source": "a.jpg", "image": GOOD[0][0], "scale": 0.5, "pad_x": 0, "pad_y": 0,
                         "orig_width": 128, "orig_height": 80, "width": 64, "height": 64}])
    rec.to_csv(root / "ingest.csv", index=False)
    from pgprep.filter import content_boxes

    assert content_boxes(root) == {GOOD[0][0]: (0.0, 0.0, 64.0, 40.0)}
    src = write_openpose(tmp_path / "op")
    run_filter(root, src, tmp_path / "work", jobs=1)
    rej = pd.read_csv(tmp_path / "work" / "rejects.csv").set_index("image")["reason"]
    # its knees (row 45) and ankles (57) lie in the white padding below the recorded 40-row photo
    assert rej[GOOD[0][0]].startswith("incomplete: missing legs (r_knee 0.90, l_knee 0.90, r_ankle 0.90, "
                                      "l_ankle 0.90 at the photo's edge")


def test_special_and_oversized_image_files_are_bad_images_read_from_a_stat(tmp_path):
    """Issue 18 item 6. Before: a 6 GB sparse .jpg was read whole (MemoryError, no file named;
    the run aborted) and a /dev/zero link, a FIFO or a folder named x.jpg became `missing-image`.
    After: each is a `bad-image` saying what the file is, decided from a stat; the run goes on."""
    import os

    bad = [(f"img/WOMEN/Skirts/id_00000020/01_{k}_front.jpg", "id_00000020", "train", person(1))
           for k in range(1, 5)]
    root = make_root(tmp_path, GOOD + bad)
    names = [b[0] for b in bad]
    with open(root / names[0], "r+b") as f:
        f.truncate(6 * 2**30)
    (root / names[1]).unlink()
    (root / names[1]).symlink_to("/dev/zero")
    (root / names[2]).unlink()
    os.mkfifo(root / names[2])
    (root / names[3]).unlink()
    (root / names[3]).mkdir()
    src = write_openpose(tmp_path / "op", GOOD + bad)
    for check in ("header", "decode"):
        counts = run_filter(root, src, tmp_path / f"work-{check}", jobs=1, check=check)
        assert counts["kept"] == len(GOOD)
        rej = pd.read_csv(tmp_path / f"work-{check}" / "rejects.csv")
        reason = dict(zip(rej["image"], rej["reason"], strict=True))
        assert reason[names[0]] == ("bad-image: image file is 6,442,450,944 bytes, over the limit of "
                                    "268,435,456 (PGKIT_MAX_IMAGE_BYTES)")
        assert reason[names[1]] == "bad-image: cannot read image: a character device, not a regular file"
        assert reason[names[2]] == "bad-image: cannot read image: a named pipe (FIFO), not a regular file"
        assert reason[names[3]] == "bad-image: cannot read image: a directory, not a regular file"


# ------------------------------------------------------------------ issue 20: cut at the knees, legs under a gown

def _scaled(sx, sy, dy=0.0):
    kp = person()
    kp[:, 0] *= sx
    kp[:, 1] = kp[:, 1] * sy + dy
    return kp


def test_knees_squeezed_into_a_frame_cut_just_above_them_do_not_make_it_complete():
    """Issue 20 (a), real shop photo: BlazePose puts both knees ~30 px above the bottom of a
    256-px frame with visibility 0.35 and 0.44 and no ankles; it was kept as complete."""
    th = Thresholds()
    cut = _scaled(4, 5.5)  # hips at y = 181.5; the frame ends just above the real knees
    cut[[skeleton.J["r_ankle"], skeleton.J["l_ankle"]]] = (-1, -1, 0)
    cut[skeleton.J["r_knee"]] = (112, 226, 0.35)
    cut[skeleton.J["l_knee"]] = (144, 226, 0.44)
    why = judge([cut], 256, 256, th)[2]
    assert why.startswith("incomplete: missing legs (r_knee 0.35, l_knee 0.44 with no ankle and under 1.5 thigh "
                          "of photo below (counts only scoring >= 0.8; --knee-room)"), why
    assert judge([cut], 256, 256, Thresholds(knee_room=0))[2] is None  # before issue 20: kept
    seen = cut.copy()
    seen[skeleton.J["r_knee"], 2] = 0.93  # a knee BlazePose sees scores high: counts anywhere
    assert judge([seen], 256, 256, th)[2] is None
    # a knee-length dress above visible knees, whole person: kept, also when both ankles are missed
    dress = _scaled(4, 4)
    assert judge([dress], 256, 256, th)[2] is None
    dress[[skeleton.J["r_ankle"], skeleton.J["l_ankle"]]] = (-1, -1, 0)
    dress[[skeleton.J["r_knee"], skeleton.J["l_knee"]], 2] = 0.6  # 75 px below a 48-px thigh: room for a shin
    assert judge([dress], 256, 256, th)[2] is None


def _gown_image(hem_y, colour=(150, 40, 60), backdrop=235):
    """A 256-px photo: a figure (torso, then a skirt widening from the hips down to hem_y)."""
    img = np.full((256, 256, 3), backdrop, np.uint8)
    cv2.rectangle(img, (98, 40), (150, 116), (60, 60, 90), -1)
    cv2.fillConvexPoly(img, np.array([(98, 116), (150, 116), (175, hem_y), (73, hem_y)], np.int32), colour)
    return img


def test_legs_hidden_by_a_floor_length_gown_count_when_the_photo_has_room_for_them():
    """Issue 20 (b): a floor-length gown hides the legs; BlazePose reports no leg joint and the
    image was rejected as `incomplete: missing legs`."""
    gown = _scaled(3.5, 3.5, 8)  # shoulders y = 60.5, hips y = 123.5: torso 63 px
    gown[[skeleton.J[j] for j in ("r_knee", "l_knee", "r_ankle", "l_ankle")]] = (-1, -1, 0)
    assert judge([gown], 256, 256, Thresholds())[2] is None  # default --hidden-legs room
    assert judge([gown], 256, 256, Thresholds(hidden_legs="no"))[2].startswith("incomplete: missing legs")
    # the same skeleton in a frame cut at the thighs (ends 60 px below the hips) stays incomplete
    assert judge([gown], 256, 184, Thresholds())[2].startswith("incomplete: missing legs")
    hem = Thresholds(hidden_legs="hem")
    assert judge([gown], 256, 256, hem)[2].startswith("incomplete")  # no pixels: no evidence
    for img, kept in ((_gown_image(236), True),                      # hem above the floor: kept
                      (_gown_image(255), False),                     # figure runs off the bottom: cut
                      (_gown_image(236, colour=(236, 236, 236)), False),  # white on white: no evidence
                      (_gown_image(170), False)):                    # ends at the thighs
        why = judge([gown], 256, 256, hem, pixels=lambda img=img: img)[2]
        assert (why is None) == kept, why
    # the skeleton height runs to the hidden legs, not to the hips (which alone are < 0.4 of the frame)
    assert judge([gown], 256, 256, Thresholds(min_height_frac=0.6))[2] is None


def test_cli_hidden_legs_and_knee_room_options(tmp_path):
    gown = _scaled(1, 1)
    gown[[skeleton.J[j] for j in ("r_knee", "l_knee", "r_ankle", "l_ankle")]] = (-1, -1, 0)
    rows = [(GOOD[0][0], GOOD[0][1], "train", gown), *GOOD[1:]]
    root = make_root(tmp_path, rows)
    src = write_openpose(tmp_path / "op", rows)
    res = CliRunner().invoke(main, ["filter", str(root), "--poses", str(src), "-o", str(tmp_path / "w1")])
    assert res.exit_code == 0 and len(kept_set(tmp_path / "w1")) == 5
    res = CliRunner().invoke(main, ["filter", str(root), "--poses", str(src), "-o", str(tmp_path / "w2"),
                                    "--hidden-legs", "no"])
    assert res.exit_code == 0 and len(kept_set(tmp_path / "w2")) == 4
    work = json.loads((tmp_path / "w2" / "work.json").read_text())
    assert work["thresholds"]["hidden_legs"] == "no" and work["thresholds"]["knee_room"] == 1.5
    res = CliRunner().invoke(main, ["filter", str(root), "--poses", str(src), "-o", str(tmp_path / "w3"),
                                    "--hidden-legs", "maybe"])
    assert res.exit_code == 2


@pytest.mark.slow
def test_synthetic_hard_cases_are_decided_as_the_defaults_say(tmp_path):
    """pgprep synth --hard-cases: cut_knees rejected, long_gown and knee_dress kept (synth's
    BlazePose-like keypoints; docs/filter.md has the table per rule variant)."""
    from pgprep.synth import synthesize

    root = tmp_path / "hard"
    synthesize(root, items=24, seed=3, size=256, jobs=1, hard_cases=0.6)
    truth = pd.read_csv(root / "truth.csv").set_index("image")
    assert {"cut_knees", "long_gown", "knee_dress"} <= set(truth["kind"])
    for kw, expect in (({}, {"cut_knees": 0.0, "long_gown": 1.0, "knee_dress": 1.0, "person": 1.0}),
                       ({"knee_room": 0, "hidden_legs": "no"}, {"cut_knees": 1.0, "knee_dress": 1.0})):
        work = tmp_path / f"w{len(kw)}"
        run_filter(root, root / "pose" / "openpose", work, jobs=1, **kw)
        kept = set(kept_set(work).index)
        rate = truth.assign(kept=[i in kept for i in truth.index]).groupby("kind")["kept"].mean()
        for kind, r in expect.items():
            assert rate[kind] == r, (kw, rate.to_dict())
    assert rate["long_gown"] < 0.8  # before issue 20 most gowns were lost
