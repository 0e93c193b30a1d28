"""Fréchet Inception Distance on 2048-d pool-3 features, streaming.

Features are accumulated as a count, a sum and a sum of outer products in float64 (a 2048 x
2048 matrix), never as the list of all features; the mean and the unbiased covariance come
from those (identical to `np.cov(feats, rowvar=False)`). The distance is the usual
||mu1 - mu2||² + tr(S1 + S2 - 2 sqrtm(S1 S2)) of the TTUR / pytorch-fid reference code; the
trace of the matrix square root comes from symmetric eigendecompositions (see
`frechet_distance`), equal to `scipy.linalg.sqrtm`'s (tested) and fast for 2048 x 2048.

The real set is the training images by default (REFERENCE: the protocol of the pose-transfer
papers); `pgtrain eval --fid-real test` uses the test targets instead.
"""

from __future__ import annotations

import numpy as np
import torch

from pgtrain.metrics import Metric, MetricContext, ScoreBatch, Skipped, register_metric
from pgtrain.metrics.inception import FEATURE_DIM, batch_features


class GaussianStats:
    """Running mean / covariance of feature vectors."""

    def __init__(self, dim: int = FEATURE_DIM):
        self.n = 0
        self.sum = torch.zeros(dim, dtype=torch.float64)
        self.outer = torch.zeros(dim, dim, dtype=torch.float64)

    def update(self, feats: torch.Tensor) -> None:
        f = feats.double().cpu()
        self.n += f.shape[0]
        self.sum += f.sum(0)
        self.outer += f.T @ f

    def mean_cov(self) -> tuple[np.ndarray, np.ndarray]:
        if self.n < 2:
            raise ValueError(f"FID needs at least 2 images, got {self.n}")
        mu = self.sum / self.n
        cov = (self.outer - self.n * torch.outer(mu, mu)) / (self.n - 1)
        return mu.numpy(), cov.numpy()


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """||mu1 - mu2||² + tr(S1) + tr(S2) - 2 tr(sqrtm(S1 S2)).

    tr(sqrtm(S1 S2)) is computed as the sum of the square roots of the eigenvalues of the
    symmetric matrix sqrt(S1) S2 sqrt(S1), which has the same spectrum as S1 S2: two
    `eigh` calls instead of scipy's general `sqrtm`, exact for singular covariances (fewer
    images than 2048) where `sqrtm` is slow and needs an eps offset. Tests check it
    against `scipy.linalg.sqrtm`.
    """
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    s1, s2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    s1, s2 = (s1 + s1.T) / 2, (s2 + s2.T) / 2
    w, v = np.linalg.eigh(s1)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    m = root1 @ s2 @ root1
    tr_covmean = np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean)


class _FIDMetric(Metric):
    def __init__(self, ctx: MetricContext):
        self.ctx = ctx
        self.stats = GaussianStats()

    def update(self, batch: ScoreBatch) -> None:
        self.stats.update(batch_features(self.ctx, batch))

    def result(self):
        if self.ctx.fid_reference is None:
            return Skipped("no real set given for FID")
        if self.stats.n < 2:
            return Skipped(f"FID needs at least 2 images, got {self.stats.n}")
        mu_r, sigma_r = self.ctx.fid_reference()
        mu, sigma = self.stats.mean_cov()
        out = {"fid": frechet_distance(mu, sigma, mu_r, sigma_r), "fid_images": self.stats.n}
        return out


@register_metric("fid", help="FID vs the real set (training images by default), 2015-12-05 Inception pool-3.", kind="set")
def _fid(ctx: MetricContext):
    return _FIDMetric(ctx)
