"""G2: PG²'s Stage-2 generator, a conditional U-net that predicts a difference map.

Input concat(G1 output, I_A) (6 channels); 4 encoder levels (widths channels * 1..4, PG²'s
128..512), no FC bottleneck, decoder convs of `channels`. The output is G1 + DiffMap, so G2
starts close to G1 and learns the missing detail. The last conv is initialised small
(x0.1) for the same reason, but not to zero: a zero layer would block every other
parameter's gradient on the first step.
"""

from __future__ import annotations

import torch
from torch import nn

from pgtrain.nets._common import as_hw, auto_levels, check_divisible
from pgtrain.nets.g1 import ResBlock, unet_decode, unet_encode


class G2(nn.Module):
    """forward(g1_out (B,3,H,W), I_A (B,3,H,W)) -> g1_out + DiffMap (B,3,H,W)."""

    def __init__(self, image_size=256, channels: int = 128, *, levels: int | None = None):
        super().__init__()
        self.image_size = as_hw(image_size)
        self.levels = levels or min(4, auto_levels(image_size))
        check_divisible(image_size, self.levels, "G2")
        widths = [channels * (i + 1) for i in range(self.levels)]
        self.stem = nn.Conv2d(6, channels, 3, padding=1)
        self.enc = nn.ModuleList(ResBlock(c) for c in widths)
        self.down = nn.ModuleList(
            nn.Conv2d(widths[i], widths[i + 1], 3, stride=2, padding=1) for i in range(self.levels - 1))
        dec_in = [widths[-1] if i == self.levels - 1 else channels for i in range(self.levels)]
        self.merge = nn.ModuleList(nn.Conv2d(dec_in[i] + widths[i], channels, 1) for i in range(self.levels))
        self.dec = nn.ModuleList(ResBlock(channels) for _ in range(self.levels))
        self.up = nn.ModuleList(nn.Conv2d(channels, channels, 1) for _ in range(self.levels - 1))
        self.to_diff = nn.Conv2d(channels, 3, 3, padding=1)
        with torch.no_grad():
            self.to_diff.weight.mul_(0.1)
            self.to_diff.bias.zero_()

    def diff_map(self, g1_out, I_A):  # noqa: N803
        x, skips = unet_encode(self, torch.relu(self.stem(torch.cat([g1_out, I_A], 1))))
        return self.to_diff(unet_decode(self, x, skips))  # no FC bottleneck in G2

    def forward(self, g1_out, I_A):  # noqa: N803
        return g1_out + self.diff_map(g1_out, I_A)
