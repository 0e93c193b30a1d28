"""The GPU data path and dtype mix, checked on CPU: raw uint8 batches == float batches, one
DataLoader for the run, bf16 autocast for every preset, deferred loss syncs, gpu_check.py."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_loop import ToyPairs
from test_pack import make_work

from pgprep.pack import run_pack
from pgtrain import presets
from pgtrain.data import PairDataset
from pgtrain.dist import DistInfo
from pgtrain.loop import BatchStream, Trainer, fit
from pgtrain.stats import read_stats

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(channels=8, batch_size=4, log_every=1, sample_every=1000, ckpt_every=1000, device="cpu")

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    base = tmp_path_factory.mktemp("gpu_path")
    work = make_work(base, items=4, views=3, size=32)
    run_pack(work, base / "shards", jobs=1, max_pairs=12)
    return base / "shards"


def _device_batches(shards, raw: bool, n: int, **pose) -> list[dict]:
    ds = PairDataset(shards, raw=raw, **pose)
    tr = Trainer(presets.resolve("g1", **TINY), ds.image_size, torch.device("cpu"))
    tr.pose = ds.pose
    stream = BatchStream(ds, 4, seed=5, info=DistInfo(), pin=True)  # pinning: a no-op without CUDA
    return [tr.to_device(next(stream)) for _ in range(n)]


@pytest.mark.parametrize("kind", ["disk", "gaussian"])
def test_raw_and_float_paths_bring_the_same_batches_to_the_device(shards, kind):
    raw = _device_batches(shards, True, 10, pose_kind=kind)  # 10 batches: past an epoch end (9)
    flt = _device_batches(shards, False, 10, pose_kind=kind)
    for r, f in zip(raw, flt, strict=True):
        assert r["from"] == f["from"] and r["to"] == f["to"] and torch.equal(r["flip"], f["flip"])
        for k in ("condition", "target", "mask", "pose"):
            assert r[k].dtype == f[k].dtype == torch.float32 and r[k].shape == f[k].shape, k
            assert r[k].is_contiguous(memory_format=torch.channels_last), k
        for k in ("condition", "target", "mask"):
            assert torch.equal(r[k], f[k]), k
        if kind == "disk":
            assert torch.equal(r["pose"], f["pose"])
        else:
            assert (r["pose"] - f["pose"]).abs().max() <= 1e-6
            assert ((f["pose"] > -0.99) & (f["pose"] < 0.99)).sum() > 50  # graded values: Gaussians


@pytest.mark.parametrize("kind", ["disk", "gaussian"])
def test_device_batches_are_made_without_a_host_sync(kind):
    # nonzero() (data-dependent size), .item() and torch.tensor(number, device=cuda) each make
    # the host wait for the GPU; the dispatcher sees every op to_device_batch runs
    from torch.utils._python_dispatch import TorchDispatchMode

    from pgtrain.data import to_device_batch

    class Ops(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.seen = set()

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.seen.add(str(func))
            return func(*args, **(kwargs or {}))

    g = torch.Generator().manual_seed(0)
    batch = {"condition": torch.zeros(2, 3, 32, 32, dtype=torch.uint8),
             "target": torch.zeros(2, 3, 32, 32, dtype=torch.uint8),
             "mask": torch.ones(2, 1, 32, 32, dtype=torch.uint8),
             "keypoints": torch.rand(2, 18, 3, generator=g) * 32}
    with Ops() as ops:
        out = to_device_batch(batch, "cpu", kind, radius=4.0, sigma=2.0)
    syncing = {"aten.nonzero.default", "aten._local_scalar_dense.default", "aten.lift_fresh.default",
               "aten.item.default"}
    assert not ops.seen & syncing, ops.seen & syncing
    assert "aten.mul.Tensor" in ops.seen or "aten.scatter_reduce_.two" in ops.seen
    assert (out["pose"] == 1).sum() > 0 if kind == "disk" else (out["pose"] > 0.9).sum() > 0


def test_fit_trains_the_same_on_the_raw_and_the_float_path(shards, tmp_path):
    kw = dict(TINY, steps1=3, steps2=2)
    fit(shards, tmp_path / "raw", "pg2", data_path="raw", **kw)
    fit(shards, tmp_path / "float", "pg2", data_path="float", **kw)
    a, b = read_stats(tmp_path / "raw"), read_stats(tmp_path / "float")
    strip = [{k: v for k, v in r.items() if k != "samples_per_s"} for r in a], \
            [{k: v for k, v in r.items() if k != "samples_per_s"} for r in b]
    assert len(a) == 5 and strip[0] == strip[1]
    assert json.loads((tmp_path / "raw" / "options.json").read_text())["data_path_used"] == "raw"
    assert json.loads((tmp_path / "float" / "options.json").read_text())["data_path_used"] == "float"
    # auto = raw (measured faster on CPU too); a finished run is not redone for a cosmetic option
    again = fit(shards, tmp_path / "raw", "pg2", data_path="float", **kw)
    assert (again["stage"], again["step"]) == (2, 2)


def test_one_dataloader_serves_every_epoch_in_the_resumable_order():
    ds = ToyPairs(10)  # 2 batches of 4 an epoch (drop_last)
    with_workers = BatchStream(ds, 4, seed=3, info=DistInfo(), workers=2, prefetch=2)
    first = next(with_workers)["from"]
    it = with_workers._it
    seen = [first] + [next(with_workers)["from"] for _ in range(6)]  # 3.5 epochs
    assert with_workers._it is it  # no new loader (and no new workers) at the epoch ends
    plain = BatchStream(ds, 4, seed=3, info=DistInfo())
    assert [next(plain)["from"] for _ in range(7)] == seen
    assert with_workers.state() == {"epoch": 3, "batch": 1}  # handed out, not prefetched
    resumed = BatchStream(ds, 4, seed=3, info=DistInfo(), workers=2, prefetch=2, epoch=1, batch=1)
    assert [next(resumed)["from"] for _ in range(4)] == seen[3:]
    # a checkpoint taken right after an epoch's last batch resumes with the next epoch
    at_end = BatchStream(ds, 4, seed=3, info=DistInfo(), epoch=1, batch=2)
    assert next(at_end)["from"] == seen[4]
    with_workers.close()
    resumed.close()


class _CountDraws(ToyPairs):
    """Items turn NaN from the `after`-th draw on (no callback needed to poison the run)."""

    def __init__(self, n, after):
        super().__init__(n)
        self.draws, self.after = 0, after

    def __getitem__(self, i):
        self.draws += 1
        self.poison = self.draws > self.after
        return super().__getitem__(i)


def test_losses_reach_the_host_only_when_logged_yet_a_nan_is_named_by_its_step(tmp_path, monkeypatch):
    copies = []
    tolist = torch.Tensor.tolist

    def counting(t):
        if t.is_floating_point():
            copies.append(tuple(t.shape))
        return tolist(t)

    monkeypatch.setattr(torch.Tensor, "tolist", counting)
    fit(ToyPairs(16), tmp_path / "ok", "g1", steps1=10, **{**TINY, "log_every": 5, "ckpt_every": 5})
    assert copies == [(5, 1), (5, 1)]  # two copies of 5 steps' losses, not 10 copies
    from pgprep.errors import PgkitError

    with pytest.raises(PgkitError) as err:  # step 7's batch is NaN (4 draws make the sample grid)
        fit(_CountDraws(16, after=4 + 6 * 4), tmp_path / "nan", "g1", steps1=20,
            **{**TINY, "log_every": 10, "ckpt_every": 5})
    assert "at stage 1 step 7;" in str(err.value) and "step 5" in str(err.value)
    from pgtrain import checkpoint

    ck = checkpoint.load(tmp_path / "nan" / "checkpoints" / "last.pt")
    assert ck["step"] == 5 and all(torch.isfinite(v).all() for v in ck["nets"]["g1"].values())


def _bf16_outputs(tr: Trainer) -> list[torch.dtype]:
    dtypes = []
    for m in tr.modules().values():
        conv = next(c for c in m.modules() if isinstance(c, torch.nn.Conv2d))
        conv.register_forward_hook(lambda _m, _i, out: dtypes.append(out.dtype))
    return dtypes


def _steps(preset: str, shards, amp: bool, n: int = 2) -> tuple[list[dict], list]:
    o = presets.resolve(preset, **{**TINY, "amp": amp, "amp_cpu": amp, "batch_size": 4,
                                   "channels_last": True})
    ds = PairDataset(shards, raw=True)
    tr = Trainer(o, ds.image_size, torch.device("cpu"))
    tr.pose = ds.pose
    dtypes = _bf16_outputs(tr)
    stream = BatchStream(ds, o.batch_size, seed=0, info=DistInfo(), pin=True)
    out = []
    for _ in range(n):
        if o.discriminator is None:
            step = tr.stage1_step(next(stream))
        else:
            step = tr.stage2_step(lambda: next(stream))
        out.append({k: float(v) for k, v in step.items()})
    return out, dtypes


@pytest.mark.parametrize("preset", list(presets.PRESETS))
def test_every_preset_trains_under_bf16_autocast_close_to_fp32(shards, preset):
    fp32, dt32 = _steps(preset, shards, amp=False)
    bf16, dt16 = _steps(preset, shards, amp=True)
    assert set(dt32) == {torch.float32} and torch.bfloat16 in set(dt16)  # autocast really ran
    for step, (a, b) in enumerate(zip(bf16, fp32, strict=True)):
        assert a.keys() == b.keys()
        for k in a:
            assert math.isfinite(a[k]), (preset, step, k)
            # bf16 keeps 8 mantissa bits: ~0.4 % per rounding, a few % through a network;
            # critic scores near 0 need the absolute part
            assert abs(a[k] - b[k]) <= 0.03 * abs(b[k]) + 0.01, (preset, step, k, a[k], b[k])


@pytest.mark.slow
def test_gpu_check_runs_on_cpu_and_reports_every_row(tmp_path):
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--device", "cpu",
                          "--quick", "--out", str(tmp_path)], capture_output=True, text=True,
                         cwd=ROOT, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads((tmp_path / "RESULTS-gpu.json").read_text())
    names = [r["row"] for r in result["rows"]]
    assert names == result["planned"] and len(names) >= 20
    md = (tmp_path / "RESULTS-gpu.md").read_text()
    assert all(n in md and n in out.stdout for n in names)
    by = {r["row"]: r for r in result["rows"]}
    for p in ("g1", "pg2", "triplet", "wgan-triplet", "pg2-official"):
        r = by[f"step time {p} b4"]
        assert r["status"] in ("ok", "error", "skipped")
        if r["status"] == "ok":
            assert r["value"] > 0
    assert by["step time g1 b4"]["status"] == "ok"  # the rows measured on CPU really measure
    assert by["flops/step g1 b4"]["status"] == "ok" and by["flops/step g1 b4"]["value"] > 0
    assert by["bf16 vs fp32 stage-1 loss"]["status"] == "ok"
    assert by["loader raw"]["status"] == "ok" and by["loader float"]["status"] == "ok"
