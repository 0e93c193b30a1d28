"""G1: PG²'s residual U-net with a fully connected bottleneck (Stage 1).

Input concat(I_A, P_B) (3 + 18 channels), output an RGB image with no tanh (PG²). Encoder:
a 3x3 conv to `channels`, then one residual block per level (two 3x3 convs + identity) with
widths channels * (1, 2, ..., L) and a stride-2 3x3 conv between levels; at the coarsest
level (8x8 at 256x256, L = 6) the features go through a fully connected bottleneck of
`fc_dim` units and back to (channels, 8, 8). The decoder mirrors the encoder: concatenate
the skip, 1x1 conv, residual block, nearest x2 upsampling + 1x1 conv. ReLU, no normalisation.
"""

from __future__ import annotations

import torch
from torch import nn

from pgtrain.nets._common import as_hw, auto_levels, check_divisible


class ResBlock(nn.Module):
    """x + relu(conv(relu(conv(x)))): PG²'s residual unit (no normalisation)."""

    def __init__(self, ch: int):
        super().__init__()
        self.conv1 = nn.Conv2d(ch, ch, 3, padding=1)
        self.conv2 = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x):
        return x + torch.relu(self.conv2(torch.relu(self.conv1(x))))


def unet_encode(net: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The encoder pass shared by G1 and G2: a residual block per level, stride-2 convs
    between levels. Returns the coarsest features and the skip of every level."""
    skips = []
    for i in range(net.levels):
        x = net.enc[i](x)
        skips.append(x)
        if i < net.levels - 1:
            x = torch.relu(net.down[i](x))
    return x, skips


def unet_decode(net: nn.Module, x: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
    """The decoder pass shared by G1 and G2: per level, concatenate the skip, 1x1 merge conv,
    residual block, then nearest x2 upsampling + 1x1 conv."""
    for i in reversed(range(net.levels)):
        x = torch.relu(net.merge[i](torch.cat([x, skips[i]], 1)))
        x = net.dec[i](x)
        if i > 0:
            x = net.up[i - 1](nn.functional.interpolate(x, scale_factor=2, mode="nearest"))
    return x


class G1(nn.Module):
    """Stage-1 generator: forward(I_A (B,3,H,W), P_B (B,18,H,W)) -> coarse I_B estimate (B,3,H,W).

    Sized from `image_size` and the base width `channels` (PG²: 256, 128 -> 6 levels,
    768 channels at 8x8, FC 64). `levels=None` picks the level count that ends at ~8x8.
    """

    def __init__(self, image_size=256, channels: int = 128, *, fc_dim: int = 64,
                 levels: int | None = None, pose_channels: int = 18):
        super().__init__()
        self.image_size = as_hw(image_size)
        self.levels = levels or auto_levels(image_size)
        bh, bw = check_divisible(image_size, self.levels, "G1")
        widths = [channels * (i + 1) for i in range(self.levels)]
        self.stem = nn.Conv2d(3 + pose_channels, channels, 3, padding=1)
        self.enc = nn.ModuleList(ResBlock(c) for c in widths)
        self.down = nn.ModuleList(
            nn.Conv2d(widths[i], widths[i + 1], 3, stride=2, padding=1) for i in range(self.levels - 1))
        self.bottom = (channels, bh, bw)
        self.fc_in = nn.Linear(widths[-1] * bh * bw, fc_dim)
        self.fc_out = nn.Linear(fc_dim, channels * bh * bw)
        # decoder level i merges (input width, skip width) -> widths[i]
        dec_in = [channels if i == self.levels - 1 else widths[i] for i in range(self.levels)]
        self.merge = nn.ModuleList(nn.Conv2d(dec_in[i] + widths[i], widths[i], 1) for i in range(self.levels))
        self.dec = nn.ModuleList(ResBlock(c) for c in widths)
        self.up = nn.ModuleList(nn.Conv2d(widths[i + 1], widths[i], 1) for i in range(self.levels - 1))
        self.to_rgb = nn.Conv2d(channels, 3, 3, padding=1)

    def forward(self, I_A, P_B):  # noqa: N803 - paper symbols
        x, skips = unet_encode(self, torch.relu(self.stem(torch.cat([I_A, P_B], 1))))
        z = self.fc_in(x.flatten(1))  # linear bottleneck, as in PG²
        x = self.fc_out(z).view(-1, *self.bottom)
        return self.to_rgb(unet_decode(self, x, skips))
