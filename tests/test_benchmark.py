"""PATN's standard DeepFashion benchmark: train.lst/test.lst set the split, the community pairs
are imported without split losses, and the 256x176 crop runs through every stage
(docs/benchmark.md). Tiny synthetic sets whose names follow DeepFashion's scheme."""

from __future__ import annotations

import itertools
import json
import shutil

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from pgprep import deepfashion, formats, skeleton
from pgprep.cli import main
from pgprep.deepfashion import flatten_name, map_split_lists, read_partition
from pgprep.errors import PgkitError
from pgprep.filter import run_filter
from pgprep.geometry import Crop, body_mask, read_mask, read_rgb
from pgprep.pairs import run_pairs

# ---------------------------------------------------------------- helpers

def good_images(root) -> pd.DataFrame:
    """Partition rows of the synth's single, complete persons (what PATN's lists hold)."""
    part = read_partition(root)
    truth = pd.read_csv(root / "truth.csv")
    good = set(truth.loc[(truth["persons"] == 1) & (truth["complete"] == 1), "image"])
    return part[part["image"].isin(good)].reset_index(drop=True)


def write_lists(tmp, rows: pd.DataFrame, split: dict[str, str] | None = None, extra: dict | None = None):
    """train.lst / test.lst of flattened names; `split` overrides the side of an image."""
    side = {i: (split or {}).get(i, s) for i, s in zip(rows["image"], rows["split"], strict=True)}
    paths = []
    for s in ("train", "test"):
        names = [flatten_name(i) for i, v in side.items() if v == s] + (extra or {}).get(s, [])
        p = tmp / f"{s}.lst"
        p.write_text("\n".join(names) + "\n")
        paths.append(p)
    return paths, side


def write_patn_pairs(tmp, side: dict[str, str], item_of: dict[str, str]):
    """All ordered pairs per item and side, flattened names: PATN's fasion-resize-pairs-*.csv."""
    paths = {}
    for s in ("train", "test"):
        rows = []
        imgs = sorted(i for i, v in side.items() if v == s)
        for _, grp in itertools.groupby(sorted(imgs, key=item_of.get), key=item_of.get):
            rows += [(flatten_name(a), flatten_name(b)) for a, b in itertools.permutations(list(grp), 2)]
        paths[s] = tmp / f"fasion-resize-pairs-{s}.csv"
        pd.DataFrame(rows, columns=["from", "to"]).to_csv(paths[s], index=False)
    return paths


# ---------------------------------------------------------------- list names

def test_flattened_list_names_map_and_every_other_name_is_reported(tmp_path):
    known = ["img/WOMEN/Skirts/id_00000629/04_3_back.jpg", "img/MEN/Tees_Tanks/id_00000001/01_1_front.jpg",
             "img/WOMEN/X/id_00000002/01_1_front.jpg", "img/WOMEN/X/id_00000002/01_1f_ront.jpg",
             "img/WOMEN/Skirts/id_00000629/04_4_full.jpg"]
    assert flatten_name(known[0]) == "fashionWOMENSkirtsid0000062904_3back.jpg"  # the example
    train, test = tmp_path / "train.lst", tmp_path / "test.lst"
    train.write_text("fashionWOMENSkirtsid0000062904_3back.jpg\n\nfashionMENTees_Tanksid0000000101_1front.jpg\n"
                     "fashionWOMENSkirtsid0000062904_3back.jpg\n"       # duplicate line
                     "fashionWOMENSkirtsid0000099904_3back.jpg\n"       # no such image
                     "fashionWOMENXid0000000201_1front.jpg\n")          # two images flatten to it
    test.write_text("img/WOMEN/Skirts/id_00000629/04_4_full.jpg\n")     # raw paths work too
    split_of, unmapped, counts = map_split_lists({"train": train, "test": test}, known)
    assert split_of == {known[0]: "train", known[1]: "train", known[4]: "test"}
    assert [(r["line"], r["reason"].split(":")[0]) for r in unmapped] == [
        (4, "duplicate"), (5, "no image below ROOT/img flattens to this name (PATN's rule"), (6, "ambiguous")]
    assert counts["train"] == {"file": str(train), "names": 5, "mapped": 2, "unmapped": 2, "duplicates": 1}
    assert counts["test"]["mapped"] == 1

    test.write_text("fashionMENTees_Tanksid0000000101_1front.jpg\n")
    with pytest.raises(PgkitError, match="01_1_front.jpg .* is in both lists: line 3 of .*train.lst"):
        map_split_lists({"train": train, "test": test}, known)
    with pytest.raises(PgkitError, match="no such file"):
        map_split_lists({"train": train, "test": tmp_path / "nope.lst"}, known)


def test_the_report_recognises_patn_s_complete_benchmark():
    lists = {s: {"names": n, "mapped": n, "unmapped": 0, "duplicates": 0}
             for s, n in deepfashion.PATN_LIST_IMAGES.items()}
    assert "complete (48,674 / 4,038)" in deepfashion.list_report(lists, dict(deepfashion.PATN_LIST_IMAGES))
    assert "not every listed image was kept" in deepfashion.list_report(lists, {"train": 48673, "test": 4038})
    assert deepfashion.pairs_report("test", 8570, 8570) == "PATN's 8,570 test pairs, all used"
    assert "3 not used" in deepfashion.pairs_report("train", 101966, 101963)
    assert deepfashion.pairs_report("test", 10, 10) is None


# ---------------------------------------------------------------- the split

def test_lists_set_the_split_and_unlisted_images_are_rejected(synth_root, tmp_path):
    rows = good_images(synth_root)
    moved_item = rows.loc[rows["split"] == "train", "item_id"].iloc[0]  # the partition says train
    moved = {i: "test" for i in rows.loc[rows["item_id"] == moved_item, "image"]}
    left_out = rows.loc[rows["split"] == "test", "image"].iloc[0]
    rows_listed = rows[rows["image"] != left_out]
    (train, test), side = write_lists(tmp_path, rows_listed, moved,
                                      extra={"train": ["fashionWOMENNopeid0000000101_1front.jpg"]})
    work = tmp_path / "work"
    r = CliRunner().invoke(main, ["filter", str(synth_root), "--poses", str(synth_root / "pose" / "openpose"),
                                  "-o", str(work), "--split-lists", f"{train},{test}"])
    assert r.exit_code == 0, r.output
    assert "1 name(s) map to no image" in r.stderr and "unmapped-list-names.csv" in r.stderr
    images = pd.read_csv(work / "images.csv", dtype=str)
    assert dict(zip(images["image"], images["split"], strict=True)) == side  # the lists, not the partition
    assert set(images["image"]) == set(side)
    rej = pd.read_csv(work / "rejects.csv", dtype=str)
    reasons = dict(zip(rej["image"], rej["reason"], strict=True))
    assert reasons[left_out].startswith("not-listed: in neither train.lst nor test.lst")
    assert len(images) + len(rej) == len(read_partition(synth_root))  # none lost silently
    unmapped = pd.read_csv(work / "unmapped-list-names.csv")
    assert unmapped[["name", "line"]].values.tolist() == [["fashionWOMENNopeid0000000101_1front.jpg",
                                                           sum(v == "train" for v in side.values()) + 1]]
    meta = json.loads((work / "work.json").read_text())
    assert meta["split_source"] == "lists" and meta["split_lists"]["not_listed"] == len(rej)

    # an image in both lists stops the run, naming it
    a_train_image = next(i for i, v in side.items() if v == "train")
    test.write_text(test.read_text() + flatten_name(a_train_image) + "\n")
    r = CliRunner().invoke(main, ["filter", str(synth_root), "--poses", str(synth_root / "pose" / "openpose"),
                                  "-o", str(tmp_path / "w2"), "--split-lists", f"{train},{test}"])
    assert r.exit_code == 1 and a_train_image in r.output and "both lists" in r.output
    assert not (tmp_path / "w2").exists()
    r = CliRunner().invoke(main, ["filter", str(synth_root), "--poses", str(synth_root / "pose" / "openpose"),
                                  "-o", str(tmp_path / "w2"), "--split-lists", str(train)])
    assert r.exit_code == 2 and "TRAIN.lst,TEST.lst" in r.output


def test_lists_need_no_partition_file(synth_root, tmp_path):
    root = tmp_path / "root"
    shutil.copytree(synth_root / "img", root / "img")
    rows = good_images(synth_root)
    (train, test), side = write_lists(tmp_path, rows)
    run_filter(root, synth_root / "pose" / "openpose", tmp_path / "w", split_lists=[train, test], jobs=1)
    images = pd.read_csv(tmp_path / "w" / "images.csv", dtype=str)
    assert dict(zip(images["image"], images["split"], strict=True)) == side
    assert dict(zip(images["image"], images["item_id"], strict=True)) == dict(zip(rows["image"], rows["item_id"],
                                                                                  strict=True))


def test_a_listed_pair_is_never_dropped_for_a_split_mismatch(synth_root, tmp_path):
    rows = good_images(synth_root)
    item_of = dict(zip(rows["image"], rows["item_id"], strict=True))
    moved_item = rows.loc[rows["split"] == "train", "item_id"].iloc[0]
    moved = {i: "test" for i in rows.loc[rows["item_id"] == moved_item, "image"]}
    (train, test), side = write_lists(tmp_path, rows, moved)
    pairs = write_patn_pairs(tmp_path, side, item_of)
    n = {s: len(pd.read_csv(p)) for s, p in pairs.items()}
    src = synth_root / "pose" / "openpose"

    # the partition's split loses the moved item's pairs ...
    old = tmp_path / "old"
    run_filter(synth_root, src, old, jobs=1)
    s = run_pairs(old, import_train=pairs["train"], import_test=pairs["test"], flip=False)
    assert s["imports"]["test"]["other_split"] > 0
    # ... the lists' split keeps every one
    work = tmp_path / "work"
    run_filter(synth_root, src, work, split_lists=[train, test], jobs=1)
    s = run_pairs(work, import_train=pairs["train"], import_test=pairs["test"], flip=False)
    for split in ("train", "test"):
        rec = s["imports"][split]
        assert (rec["imported"], rec["not_kept"], rec["other_split"], rec["self_pairs"]) == (n[split], 0, 0, 0)
        got = pd.read_csv(work / f"pairs-{split}.csv")
        assert sorted(zip(map(flatten_name, got["from"]), map(flatten_name, got["to"]), strict=True)) == \
            sorted(pd.read_csv(pairs[split]).itertuples(index=False, name=None))
        assert pd.read_csv(work / f"pairs-dropped-{split}.csv").empty

    # lists and pairs that disagree: an error naming the pair, never a silent drop
    bad = tmp_path / "bad.csv"
    test_img = next(i for i, v in side.items() if v == "test")
    pd.concat([pd.read_csv(pairs["train"]),
               pd.DataFrame({"from": [flatten_name(test_img)], "to": [flatten_name(test_img)]})]).to_csv(bad, index=False)
    with pytest.raises(PgkitError, match=f"names {flatten_name(test_img)}, which the split lists put on the other"):
        run_pairs(work, import_train=bad, force=True)

    # other reasons are reported pair by pair: an image the filter rejected, a name nobody knows
    unlisted = next(iter(moved))
    (train, test), side2 = write_lists(tmp_path, rows[rows["image"] != unlisted], moved)
    run_filter(synth_root, src, work, split_lists=[train, test], jobs=1)
    extra = pd.DataFrame({"from": ["fashionMENNopeid0000000101_1front.jpg"], "to": [flatten_name(test_img)]})
    pd.concat([pd.read_csv(pairs["test"]), extra]).to_csv(bad, index=False)
    s = run_pairs(work, import_test=bad, flip=False)
    dropped = pd.read_csv(work / "pairs-dropped-test.csv")
    uses = sum(unlisted in (a, b) for a, b in itertools.permutations(list(moved), 2))
    assert len(dropped) == uses + 1
    assert s["imports"]["test"]["reasons"] == {"rejected by filter: not-listed": uses, "unknown-image": 1}
    assert dropped["reason"].str.contains("rejected by filter: not-listed: in neither").sum() == uses


def test_synthetic_benchmark_counts_come_out_complete(synth_root, tmp_path):
    """The counts check of the issue on a synthetic set: every listed name maps, every listed
    image is kept (as PATN's 48,674 / 4,038), every imported pair is used (101,966 / 8,570)."""
    rows = good_images(synth_root)
    (train, test), side = write_lists(tmp_path, rows)
    pairs = write_patn_pairs(tmp_path, side, dict(zip(rows["image"], rows["item_id"], strict=True)))
    work = tmp_path / "work"
    r = CliRunner().invoke(main, ["filter", str(synth_root), "--poses", str(synth_root / "pose" / "openpose"),
                                  "-o", str(work), "--split-lists", f"{train},{test}", "--keep-listed",
                                  "--crop", "44"])
    assert r.exit_code == 0, r.output
    listed = {s: sum(v == s for v in side.values()) for s in ("train", "test")}
    assert f"{listed['train']} of {listed['train']} train and {listed['test']} of {listed['test']} test" in r.stderr
    assert "0 name(s) map to no image, 0 duplicate line(s)" in r.stderr
    meta = json.loads((work / "work.json").read_text())
    assert meta["counts"]["by_reason"]["kept"] == listed
    assert {s: meta["split_lists"][s]["mapped"] for s in listed} == listed
    r = CliRunner().invoke(main, ["pairs", str(work), "--import-train-pairs", str(pairs["train"]),
                                  "--import-test-pairs", str(pairs["test"])])
    assert r.exit_code == 0, r.output
    for s in ("train", "test"):
        n = len(pd.read_csv(pairs[s]))
        assert f"{s} pairs imported from {pairs[s]}: {n} of {n} used" in r.output
        assert len(pd.read_csv(work / f"pairs-{s}.csv")) == n * (2 if s == "train" else 1)  # + flips


# ---------------------------------------------------------------- the crop

def test_crop_is_one_definition():
    c = Crop.centre((256, 256), 176)
    assert (c.x0, c.width, c.size) == (40, 176, (256, 176))
    img = np.arange(256 * 256 * 3, dtype=np.uint32).reshape(256, 256, 3)
    assert np.array_equal(c.image(img), img[:, 40:216])
    kp = skeleton.empty()
    kp[0], kp[1], kp[2], kp[3] = (40, 5, 1), (39.5, 5, 1), (215, 9, 1), (215.5, 9, 1)
    out, dropped = c.keypoints(kp)
    assert dropped == 2 and out[0].tolist() == [0, 5, 1] and out[2].tolist() == [175, 9, 1]
    assert out[1].tolist() == out[3].tolist() == [-1, -1, 0] and out[4].tolist() == [-1, -1, 0]
    assert Crop.from_json(c.to_json()) == c and Crop.from_json(None) is None
    with pytest.raises(PgkitError, match="malformed crop"):
        Crop.from_json({"width": 300, "x0": 0, "source_size": [256, 256]}, "work.json")
    with pytest.raises(PgkitError, match="x.jpg: image is 256x200"):
        c.image(np.zeros((256, 200, 3)), "x.jpg")


def test_filter_crop_moves_keypoints_and_judges_in_the_crop(synth_root, tmp_path):
    src = synth_root / "pose" / "openpose"
    full, cropped = tmp_path / "full", tmp_path / "crop"
    run_filter(synth_root, src, full, jobs=1)
    run_filter(synth_root, src, cropped, crop=44, jobs=1)  # 64 px images: columns 10..53
    meta = json.loads((cropped / "work.json").read_text())
    assert meta["image_size"] == [64, 44] and meta["crop"] == {"x0": 10, "width": 44, "source_size": [64, 64]}
    a = pd.read_csv(full / "images.csv").set_index("image")
    b = pd.read_csv(cropped / "images.csv").set_index("image")
    assert (b["width"] == 44).all()
    both = a.index.intersection(b.index)
    kp_a = skeleton.frame_columns(a.loc[both].reset_index())
    kp_b = skeleton.frame_columns(b.loc[both].reset_index())
    inside = skeleton.present(kp_a) & (kp_a[..., 0] >= 10) & (kp_a[..., 0] <= 53)
    assert np.allclose(kp_b[inside][:, 0], kp_a[inside][:, 0] - 10, atol=0.01)
    assert not skeleton.present(kp_b[~inside]).any()
    assert meta["counts"]["crop_dropped_joints"] >= int((skeleton.present(kp_a) & ~inside).sum())
    with pytest.raises(PgkitError, match="needs a crop"):
        run_filter(synth_root, src, tmp_path / "x", poses_in_crop=True)


@pytest.mark.slow
def test_crop176_end_to_end_filter_pairs_masks_pack_dataset_fit(tmp_path, one_thread):
    from pgprep.masks import mask_path, run_masks
    from pgprep.pack import run_pack
    from pgprep.synth import synthesize
    from pgtrain.data import PairDataset
    from pgtrain.loop import fit

    root = tmp_path / "root"
    synthesize(root, items=4, seed=3, size=256, jobs=1)
    rows = good_images(root)
    (train, test), side = write_lists(tmp_path, rows)
    pairs = write_patn_pairs(tmp_path, side, dict(zip(rows["image"], rows["item_id"], strict=True)))
    work = tmp_path / "work"
    run_filter(root, root / "pose" / "openpose", work, split_lists=[train, test], keep_listed=True,
               crop=176, jobs=1)
    run_pairs(work, import_train=pairs["train"], import_test=pairs["test"], export=tmp_path / "community")
    run_masks(work, jobs=1)
    shards = tmp_path / "shards"
    run_pack(work, shards, jobs=1)
    index = json.loads((shards / "index.json").read_text())
    assert index["image_size"] == [256, 176] and index["crop"]["x0"] == 40
    assert index["splits"]["test"]["pairs"] == len(pd.read_csv(pairs["test"]))

    ds = PairDataset(shards, split="test")
    ex = ds[0]
    assert ex["condition"].shape == ex["target"].shape == (3, 256, 176)
    assert ex["pose"].shape == (18, 256, 176) and ex["mask"].shape == (1, 256, 176)
    target = read_rgb(root / ex["to"])[:, 40:216]  # the pixels of columns 40..215, exactly
    assert np.array_equal(np.rint(ex["target"].numpy().transpose(1, 2, 0) * 127.5 + 127.5), target)
    # keypoints: the OpenPose JSON's x - 40
    people, _ = formats.read_openpose_people(root / "pose" / "openpose" /
                                             formats.openpose_json_name(ex["to"].removeprefix("img/")))
    images = pd.read_csv(work / "images.csv").set_index("image")
    kp = skeleton.frame_columns(images.loc[[ex["to"]]].reset_index())[0]
    ok = skeleton.present(kp)
    assert ok.sum() >= 8 and np.allclose(kp[ok, 0], people[0][ok, 0] - 40, atol=0.01)
    assert ex["pose"][int(np.flatnonzero(ok)[0])].max() == 1  # drawn inside the 176 columns
    # masks drawn at 256x176 from the cropped keypoints
    m = read_mask(mask_path(work, ex["to"])) > 0
    assert m.shape == (256, 176) and np.array_equal(m, body_mask(kp, (256, 176)) > 0)
    assert np.array_equal(ex["mask"][0].numpy() > 0, m)

    # PATN-format annotations exported from this WORK are in the crop's frame: --poses-in-crop
    again = tmp_path / "again"
    ann = pd.concat([pd.read_csv(tmp_path / "community" / f"fasion-resize-annotation-{s}.csv", sep=":")
                     for s in ("train", "test")])
    csv = tmp_path / "ann.csv"
    with open(csv, "w") as f:
        f.write("name:keypoints_y:keypoints_x\n")
        for r in ann.itertuples(index=False):
            f.write(f"{r[0]}:{r[1]}:{r[2]}\n")
    run_filter(root, csv, again, split_lists=[train, test], keep_listed=True, crop=176, poses_in_crop=True, jobs=1)
    kp2 = skeleton.frame_columns(pd.read_csv(again / "images.csv").set_index("image").loc[[ex["to"]]].reset_index())[0]
    assert np.abs(kp2[ok, :2] - kp[ok, :2]).max() <= 0.5  # the CSV holds whole pixels

    # the networks take 176-wide inputs (TF's ceil sizes where a side does not halve evenly)
    rec = fit(shards, tmp_path / "run", "pg2", channels=8, steps1=1, steps2=1, batch_size=2, device="cpu")
    assert rec["stage"] == 2 and np.isfinite(rec["l1"])
