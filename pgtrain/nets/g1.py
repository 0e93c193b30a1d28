"""G1: PG²'s Stage-1 generator, as released.

Source: models256.py GeneratorCNN_Pose_UAEAfterResidual_256 (DeepFashion, 256x256) and its
twin models.py GeneratorCNN_Pose_UAEAfterResidual (Market-1501, 128x64), called from
trainer256.py / trainer.py with activation_fn=tf.nn.relu, hidden_num=128, z_num=64. Every
conv is slim.conv2d (bias, ReLU unless noted, Glorot-uniform init, "SAME" padding).

    input concat(I_A, P_B)                              3 + 18 channels
    3x3 conv -> n                                       (n = hidden_num = `channels`)
    level k = 0..L-1 (width n(k+1)):  x + conv3x3(conv3x3(x))   -> skip_k
        between levels: 3x3 stride-2 conv -> n(k+2)
    FC (linear) to z_num = `fc_dim`, FC (linear) to the bottom map with n channels
    decoder step j = 0..L-1: x = concat(x, skip_{L-1-j});  x + conv3x3(conv3x3(x)) at the
        concatenated width;  then (j < L-1) nearest x2 + 1x1 conv -> n(L-1-j)
    3x3 conv -> 3, no activation (no tanh)

At 256x256, n = 128: L = 6, bottom 8x8x768, decoder widths 896, 1280, 1024, 768, 512, 256.
"""

from __future__ import annotations

import torch
from torch import nn

from pgtrain.nets._common import (
    SameConv2d,
    as_hw,
    encode,
    glorot_init,
    pg2_levels,
    same_size,
    upscale_to,
)


class ResidualUnit(nn.Module):
    """models256.py: `res = x; x = conv(conv(x)); x = x + res` — two 3x3 convs, each with ReLU."""

    def __init__(self, ch: int):
        super().__init__()
        self.conv1 = SameConv2d(ch, ch, 3)
        self.conv2 = SameConv2d(ch, ch, 3)

    def forward(self, x):
        return x + torch.relu(self.conv2(torch.relu(self.conv1(x))))


class G1(nn.Module):
    """Stage-1 generator: forward(I_A (B,3,H,W), P_B (B,18,H,W)) -> coarse I_B estimate (B,3,H,W)."""

    def __init__(self, image_size=256, channels: int = 128, *, fc_dim: int = 64,
                 levels: int | None = None, pose_channels: int = 18):
        super().__init__()
        n = channels
        self.image_size = as_hw(image_size)
        self.levels = L = levels or pg2_levels(image_size)  # noqa: N806
        h, w = self.image_size
        self.bottom = (n, same_size(h, L)[-1], same_size(w, L)[-1])
        widths = [n * (k + 1) for k in range(L)]
        self.stem = SameConv2d(3 + pose_channels, n, 3)
        self.enc = nn.ModuleList(ResidualUnit(c) for c in widths)
        self.down = nn.ModuleList(SameConv2d(widths[k], widths[k + 1], 3, stride=2) for k in range(L - 1))
        self.fc_in = nn.Linear(widths[-1] * self.bottom[1] * self.bottom[2], fc_dim)  # z, linear
        self.fc_out = nn.Linear(fc_dim, n * self.bottom[1] * self.bottom[2])         # linear
        # decoder step j works at width (input + skip): n + nL, then n(L-j) + n(L-j) ...
        dec_in = [n] + [n * (L - j) for j in range(1, L)]
        self.dec = nn.ModuleList(ResidualUnit(dec_in[j] + widths[L - 1 - j]) for j in range(L))
        self.up = nn.ModuleList(
            nn.Conv2d(dec_in[j] + widths[L - 1 - j], n * (L - 1 - j), 1) for j in range(L - 1))
        self.to_rgb = SameConv2d(dec_in[-1] + widths[0], 3, 3)
        glorot_init(self)

    def forward(self, I_A, P_B):  # noqa: N803 - paper symbols
        x, skips = encode(torch.relu(self.stem(torch.cat([I_A, P_B], 1))), self.enc, self.down)
        z = self.fc_in(x.flatten(1))
        x = self.fc_out(z).view(-1, *self.bottom)
        for j, unit in enumerate(self.dec):
            x = unit(torch.cat([x, skips[self.levels - 1 - j]], 1))
            if j < self.levels - 1:
                x = torch.relu(self.up[j](upscale_to(x, skips[self.levels - 2 - j])))
        return self.to_rgb(x)
