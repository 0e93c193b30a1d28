"""torchrun detection and the few collective operations the loop needs.

`torchrun --nproc_per_node N -m pgtrain fit ...` sets RANK, LOCAL_RANK and WORLD_SIZE; we
then join a process group (NCCL on CUDA, gloo otherwise), pin each process to its local
GPU, print and write files from rank 0 only, and offset the random seed by the rank.
A plain `pgtrain fit` is a world of one and never touches torch.distributed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as tdist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def detect(env=None) -> DistInfo:
    """Read torchrun's environment (a world of one when it is absent)."""
    env = os.environ if env is None else env
    world = int(env.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank = int(env["RANK"])
    return DistInfo(rank, int(env.get("LOCAL_RANK", rank)), world)


def init(device: torch.device) -> DistInfo:
    """Join the process group if torchrun started us (idempotent)."""
    info = detect()
    if info.enabled and not tdist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(info.local_rank)
        tdist.init_process_group(backend=backend, rank=info.rank, world_size=info.world_size)
    return info


def local_device(device: torch.device, info: DistInfo) -> torch.device:
    """cuda -> cuda:LOCAL_RANK under torchrun; other devices unchanged."""
    if device.type == "cuda" and info.enabled:
        return torch.device("cuda", info.local_rank)
    return device


def rank_seed(seed: int, info: DistInfo) -> int:
    """Each rank its own random stream (data order is shared: it is a function of the seed)."""
    return seed + info.rank


def mean_over_ranks(values: dict[str, float], info: DistInfo, device: torch.device) -> dict[str, float]:
    """Average logged scalars over ranks (every rank must call this)."""
    if not info.enabled or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=device)
    tdist.all_reduce(t)
    return {k: float(v) / info.world_size for k, v in zip(keys, t.tolist(), strict=True)}


def any_over_ranks(flag: bool, info: DistInfo, device: torch.device) -> bool:
    """True on every rank if `flag` is true on any (so all ranks stop together)."""
    if not info.enabled:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    tdist.all_reduce(t, op=tdist.ReduceOp.MAX)
    return bool(t.item())


def barrier(info: DistInfo) -> None:
    if info.enabled and tdist.is_initialized():
        tdist.barrier()


def default_device() -> str:
    """Where eval, figures and generate run by default: the first CUDA device, else the CPU."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def cleanup(info: DistInfo) -> None:
    if info.enabled and tdist.is_initialized():
        tdist.destroy_process_group()
