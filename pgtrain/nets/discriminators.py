"""The discriminator: PG²'s DCGAN D, as released, and what it is fed in each preset.

Source: wgan_gp_128x64.py WGAN_GP.DCGANDiscriminator_256 (DeepFashion; DCGANDiscriminator
for Market's 128x64), built in trainer256.py with DIM=64 and called as Dis(x, input_dim=3):

    5x5 stride-2 convs, widths d, 2d, 4d, 8d, 8d ("SAME", bias on every conv);
    batch norm after convs 2..5; LeakyReLU 0.2; linear from the last map to 1 logit.
    Init (tflib, set_weights_stdev(0.02)): uniform with std 0.02, zero biases.

tflib's fused batch norm always normalises with the statistics of the batch it is given
(no moving averages), so `track_running_stats=False`; this is why the released trainer runs
D *once* over the concatenation [I_B, G2, I_A]: the three sets share batch statistics.
The conv count follows the image height: int(log2(H)) - 3 (256 -> 5, 128 -> 4).

What D sees (in_channels) is the preset's choice, not the network's:
- 3 channels, one image: the released PG² D and the seed's "triplet" classifier
  (I_B labelled real; G2's output and I_A labelled fake);
- 6 channels, (I_A, X): the pair D the seed's text describes for its "G1+G2+D" row;
- 21 channels, (X, P_B): pgkit's pose-conditioned extension (preset triplet-pose).
"""

from __future__ import annotations

import torch
from torch import nn

from pgtrain.nets._common import SameConv2d, as_hw, pg2_levels, same_size, tflib_init

NORMS = ("batch", "none")


class DCGANDiscriminator(nn.Module):
    """forward(x (B, in_channels, H, W)) -> logits (B,)."""

    def __init__(self, in_channels: int = 3, image_size=256, channels: int = 64, *,
                 layers: int | None = None, norm: str = "batch"):
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, not {norm!r}")
        self.in_channels = in_channels
        self.image_size = as_hw(image_size)
        self.layers = layers or pg2_levels(image_size) - 1
        widths = [channels * min(2 ** i, 8) for i in range(self.layers)]
        blocks, prev = [], in_channels
        for i, c in enumerate(widths):
            blocks.append(SameConv2d(prev, c, 5, stride=2))
            if i > 0 and norm == "batch":
                blocks.append(nn.BatchNorm2d(c, eps=1e-5, track_running_stats=False))
            blocks.append(nn.LeakyReLU(0.2))
            prev = c
        self.body = nn.Sequential(*blocks)
        h, w = (same_size(s, self.layers + 1)[-1] for s in self.image_size)
        self.head = nn.Linear(prev * h * w, 1)
        tflib_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x).flatten(1)).squeeze(1)
