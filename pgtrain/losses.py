"""Losses of PG² and the seed, named after the paper's terms.

- pose_mask_l1: the seed's L = ||(G - I_B) * (1 + M_B)||_1, as a mean over pixels and
  channels (PG²'s "L1 + masked L1"): body pixels count twice.
- BCE adversarial losses on logits (PG² pair D, triplet D): D pushes real to 1 and every
  fake set to 0 (the triplet's two fake sets, G2 and I_A, are averaged); G pushes its fake to 1.
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


def discriminator_loss(kind: str, real: torch.Tensor, fakes: Sequence[torch.Tensor]) -> torch.Tensor:
    """D's loss: real scores labelled 1, each fake set labelled 0 (fake sets averaged)."""
    if kind == "bce":
        fake = sum(F.binary_cross_entropy_with_logits(f, torch.zeros_like(f)) for f in fakes) / len(fakes)
        return F.binary_cross_entropy_with_logits(real, torch.ones_like(real)) + fake
    if kind == "wasserstein":
        return sum(f.mean() for f in fakes) / len(fakes) - real.mean()
    raise ValueError(f"adversarial loss must be one of {ADVERSARIAL}, not {kind!r}")


def generator_loss(kind: str, fake: torch.Tensor) -> torch.Tensor:
    """G's adversarial loss on D's scores of G2's output (non-saturating BCE or -critic)."""
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
