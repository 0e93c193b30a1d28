"""pgtrain.dist: torchrun detection, and a 2-process gloo DDP run equal to one process."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from pgtrain import checkpoint, dist, nets
from pgtrain.stats import read_stats


def test_detect_reads_torchrun_environment():
    assert dist.detect({}) == dist.DistInfo(0, 0, 1)
    info = dist.detect({"RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "4"})
    assert (info.rank, info.local_rank, info.world_size, info.enabled, info.is_main) == (3, 1, 4, True, False)
    assert dist.rank_seed(10, info) == 13
    assert dist.local_device(torch.device("cpu"), info) == torch.device("cpu")
    assert dist.local_device(torch.device("cuda"), info) == torch.device("cuda", 1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, run: str, kw: dict) -> None:
    from test_loop import ToyPairs

    from pgtrain.loop import fit

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      LOCAL_RANK=str(rank), WORLD_SIZE=str(world), PGKIT_NO_PROGRESS="1")
    torch.set_num_threads(1)
    try:
        kw = dict(kw)
        fit(ToyPairs(24), run, kw.pop("preset", "g1"), **kw)
    finally:
        dist.cleanup(dist.detect())


@pytest.mark.slow
def test_two_gloo_processes_match_one_process_with_the_same_global_batch(tmp_path):
    kw = dict(channels=8, batch_size=4, steps1=6, log_every=1, sample_every=100, ckpt_every=100,
              device="cpu", lr=1e-3)
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path / "ddp"), kw), nprocs=2, join=True)
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        from test_loop import ToyPairs

        from pgtrain.loop import fit

        fit(ToyPairs(24), tmp_path / "one", "g1", **kw)
    finally:
        torch.set_num_threads(n)
    ddp, one = read_stats(tmp_path / "ddp"), read_stats(tmp_path / "one")
    assert [r["step"] for r in ddp] == list(range(1, 7))
    for a, b in zip(ddp, one, strict=True):
        assert a["l1"] == pytest.approx(b["l1"], rel=1e-5, abs=1e-6)
    assert ddp[-1]["l1"] != ddp[0]["l1"]  # it trained
    ga = checkpoint.load_generators(tmp_path / "ddp").g1
    gb = checkpoint.load_generators(tmp_path / "one").g1
    worst = max((x - y).abs().max().item() for x, y in zip(ga.parameters(), gb.parameters(), strict=True))
    torch.manual_seed(0)  # the Trainer builds G1 first from the seed: its initial weights
    init = nets.build("g1", checkpoint.load(tmp_path / "one" / "checkpoints" / "last.pt")["options"])
    moved = max((x - y).abs().max().item() for x, y in zip(ga.parameters(), init.parameters(), strict=True))
    assert worst < 1e-4 < moved
    opts = checkpoint.load(tmp_path / "ddp" / "checkpoints" / "last.pt")["options"]
    assert opts["world_size"] == 2


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["pg2", "wgan-gp-triplet"])
def test_stage2_trains_under_ddp(tmp_path, preset):
    # batch-norm D with several forwards per step; the gradient penalty's double backward
    kw = dict(preset=preset, channels=8, batch_size=4, steps1=2, steps2=3, log_every=1,
              sample_every=100, ckpt_every=100, device="cpu")
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path / "ddp"), kw), nprocs=2, join=True)
    records = read_stats(tmp_path / "ddp")
    assert [(r["stage"], r["step"]) for r in records] == [(1, 1), (1, 2), (2, 1), (2, 2), (2, 3)]
    assert all(v is not None for r in records for v in r.values())
    ck = checkpoint.load(tmp_path / "ddp" / "checkpoints" / "last.pt")
    assert ck["done"] and set(ck["nets"]) == {"g1", "g2", "d"}
