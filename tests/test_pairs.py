"""pgprep pairs: closed-form pair counts, split/item integrity, the non-different threshold,
flips, per-item caps, seeds, community CSV round trip, stage stamps and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from pgprep import skeleton as sk
from pgprep.deepfashion import flatten_name
from pgprep.errors import PgkitError
from pgprep.pairs import (
    body_scale,
    identical_poses,
    import_pairs,
    pose_distance,
    run_pairs,
)

W = H = 64


def base_pose(dx: float = 0.0, dy: float = 0.0) -> np.ndarray:
    """A standing person; torso (neck (32, 14) to mid-hip (32, 34)) is 20 px long."""
    kp = sk.empty()
    pts = {
        "nose": (32, 8), "neck": (32, 14), "r_shoulder": (26, 14), "r_elbow": (24, 22),
        "r_wrist": (23, 30), "l_shoulder": (38, 14), "l_elbow": (40, 22), "l_wrist": (41, 30),
        "r_hip": (28, 34), "r_knee": (28, 44), "r_ankle": (28, 54), "l_hip": (36, 34),
        "l_knee": (36, 44), "l_ankle": (36, 54), "r_eye": (31, 7), "l_eye": (33, 7),
        "r_ear": (30, 8), "l_ear": (34, 8),
    }
    for name, (x, y) in pts.items():
        kp[sk.J[name]] = (x + dx, y + dy, 1.0)
    return kp


def image_name(gender: str, item: int, k: int, view: str = "front") -> str:
    return f"img/{gender}/Dresses/id_{item:08d}/{k:02d}_{k}_{view}.jpg"


def write_work(work, rows: list[tuple[str, str, str, np.ndarray]]) -> None:
    """A hand-made WORK: rows of (image, item_id, split, keypoints)."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "work.json").write_text(json.dumps({"root": str(work / "root"), "image_size": [H, W]}))
    recs = []
    for image, item, split, kp in rows:
        recs.append({"image": image, "item_id": item, "split": split,
                     "status": "train" if split == "train" else "query",
                     "width": W, "height": H, "persons": 1, **sk.to_columns(kp)})
    pd.DataFrame(recs).to_csv(work / "images.csv", index=False)


def manifest(sizes_train=(3, 1, 4), sizes_test=(2, 5)) -> list:
    """Items with n images each, every image a distinct pose (shifted by 3 px per image)."""
    rows, item = [], 1
    for split, sizes in (("train", sizes_train), ("test", sizes_test)):
        for n in sizes:
            for k in range(n):
                rows.append((image_name("WOMEN", item, k + 1), f"id_{item:08d}", split,
                             base_pose(dx=3.0 * k)))
            item += 1
    return rows


def read_pairs(work, split):
    return pd.read_csv(work / f"pairs-{split}.csv", dtype={"item_id": str})


# ---------------------------------------------------------------- distance

def test_pose_distance_by_hand():
    a = base_pose()
    assert body_scale(a) == pytest.approx(20.0)  # neck (32,14) to mid-hip (32,34)
    b = base_pose(dx=3.0, dy=4.0)  # every joint moves 5 px: 5 / 20
    assert pose_distance(a, b) == pytest.approx(0.25)
    c = a.copy()
    c[sk.J["neck"]] = (-1, -1, 0)  # no neck: scale = bbox height 54 - 7 = 47
    assert body_scale(c) == pytest.approx(47.0)
    assert pose_distance(c, b) == pytest.approx(5.0 / ((47.0 + 20.0) / 2))
    # no joint in common: never "non-different"
    only_nose, only_neck = sk.empty(), sk.empty()
    only_nose[sk.J["nose"]] = (5, 5, 1)
    only_neck[sk.J["neck"]] = (5, 5, 1)
    assert np.isinf(pose_distance(only_nose, only_neck))
    assert identical_poses(a, a.copy()) and not identical_poses(a, b)
    e = a.copy()
    e[sk.J["l_ear"]] = (-1, -1, 0)  # same coordinates, different detected joints
    assert not identical_poses(a, e)


# ---------------------------------------------------------------- counts and integrity

def test_pair_counts_closed_form_and_no_leak(tmp_path):
    work = tmp_path / "work"
    write_work(work, manifest())
    s = run_pairs(work, seed=0, min_distance=0.0)
    n_train = sum(n * (n - 1) for n in (3, 1, 4))  # 6 + 0 + 12 = 18
    n_test = sum(n * (n - 1) for n in (2, 5))  # 2 + 20 = 22
    tr, te = read_pairs(work, "train"), read_pairs(work, "test")
    assert list(tr.columns) == ["from", "to", "flip", "item_id"]
    assert len(tr) == 2 * n_train and len(te) == n_test
    assert s["train"]["pairs"] == 2 * n_train and s["test"]["pairs"] == n_test
    assert s["train"]["images"] == 8 and s["train"]["images_with_flips"] == 16
    assert s["test"]["images_with_flips"] == 7
    assert s["train"]["dropped_non_different"] == 0
    assert s["train"]["images_in_pairs"] == 14  # (3 + 4) images x 2 flips; the lone image unused
    assert (tr["flip"] == 1).sum() == n_train and (te["flip"] == 0).all()
    images = pd.read_csv(work / "images.csv", dtype={"item_id": str}).set_index("image")
    for split, frame in (("train", tr), ("test", te)):
        assert (frame["from"] != frame["to"]).all()
        assert (images.loc[frame["from"], "split"].to_numpy() == split).all()
        assert (images.loc[frame["to"], "split"].to_numpy() == split).all()
        assert (images.loc[frame["from"], "item_id"].to_numpy() == frame["item_id"].to_numpy()).all()
        assert (images.loc[frame["to"], "item_id"].to_numpy() == frame["item_id"].to_numpy()).all()
        # every ordered pair exactly once per flip value
        assert not frame.duplicated(["from", "to", "flip"]).any()
    assert not set(tr["item_id"]) & set(te["item_id"])
    # the flipped rows are exactly the unflipped pairs
    pairs0 = set(map(tuple, tr.loc[tr.flip == 0, ["from", "to"]].to_numpy()))
    pairs1 = set(map(tuple, tr.loc[tr.flip == 1, ["from", "to"]].to_numpy()))
    assert pairs0 == pairs1


def test_no_flip_and_cap(tmp_path):
    work = tmp_path / "work"
    write_work(work, manifest())
    s = run_pairs(work, seed=0, min_distance=0.0, flip=False, max_per_item=4)
    tr = read_pairs(work, "train")
    assert (tr["flip"] == 0).all()
    # caps: item of 3 images -> min(6, 4); item of 4 -> min(12, 4)
    assert tr.groupby("item_id").size().sort_index().tolist() == [4, 4]
    assert s["train"]["dropped_by_cap"] == (6 - 4) + (12 - 4)
    assert read_pairs(work, "test").groupby("item_id").size().sort_index().tolist() == [2, 4]


def test_item_on_both_sides_is_an_error(tmp_path):
    work = tmp_path / "work"
    rows = manifest()
    rows.append((image_name("MEN", 1, 9), "id_00000001", "test", base_pose(dx=7)))
    write_work(work, rows)
    with pytest.raises(PgkitError, match="both the train and the test side"):
        run_pairs(work)
    assert not (work / "pairs-train.csv").exists()


# ---------------------------------------------------------------- non-different pairs

def test_threshold_drops_at_and_keeps_just_above(tmp_path):
    work = tmp_path / "work"
    rows = [
        (image_name("WOMEN", 1, 1), "id_00000001", "train", base_pose()),
        (image_name("WOMEN", 1, 2), "id_00000001", "train", base_pose(dx=1.0)),  # d = 1/20
        (image_name("WOMEN", 1, 3), "id_00000001", "train", base_pose()),  # identical to 1
        (image_name("WOMEN", 2, 1), "id_00000002", "test", base_pose()),
        (image_name("WOMEN", 2, 2), "id_00000002", "test", base_pose(dx=8.0)),
    ]
    write_work(work, rows)
    # threshold exactly at d = 0.05: the (1,2), (2,1), (3,2), (2,3) pairs are dropped too
    s = run_pairs(work, min_distance=0.05, flip=False)
    assert s["train"]["candidate_pairs"] == 6
    assert s["train"]["dropped_non_different"] == 6 and s["train"]["pairs"] == 0
    # just below d: those four are kept; the identical pair (1,3) and (3,1) are still dropped
    s = run_pairs(work, min_distance=0.05 - 1e-9, flip=False)
    assert s["train"]["dropped_non_different"] == 2
    tr = read_pairs(work, "train")
    assert len(tr) == 4
    assert not {(rows[0][0], rows[2][0]), (rows[2][0], rows[0][0])} & set(zip(tr["from"], tr["to"], strict=True))
    # identical keypoints are dropped even with a negative threshold
    s = run_pairs(work, min_distance=-1.0, flip=False)
    assert s["train"]["dropped_non_different"] == 2 and s["test"]["pairs"] == 2


# ---------------------------------------------------------------- determinism and stamps

def test_seed_is_deterministic_and_changes_order(tmp_path):
    work = tmp_path / "work"
    write_work(work, manifest())
    run_pairs(work, seed=5, min_distance=0.0)
    a = read_pairs(work, "train")
    run_pairs(work, seed=5, min_distance=0.0, force=True)
    pd.testing.assert_frame_equal(a, read_pairs(work, "train"))
    run_pairs(work, seed=6, min_distance=0.0)
    b = read_pairs(work, "train")
    assert not a.equals(b)
    assert sorted(map(tuple, a.to_numpy().tolist())) == sorted(map(tuple, b.to_numpy().tolist()))


def test_rerun_does_nothing(tmp_path):
    work = tmp_path / "work"
    write_work(work, manifest())
    s1 = run_pairs(work, min_distance=0.0)
    mtime = (work / "pairs-train.csv").stat().st_mtime_ns
    s2 = run_pairs(work, min_distance=0.0)
    assert s2["up_to_date"] and not s1["up_to_date"]
    assert s2["train"] == s1["train"]
    assert (work / "pairs-train.csv").stat().st_mtime_ns == mtime
    s3 = run_pairs(work, min_distance=0.1)  # a changed option rebuilds
    assert not s3["up_to_date"]


# ---------------------------------------------------------------- community CSVs

def test_community_round_trip_and_import_report(tmp_path):
    work = tmp_path / "work"
    write_work(work, manifest())
    out = tmp_path / "community"
    run_pairs(work, min_distance=0.0, export=out)
    exported = pd.read_csv(out / "fasion-resize-pairs-test.csv")
    assert list(exported.columns) == ["from", "to"]
    test_pairs = read_pairs(work, "test")
    assert len(exported) == len(test_pairs)
    assert exported["from"].iloc[0] == flatten_name(test_pairs["from"].iloc[0])
    assert exported["from"].iloc[0].startswith("fashionWOMENDressesid")
    # the exported train list holds unflipped pairs only
    assert len(pd.read_csv(out / "fasion-resize-pairs-train.csv")) == (6 + 12)
    assert (out / "fasion-resize-annotation-test.csv").read_text().startswith("name:keypoints_y:keypoints_x")

    # import: a subset plus a pair naming a missing image and one naming a train image
    sub = exported.iloc[:5]
    extra = pd.DataFrame({"from": ["fashionWOMENDressesid0000009901_1front.jpg",
                                   flatten_name(image_name("WOMEN", 1, 1))],
                          "to": [exported["to"].iloc[0], exported["to"].iloc[0]]})
    csv = tmp_path / "fasion-resize-pairs-test.csv"
    pd.concat([sub, extra]).to_csv(csv, index=False)
    s = run_pairs(work, min_distance=0.0, import_test=csv)
    te = read_pairs(work, "test")
    assert sorted(zip(map(flatten_name, te["from"]), map(flatten_name, te["to"]), strict=True)) == \
        sorted(zip(sub["from"], sub["to"], strict=True))
    assert len(te) == 5 and (te["flip"] == 0).all()
    rec = s["imports"]["test"]
    assert (rec["imported"], rec["not_kept"], rec["other_split"]) == (7, 1, 1)
    # raw paths work as well as flattened names
    images = pd.read_csv(work / "images.csv", dtype={"item_id": str})
    raw = tmp_path / "raw.csv"
    pd.DataFrame({"from": [image_name("WOMEN", 4, 1)], "to": [image_name("WOMEN", 4, 2)]}).to_csv(raw, index=False)
    got, problems, _ = import_pairs(raw, images, "test")
    assert len(got) == 1 and problems["not_kept"] == 0


def test_bad_community_csv_names_the_file(tmp_path):
    work = tmp_path / "work"
    write_work(work, manifest())
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(PgkitError, match="bad.csv"):
        run_pairs(work, import_test=bad)


# ---------------------------------------------------------------- CLI

def test_cli_table_and_rerun_message(tmp_path):
    from pgprep.cli import main

    work = tmp_path / "work"
    write_work(work, manifest())
    r = CliRunner().invoke(main, ["pairs", str(work), "--min-distance", "0"])
    assert r.exit_code == 0, r.output
    assert "dropped non-different" in r.output and "| train" in r.output
    table = [" ".join(line.split()) for line in r.output.splitlines()]
    # 18 pairs, twice with flips; the single-image item's image is in no pair: 2 x 7 images used
    assert "| train | 3 | 8 | 16 | 18 | 0 | 0 | 36 | 14 |" in table
    assert "| test | 2 | 7 | 7 | 22 | 0 | 0 | 22 | 7 |" in table
    r = CliRunner().invoke(main, ["pairs", str(work), "--min-distance", "0"])
    assert r.exit_code == 0 and "up to date" in r.output
    r = CliRunner().invoke(main, ["pairs", str(tmp_path / "nowhere")])
    assert r.exit_code == 1 and "nowhere" in r.output and "Traceback" not in r.output


@pytest.mark.slow
def test_pairs_of_the_shared_synth_work_dir(work_dir):
    """On real filter output: every pair stays within one item and one split, both sides."""
    images = pd.read_csv(work_dir / "images.csv", dtype={"item_id": str}).set_index("image")
    seen = {}
    for split in ("train", "test"):
        frame = read_pairs(work_dir, split)
        assert len(frame) > 0
        for col in ("from", "to"):
            assert (images.loc[frame[col], "split"].to_numpy() == split).all()
            assert (images.loc[frame[col], "item_id"].to_numpy() == frame["item_id"].to_numpy()).all()
        seen[split] = set(frame["item_id"])
        if split == "train":
            assert (frame["flip"] == 1).sum() == (frame["flip"] == 0).sum()
    assert not seen["train"] & seen["test"]
