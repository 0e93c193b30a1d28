"""pgprep.formats: hostile keypoint files end as per-record errors naming the file, never as
an exception escaping the reader, an out-of-memory kill or a silently missing joint."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from pgprep import formats, skeleton
from pgprep.errors import PgkitError

KP = [[10.0 + j, 20.0 + j, 0.9] for j in range(18)]


def _openpose(tmp_path, values, name="x_keypoints.json"):
    path = tmp_path / name
    path.write_text('{"people": [{"pose_keypoints_2d": ' + values + "}]}")
    return path


def _flat(kp=KP):
    return [v for row in kp for v in row]


# ------------------------------------------------------------------ OpenPose JSON (case 7, 14)

@pytest.mark.parametrize("bad, words", [
    ("1" + "0" * 320, "too large"),             # float() overflow (OverflowError before)
    ("1" + "0" * 5000, "not a usable number"),  # int() digit limit (ValueError before)
    ("[" * 1000 + "]" * 1000, "nested"),        # RecursionError before
    ("1e400", "non-finite"),                    # json gives inf
], ids=["310-digits", "5000-digits", "nested-1000", "1e400"])
def test_openpose_hostile_numbers_are_pgkit_errors_naming_the_file(tmp_path, bad, words):
    vals = [json.dumps(v) for v in _flat()]
    vals[3] = bad
    path = _openpose(tmp_path, "[" + ",".join(vals) + "]")
    with pytest.raises(PgkitError) as err:
        formats.read_openpose_people(path)
    assert err.value.path == str(path)
    assert words in err.value.reason
    assert "joint 1" in err.value.reason or "malformed JSON" in err.value.reason  # whole-file parse
    assert "set_int_max_str_digits" not in err.value.reason


def test_openpose_huge_coordinate_is_refused_not_missing(tmp_path):
    vals = _flat()
    vals[0] = 1e308  # finite in float64, inf in float32: used to become a missing joint
    path = _openpose(tmp_path, json.dumps(vals))
    with pytest.raises(PgkitError, match=r"1e\+308 at people\[0\], joint 0 is beyond"):
        formats.read_openpose_people(path)


def test_openpose_negative_detected_joint_is_kept_for_the_frame_rule(tmp_path):
    vals = _flat()
    vals[0], vals[3 * 5 + 1] = -30.0, -1.5  # detected (score 0.9), left of / above the frame
    vals[3 * 7:3 * 8] = [0, 0, 0]            # OpenPose's missing joint
    path = _openpose(tmp_path, json.dumps(vals))
    raw = formats.read_openpose_people(path, offframe=True)[0][0]
    assert raw[0].tolist() == pytest.approx([-30.0, 20.0, 0.9])
    assert raw[5].tolist() == pytest.approx([15.0, -1.5, 0.9])
    assert raw[7].tolist() == [-1.0, -1.0, 0.0]
    # the default (generate, draw) keeps the canonical form: off-frame joints are missing
    clean = formats.read_openpose_people(path)[0][0]
    assert clean[0].tolist() == [-1.0, -1.0, 0.0] and clean[1].tolist() == pytest.approx([11, 21, 0.9])


def test_openpose_file_size_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(formats, "MAX_JSON_BYTES", 100)
    path = _openpose(tmp_path, json.dumps(_flat()))
    with pytest.raises(PgkitError, match="larger than the 100-byte limit"):
        formats.read_openpose_people(path)


# ------------------------------------------------------------------ PATN CSV (case 7, 14, 18)

def _patn(tmp_path, rows, bom=False):
    path = tmp_path / "ann.csv"
    text = formats.PATN_HEADER + "\n" + "\n".join(rows) + "\n"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode())
    return path


def _row(name, ys=None, xs=None):
    ys = ys if ys is not None else json.dumps([20 + j for j in range(18)])
    xs = xs if xs is not None else json.dumps([10 + j for j in range(18)])
    return f"{name}: {ys}: {xs}"


def test_patn_hostile_rows_are_per_row_errors(tmp_path):
    ys_ok = [20 + j for j in range(18)]
    rows = [
        _row("a.jpg"),
        _row("big.jpg", ys="[" + ",".join(["1" + "0" * 320] + ["5"] * 17) + "]"),
        _row("digits.jpg", ys="[" + ",".join(["1" + "0" * 5000] + ["5"] * 17) + "]"),
        _row("deep.jpg", ys="[" * 1000 + "]" * 1000),
        _row("inf.jpg", ys="[" + ",".join(["1e999"] + ["5"] * 17) + "]"),
        _row("huge.jpg", ys=json.dumps([1e308] + ys_ok[1:])),
        _row("neg.jpg", xs=json.dumps([-30] + [10 + j for j in range(1, 18)])),
    ]
    res = formats.read_patn_csv(_patn(tmp_path, rows))
    assert sorted(res.poses) == ["a.jpg", "neg.jpg"]
    e = res.errors
    assert "line 3" in e["big.jpg"] and "ann.csv" in e["big.jpg"] and "too large" in e["big.jpg"]
    assert "line 4" in e["digits.jpg"] and "not a usable number" in e["digits.jpg"]
    assert "line 5" in e["deep.jpg"] and "nested" in e["deep.jpg"]
    assert "non-finite" in e["inf.jpg"]
    assert "beyond" in e["huge.jpg"]
    # -1 marks a missing joint in this format; -30 is a real coordinate left of the frame
    assert res.poses["neg.jpg"][0].tolist() == [-30.0, 20.0, 1.0]


def test_patn_missing_marker_is_minus_one(tmp_path):
    xs = [10 + j for j in range(18)]
    xs[2] = -1
    res = formats.read_patn_csv(_patn(tmp_path, [_row("a.jpg", xs=json.dumps(xs))]), x_offset=40)
    kp = res.poses["a.jpg"]
    assert kp[2].tolist() == [-1.0, -1.0, 0.0]
    assert kp[3].tolist() == [53.0, 23.0, 1.0]


def test_patn_csv_with_utf8_bom_is_read(tmp_path):
    path = _patn(tmp_path, [_row("a.jpg")], bom=True)
    res = formats.read_patn_csv(path)
    assert list(res.poses) == ["a.jpg"] and not res.errors
    assert res.poses["a.jpg"][17].tolist() == [27.0, 37.0, 1.0]


# ------------------------------------------------------------------ pose pickles (case 5, 7)

def _shared_bomb(levels=5, width=100):
    """A few hundred bytes that np.asarray would expand to width**levels floats."""
    node = [0.5] * width
    for _ in range(levels - 1):
        node = [node] * width
    return node


def test_pickle_bomb_is_rejected_per_record_without_expanding(tmp_path):
    good = [[10.0 + j, 20.0 + j] for j in range(18)]
    path = tmp_path / "poses.pkl"
    path.write_bytes(pickle.dumps({"good.jpg": good, "bomb.jpg": _shared_bomb(),
                                   "deep.jpg": _shared_bomb(levels=12, width=1)}))
    assert path.stat().st_size < 3000  # 10**10 elements when shared references are copied
    poses, errors = formats.read_pose_pickle(path)
    assert list(poses) == ["good.jpg"]
    assert poses["good.jpg"][0][17].tolist() == [27.0, 37.0, 1.0]
    assert "poses.pkl" in errors["bomb.jpg"]
    assert f"more than {formats.PICKLE_MAX_RECORD_ELEMENTS:,} elements" in errors["bomb.jpg"]
    assert f"nested more than {formats.PICKLE_MAX_DEPTH} levels" in errors["deep.jpg"]


def test_pickle_self_reference_is_rejected(tmp_path):
    loop = []
    loop.append(loop)
    path = tmp_path / "poses.pkl"
    path.write_bytes(pickle.dumps({"loop.jpg": loop}))
    poses, errors = formats.read_pose_pickle(path)
    assert not poses and "contains itself" in errors["loop.jpg"]


def test_pickle_whole_file_over_the_limit_is_one_error(tmp_path, monkeypatch):
    monkeypatch.setattr(formats, "PICKLE_MAX_TOTAL_ELEMENTS", 1000)
    rec = [[10.0 + j, 20.0 + j] for j in range(18)]  # 18 * 3 + 1 = 55 elements
    path = tmp_path / "poses.pkl"
    path.write_bytes(pickle.dumps({f"{i}.jpg": rec for i in range(40)}))  # one shared record
    with pytest.raises(PgkitError, match="more than 1,000 elements in all") as err:
        formats.read_pose_pickle(path)
    assert err.value.path == str(path)


def test_pickle_ragged_and_overflowing_entries_are_per_record_errors(tmp_path):
    peaks = [[(10.0 + j, 20.0 + j, 0.8, j)] for j in range(18)]
    ragged = [[(1.0, 2.0, 0.5)], 7.0] + [[]] * 16          # TypeError before
    overflow = [[(10 ** 400, 2.0, 0.5)]] + [[]] * 17          # OverflowError before
    short_peak = [[(1.0,)]] + [[]] * 17                        # IndexError before
    obj_array = np.array([[1.0, 2.0]] * 17 + [[None, 2.0]], dtype=object)
    path = tmp_path / "poses.pkl"
    path.write_bytes(pickle.dumps({"peaks.jpg": peaks, "ragged.jpg": ragged, "overflow.jpg": overflow,
                                   "short.jpg": short_peak, "obj.jpg": obj_array, 5: peaks}))
    poses, errors = formats.read_pose_pickle(path)
    assert list(poses) == ["peaks.jpg"]
    kp, persons = poses["peaks.jpg"]
    assert persons == 1 and kp[4].tolist() == pytest.approx([14.0, 24.0, 0.8])
    assert "joint 1" in errors["ragged.jpg"] and "list of peaks" in errors["ragged.jpg"]
    assert "joint 0" in errors["overflow.jpg"] and "too large" in errors["overflow.jpg"]
    assert "joint 0" in errors["short.jpg"] and "(x, y" in errors["short.jpg"]
    assert "object" in errors["obj.jpg"]
    assert "key 5" in errors["entry 6"] and "not an image name" in errors["entry 6"]
    assert all("poses.pkl" in v for v in errors.values())


def test_pickle_negative_coordinates_with_a_score_are_kept(tmp_path):
    arr = np.array([[10.0 + j, 20.0 + j, 0.9] for j in range(18)], np.float32)
    arr[0, 0] = -30  # detected, left of the frame
    arr[1] = (-1, -1, 0)
    path = tmp_path / "poses.pkl"
    path.write_bytes(pickle.dumps({"a.jpg": arr}))
    kp = formats.read_pose_pickle(path)[0]["a.jpg"][0]
    assert kp[0].tolist() == pytest.approx([-30.0, 20.0, 0.9])
    assert kp[1].tolist() == [-1.0, -1.0, 0.0]
    assert skeleton.present(kp).sum() == 16


def test_pickle_file_size_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(formats, "PICKLE_MAX_BYTES", 10)
    path = tmp_path / "poses.pkl"
    path.write_bytes(pickle.dumps({"a.jpg": KP}))
    with pytest.raises(PgkitError, match="larger than the 10-byte limit"):
        formats.read_pose_pickle(path)


@pytest.mark.parametrize("how", ["310-digits", "nested", "1e308"])
def test_generate_target_pose_errors_are_one_line_pgkit_errors(tmp_path, how):
    from pgtrain.generate import read_target_pose

    bad = {"310-digits": "1" + "0" * 320, "nested": "[" * 1000 + "]" * 1000, "1e308": "1e308"}[how]
    vals = [json.dumps(v) for v in _flat()]
    vals[0] = bad
    js = _openpose(tmp_path, "[" + ",".join(vals) + "]")
    csv = _patn(tmp_path, [_row("a.jpg", xs="[" + ",".join([bad] + ["5"] * 17) + "]")])
    for src in (js, csv):
        with pytest.raises(PgkitError) as err:
            read_target_pose(src)
        assert err.value.path == str(src) and "\n" not in str(err.value)
