"""The synthetic DeepFashion set checked against its own ground truth (pgprep.synth)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from pgprep import skeleton
from pgprep.cli import main
from pgprep.deepfashion import flatten_name, read_partition
from pgprep.errors import PgkitError
from pgprep.formats import read_openpose_json, read_patn_csv
from pgprep.synth import synthesize
from pgprep.synth.body import sample_body
from pgprep.synth.clothing import sample_look
from pgprep.synth.scene import compose

J = skeleton.J


def _truth(root: Path) -> pd.DataFrame:
    return pd.read_csv(root / "truth.csv")


def _sil(root: Path, row) -> np.ndarray:
    m = cv2.imread(str(root / row.silhouette), cv2.IMREAD_GRAYSCALE)
    assert m is not None, row.silhouette
    return m


def _openpose(root: Path, image: str) -> list[np.ndarray]:
    rel = Path(image).relative_to("img").with_suffix("")
    return read_openpose_json(root / "pose" / "openpose" / f"{rel}_keypoints.json")


def _tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def big_root(tmp_path_factory):
    """A couple of items at DeepFashion's 256 x 256."""
    root = tmp_path_factory.mktemp("synth256") / "root"
    synthesize(root, items=3, seed=5, size=256, jobs=1)
    return root


def test_layout_and_columns(synth_root):
    t = _truth(synth_root)
    assert {"image", "item_id", "view", "kind", "persons", "complete", "silhouette"} <= set(t.columns)
    assert set(skeleton.KP_COLUMNS) <= set(t.columns)
    assert set(t["kind"]) <= {"person", "two_people", "cut_off", "close_up"}
    assert set(t["view"]) <= {"front", "side", "back", "full", "additional"}
    for r in t.itertuples():
        parts = Path(r.image).parts
        assert parts[0] == "img" and parts[1] in ("MEN", "WOMEN") and parts[3] == r.item_id
        assert parts[4].startswith("01_") and parts[4].endswith(f"_{r.view}.jpg")
        img = cv2.imread(str(synth_root / r.image))
        assert img.shape == (64, 64, 3)
        assert _sil(synth_root, r).shape == (64, 64)
    per_item = t.groupby("item_id").size()
    assert per_item.between(2, 6).all()
    assert (t.groupby("item_id")["view"].first() == "front").all()


@pytest.mark.parametrize("which", ["synth_root", "big_root"])
def test_joints_fall_on_the_drawn_person(which, request):
    root = request.getfixturevalue(which)
    hits = total = 0
    for r in _truth(root).itertuples():
        sil = _sil(root, r)
        kp = skeleton.from_columns(r._asdict())
        ok = skeleton.present(kp)
        xy = np.rint(kp[ok, :2]).astype(int)
        hits += int((sil[xy[:, 1], xy[:, 0]] == 255).sum())
        total += len(xy)
    assert total > 0 and hits / total >= 0.95, (hits, total)


def test_left_and_right_agree_with_the_view(synth_root):
    t = _truth(synth_root)
    t = t[t["kind"] != "close_up"]
    front = t[t["view"].isin(["front", "full"])]
    back = t[t["view"] == "back"]
    assert len(front) > 5 and len(back) > 2
    # a person facing the camera has their right shoulder and hip on the image's left
    assert (front[f"x{J['r_shoulder']}"] < front[f"x{J['l_shoulder']}"]).all()
    assert (front[f"x{J['r_hip']}"] < front[f"x{J['l_hip']}"]).all()
    assert (back[f"x{J['r_shoulder']}"] > back[f"x{J['l_shoulder']}"]).all()
    assert (back[f"x{J['r_hip']}"] > back[f"x{J['l_hip']}"]).all()


def test_side_views_are_narrow(synth_root):
    t = _truth(synth_root)
    t = t[t["kind"] == "person"]
    width = (t[f"x{J['r_shoulder']}"] - t[f"x{J['l_shoulder']}"]).abs()
    height = (t[f"y{J['r_ankle']}"] + t[f"y{J['l_ankle']}"]) / 2 - t[f"y{J['neck']}"]
    rel = width / height
    side, front = rel[t["view"] == "side"], rel[t["view"].isin(["front", "full"])]
    assert len(side) > 0
    assert side.max() < 0.6 * front.min(), (side.max(), front.min())


def test_person_fills_the_frame_like_deepfashion(synth_root):
    t = _truth(synth_root)
    for r in t[t["kind"] == "person"].itertuples():
        rows = np.nonzero((_sil(synth_root, r) == 255).any(axis=1))[0]
        assert 0.7 <= (rows[-1] - rows[0] + 1) / 64 <= 0.95, r.image
        img = cv2.imread(str(synth_root / r.image))
        assert img[:3, :3].mean() > 180  # a light studio backdrop in the corner


def test_openpose_is_detector_like(synth_root):
    t = _truth(synth_root)
    errs, missing, n = [], 0, 0
    for r in t.itertuples():
        people = _openpose(synth_root, r.image)
        assert len(people) == r.persons, r.image
        truth, det = skeleton.from_columns(r._asdict()), people[0]
        ok = skeleton.present(det)
        assert not (ok & ~skeleton.present(truth)).any()  # nothing outside the frame is "found"
        assert ((det[ok, 2] >= 0.3) & (det[ok, 2] <= 0.95)).all()
        errs.extend(np.hypot(*(det[ok, :2] - truth[ok, :2]).T))
        missing += int((~ok & skeleton.present(truth)).sum())
        n += int(skeleton.present(truth).sum())
        if r.view == "back":
            assert not skeleton.present(det)[[J["nose"], J["r_eye"], J["l_eye"]]].any()
    errs = np.asarray(errs)
    assert 0.2 < np.median(errs) < 2.0  # ~1 % of a ~55 px tall person, in pixels
    assert 0.01 < missing / n < 0.25


def test_annotation_csv_matches_openpose(synth_root):
    t = _truth(synth_root)
    csv = read_patn_csv(synth_root / "pose" / "annotations.csv")
    assert not csv.errors and len(csv.poses) == len(t)
    for r in t.head(20).itertuples():
        det = _openpose(synth_root, r.image)[0]
        kp = csv.poses[flatten_name(r.image)]
        ok = skeleton.present(det)
        assert (skeleton.present(kp) == ok).all()
        assert np.abs(kp[ok, :2] - np.rint(det[ok, :2])).max() <= 0.5


def test_partition_is_by_item_and_complete(synth_root):
    part = read_partition(synth_root)
    images = {str(p.relative_to(synth_root)) for p in (synth_root / "img").rglob("*.jpg")}
    assert set(part["image"]) == images and len(part) == len(images)
    sides = part.groupby("item_id")["split"].nunique()
    assert (sides == 1).all()
    n_items = part["item_id"].nunique()
    n_train = part.loc[part["split"] == "train", "item_id"].nunique()
    assert 0.35 <= n_train / n_items <= 0.65
    test = part[part["split"] == "test"]
    assert (test.groupby("item_id")["status"].nunique() == 2).all()  # query and gallery each


def test_distractor_rate(synth_root):
    t = _truth(synth_root)
    d = t[t["kind"] != "person"]
    assert 0.01 <= len(d) / len(t) <= 0.12
    assert (t.loc[t["kind"] == "person", ["persons", "complete"]] == 1).all().all()
    assert (d["complete"] == (d["kind"] == "two_people")).all()


@pytest.mark.parametrize("kind", ["two_people", "cut_off", "close_up"])
def test_distractors_look_like_what_they_claim(kind):
    for i in range(3):
        rng = np.random.default_rng(100 + i)
        look = sample_look(rng)
        shot = compose(rng, sample_body(rng, look.gender == "WOMEN"), look, "front", 64, kind)
        det, truth = shot.detections[0], shot.truth
        legs = [J[n] for n in ("r_knee", "l_knee", "r_ankle", "l_ankle")]
        hips = [J["r_hip"], J["l_hip"]]
        if kind == "two_people":
            assert shot.persons == 2 and shot.complete == 1 and len(shot.detections) == 2
            assert (shot.silhouette == 128).sum() > 20 and (shot.silhouette == 255).sum() > 100
            assert skeleton.present(shot.detections[1]).sum() >= 5
        elif kind == "cut_off":
            assert shot.complete == 0 and len(shot.detections) == 1
            assert not skeleton.present(det)[legs].any() and not skeleton.present(truth)[legs].any()
            assert skeleton.present(truth)[hips].all()
            assert (shot.silhouette[-1] == 255).any()  # the body runs out of the frame
        else:
            assert shot.complete == 0 and len(shot.detections) == 1
            assert not skeleton.present(truth)[hips + legs].any()
            assert skeleton.present(truth)[[J["nose"], J["neck"]]].all()
            rows = np.nonzero((shot.silhouette == 255).any(axis=1))[0]
            assert rows[0] < 8 and rows[-1] == 63


def test_same_seed_same_bytes_whatever_jobs(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    synthesize(a, items=6, seed=11, size=64, jobs=1)
    synthesize(b, items=6, seed=11, size=64, jobs=2)
    synthesize(c, items=6, seed=12, size=64, jobs=1)
    da, db, dc = _tree_digest(a), _tree_digest(b), _tree_digest(c)
    assert da == db
    imgs = [k for k in da if k.endswith(".jpg")]
    assert imgs and not any(da[k] == dc.get(k) for k in imgs)
    assert not [k for k in da if k.endswith(".tmp")]


def test_refuses_foreign_or_different_roots(tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(PgkitError, match="not a `pgprep synth` output"):
        synthesize(foreign, items=2, size=64, jobs=1)
    root = tmp_path / "s"
    synthesize(root, items=2, seed=0, size=64, jobs=1)
    with pytest.raises(PgkitError, match="other options"):
        synthesize(root, items=3, seed=0, size=64, jobs=1)


def test_killed_run_is_finished_by_a_rerun(tmp_path):
    root = tmp_path / "s"
    first = synthesize(root, items=3, seed=2, size=64, jobs=1)
    digest = _tree_digest(root)
    # a run killed before its last step has images but no truth, partition or stamp
    for f in ("truth.csv", "Eval/list_eval_partition.txt", ".pgkit/synth.json"):
        (root / f).unlink()
    again = synthesize(root, items=3, seed=2, size=64, jobs=1)
    assert not again["up_to_date"] and again["images"] == first["images"]
    assert _tree_digest(root) == digest


def test_cli_runs_and_reruns_are_up_to_date(tmp_path):
    root = tmp_path / "cli"
    args = ["synth", str(root), "--items", "3", "--seed", "4", "--size", "64", "--jobs", "1"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    assert "images of 3 items" in r.output
    assert (root / "truth.csv").is_file() and (root / "Eval/list_eval_partition.txt").is_file()
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0 and "up to date" in r.output
    r = CliRunner().invoke(main, args[:-4] + ["--size", "96"])
    assert r.exit_code == 1 and "other options" in r.output
    r = CliRunner().invoke(main, ["synth", "--help"])
    assert r.exit_code == 0 and "pgprep synth" in r.output


# ---------------------------------------------------------------- issue 20: the completeness rule's hard cases

def test_hard_case_kinds_look_like_what_they_claim():
    import dataclasses

    from pgprep.synth.scene import SQUEEZED_KNEE_ROOM, SQUEEZED_KNEE_SCORE

    legs = [J[n] for n in ("r_knee", "l_knee", "r_ankle", "l_ankle")]
    knees, ankles = [J["r_knee"], J["l_knee"]], [J["r_ankle"], J["l_ankle"]]
    for i in range(3):
        rng = np.random.default_rng(200 + i)
        look = dataclasses.replace(sample_look(rng), lower_kind="dress", lower_hem=0.64)
        body = sample_body(rng, True)
        cut = compose(rng, body, look, "front", 128, "cut_knees")
        assert cut.complete == 0 and cut.persons == 1
        assert skeleton.present(cut.truth)[[J["r_hip"], J["l_hip"]]].all()
        assert not skeleton.present(cut.truth)[legs].any()  # the real knees are below the frame
        assert (cut.silhouette[-1] == 255).any()  # the thighs run out of the frame
        det = cut.detections[0]
        assert not skeleton.present(det)[ankles].any()
        room = 1 - det[knees, 1] / 128  # ... but the detector squeezes them in, weakly
        assert ((room >= SQUEEZED_KNEE_ROOM[0] - 0.01) & (room <= SQUEEZED_KNEE_ROOM[1] + 0.01)).all()
        assert ((det[knees, 2] >= SQUEEZED_KNEE_SCORE[0]) & (det[knees, 2] <= SQUEEZED_KNEE_SCORE[1])).all()
        gown_look = dataclasses.replace(look, lower_kind="gown", lower_hem=0.97)
        gown = compose(rng, body, gown_look, "front", 128, "long_gown")
        assert gown.complete == 1 and gown.persons == 1
        assert skeleton.present(gown.truth)[legs].all()  # whole person in the frame ...
        assert not skeleton.present(gown.detections[0])[knees].any()  # ... legs hidden from the detector
        rows = np.nonzero((gown.silhouette == 255).any(axis=1))[0]
        assert rows[-1] < 127  # the hem and shoes end above the bottom edge
        # the skirt covers the knees: the colour rendered there is nearer the gown's than the skin's
        for k in knees:
            x, y = np.rint(gown.truth[k, :2]).astype(int)
            px = gown.image[y, x].astype(float)
            assert np.linalg.norm(px - gown_look.lower) < np.linalg.norm(px - np.asarray(look.skin))


def test_hard_cases_are_opt_in_and_recorded(tmp_path):
    root = tmp_path / "hard"
    res = synthesize(root, items=8, seed=1, size=64, jobs=1, hard_cases=0.75)
    t = _truth(root)
    kinds = set(t["kind"])
    assert kinds & {"cut_knees", "long_gown", "knee_dress"} and res["kinds"].get("long_gown", 0) >= 0
    assert (t.loc[t["kind"].isin(["long_gown", "knee_dress"]), "complete"] == 1).all()
    assert (t.loc[t["kind"] == "cut_knees", "complete"] == 0).all()
    assert (t.loc[t["kind"] == "long_gown", "image"].str.contains("WOMEN/Dresses")).all()
    assert res["distractors"] == int(((t["complete"] == 0) | (t["persons"] != 1)).sum())
    import json
    stamp = json.loads((root / ".pgkit" / "synth.json").read_text())
    assert stamp["options"]["hard_cases"] == 0.75
    plain = tmp_path / "plain"
    synthesize(plain, items=2, seed=1, size=64, jobs=1)
    assert "hard_cases" not in json.loads((plain / ".pgkit" / "synth.json").read_text())["options"]
    with pytest.raises(PgkitError, match="hard-cases"):
        synthesize(tmp_path / "bad", items=2, hard_cases=1.5)
    r = CliRunner().invoke(main, ["synth", str(tmp_path / "cli"), "--items", "4", "--size", "64", "--jobs", "1",
                                  "--hard-cases", "0.5"])
    assert r.exit_code == 0 and "hard cases:" in r.output
