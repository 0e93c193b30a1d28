"""pgprep pack: bytes per pair (compact vs dense), pack throughput beside its floor, mask
encodings, and a projection to DeepFashion's 127,022 training pairs.

    python benchmarks/bench_pack.py            # quick
    python benchmarks/bench_pack.py --full

Inputs are hand-built 256x256 WORK directories (tests/test_pack.py:make_work: smooth
backgrounds, a body-mask-shaped person, sensor noise; ~20 KB JPEGs at quality 90, close to
DeepFashion's files), with every ordered pair of an item plus its flipped twin.
"""

from __future__ import annotations

import io
import shutil
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "tests"))

DEEPFASHION_PAIRS = 127_022
DEEPFASHION_TRAIN_IMAGES = 32_031  # images kept after filtering; flips are flags, not copies


def _work(base: Path, items: int, views: int):
    from test_pack import make_work

    return make_work(base, items=items, views=views, size=256, test_items=1)


def _floor(work: Path, out: Path) -> float:
    """Seconds to read + decode every image once and write its bytes to one HDF5 file."""
    import json

    import pandas as pd

    from pgprep import geometry

    root = Path(json.loads((work / "work.json").read_text())["root"])
    names = pd.read_csv(work / "images.csv")["image"].tolist()
    t0 = time.perf_counter()
    with h5py.File(out, "w") as f:
        d = f.create_dataset("jpeg", (len(names),), dtype=h5py.vlen_dtype(np.uint8))
        for i, n in enumerate(names):
            raw = (root / n).read_bytes()
            geometry.decode_rgb(raw)
            d[i] = np.frombuffer(raw, np.uint8)
    return time.perf_counter() - t0


def mask_encodings(work: Path) -> list[dict]:
    """Bytes per 256x256 mask for the encodings considered (docs/shards.md)."""
    import gzip

    from pgprep import geometry

    masks = [geometry.read_mask(p) for p in sorted((work / "masks").rglob("*.png"))]
    stack = np.stack(masks)
    n = len(masks)
    packed = np.packbits(stack, axis=-1)
    sizes = {"uint8 raw": stack.nbytes / n, "packbits": packed.nbytes / n,
             "PNG": float(np.mean([len(geometry.encode_png(m * 255)) for m in masks]))}
    for level in (1, 4, 9):
        sizes[f"packbits+gzip{level}"] = float(np.mean([len(gzip.compress(p.tobytes(), level)) for p in packed]))
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:  # what HDF5 really stores, chunk per image
        f.create_dataset("m", data=packed, chunks=(1,) + packed.shape[1:], compression="gzip",
                         compression_opts=4)
    sizes["HDF5 packbits+gzip4 (as stored)"] = len(buf.getvalue()) / n
    return [{"benchmark": f"mask bytes, {k}", "value": round(v), "unit": "B/image", "note": ""}
            for k, v in sizes.items()]


def image_encodings(work: Path, n: int = 24) -> list[dict]:
    """Bytes and decode time per 256x256 image for the image encodings considered."""
    import json

    import pandas as pd

    from pgprep import geometry

    root = Path(json.loads((work / "work.json").read_text())["root"])
    files = [(root / p).read_bytes() for p in pd.read_csv(work / "images.csv")["image"][:n]]
    rgbs = [geometry.decode_rgb(b) for b in files]
    rows = []

    def add(name, blobs, decode):
        t0 = time.perf_counter()
        for b in blobs:
            decode(b)
        ms = (time.perf_counter() - t0) / len(blobs) * 1e3
        rows.append({"benchmark": f"image bytes, {name}", "value": round(np.mean([len(b) for b in blobs])),
                     "unit": "B/image", "note": f"decode {ms:.2f} ms"})

    add("original JPEG (stored)", files, geometry.decode_rgb)
    add("PNG (lossless pixels)", [geometry.encode_png(x) for x in rgbs], geometry.decode_rgb)
    import zlib
    add("raw uint8 + deflate 4", [zlib.compress(x.tobytes(), 4) for x in rgbs], zlib.decompress)
    return rows


def run(quick: bool = True) -> list[dict]:
    from pgprep.pack import run_pack

    items, views = (12, 4) if quick else (60, 5)
    tmp = Path(tempfile.mkdtemp(prefix="bench_pack_"))
    rows = []
    try:
        work = _work(tmp / "a", items, views)
        n_images = items * views
        t0 = time.perf_counter()
        s = run_pack(work, tmp / "compact", jobs=1, max_pairs=200)
        t_compact = time.perf_counter() - t0
        t0 = time.perf_counter()
        run_pack(work, tmp / "compact2", jobs=2, max_pairs=200)
        t_compact2 = time.perf_counter() - t0
        pairs = sum(s["pairs"].values())
        compact_bpp = s["bytes"] / pairs
        small = _work(tmp / "b", 2, views)  # dense is ~6.5 MB a pair: a small set suffices
        t0 = time.perf_counter()
        d = run_pack(small, tmp / "dense", layout="dense", jobs=2)
        t_dense = time.perf_counter() - t0
        dense_pairs = sum(d["pairs"].values())
        dense_bpp = d["bytes"] / dense_pairs
        t_floor = _floor(work, tmp / "floor.h5")
        per_image = (s["bytes"] - pairs * 9) / n_images  # 9 B/pair of indices and flag
        rows += [
            {"benchmark": "pack compact, bytes per pair", "value": round(compact_bpp), "unit": "B",
             "note": f"{pairs} pairs, {n_images} images ({pairs / n_images:.1f} pairs/image), 256x256"},
            {"benchmark": "pack dense, bytes per pair", "value": round(dense_bpp), "unit": "B",
             "note": "the seed's float32 example: (3+3+18+1)*256*256*4 + keypoints/names"},
            {"benchmark": "compact / dense size ratio", "value": round(dense_bpp / compact_bpp, 1),
             "unit": "x smaller", "note": "goal >= 25x"},
            {"benchmark": "pack compact throughput, 1 job", "value": round(pairs / t_compact, 1), "unit": "pairs/s",
             "note": f"{n_images / t_compact:.0f} images/s (image + mask decoded to validate), incl. planning, hashing"},
            {"benchmark": "pack compact throughput, 2 loky jobs", "value": round(pairs / t_compact2, 1),
             "unit": "pairs/s", "note": f"{n_images / t_compact2:.0f} images/s incl. ~2 s worker start-up"},
            {"benchmark": "pack floor (read + JPEG decode + write, 1 core)", "value": round(pairs / t_floor, 1),
             "unit": "pairs/s", "note": f"{n_images / t_floor:.0f} images/s"},
            {"benchmark": "pack dense throughput", "value": round(dense_pairs / t_dense, 1), "unit": "pairs/s",
             "note": "2 loky jobs; bound by writing 6.5 MB per pair"},
            {"benchmark": "projected compact size, 127k DeepFashion pairs",
             "value": round((DEEPFASHION_TRAIN_IMAGES * per_image + DEEPFASHION_PAIRS * 9) / 1e9, 2),
             "unit": "GB", "note": f"{DEEPFASHION_TRAIN_IMAGES} images x {per_image:.0f} B (measured per image)"},
            {"benchmark": "projected dense size, 127k DeepFashion pairs",
             "value": round(DEEPFASHION_PAIRS * dense_bpp / 1e9), "unit": "GB", "note": ""},
            {"benchmark": "projected compact pack time, 127k pairs", "value":
             round(DEEPFASHION_TRAIN_IMAGES / (n_images / t_compact) / 60, 1), "unit": "min",
             "note": "scales with images, not pairs; 1 core (measured rate)"},
            {"benchmark": "projected dense pack time, 127k pairs",
             "value": round(DEEPFASHION_PAIRS / (dense_pairs / t_dense) / 3600, 1), "unit": "h",
             "note": "2 cores, disk-bound"},
        ]
        rows += mask_encodings(work) + image_encodings(work)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return rows


if __name__ == "__main__":
    import os

    os.environ.setdefault("PGKIT_NO_PROGRESS", "1")
    from pgprep.cliutil import echo_table

    out = run(quick="--full" not in sys.argv)
    echo_table([[r["benchmark"], r["value"], r["unit"], r["note"]] for r in out],
               ["benchmark", "value", "unit", "note"])
