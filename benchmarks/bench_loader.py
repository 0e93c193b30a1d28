"""pgtrain.data.PairDataset throughput at 256x256 with 2 DataLoader workers.

    python benchmarks/bench_loader.py          # quick
    python benchmarks/bench_loader.py --full

- float path: items are the seed's float32 tensors with pose maps (6.5 MB a pair), rendered
  in the workers (goal >= 150 pairs/s);
- uint8 path: workers move JPEG-decoded uint8 images, keypoints and masks (~0.45 MB a
  pair); `to_device_batch` normalises and renders pose maps on the device (goal >= 1,500
  pairs/s; without a GPU the rendering runs on the CPU and is reported separately).

The quick data set has few images per pair, but nothing caches decoded images, so every pair
pays both of its JPEG decodes here as it would on DeepFashion.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "tests"))


def _rate(loader, epochs: int, fn=None) -> float:
    """Pairs per second after the first batch (worker start-up excluded)."""
    n, t0 = 0, None
    for _ in range(epochs):
        for batch in loader:
            if fn is not None:
                batch = fn(batch)
            if t0 is None:
                t0 = time.perf_counter()
                continue
            n += len(batch["from"])
    return n / (time.perf_counter() - t0)


class _Zeros:
    """A dataset of zero tensors shaped like PairDataset's items: the transport ceiling."""

    def __init__(self, n: int, size: tuple[int, int]):
        self.n, self.size = n, size

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        import torch

        h, w = self.size
        return {"condition": torch.zeros(3, h, w), "target": torch.zeros(3, h, w),
                "pose": torch.zeros(18, h, w), "mask": torch.zeros(1, h, w), "from": "", "to": ""}


def run(quick: bool = True) -> list[dict]:
    import torch
    from test_pack import make_work
    from torch.utils.data import DataLoader

    from pgprep.pack import run_pack
    from pgtrain.data import PairDataset, pose_options, to_device_batch

    items, views, epochs = (12, 4, 2) if quick else (40, 5, 3)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    tmp = Path(tempfile.mkdtemp(prefix="bench_loader_"))
    try:
        work = make_work(tmp, items=items, views=views, size=256, test_items=1)
        run_pack(work, tmp / "shards", jobs=1, max_pairs=200)
        ds = PairDataset(tmp / "shards")
        raw = PairDataset(tmp / "shards", raw=True)
        opts = pose_options(ds)
        common = {"num_workers": 2, "shuffle": True, "persistent_workers": True}
        float_rate = _rate(DataLoader(ds, batch_size=16, **common), epochs)
        raw_loader = DataLoader(raw, batch_size=64, pin_memory=device == "cuda", **common)
        raw_rate = _rate(raw_loader, epochs * 2)
        device_rate = _rate(raw_loader, epochs * 2, lambda b: to_device_batch(b, device, **opts))
        ceiling = _rate(DataLoader(_Zeros(len(ds), ds.image_size), batch_size=16, **common), epochs)
        t0 = time.perf_counter()
        for i in range(min(len(ds), 64)):
            ds[i]
        single = min(len(ds), 64) / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        for k in range(0, len(raw), 64):  # batches as a DataLoader worker fetches them
            raw.__getitems__(list(range(k, min(k + 64, len(raw)))))
        single_raw = len(raw) / (time.perf_counter() - t0)
        return [
            {"benchmark": "PairDataset float path, 2 workers", "value": round(float_rate), "unit": "pairs/s",
             "note": f"256x256, batch 16, pose maps rendered in workers; goal >= 150 ({len(ds)} pairs)"},
            {"benchmark": "ceiling: zero tensors of the same shapes, 2 workers", "value": round(ceiling),
             "unit": "pairs/s", "note": "moving 6.5 MB a pair and nothing else (machine load sets this)"},
            {"benchmark": "PairDataset float path, main process", "value": round(single), "unit": "pairs/s",
             "note": "one process, no DataLoader: JPEG decode x2 + pose maps + normalise"},
            {"benchmark": "PairDataset uint8 path, main process", "value": round(single_raw),
             "unit": "pairs/s", "note": "one process, batches of 64: JPEG decode x2 + RGB planes + mask"},
            {"benchmark": "PairDataset uint8 path, 2 workers (bytes only)", "value": round(raw_rate),
             "unit": "pairs/s", "note": "batch 64; what a GPU would receive; goal >= 1500"},
            {"benchmark": f"uint8 path + to_device_batch on {device}", "value": round(device_rate),
             "unit": "pairs/s", "note": "normalise + pose maps on the device" +
             ("" if device == "cuda" else " (here the CPU, shared with the 2 workers)")},
        ]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("PGKIT_NO_PROGRESS", "1")
    from pgprep.cliutil import echo_table

    out = run(quick="--full" not in sys.argv)
    echo_table([[r["benchmark"], r["value"], r["unit"], r["note"]] for r in out],
               ["benchmark", "value", "unit", "note"])
