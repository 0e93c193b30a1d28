"""pgtrain.data: PairDataset over both layouts, flips, workers + DistributedSampler, raw path."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from test_pack import make_work
from torch.utils.data import DataLoader, DistributedSampler

from pgprep import geometry, skeleton
from pgprep.pack import run_pack
from pgtrain.data import PairDataset, pose_maps_torch, pose_options, to_device_batch


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    base = tmp_path_factory.mktemp("data")
    work = make_work(base, items=4, views=3, size=40)
    run_pack(work, base / "compact", jobs=1, max_pairs=12)
    run_pack(work, base / "dense", layout="dense", jobs=1, max_pairs=12)
    return base


def test_items_follow_the_spec_and_both_layouts_agree_on_every_element(dirs):
    c, d = PairDataset(dirs / "compact"), PairDataset(dirs / "dense")
    assert len(c) == len(d) == 3 * 12 and c.image_size == d.image_size == (40, 40)
    assert len(PairDataset(dirs / "compact", split="test")) == 12
    for i in range(len(c)):
        a, b = c[i], d[i]
        assert (a["from"], a["to"], a["flip"]) == (b["from"], b["to"], b["flip"])
        assert isinstance(a["flip"], bool) and isinstance(a["from"], str)
        for k, shape in (("condition", (3, 40, 40)), ("target", (3, 40, 40)),
                         ("pose", (18, 40, 40)), ("mask", (1, 40, 40))):
            assert a[k].dtype == torch.float32 and tuple(a[k].shape) == shape
            assert torch.equal(a[k], b[k]), (k, i)
        assert a["condition"].min() >= -1 and a["condition"].max() <= 1
        assert set(a["mask"].unique().tolist()) <= {0.0, 1.0}
        assert set(a["pose"].unique().tolist()) <= {-1.0, 1.0}


def test_a_flipped_pair_is_its_twin_mirrored_with_left_right_channels_swapped(dirs):
    ds = PairDataset(dirs / "compact")
    by_key = {}
    for i in range(len(ds)):
        it = ds[i]
        by_key[(it["from"], it["to"], it["flip"])] = it
    twins = 0
    for (a, b, flip), it in by_key.items():
        if flip:
            continue
        fl = by_key[(a, b, True)]
        for k in ("condition", "target", "mask"):
            assert torch.equal(fl[k], it[k].flip(-1)), k
        assert torch.equal(fl["pose"], it["pose"].flip(-1)[skeleton.FLIP_PERM])
        # l_shoulder (5) of the flipped pair is the unflipped r_shoulder (2), mirrored
        assert torch.equal(fl["pose"][5], it["pose"][2].flip(-1))
        twins += 1
    assert twins == 3 * 6


def test_dataloader_workers_and_distributed_sampler_cover_each_pair_once(dirs):
    ds = PairDataset(dirs / "compact")
    len(ds[0]["from"])  # open files in the parent first: workers must not inherit the handles
    blob = pickle.dumps(ds)
    assert b"h5py" not in blob  # no open handles travel to workers
    seen = []
    for rank in range(2):
        sampler = DistributedSampler(ds, num_replicas=2, rank=rank, shuffle=True, seed=3)
        loader = DataLoader(ds, batch_size=5, sampler=sampler, num_workers=2,
                            persistent_workers=False)
        for batch in loader:
            assert batch["condition"].shape[1:] == (3, 40, 40)
            seen += list(zip(batch["from"], batch["to"], batch["flip"].tolist(), strict=True))
    assert len(seen) == len(ds) == len(set(seen))
    assert set(seen) == {(ds[i]["from"], ds[i]["to"], ds[i]["flip"]) for i in range(len(ds))}


@pytest.mark.parametrize("layout", ["compact", "dense"])
def test_raw_batches_rendered_on_the_device_equal_the_float_path(dirs, layout):
    ds, raw = PairDataset(dirs / layout), PairDataset(dirs / layout, raw=True)
    item = raw[0]
    assert item["condition"].dtype == torch.uint8 and tuple(item["mask"].shape) == (1, 40, 40)
    assert item["keypoints"].shape == (18, 3)
    want = next(iter(DataLoader(ds, batch_size=len(ds))))
    got = to_device_batch(next(iter(DataLoader(raw, batch_size=len(raw)))), "cpu", **pose_options(ds))
    for k in ("condition", "target", "pose", "mask"):
        assert got[k].dtype == torch.float32
        assert torch.equal(got[k], want[k]), k
    assert got["from"] == want["from"] and torch.equal(got["flip"], want["flip"])


def test_torch_pose_maps_match_the_numpy_reference():
    rng = np.random.default_rng(1)
    kp = rng.uniform(-3, 70, (6, 18, 3)).astype(np.float32)
    kp[..., 2] = rng.uniform(0, 1, (6, 18)) * (rng.random((6, 18)) > 0.2)
    for kind, kw in (("disk", {"radius": 4.0}), ("disk", {"radius": 8.0}), ("gaussian", {"sigma": 6.0})):
        ref = geometry.pose_maps(kp, (64, 48), kind, **kw)
        got = pose_maps_torch(torch.from_numpy(kp), (64, 48), kind, **kw).numpy()
        assert np.abs(got - ref).max() <= 1e-6, kind
    # one skeleton, joints on and beyond the borders, far away, and on exact pixel centres
    one = skeleton.empty()
    one[:6] = [[0, 0, 1], [47, 63, 1], [-4.5, 10, 1], [52, 70, 1], [1e6, 5, 1], [20, 30, 1]]
    np.testing.assert_array_equal(pose_maps_torch(torch.from_numpy(one), (64, 48)).numpy(),
                                  geometry.pose_maps(one, (64, 48)))


def test_dataset_can_render_other_pose_settings(dirs):
    ds = PairDataset(dirs / "dense", pose_kind="gaussian", pose_sigma=6.0)
    raw = PairDataset(dirs / "dense", raw=True)
    kp = raw[3]["keypoints"].numpy()
    np.testing.assert_allclose(ds[3]["pose"].numpy(), geometry.pose_maps(kp, (40, 40), "gaussian", sigma=6.0))


@pytest.mark.slow
def test_the_pipeline_fixture_packs_every_csv_pair(work_dir, shards_dir):
    import pandas as pd

    for split in ("train", "test"):
        ds = PairDataset(shards_dir, split=split, raw=True)
        csv = pd.read_csv(work_dir / f"pairs-{split}.csv")
        got = sorted((ds[i]["from"], ds[i]["to"], ds[i]["flip"]) for i in range(len(ds)))
        want = sorted(zip(csv["from"], csv["to"], csv["flip"].astype(bool), strict=True))
        assert got == want


def test_a_changed_shard_is_detected_when_the_dataset_opens_it(dirs, tmp_path):
    import shutil

    from test_pack import _flip_jpeg_bytes

    from pgprep.errors import PgkitError

    d = tmp_path / "compact"
    shutil.copytree(dirs / "compact", d)
    _flip_jpeg_bytes(d / "train-00001.h5")
    for check in ("auto", "sha256", "quick"):
        with pytest.raises(PgkitError, match="train-00001.h5") as err:
            PairDataset(d, check=check)
        assert "changed since it was packed" in str(err.value)
    assert len(PairDataset(d, split="test")) == 12  # the other split is untouched
    # changed after the dataset was made (e.g. before a DataLoader worker opens it)
    shutil.rmtree(d)
    shutil.copytree(dirs / "compact", d)
    ds = PairDataset(d)
    with open(d / "train-00002.h5", "ab") as f:
        f.write(b"\0")
    with pytest.raises(PgkitError, match="train-00002.h5: .*size"):
        ds[len(ds) - 1]
    assert ds[0]["condition"].shape == (3, 40, 40)  # shards that still match keep working
