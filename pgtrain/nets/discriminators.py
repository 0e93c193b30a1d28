"""Discriminators: PG²'s pair D, the seed's triplet classifier and its WGAN critic.

All share PG²'s DCGAN body: 5x5 stride-2 convs with widths c, 2c, 4c, 8c, 8c (c = 64 for
PG²'s 128-wide generators), normalisation on every layer but the first, LeakyReLU 0.2, a
linear layer to one logit, weights initialised N(0, 0.02). The number of convs follows the
image size (256 -> 5, ending at 8x8; 64 -> 3).

- PairDiscriminator (PG²): scores (I_A, X); real pair (I_A, I_B), fake pair (I_A, G2).
- TripletDiscriminator (seed): scores X given the target pose P_B; I_B is labelled real,
  G2 and I_A fake. The seed does not say what the classifier is conditioned on; an
  unconditional D could not tell I_A (a real photo) from I_B, so we give it P_B: I_A is
  then "a real person in the wrong pose", which teaches D (and through it G2) the pose.
- TripletCritic: the same network used as a WGAN critic (raw scores, no sigmoid; the loss
  decides). `norm="none"` for WGAN-GP, where batch norm breaks the per-sample penalty.
"""

from __future__ import annotations

import torch
from torch import nn

from pgtrain.nets._common import as_hw, auto_levels, check_divisible

NORMS = ("batch", "none")


class _DCGANBody(nn.Module):
    def __init__(self, in_channels: int, image_size, channels: int = 64, *, layers: int | None = None,
                 norm: str = "batch", head_bias: bool = True):
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, not {norm!r}")
        self.image_size = as_hw(image_size)
        self.layers = layers or max(1, auto_levels(image_size) - 1)
        bh, bw = check_divisible(image_size, self.layers + 1, "discriminator")
        widths = [channels * min(2 ** i, 8) for i in range(self.layers)]
        blocks, prev = [], in_channels
        for i, c in enumerate(widths):
            blocks.append(nn.Conv2d(prev, c, 5, stride=2, padding=2, bias=(i == 0 or norm == "none")))
            if i > 0 and norm == "batch":
                blocks.append(nn.BatchNorm2d(c))
            blocks.append(nn.LeakyReLU(0.2))
            prev = c
        self.body = nn.Sequential(*blocks)
        self.head = nn.Linear(prev * bh * bw, 1, bias=head_bias)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.normal_(m.weight, 0.0, 0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)

    def score(self, x):
        return self.head(self.body(x).flatten(1)).squeeze(1)


class PairDiscriminator(_DCGANBody):
    """PG²'s D: forward(I_A, X) -> logit (B,); trained with (I_A, I_B) real, (I_A, G2) fake."""

    def __init__(self, image_size=256, channels: int = 64, *, layers: int | None = None, norm: str = "batch"):
        super().__init__(6, image_size, channels, layers=layers, norm=norm)

    def forward(self, I_A, X):  # noqa: N803
        return self.score(torch.cat([I_A, X], 1))


class TripletDiscriminator(_DCGANBody):
    """The seed's classifier: forward(X, P_B) -> logit (B,); I_B real, G2 and I_A fake."""

    def __init__(self, image_size=256, channels: int = 64, *, layers: int | None = None, norm: str = "batch",
                 pose_channels: int = 18, head_bias: bool = True):
        super().__init__(3 + pose_channels, image_size, channels, layers=layers, norm=norm,
                         head_bias=head_bias)

    def forward(self, X, P_B):  # noqa: N803
        return self.score(torch.cat([X, P_B], 1))


class TripletCritic(TripletDiscriminator):
    """WGAN critic over (X, P_B): unbounded scores; weight clipping or a gradient penalty.

    No bias on the last layer: mean(fake) - mean(real) cancels it, so it could never train.
    """

    def __init__(self, image_size=256, channels: int = 64, *, layers: int | None = None, norm: str = "batch",
                 pose_channels: int = 18):
        super().__init__(image_size, channels, layers=layers, norm=norm, pose_channels=pose_channels,
                         head_bias=False)
