"""G2: PG²'s Stage-2 generator, as released: a conditional U-net predicting a difference map.

Source: models.py UAE_noFC_AfterNoise (DeepFashion, called from models256.py
GeneratorCNN_Pose_UAEAfterResidual_UAEnoFCAfterNoise_256) and UAE_noFC_After2Noise (Market,
from GeneratorCNN_Pose_UAEAfterResidual_UAEnoFCAfter2Noise); both with repeat_num - 2
levels, noise_dim=0 and ReLU (trainer256.py / trainer.py build_model).

    input concat(G1 output, I_A)                         6 channels
    3x3 conv -> n
    level k = 0..L-1: two 3x3 convs -> n(k+1) (no residual) -> skip_k;
        between levels: 3x3 stride-2 conv keeping the width
    no FC; decoder step j: concat(x, skip_{L-1-j}), two 3x3 convs -> n, nearest x2
    3x3 conv -> 3, no activation = DiffMap;   G2 output = G1 output + DiffMap

`skips="all"` is the DeepFashion variant (every level's skip, the deepest one included);
`skips="inner"` the Market one (no skip at the top level, the others as in
UAE_noFC_After2Noise). 256x256, n = 128: L = 4, widths 128..512.
"""

from __future__ import annotations

import torch
from torch import nn

from pgtrain.nets._common import SameConv2d, as_hw, encode, glorot_init, pg2_levels, upscale_to

SKIPS = ("all", "inner")


def default_skips(image_size) -> str:
    """The released code pairs the Market variant with Market's 128x64 images only."""
    return "inner" if as_hw(image_size) == (128, 64) else "all"


class G2(nn.Module):
    """forward(g1_out (B,3,H,W), I_A (B,3,H,W)) -> g1_out + DiffMap (B,3,H,W)."""

    def __init__(self, image_size=256, channels: int = 128, *, levels: int | None = None,
                 skips: str | None = None, diffmap_init: float = 1.0):
        super().__init__()
        n = channels
        self.image_size = as_hw(image_size)
        self.levels = L = levels or pg2_levels(image_size) - 2  # noqa: N806 - repeat_num - 2
        self.skips = skips or default_skips(image_size)
        if self.skips not in SKIPS:
            raise ValueError(f"skips must be one of {SKIPS}, not {self.skips!r}")
        widths = [n * (k + 1) for k in range(L)]
        self.stem = SameConv2d(6, n, 3)
        self.enc = nn.ModuleList(
            nn.Sequential(SameConv2d(n if k == 0 else widths[k - 1], widths[k], 3), nn.ReLU(),
                          SameConv2d(widths[k], widths[k], 3), nn.ReLU()) for k in range(L))
        self.down = nn.ModuleList(SameConv2d(widths[k], widths[k], 3, stride=2) for k in range(L - 1))
        dec_in = []
        for j in range(L):
            x_width = widths[-1] if j == 0 else n
            dec_in.append(x_width + (widths[L - 1 - j] if self._has_skip(j) else 0))
        self.dec = nn.ModuleList(
            nn.Sequential(SameConv2d(c, n, 3), nn.ReLU(), SameConv2d(n, n, 3), nn.ReLU()) for c in dec_in)
        self.to_diff = SameConv2d(n, 3, 3)
        glorot_init(self)
        if diffmap_init != 1.0:  # pgkit option, not in PG²: see presets.Options.diffmap_init
            with torch.no_grad():
                self.to_diff.weight.mul_(diffmap_init)

    def _has_skip(self, j: int) -> bool:
        """Decoder step j concatenates a skip: always ("all"); not at the top level ("inner")."""
        return self.skips == "all" or j < self.levels - 1

    def diff_map(self, g1_out, I_A):  # noqa: N803
        x, skips = encode(torch.relu(self.stem(torch.cat([g1_out, I_A], 1))), self.enc, self.down)
        for j, block in enumerate(self.dec):
            skip = skips[self.levels - 1 - j]
            if self._has_skip(j):
                x = torch.cat([x, skip], 1)
            x = block(x)
            if j < self.levels - 1:
                x = upscale_to(x, skips[self.levels - 2 - j])
        return self.to_diff(x)

    def forward(self, g1_out, I_A):  # noqa: N803
        return g1_out + self.diff_map(g1_out, I_A)
