"""The run's batches: data order is a pure function of (seed, epoch), so a checkpoint that
stores the epoch and the batch position resumes exactly, and W DDP processes see the samples
one process would."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset
from torch.utils.data import default_collate as collate

from pgprep.errors import PgkitError
from pgtrain import dist


class BatchStream:
    """Endless batches; epoch e's order = randperm(n) seeded by (seed, e), drop_last.

    The global batch k of an epoch is perm[k*B:(k+1)*B]; DDP rank r takes its r-th slice, so
    W processes with B/W each see exactly the samples one process with B would.

    One DataLoader serves the whole run: its batch sampler walks from (epoch, batch) through
    the epochs without end, so the workers start once and keep `prefetch` batches each in
    flight across epoch ends. `state()` counts the batches handed out, not those prefetched,
    so a checkpoint resumes exactly. `pin` pins batches (CUDA only) for non-blocking copies.
    """

    def __init__(self, dataset: Dataset, batch_size: int, seed: int, info: dist.DistInfo,
                 workers: int = 0, epoch: int = 0, batch: int = 0, pin: bool = False,
                 prefetch: int = 4):
        if batch_size % info.world_size:
            raise PgkitError(None, f"--batch-size {batch_size} is not divisible by {info.world_size} processes")
        self.dataset, self.batch_size, self.seed, self.info = dataset, batch_size, seed, info
        self.local = batch_size // info.world_size
        self.workers, self.pin, self.prefetch = workers, pin, prefetch
        self.epoch, self.batch = epoch, batch
        n = len(dataset)
        self.per_epoch = n // batch_size
        if self.per_epoch == 0:
            raise PgkitError(getattr(dataset, "root", None),
                             f"{n} training pairs are fewer than the batch size {batch_size}")
        self._it = None

    def _epoch_batches(self, epoch: int, start: int) -> list[list[int]]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        perm = torch.randperm(len(self.dataset), generator=g).tolist()
        r, b, B = self.info.rank, self.local, self.batch_size  # noqa: N806
        return [perm[k * B + r * b: k * B + (r + 1) * b] for k in range(start, self.per_epoch)]

    def _order(self, epoch: int, start: int):
        while True:
            yield from self._epoch_batches(epoch, start)
            epoch, start = epoch + 1, 0

    def __next__(self) -> dict:
        if self._it is None:
            stream = self

            class Order:  # the batch sampler: an iterable over every later batch of the run
                def __iter__(self):
                    return stream._order(stream.epoch, stream.batch)

            loader = DataLoader(self.dataset, batch_sampler=Order(), num_workers=self.workers,
                                pin_memory=self.pin and torch.cuda.is_available(), collate_fn=collate,
                                prefetch_factor=self.prefetch if self.workers else None)
            self._it = iter(loader)
        if self.batch >= self.per_epoch:
            self.epoch, self.batch = self.epoch + 1, 0
        out = next(self._it)
        self.batch += 1
        return out

    def state(self) -> dict:
        return {"epoch": self.epoch, "batch": self.batch}

    def close(self) -> None:
        """Stop the workers (a later batch starts them again from the current position)."""
        self._it = None
