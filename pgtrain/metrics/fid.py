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
    """Running mean / covariance of feature vectors.

    While there are at most `dim` vectors they are also kept (as much memory as the outer-
    product sum), so that FID of a small set can use the low-rank form (`factor`)."""

    def __init__(self, dim: int = FEATURE_DIM):
        self.dim = dim
        self.n = 0
        self.sum = torch.zeros(dim, dtype=torch.float64)
        self.outer = torch.zeros(dim, dim, dtype=torch.float64)
        self.rows: list[torch.Tensor] | None = []

    def update(self, feats: torch.Tensor) -> None:
        f = feats.double().cpu()
        self.n += f.shape[0]
        self.sum += f.sum(0)
        self.outer += f.T @ f
        if self.rows is not None:
            self.rows = self.rows + [f] if self.n <= self.dim else None

    def mean_cov(self) -> tuple[np.ndarray, np.ndarray]:
        if self.n < 2:
            raise ValueError(f"FID needs at least 2 images, got {self.n}")
        mu = self.sum / self.n
        cov = (self.outer - self.n * torch.outer(mu, mu)) / (self.n - 1)
        return mu.numpy(), cov.numpy()

    def factor(self) -> np.ndarray | None:
        """A (n, dim) with cov = A^T A, when the vectors were kept (n <= dim), else None."""
        if not self.rows:
            return None
        f = torch.cat(self.rows)
        return ((f - f.mean(0)) / np.sqrt(self.n - 1)).numpy()


def sqrt_psd(sigma: np.ndarray) -> np.ndarray:
    """Symmetric square root of a covariance matrix (negative round-off eigenvalues -> 0)."""
    sigma = (sigma + sigma.T) / 2
    w, v = np.linalg.eigh(sigma)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(mu1, sigma1, mu2, sigma2, *, factor1: np.ndarray | None = None,
                     root2: np.ndarray | None = None) -> float:
    """||mu1 - mu2||² + tr(S1) + tr(S2) - 2 tr(sqrtm(S1 S2)).

    tr(sqrtm(S1 S2)) is the sum of the square roots of the eigenvalues of the symmetric
    sqrt(S2) S1 sqrt(S2), which has the spectrum of S1 S2 — or, when S1 = A^T A is given by
    its factor A (n x d, few images), of the small n x n matrix A S2 A^T. Symmetric
    eigendecompositions replace scipy's general `sqrtm`: exact for singular covariances
    (fewer images than dimensions), where `sqrtm` is slow and needs an eps offset; tests
    check both forms against `scipy.linalg.sqrtm`. `root2` = sqrt_psd(S2) may be passed in
    to reuse it across several S1.
    """
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    s1, s2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    if factor1 is not None:
        m = factor1 @ s2 @ factor1.T
    else:
        r2 = sqrt_psd(s2) if root2 is None else root2
        m = r2 @ s1 @ r2
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
        factor = self.stats.factor()
        root = None
        if factor is None:   # the real set's square root serves every row
            key = ("fid_root", id(sigma_r))
            if key not in self.ctx.cache:
                self.ctx.cache[key] = sqrt_psd(sigma_r)
            root = self.ctx.cache[key]
        fid = frechet_distance(mu, sigma, mu_r, sigma_r, factor1=factor, root2=root)
        return {"fid": fid, "fid_images": self.stats.n}


@register_metric("fid", help="FID vs the real set (training images by default), 2015-12-05 Inception pool-3.", kind="set")
def _fid(ctx: MetricContext):
    return _FIDMetric(ctx)
