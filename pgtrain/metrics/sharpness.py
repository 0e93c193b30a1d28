"""Sharpness: the seed's "sharpness via gradients" as a number.

Mean Sobel gradient magnitude of the luminance in [0, 1] (BT.601 weights, as OpenCV's
RGB2GRAY), divided by 8 so it is the derivative per pixel, replicate borders — the same
definition as `pgtrain figures` (figures.gradient_magnitude, computed there with OpenCV).
Higher is sharper; compare a model's number with the real targets' row.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pgtrain.metrics import MeanOf, MetricContext, ScoreBatch, register_metric

_SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]) / 8.0
_LUMA = torch.tensor([0.299, 0.587, 0.114])


def gradient_magnitude(images_u8: torch.Tensor) -> torch.Tensor:
    """(N,3,H,W) uint8-valued floats -> (N,H,W) gradient magnitude of the luminance."""
    grey = (images_u8 * _LUMA.to(images_u8).view(1, 3, 1, 1)).sum(1, keepdim=True).round() / 255.0
    k = torch.stack([_SOBEL_X, _SOBEL_X.t()]).unsqueeze(1).to(grey)
    g = F.conv2d(F.pad(grey, (1, 1, 1, 1), mode="replicate"), k)
    return g.pow(2).sum(1).sqrt()


@register_metric("sharpness", help="mean Sobel gradient magnitude of the luminance (higher = sharper)")
def _sharpness(ctx: MetricContext):
    return MeanOf("sharpness", lambda b: gradient_magnitude(b.fake_u8).flatten(1).mean(1))


__all__ = ["gradient_magnitude", "ScoreBatch"]
