"""Losses of PG² and the seed, named after the paper's terms.

- pose_mask_l1: the seed's L = ||(G - I_B) * (1 + M_B)||_1, as a mean over pixels and
  channels; PG²'s trainer256.py writes it as mean|G2 - I_B| + mean(|G2 - I_B| * M_B), the
  same number. `l1` is plain mean|G1 - I_B|, the released Stage-1 loss (g_loss1).
- BCE adversarial losses on logits (wgan_gp_128x64.py 'dcgan' mode, trainer256.py
  _gan_loss): D's loss = (BCE(real, 1) + BCE(fakes, 0)) / 2, the fake sets (triplet: G2 and
  I_A) pooled into one mean; G pushes its fake scores to 1.
- Wasserstein losses (WGAN critic): critic minimises mean(fake) - mean(real); G minimises
  -mean(fake). Weight clipping and the gradient penalty keep the critic Lipschitz.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

ADVERSARIAL = ("bce", "wasserstein")


def pose_mask_l1(x: torch.Tensor, I_B: torch.Tensor, M_B: torch.Tensor) -> torch.Tensor:  # noqa: N803
    """mean(|x - I_B| * (1 + M_B)); M_B (B,1,H,W) in {0,1} broadcasts over the channels."""
    return ((x - I_B).abs() * (1.0 + M_B)).mean()


def masked_l1(x: torch.Tensor, I_B: torch.Tensor, M_B: torch.Tensor) -> torch.Tensor:  # noqa: N803
    """Mean |x - I_B| over body pixels only (the evaluation number; 0 if the mask is empty)."""
    m = M_B.expand_as(x)
    return ((x - I_B).abs() * m).sum() / m.sum().clamp(min=1.0)


def l1(x: torch.Tensor, I_B: torch.Tensor, M_B: torch.Tensor | None = None) -> torch.Tensor:  # noqa: N803
    """mean|x - I_B|: PG²'s released Stage-1 loss (trainer256.py g_loss1; the mask is unused)."""
    return (x - I_B).abs().mean()


STAGE1 = {"pose-mask-l1": pose_mask_l1, "l1": l1}


def discriminator_loss(kind: str, real: torch.Tensor, fakes: Sequence[torch.Tensor]) -> torch.Tensor:
    """D's loss: real scores labelled 1, the fake sets (pooled) labelled 0."""
    fake = torch.cat(list(fakes))
    if kind == "bce":
        return (F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
                + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))) / 2
    if kind == "wasserstein":
        return fake.mean() - real.mean()
    raise ValueError(f"adversarial loss must be one of {ADVERSARIAL}, not {kind!r}")


def generator_loss(kind: str, fake: torch.Tensor) -> torch.Tensor:
    """G's adversarial loss on D's scores of its fakes (non-saturating BCE or -critic)."""
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))
    if kind == "wasserstein":
        return -fake.mean()
    raise ValueError(f"adversarial loss must be one of {ADVERSARIAL}, not {kind!r}")


def gradient_penalty(score: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor,
                     fake: torch.Tensor) -> torch.Tensor:
    """WGAN-GP: mean((||grad_x score(x)||_2 - 1)^2) at random points between real and fake."""
    eps = torch.rand(real.shape[0], 1, 1, 1, device=real.device, dtype=real.dtype)
    x = (eps * real + (1 - eps) * fake.detach()).requires_grad_(True)
    (grad,) = torch.autograd.grad(score(x).sum(), x, create_graph=True)
    return ((grad.flatten(1).norm(2, dim=1) - 1) ** 2).mean()


@torch.no_grad()
def clip_weights(module: nn.Module, c: float) -> None:
    """Classic WGAN: clamp every critic parameter to [-c, c] after each critic step."""
    for p in module.parameters():
        p.clamp_(-c, c)
