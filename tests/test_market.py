"""Market-1501: the release layout and names, the published pair rules, PG²'s Market masks,
the synthetic Market, and synthetic Market -> shards -> fit -> eval at 128x64."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from pgprep import market, skeleton
from pgprep.filter import run_filter
from pgprep.formats import write_patn_csv
from pgprep.pairs import run_pairs

H, W = 128, 64
# The real naming scheme: identity_cCameraSsequence_frame_box; -1 junk, 0000 distractors.
RELEASE = {
    "bounding_box_train": ["0002_c1s1_000451_03.jpg", "0002_c2s1_000551_01.jpg", "0002_c2s1_000601_02.jpg",
                           "0007_c1s1_000101_01.jpg", "0007_c3s2_000201_01.jpg", "0011_c5s3_015240_04.jpg"],
    "bounding_box_test": ["-1_c1s1_000401_03.jpg", "0000_c1s1_000151_01.jpg", "0000_c6s1_002301_02.jpg",
                          "0001_c1s1_001051_03.jpg", "0001_c2s1_000301_01.jpg", "0001_c3s1_000301_01.jpg",
                          "0003_c1s1_000101_02.jpg", "0003_c4s2_000101_01.jpg", "IMG_0001.jpg"],
    "query": ["0001_c1s1_001051_00.jpg", "0003_c4s2_000201_00.jpg"],
}
NO_L_HIP = "0002_c2s1_000601_02.jpg"  # kept by the filter, skipped by PATN's rule (needs both hips)


def standing(c: int = 0) -> np.ndarray:
    """A pedestrian skeleton in a 128x64 box, moved by >= 3 px for each `c` (0..21) so that
    no two boxes have the same pose (pgkit's rule drops pairs that moved < 5 % of the torso)."""
    dx, dy = -15 + 3 * (c % 11), -10 + 5 * (c // 11)
    xy = {"nose": (32, 14), "neck": (32, 26), "r_shoulder": (22, 27), "r_elbow": (19, 45), "r_wrist": (18, 62),
          "l_shoulder": (42, 27), "l_elbow": (45, 45), "l_wrist": (46, 62), "r_hip": (26, 66), "r_knee": (25, 90),
          "r_ankle": (25, 115), "l_hip": (38, 66), "l_knee": (39, 90), "l_ankle": (39, 115), "r_eye": (30, 12),
          "l_eye": (34, 12), "r_ear": (27, 13), "l_ear": (37, 13)}
    kp = skeleton.empty()
    for name, (x, y) in xy.items():
        kp[skeleton.J[name]] = (x + dx, y + dy, 1.0)
    return kp


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    root = tmp_path_factory.mktemp("market") / "Market-1501-v15.09.15"
    poses = {}
    img = cv2.imencode(".jpg", np.full((H, W, 3), 128, np.uint8))[1].tobytes()
    c = 0
    for folder, names in RELEASE.items():
        (root / folder).mkdir(parents=True)
        (root / folder / "Thumbs.db").write_bytes(b"not an image")
        for name in names:
            (root / folder / name).write_bytes(img)
            kp, c = standing(c), c + 1
            if name == NO_L_HIP:
                kp[skeleton.J["l_hip"]] = (-1, -1, 0)
            poses[name] = kp
    write_patn_csv(root / "market-annotation.csv", poses)
    return root


def test_release_names_ids_cameras_and_rejects(release):
    n = market.parse_name("0002_c1s1_000451_03.jpg")
    assert (n.identity, n.camera, n.sequence, n.frame, n.box) == ("0002", 1, 1, 451, 3)
    assert market.parse_name("-1_c3s2_012345_00.jpg").identity == "-1"
    rows, rejects = market.read_release(release)
    assert len(rows) == 13 and set(rows["item_id"]) == {"0001", "0002", "0003", "0007", "0011"}
    r = rows.set_index("image")
    assert r.loc["bounding_box_train/0002_c2s1_000551_01.jpg", ["item_id", "camera", "sequence", "frame", "box"]
                 ].tolist() == ["0002", 2, 1, 551, 1]
    assert (r.loc["query/0001_c1s1_001051_00.jpg", ["split", "status"]].tolist() == ["test", "query"])
    assert set(rows.loc[rows["split"] == "train", "item_id"]) == {"0002", "0007", "0011"}
    why = {x["image"]: x["reason"].split(":")[0] for x in rejects}
    assert why == {"bounding_box_test/-1_c1s1_000401_03.jpg": "junk",
                   "bounding_box_test/0000_c1s1_000151_01.jpg": "distractor",
                   "bounding_box_test/0000_c6s1_002301_02.jpg": "distractor",
                   "bounding_box_test/IMG_0001.jpg": "bad-name"}


@pytest.fixture(scope="module")
def fixture_work(release, tmp_path_factory):
    work = tmp_path_factory.mktemp("mwork") / "work"
    run_filter(release, release / "market-annotation.csv", work)  # auto-detected, PATN bare names
    return work


def test_filter_reads_release_with_patn_csv(fixture_work):
    images = pd.read_csv(fixture_work / "images.csv", dtype={"item_id": str})
    rejects = pd.read_csv(fixture_work / "rejects.csv")
    meta = json.loads((fixture_work / "work.json").read_text())
    assert meta["dataset"] == "market" and meta["image_size"] == [H, W]
    assert len(images) == 13 and (images["width"] == W).all()
    assert sorted(rejects["reason"].str.split(":").str[0]) == ["bad-name", "distractor", "distractor", "junk"]
    first = images.set_index("image").loc["bounding_box_train/0002_c1s1_000451_03.jpg"]
    assert first["x1"] == standing(0)[skeleton.J["neck"], 0]


@pytest.mark.parametrize("rule,counts", [
    # train: 0002 has 3 boxes (3*2 ordered pairs), 0007 2 (2), 0011 1 (0); PG² adds the flips
    ("pg2-market", {"train": (8, 16), "test": (8, 8)}),
    # PATN: 0002's box without a left hip is out -> 2 + 2; no flips (--no_flip)
    ("patn", {"train": (4, 4), "test": (8, 8)}),
    # pgkit's own: every ordered pair of an item, query boxes included (0001: 4 boxes, 0003: 3)
    ("pgkit", {"train": (8, 16), "test": (18, 18)}),
])
def test_pair_rules_counts_on_fixture(fixture_work, rule, counts):
    s = run_pairs(fixture_work, rule=rule, force=True)
    assert s["rule"] == rule
    for split, (candidates, written) in counts.items():
        assert (s[split]["candidate_pairs"], s[split]["pairs"]) == (candidates, written), split
    test = pd.read_csv(fixture_work / "pairs-test.csv", dtype=str)
    if rule != "pgkit":  # PG² and PATN pair bounding_box_test only, never query/
        assert test["from"].str.startswith("bounding_box_test/").all()
    if rule == "patn":
        assert not (pd.read_csv(fixture_work / "pairs-train.csv")["from"] == "bounding_box_train/" + NO_L_HIP).any()
    assert run_pairs(fixture_work).get("rule") == "pg2-market"  # auto on a Market WORK


def test_patn_market_pairs_csv_imports(fixture_work, tmp_path):
    csv = tmp_path / "market-pairs-test.csv"
    pd.DataFrame({"from": ["0001_c1s1_001051_03.jpg", "0003_c1s1_000101_02.jpg", "0002_c1s1_000451_03.jpg"],
                  "to": ["0001_c2s1_000301_01.jpg", "0003_c4s2_000101_01.jpg", "0002_c2s1_000551_01.jpg"]}
                 ).to_csv(csv, index=False)
    s = run_pairs(fixture_work, rule="patn", import_test=csv, force=True)
    assert s["test"]["pairs"] == 2 and s["imports"]["test"]["other_split"] == 1


def test_rules_sample_test_pairs_like_the_scripts():
    rows = [{"image": f"bounding_box_test/{i:04d}_c{c}s1_{f:06d}_01.jpg", "item_id": f"{i:04d}", "split": "test",
             **skeleton.to_columns(standing())} for i in range(1, 3) for c in (1, 2) for f in range(60)]
    images = pd.DataFrame(rows)
    a, b, got = market.pg2_pairs(images, "test")
    assert got["candidates"] == 2 * 120 * 119 and a.size == market.PG2_TEST_PAIRS
    a, b, got = market.patn_pairs(images, "test")
    assert got["candidates"] == 2 * 120 * 119 and a.size == market.PATN_TEST_PAIRS
    assert (images["item_id"].to_numpy()[a] == images["item_id"].to_numpy()[b]).all() and (a != b).all()


def test_pg2_official_market_preset():
    from pgtrain.presets import resolve

    o = resolve("pg2-official-market")
    assert (o.batch_size, o.lr, o.steps1 + o.steps2, o.l1_weight, o.g2_skips) == (16, 2e-5, 60_000, 10.0, "inner")
    assert o.stage1_loss == "pose-mask-l1" and o.g_adversarial_on == "g2" and o.g_step_first


def test_synthetic_market_files(tmp_path):
    from pgprep.synth.market import synthesize_market

    root = tmp_path / "m"
    s = synthesize_market(root, identities=4, seed=3, jobs=1)
    truth = pd.read_csv(root / "truth.csv", dtype={"item_id": str})
    assert {"image", "persons", "complete", "silhouette", "camera", "x0", "c17"} <= set(truth.columns)
    assert s["junk"] >= 1 and s["distractors"] >= 1 and s["folders"]["query"] >= 2
    for r in truth.itertuples():
        folder, name = r.image.split("/")
        n = market.parse_name(name)
        assert folder in market.FOLDERS and n.identity == r.item_id and n.camera == r.camera
        if folder == "query":
            assert n.box == 0
    ids = truth[~truth["item_id"].isin(["-1", "0000"])].groupby("item_id")["camera"].nunique()
    assert (ids >= 2).all()  # several cameras per identity
    first = truth.iloc[0]
    assert cv2.imread(str(root / first.image)).shape == (H, W, 3)
    assert cv2.imread(str(root / first.silhouette), 0).shape == (H, W)
    assert (root / "pose" / "openpose" / first.image.replace(".jpg", "_keypoints.json")).is_file()
    assert (root / "pose" / "market-annotation-train.csv").read_text().startswith("name:keypoints_y:keypoints_x")
    assert synthesize_market(root, identities=4, seed=3, jobs=1)["up_to_date"]


@pytest.mark.slow
def test_synthetic_market_end_to_end(tmp_path, one_thread):
    """synth --kind market -> filter -> pairs (each rule) -> masks -> pack -> fit --preset pg2 -> eval."""
    from pgprep.cli import main as pgprep_main
    from pgprep.masks import run_masks
    from pgprep.pack import run_pack
    from pgtrain.cli import main as pgtrain_main
    from pgtrain.data import PairDataset

    root, work, shards, run = (tmp_path / d for d in ("market", "work", "shards", "run"))
    r = CliRunner().invoke(pgprep_main, ["synth", str(root), "--kind", "market", "--items", "10", "--jobs", "1"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(pgprep_main, ["filter", str(root), "--poses", str(root / "pose" / "openpose"),
                                         "-o", str(work)])
    assert r.exit_code == 0, r.output
    truth = pd.read_csv(root / "truth.csv", dtype={"item_id": str})
    kept = set(pd.read_csv(work / "images.csv")["image"])
    ok = truth[(truth["kind"] == "person")]
    assert ok["image"].isin(kept).mean() > 0.95  # whole single pedestrians are kept
    assert not truth.loc[truth["item_id"].isin(["-1", "0000"]), "image"].isin(kept).any()
    images = pd.read_csv(work / "images.csv", dtype={"item_id": str})
    for rule in ("patn", "pg2-market"):  # the last one is what gets packed
        s = run_pairs(work, rule=rule, force=True)
        train = images[images["image"].str.startswith("bounding_box_train/")]
        if rule == "pg2-market":
            n = train.groupby("item_id").size()
            assert s["train"]["candidate_pairs"] == int((n * (n - 1)).sum())
            assert s["train"]["pairs"] == 2 * s["train"]["candidate_pairs"]
        assert s["test"]["pairs"] > 0
    m = run_masks(work, jobs=1)
    assert (m["radius"], m["close"], m["setting"]) == (4, 5, "pg2-market")
    run_pack(work, shards, jobs=1)
    ds = PairDataset(shards, "test")
    item = ds[0]
    assert item["condition"].shape == (3, H, W) and item["mask"].shape == (1, H, W)
    assert item["mask"].sum() > 0 and ds.pose["radius"] == 4.0
    r = CliRunner().invoke(pgtrain_main, ["fit", str(shards), "-o", str(run), "--preset", "pg2", "--channels", "4",
                                          "--steps1", "2", "--steps2", "1", "--batch-size", "2", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(pgtrain_main, ["eval", str(run), "--data", str(shards), "--limit", "6",
                                          "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert "mask" in r.output.lower()
    # PG²'s score_mask.py: mask-SSIM with the condition's Market mask (radius 4, compact shards)
    r = CliRunner().invoke(pgtrain_main, ["eval", str(run), "--data", str(shards), "--protocol", "pg2",
                                          "--limit", "6", "--device", "cpu", "-o", str(tmp_path / "pg2.json")])
    assert r.exit_code == 0, r.output
    assert "mask-SSIM" in r.output


def test_export_writes_patn_market_files(fixture_work, tmp_path):
    run_pairs(fixture_work, rule="patn", export=tmp_path / "out", force=True)
    pairs = pd.read_csv(tmp_path / "out" / "market-pairs-train.csv")
    assert len(pairs) == 4 and pairs["from"].str.match(r"^\d{4}_c\d").all()
    assert (tmp_path / "out" / "market-annotation-test.csv").read_text().startswith("name:keypoints_y")


def test_help_names_market_and_layout_is_checked(release, tmp_path):
    from pgprep.cli import main as pgprep_main
    from pgprep.errors import PgkitError

    assert "Market-1501" in CliRunner().invoke(pgprep_main, ["--help"]).output
    assert "bounding_box_train" in CliRunner().invoke(pgprep_main, ["filter", "--help"]).output
    with pytest.raises(PgkitError, match="not a Market-1501 release"):
        run_filter(tmp_path, release / "market-annotation.csv", tmp_path / "w", dataset="market")
    assert market.detect_dataset(release) == "market" and market.detect_dataset(tmp_path) == "deepfashion"


def test_pose_pickle_keyed_by_bare_names(release, fixture_work, tmp_path):
    """PG²'s Market pose pickles (Market-1501_PoseFiltered/all_peaks_dic_*.p) use bare names."""
    import pickle

    kept = pd.read_csv(fixture_work / "images.csv")
    poses = {name.split("/")[1]: skeleton.from_columns(r) for name, (_, r) in
             zip(kept["image"], kept.iterrows(), strict=True)}
    (tmp_path / "peaks.p").write_bytes(pickle.dumps(poses))
    run_filter(release, tmp_path / "peaks.p", tmp_path / "w")
    assert len(pd.read_csv(tmp_path / "w" / "images.csv")) == len(kept)
