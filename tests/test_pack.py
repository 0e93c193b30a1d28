"""pgprep pack: shard planning, both layouts, resumability, unreadable inputs, loky == dask.

The WORK directories are built by hand here (`make_work`), so these tests do not depend on
the filter / pairs / masks stages; test_shards.py and test_data.py reuse `make_work`.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import h5py
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from pgprep import geometry, shards, skeleton
from pgprep.atomic import file_sha256
from pgprep.cli import main as pgprep_main
from pgprep.errors import PgkitError
from pgprep.masks import run_masks
from pgprep.pack import mask_path, plan_shards, run_pack

# A standing person in a 64x64 frame (x, y), COCO-18 order.
_BASE = np.array([[32, 10], [32, 16], [26, 16], [24, 24], [23, 31], [38, 16], [40, 24], [41, 31],
                  [28, 33], [28, 43], [28, 53], [36, 33], [36, 43], [36, 53], [30, 9], [34, 9],
                  [28, 10], [36, 10]], np.float32)


def make_work(base: Path, items: int = 4, views: int = 3, size: int = 64, seed: int = 0,
              test_items: int = 1, flips: bool = True) -> Path:
    """A tiny WORK directory: JPEGs under base/root, images.csv, masks, pairs CSVs.

    Item k has `views` images with jittered, partly missing keypoints; pairs are all ordered
    pairs within an item, and (with `flips`) every pair again with flip = 1. The last
    `test_items` items form the test split.
    """
    rng = np.random.default_rng(seed)
    root, work = base / "root", base / "work"
    rows, pairs = [], {"train": [], "test": []}
    yy, xx = np.mgrid[0:size, 0:size]
    for k in range(items):
        item = f"id_{k:08d}"
        split = "test" if k >= items - test_items else "train"
        names = []
        for v in range(views):
            name = f"img/WOMEN/Tees/{item}/{v + 1:02d}_1_front.jpg"
            kp = skeleton.empty()
            kp[:, :2] = _BASE * (size / 64) + rng.normal(0, 2.5, (18, 2)) + [rng.uniform(-4, 4), 0]
            kp[:, 2] = rng.uniform(0.3, 1.0, 18)
            kp[rng.random(18) < 0.15, :] = (-1, -1, 0)  # some joints missing
            kp[[1, 2, 5, 8, 11], 2] = np.maximum(kp[[1, 2, 5, 8, 11], 2], 0.5)
            kp = skeleton.clean(kp)
            img = np.stack([(xx * 3 + k * 40) % 256, (yy * 2 + v * 60) % 256,
                            np.full_like(xx, 90 + 20 * v)], -1).astype(np.uint8)
            m = geometry.body_mask(kp, (size, size))
            img[m > 0] = (200 - 30 * v, 60 + 40 * k % 180, 40)
            img = np.clip(img + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8)
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root / name), cv2.cvtColor(img, cv2.COLOR_RGB2BGR),
                        [cv2.IMWRITE_JPEG_QUALITY, 90])
            rows.append({"image": name, "item_id": item, "split": split, "status": "train",
                         "width": size, "height": size, "persons": 1, **skeleton.to_columns(kp)})
            names.append(name)
        for a in names:
            for b in names:
                if a != b:
                    pairs[split].append({"from": a, "to": b, "flip": 0, "item_id": item})
                    if flips:
                        pairs[split].append({"from": a, "to": b, "flip": 1, "item_id": item})
    work.mkdir(parents=True, exist_ok=True)
    (work / "work.json").write_text(json.dumps({"root": str(root), "image_size": [size, size]}))
    pd.DataFrame(rows).to_csv(work / "images.csv", index=False)
    for split, p in pairs.items():
        pd.DataFrame(p, columns=["from", "to", "flip", "item_id"]).to_csv(work / f"pairs-{split}.csv", index=False)
    run_masks(work, jobs=1)  # masks carry the digest of the keypoints they were made from
    return work


def _pairs(work: Path, split: str) -> pd.DataFrame:
    return pd.read_csv(work / f"pairs-{split}.csv")


def test_compact_shards_hold_whole_items_and_the_right_bytes(tmp_path):
    work = make_work(tmp_path, items=5, views=3)
    out = tmp_path / "shards"
    s = run_pack(work, out, jobs=1, max_pairs=20)  # 12 pairs per item -> one item per shard
    index = json.loads((out / "index.json").read_text())
    assert index["format"] == "pgkit-shards" and index["version"] == 1 and index["layout"] == "compact"
    # pose maps scale with the image height by default: PG²'s 4 (sigma 6) at 256 px -> 1 (1.5) at 64 px
    assert index["image_size"] == [64, 64] and index["pose"] == {"kind": "disk", "radius": 1.0, "sigma": 1.5}
    assert s["pairs"] == {"train": 48, "test": 12} and s["removed"] == []
    assert [e["file"] for e in index["shards"]] == [f"train-{k:05d}.h5" for k in range(4)] + ["test-00000.h5"]
    images = pd.read_csv(work / "images.csv")
    root = Path(json.loads((work / "work.json").read_text())["root"])
    seen_items = set()
    for e in index["shards"]:
        assert file_sha256(out / e["file"]) == e["sha256"]
        with h5py.File(out / e["file"], "r") as f:
            names = [n.decode() for n in f["images/name"][:]]
            items = {images.set_index("image").loc[n, "item_id"] for n in names}
            assert len(items) == 1 and not (items & seen_items)  # whole items, each once
            seen_items |= items
            assert f.attrs["pairs"] == e["pairs"] == 12 and f.attrs["images"] == 3
            assert json.loads(f.attrs["joints"]) == list(skeleton.JOINTS)
            for j, n in enumerate(names):  # the original file bytes, untouched
                assert f["images/jpeg"][j].tobytes() == (root / n).read_bytes()
                want = geometry.read_mask(mask_path(work, n))
                got = np.unpackbits(f["images/mask"][j], axis=-1, count=64)
                np.testing.assert_array_equal(got, want)
                want_kp = skeleton.from_columns(images.set_index("image").loc[n])
                np.testing.assert_array_equal(f["images/keypoints"][j], want_kp)
            got_pairs = {(names[a], names[b], int(fl)) for a, b, fl in
                         zip(f["pairs/from"][:], f["pairs/to"][:], f["pairs/flip"][:], strict=True)}
            csv = _pairs(work, e["split"])
            want = {(r["from"], r["to"], r["flip"]) for _, r in csv.iterrows() if r["from"] in names}
            assert got_pairs == want


def test_plan_cuts_on_pairs_and_on_bytes(tmp_path):
    pairs = [(f"a{k}", f"b{k}", 0, f"item{k // 3}") for k in range(12)]  # 4 items of 3 pairs
    groups = plan_shards(pairs, "train", "compact", tmp_path, (64, 64), max_pairs=7, max_bytes=1 << 30)
    assert [len(g) for g in groups] == [6, 6]
    dense = plan_shards(pairs, "train", "dense", tmp_path, (64, 64), max_pairs=100,
                        max_bytes=64 * 64 * 25 * 4 * 3)  # one item's worth of bytes
    assert [len(g) for g in dense] == [3, 3, 3, 3]
    big = plan_shards(pairs, "train", "compact", tmp_path, (64, 64), max_pairs=2, max_bytes=1 << 30)
    assert [len(g) for g in big] == [3, 3, 3, 3]  # an item is never split


def test_rerun_is_a_no_op_and_a_change_rewrites_only_its_shard(tmp_path):
    work = make_work(tmp_path, items=3, views=2)
    out = tmp_path / "shards"
    first = run_pack(work, out, jobs=1, max_pairs=4)
    assert first["written"] == 3 and not first["up_to_date"]
    again = run_pack(work, out, jobs=1, max_pairs=4)
    assert again["up_to_date"] and again["written"] == 0
    # touch one image of item 0: only the shard holding item 0 is rebuilt
    name = pd.read_csv(work / "images.csv")["image"][0]
    root = Path(json.loads((work / "work.json").read_text())["root"])
    os.utime(root / name, ns=(time.time_ns(), time.time_ns() + 10**9))
    third = run_pack(work, out, jobs=1, max_pairs=4)
    assert third["written"] == 1 and third["skipped"] == 2


def test_unreadable_inputs_are_reported_with_their_pairs_and_never_written(tmp_path):
    work = make_work(tmp_path, items=3, views=3, flips=False)
    root = Path(json.loads((work / "work.json").read_text())["root"])
    names = pd.read_csv(work / "images.csv")["image"].tolist()
    data = (root / names[0]).read_bytes()
    (root / names[0]).write_bytes(data[: len(data) // 2])  # truncated JPEG
    mask_path(work, names[4]).unlink()  # missing mask
    r = CliRunner().invoke(pgprep_main, ["pack", str(work), "-o", str(tmp_path / "s"), "-j", "1"])
    assert r.exit_code == 0, r.output
    index = json.loads((tmp_path / "s" / "index.json").read_text())
    removed = {x["image"]: x for x in index["removed"]}
    assert set(removed) == {names[0], names[4]}
    assert "truncated" in removed[names[0]]["reason"] and "mask" in removed[names[4]]["reason"]
    assert removed[names[0]]["pairs"] == 4 and removed[names[4]]["pairs"] == 4  # 2 as from + 2 as to
    assert "removed 2 unreadable input(s) and 8 pair(s)" in r.output
    assert index["splits"]["train"]["pairs"] == 12 - 8 and index["splits"]["test"]["pairs"] == 6
    with h5py.File(tmp_path / "s" / "train-00000.h5", "r") as f:
        stored = {n.decode() for n in f["images/name"][:]}
    assert names[0] not in stored and names[4] not in stored


@pytest.mark.slow
def test_sigkill_part_way_then_rerun_completes_and_verifies(tmp_path):
    work = make_work(tmp_path, items=24, views=2, size=96, flips=True)
    out = tmp_path / "shards"
    env = {**os.environ, "PGKIT_NO_PROGRESS": "1"}
    cmd = [sys.executable, "-m", "pgprep", "pack", str(work), "-o", str(out), "--layout", "dense",
           "-j", "1", "--max-pairs", "4"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while not list(out.glob("train-*.h5")) and time.time() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "index.json").exists()  # killed before the end: nothing looks complete
    finished = len(list(out.glob("train-*.h5")))
    assert 1 <= finished < 23
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    complete = int(re.search(r"(\d+) already complete", r.stdout).group(1))
    assert complete in (finished - 1, finished)  # one may have been renamed before its sidecar
    assert not list(out.glob(".*.tmp"))
    v = subprocess.run([sys.executable, "-m", "pgprep", "verify", str(out)], capture_output=True, text=True)
    assert v.returncode == 0, v.stderr
    index = json.loads((out / "index.json").read_text())
    assert index["splits"]["train"]["pairs"] == 23 * 4 and index["splits"]["test"]["pairs"] == 4


@pytest.mark.slow
def test_dask_backend_writes_the_same_bytes_as_loky(tmp_path):
    from distributed import LocalCluster

    work = make_work(tmp_path, items=4, views=2)
    a = run_pack(work, tmp_path / "loky", jobs=2, backend="loky", max_pairs=4)
    # a LocalCluster started by pack itself (in-process worker, TCP on loopback) ...
    b = run_pack(work, tmp_path / "dask", jobs=1, backend="dask", max_pairs=4,
                 cluster_options={"processes": False})
    # ... and a running scheduler reached by its address, as on a real cluster
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tcp",
                      host="127.0.0.1", dashboard_address=None) as cluster:
        c = run_pack(work, tmp_path / "remote", backend="dask", scheduler=cluster.scheduler_address,
                     max_pairs=4)
    assert a["shards"] == b["shards"] == c["shards"] == 4 and c["written"] == 4
    ia = json.loads((tmp_path / "loky" / "index.json").read_text())
    for other in ("dask", "remote"):
        assert json.loads((tmp_path / other / "index.json").read_text())["shards"] == ia["shards"]
        for e in ia["shards"]:
            assert (tmp_path / "loky" / e["file"]).read_bytes() == (tmp_path / other / e["file"]).read_bytes()


def test_pack_command_says_when_there_is_nothing_to_do(tmp_path):
    work = make_work(tmp_path, items=2, views=2)
    args = ["pack", str(work), "-o", str(tmp_path / "s"), "-j", "1"]
    r1 = CliRunner().invoke(pgprep_main, args)
    assert r1.exit_code == 0 and "2 written" in r1.output, r1.output
    r2 = CliRunner().invoke(pgprep_main, args)
    assert r2.exit_code == 0 and "up to date, nothing to do" in r2.output
    bad = CliRunner().invoke(pgprep_main, ["pack", str(tmp_path), "-o", str(tmp_path / "t")])
    assert bad.exit_code == 1 and "work.json" in bad.output


def test_dense_shard_holds_the_seed_example(tmp_path):
    work = make_work(tmp_path, items=2, views=2)
    run_pack(work, tmp_path / "d", layout="dense", jobs=1, pose_radius=4.0)  # PG²'s radius, given explicitly
    root = Path(json.loads((work / "work.json").read_text())["root"])
    images = pd.read_csv(work / "images.csv").set_index("image")
    with h5py.File(tmp_path / "d" / "train-00000.h5", "r") as f:
        assert f["condition"].shape == (4, 64, 64, 3) and f["pose"].shape == (4, 64, 64, 18)
        assert f["mask"].shape == (4, 64, 64, 1) and f["condition"].dtype == np.float32
        for i in range(4):
            a, b, flip = f["from"][i].decode(), f["to"][i].decode(), bool(f["flip"][i])
            cond = geometry.read_rgb(root / a)
            kp = skeleton.from_columns(images.loc[b])
            if flip:  # independent reference: mirror with cv2, flip keypoints by hand
                cond = cv2.flip(cond, 1)
                kp = kp[skeleton.FLIP_PERM]
                kp[skeleton.present(kp), 0] = 63 - kp[skeleton.present(kp), 0]
            np.testing.assert_array_equal(f["condition"][i], (cond.astype(np.float32) - 127.5) / 127.5)
            ok = skeleton.present(kp)
            yy, xx = np.mgrid[0:64, 0:64]
            for j in range(18):
                want = np.full((64, 64), -1.0, np.float32)
                if ok[j]:
                    want[(yy - kp[j, 1]) ** 2 + (xx - kp[j, 0]) ** 2 <= 16] = 1.0
                np.testing.assert_array_equal(f["pose"][i, ..., j], want)
            assert set(np.unique(f["mask"][i])) <= {0.0, 1.0}
    assert shards.verify(tmp_path / "d") == []


# ---------------------------------------------------------------- issue 12: integrity

def test_pack_never_deletes_or_overwrites_files_it_did_not_write(tmp_path):
    work = make_work(tmp_path, items=3, views=2)
    out = tmp_path / "d"
    out.mkdir()
    (out / "weights-00001.h5").write_text("x")
    (out / "run-2024-00017.h5").write_text("y")
    r = CliRunner().invoke(pgprep_main, ["pack", str(work), "-o", str(out), "-j", "1"])
    assert r.exit_code == 1, r.output
    assert "run-2024-00017.h5" in r.output and "not written by pgkit" in r.output
    assert (out / "weights-00001.h5").read_text() == "x" and (out / "run-2024-00017.h5").read_text() == "y"
    assert sorted(p.name for p in out.iterdir()) == ["run-2024-00017.h5", "weights-00001.h5"]
    # a foreign file named exactly like a shard is not overwritten either
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "train-00000.h5").write_text("mine")
    with pytest.raises(PgkitError, match="train-00000.h5: not written by pgkit"):
        run_pack(work, tmp_path / "e", jobs=1)
    assert (tmp_path / "e" / "train-00000.h5").read_text() == "mine"
    # pgkit's own shards that a new plan no longer needs are removed (with their sidecars)
    own = tmp_path / "own"
    assert run_pack(work, own, jobs=1, max_pairs=4)["shards"] == 3
    assert run_pack(work, own, jobs=1, max_pairs=100)["shards"] == 2
    assert sorted(p.name for p in own.glob("*.h5")) == ["test-00000.h5", "train-00000.h5"]
    assert sorted(p.name for p in (own / ".pgkit" / "shards").iterdir()) == ["test-00000.h5.json",
                                                                             "train-00000.h5.json"]


def _flip_jpeg_bytes(shard: Path, n: int = 3) -> None:
    """Flip `n` bytes inside the first stored JPEG of a compact shard (HDF5 structure intact)."""
    with h5py.File(shard, "r") as f:
        jpeg = f["images/jpeg"][0].tobytes()
    data = bytearray(shard.read_bytes())
    off = data.find(jpeg)
    assert off > 0
    for k in range(n):
        data[off + len(jpeg) // 2 + k] ^= 0x5A
    shard.write_bytes(bytes(data))


def test_a_tampered_shard_is_not_up_to_date_and_force_rewrites_every_shard(tmp_path):
    work = make_work(tmp_path, items=3, views=2)
    out = tmp_path / "s"
    args = ["pack", str(work), "-o", str(out), "-j", "1", "--max-pairs", "4"]
    assert CliRunner().invoke(pgprep_main, args).exit_code == 0
    victim = out / "train-00001.h5"
    good = victim.read_bytes()
    _flip_jpeg_bytes(victim)
    assert shards.verify(out) != []
    r = CliRunner().invoke(pgprep_main, args)
    assert r.exit_code == 0 and "up to date" not in r.output, r.output
    assert "1 written, 2 already complete" in r.output
    assert victim.read_bytes() == good and shards.verify(out) == []
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.glob("*.h5")}
    time.sleep(0.01)
    r = CliRunner().invoke(pgprep_main, args + ["--force"])
    assert r.exit_code == 0 and "3 written, 0 already complete" in r.output, r.output
    assert all(p.stat().st_mtime_ns != mtimes[p.name] for p in out.glob("*.h5"))
    assert shards.verify(out) == []


def test_pack_refuses_a_mask_made_from_other_keypoints(tmp_path):
    work = make_work(tmp_path, items=3, views=2)
    images = pd.read_csv(work / "images.csv")
    victim = images["image"][1]
    images.loc[1, "x5"] += 3.0  # keypoints changed after `pgprep masks` ran
    images.to_csv(work / "images.csv", index=False)
    with pytest.raises(PgkitError, match="rerun `pgprep masks") as err:
        run_pack(work, tmp_path / "s", jobs=1)
    assert err.value.path == str(mask_path(work, victim))
    assert not (tmp_path / "s" / "index.json").exists()
    # a mask without pgkit's record (written by hand or another tool) is refused the same way
    run_masks(work, jobs=1)
    m = geometry.read_mask(mask_path(work, victim))
    cv2.imwrite(str(mask_path(work, victim)), m * 255)
    with pytest.raises(PgkitError, match="no keypoint record"):
        run_pack(work, tmp_path / "s", jobs=1)
    run_masks(work, jobs=1, force=True)
    assert run_pack(work, tmp_path / "s", jobs=1)["pairs"] == {"train": 8, "test": 4}


def test_names_read_back_from_work_are_validated_per_record(tmp_path):
    """An absolute or '..' name in images.csv / pairs CSVs is never read; its pairs are removed."""
    work = make_work(tmp_path, items=3, views=2, flips=False)
    root = tmp_path / "root"
    images = pd.read_csv(work / "images.csv")
    a, b = images["image"][0], images["image"][2]  # two items
    dotdot, absolute = "../root/" + a, str(root / b)  # both point at real files
    for old, new in ((a, dotdot), (b, absolute)):
        mp = mask_path(work, old)
        images.loc[images["image"] == old, "image"] = new
        for split in ("train", "test"):
            p = pd.read_csv(work / f"pairs-{split}.csv")
            p = p.replace({"from": {old: new}, "to": {old: new}})
            p.to_csv(work / f"pairs-{split}.csv", index=False)
        target = mask_path(work, new)  # where the old code looked for the mask
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(mp.read_bytes())
    images.to_csv(work / "images.csv", index=False)
    s = run_pack(work, tmp_path / "s", jobs=1)
    removed = {r["image"]: r for r in s["removed"]}
    assert set(removed) == {dotdot, absolute}
    assert all("refused image name" in r["reason"] and r["pairs"] == 2 for r in removed.values())
    index = json.loads((tmp_path / "s" / "index.json").read_text())
    for e in index["shards"]:
        with h5py.File(tmp_path / "s" / e["file"], "r") as f:
            assert not any(".." in n.decode() or n.decode().startswith("/") for n in f["images/name"][:])


def test_fingerprints_do_not_depend_on_how_paths_are_spelled(tmp_path, monkeypatch):
    from pgprep.pairs import run_pairs

    work = make_work(tmp_path, items=2, views=2)
    assert not run_pairs(work, seed=0)["up_to_date"]
    assert not run_pack(work, tmp_path / "s", jobs=1)["up_to_date"]
    monkeypatch.chdir(tmp_path)
    assert run_masks("work", jobs=1)["up_to_date"]
    assert run_pairs("./work", seed=0)["up_to_date"]
    assert run_pack("work", "s", jobs=1)["up_to_date"]
    assert run_pack("root/../work/", "./s", jobs=1)["up_to_date"]


def test_killed_between_sidecar_and_shard_the_rerun_finishes_and_nothing_looks_complete(tmp_path, monkeypatch):
    import pgprep.pack as pack_module

    work = make_work(tmp_path, items=3, views=2)
    out = tmp_path / "s"
    real, calls = pack_module.atomic_path, []

    def dying(path):  # the second shard dies after its sidecar, before its rename
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(path)

    monkeypatch.setattr(pack_module, "atomic_path", dying)
    with pytest.raises(KeyboardInterrupt):
        run_pack(work, out, jobs=1, max_pairs=4)
    monkeypatch.setattr(pack_module, "atomic_path", real)
    assert not (out / "index.json").exists() and sorted(p.name for p in out.glob("*.h5")) == ["train-00000.h5"]
    assert (out / ".pgkit" / "shards" / "train-00001.h5.json").exists()  # recorded, file missing
    s = run_pack(work, out, jobs=1, max_pairs=4)  # not refused as foreign; finishes the job
    assert (s["written"], s["skipped"]) == (2, 1) and shards.verify(out) == []


def test_a_stale_mask_found_in_a_worker_process_is_reported_with_its_file(tmp_path):
    work = make_work(tmp_path, items=3, views=2)
    images = pd.read_csv(work / "images.csv")
    images.loc[4, "x1"] += 2.0
    images.to_csv(work / "images.csv", index=False)
    with pytest.raises(PgkitError, match="made from other keypoints") as err:
        run_pack(work, tmp_path / "s", jobs=2, max_pairs=4)  # loky workers: the error crosses a pickle
    assert err.value.path == str(mask_path(work, images["image"][4]))


def test_temp_names_are_recognised_only_for_pack_outputs():
    from pgprep.pack import _is_our_temp

    assert _is_our_temp(".train-00001.h5.k3j_x9q2.tmp") and _is_our_temp(".index.json.abcdefgh.tmp")
    assert not _is_our_temp(".weights-00001.h5.abcdefgh.tmp")
    assert not _is_our_temp(".train-00001.h5.Short.tmp") and not _is_our_temp("train-00001.h5.abcdefgh.tmp")


# ---------------------------------------------------------------- issue 18: every read bounded, each a rejection

def test_special_oversized_and_corrupt_images_and_masks_are_per_image_rejections(tmp_path):
    """Issue 18 items 6, 7, 8, 18. Before: a /dev/zero image took pack to 3.4 GB, a 6 GB sparse
    one raised MemoryError, a 0-byte mask aborted with OpenCV's `!buf.empty()`, a 30000x30000
    mask bomb took 2.7 GB, a cut JPEG with FF D9 in its trailer was packed half grey; none
    named its file. After: each is a `removed` entry naming its file; the rest is packed."""
    from test_geometry import png_bomb

    from pgprep.masks import read_record

    work = make_work(tmp_path, items=4, views=3, flips=False, test_items=1)
    root = tmp_path / "root"
    names = pd.read_csv(work / "images.csv")["image"].tolist()
    zero, sparse, cut, empty_mask, bomb_mask = names[0], names[3], names[6], names[1], names[4]
    (root / zero).unlink()
    (root / zero).symlink_to("/dev/zero")
    with open(root / sparse, "r+b") as f:
        f.truncate(6 * 2**30)
    data = (root / cut).read_bytes()
    (root / cut).write_bytes(data[: len(data) * 2 // 3] + b"vendor trailer \xff\xd9")
    mask_path(work, empty_mask).write_bytes(b"")
    record = read_record(mask_path(work, bomb_mask).read_bytes())
    mask_path(work, bomb_mask).write_bytes(png_bomb(record=record))
    r = CliRunner().invoke(pgprep_main, ["pack", str(work), "-o", str(tmp_path / "s"), "-j", "1"])
    assert r.exit_code == 0, r.output
    removed = {x["image"]: x["reason"] for x in json.loads((tmp_path / "s" / "index.json").read_text())["removed"]}
    assert set(removed) == {zero, sparse, cut, empty_mask, bomb_mask}
    assert removed[zero] == f"{root / zero}: cannot read image: a character device, not a regular file"
    assert removed[sparse].startswith(f"{root / sparse}: image file is 6,442,450,944 bytes, over the limit")
    assert removed[cut].startswith(f"{root / cut}: corrupt JPEG data: premature end of data segment")
    assert removed[empty_mask] == f"{mask_path(work, empty_mask)}: unusable mask: empty image file"
    assert removed[bomb_mask].startswith(f"{mask_path(work, bomb_mask)}: unusable mask: image too large")
    assert f"{zero}: {root / zero}: cannot read image" in r.output
    assert shards.verify(tmp_path / "s") == []


def test_a_mask_whose_pixels_were_edited_is_refused_and_masks_redoes_it(tmp_path):
    """Issue 18 item 16. Before: an all-255 mask carrying the original record was packed.
    After: pack refuses it naming the file; `pgprep masks` (no --force) redoes it."""
    from pgprep.masks import add_record, read_record

    work = make_work(tmp_path, items=2, views=2)
    victim = pd.read_csv(work / "images.csv")["image"][1]
    mp = mask_path(work, victim)
    good = mp.read_bytes()
    mp.write_bytes(add_record(geometry.encode_png(np.full((64, 64), 255, np.uint8)), read_record(good)))
    r = CliRunner().invoke(pgprep_main, ["pack", str(work), "-o", str(tmp_path / "s"), "-j", "1"])
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert f"error: {mp}: its pixels differ from those its record digests" in r.output
    assert "rerun `pgprep masks WORK`" in r.output
    assert not run_masks(work, jobs=1)["up_to_date"] and mp.read_bytes() == good
    assert run_pack(work, tmp_path / "s", jobs=1)["removed"] == []


def test_a_transparent_png_is_packed_over_white_and_the_reader_sees_the_same_pixels(tmp_path):
    """Issue 18 item 19. Before: transparent pixels were black (the padding is white). After:
    composited over white, and the compact shard stores those pixels (lossless PNG), so the
    shard reader's colour-only decode agrees with the dense layout."""
    from PIL import Image

    work = make_work(tmp_path, items=2, views=2, flips=False)
    root = tmp_path / "root"
    name = pd.read_csv(work / "images.csv")["image"][0]
    rgba = np.zeros((64, 64, 4), np.uint8)
    rgba[..., :3] = geometry.read_rgb(root / name)
    rgba[..., 3] = 255
    rgba[:, :20, 3] = 0  # the left third transparent (black under it)
    rgba[:20, :20, :3] = 0
    Image.fromarray(rgba, "RGBA").save(root / name, "PNG")  # PNG content under a .jpg name
    want = geometry.read_rgb(root / name)
    assert (want[:, :20] == 255).all() and (want[:, 20:] == rgba[:, 20:, :3]).all()
    run_pack(work, tmp_path / "s", jobs=1)
    with h5py.File(tmp_path / "s" / "train-00000.h5", "r") as f:
        j = [n.decode() for n in f["images/name"][:]].index(name)
        stored = f["images/jpeg"][j].tobytes()
    np.testing.assert_array_equal(shards.decode_bgr(np.frombuffer(stored, np.uint8), name)[..., ::-1], want)


@pytest.mark.parametrize("option, value", [("--pose-radius", "1024"), ("--pose-radius", "65"),
                                           ("--pose-sigma", "1e-200"), ("--pose-sigma", "nan"),
                                           ("--pose-radius", "inf"), ("--pose-sigma", "-1")])
def test_pose_radius_and_sigma_are_bounded_by_the_image_size(tmp_path, option, value):
    """Issue 18 items 13 and 20. Before: --pose-radius 1024 (inside the documented (0, 1024])
    on 64-px images made fit exhaust memory; --pose-sigma 1e-200 raised ZeroDivisionError.
    After: a usage error (exit 2) saying the range, before anything is written."""
    work = make_work(tmp_path, items=2, views=2)
    r = CliRunner().invoke(pgprep_main, ["pack", str(work), "-o", str(tmp_path / "s"), option, value])
    assert r.exit_code == 2, r.output
    assert f"{option} {float(value):g} is out of range for 64x64 (HxW) images: give a number from 0.01 " \
           "to 64 px" in r.output
    assert not (tmp_path / "s").exists()
    from pgprep.pack import PoseOptionError

    with pytest.raises(PoseOptionError):
        run_pack(work, tmp_path / "s", jobs=1, **{option[2:].replace("-", "_"): float(value)})
    assert run_pack(work, tmp_path / "s", jobs=1, pose_radius=64.0, pose_sigma=0.01)["pairs"]["train"] == 4


def _count_shard_reads(monkeypatch) -> dict:
    """Bytes read from shard files through Python (`shards.file_digests` / `quick_digest`
    open them there) and index.json reads, counted while the test runs."""
    import builtins

    counts = {"bytes": 0, "index": 0}

    class Counting:
        def __init__(self, fh):
            self.fh = fh

        def read(self, *a):
            block = self.fh.read(*a)
            counts["bytes"] += len(block)
            return block

        def __getattr__(self, name):
            return getattr(self.fh, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

    def counting_open(file, mode="r", *a, **kw):
        fh = builtins.open(file, mode, *a, **kw)
        return Counting(fh) if str(file).endswith(".h5") else fh

    real_read_index = shards.read_index

    def read_index(d):
        counts["index"] += 1
        return real_read_index(d)

    real_read_text = Path.read_text

    def read_text(self, *a, **kw):
        counts["index"] += self.name == "index.json"
        return real_read_text(self, *a, **kw)

    monkeypatch.setattr(shards, "open", counting_open, raising=False)
    monkeypatch.setattr(shards, "read_index", read_index)
    monkeypatch.setattr(Path, "read_text", read_text)
    return counts


def test_an_up_to_date_rerun_reads_each_shard_once_and_index_json_once(tmp_path, monkeypatch):
    """Issue 21: the up-to-date check and the resume check hashed the shards twice (a
    damaged shard: 1.8 passes) and read index.json up to three times. Now one pass either way."""
    work = make_work(tmp_path, items=6, views=3)
    out = tmp_path / "s"
    run_pack(work, out, jobs=1, max_pairs=20)
    total = sum(p.stat().st_size for p in out.glob("*.h5"))
    counts = _count_shard_reads(monkeypatch)
    assert run_pack(work, out, jobs=1, max_pairs=20)["up_to_date"]
    assert counts == {"bytes": total, "index": 1}
    victim = sorted(out.glob("train-*.h5"))[-1]  # the last one: every other shard is checked first
    _flip_jpeg_bytes(victim)
    counts.update(bytes=0, index=0)
    s = run_pack(work, out, jobs=1, max_pairs=20)
    assert (s["written"], s["up_to_date"]) == (1, False)
    assert counts == {"bytes": total, "index": 1}
    assert shards.verify(out) == []


def test_pack_reads_each_image_and_mask_once(tmp_path, monkeypatch):
    """Issue 21: a mask is read once (`masks.load_mask`: bounded read, header, pixels and
    record all from the same bytes), as is each image."""
    from pgprep import imageio

    work = make_work(tmp_path, items=3, views=3)
    real, reads = imageio.read_bytes, []

    def read_bytes(path, *a, **kw):
        reads.append(str(path))
        return real(path, *a, **kw)

    monkeypatch.setattr(imageio, "read_bytes", read_bytes)
    run_pack(work, tmp_path / "s", jobs=1, max_pairs=100)  # one shard per split: each name in one job
    names = pd.read_csv(work / "images.csv")["image"]
    root = Path(json.loads((work / "work.json").read_text())["root"])
    assert sorted(reads) == sorted([str(root / n) for n in names] + [str(mask_path(work, n)) for n in names])
