"""What PG²'s released networks share: sizing rules, TF "SAME" convolutions and initialisation.

The released code is TensorFlow 1.x (slim and Gulrajani's tflib). Three of its conventions
change numbers and are reproduced here:

- Level count from the image *height*: `repeat_num = int(log2(H)) - 2` (trainer.py,
  PG2._common_init): 256 -> 6 levels (8x8 at the bottom), 128x64 (Market) -> 5 (8x4).
- "SAME" padding: a stride-2 convolution on an even side pads (k-1)//2 - 1 before and the
  rest after (3x3: 0 before, 1 after; 5x5: 1 before, 2 after), not symmetrically as
  PyTorch's `padding=k//2` does; odd sides give ceil(n/2). `SameConv2d` pads like TF.
- Initialisation: slim.conv2d / fully_connected use Glorot-uniform weights and zero biases;
  tflib (the discriminator) draws weights uniformly with standard deviation 0.02.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from pgprep.errors import PgkitError


def as_hw(image_size) -> tuple[int, int]:
    """`256` or `(256, 176)` -> `(H, W)`."""
    if isinstance(image_size, int):
        return image_size, image_size
    h, w = (int(v) for v in image_size)
    return h, w


def pg2_levels(image_size) -> int:
    """G1's residual levels: int(log2(H)) - 2 (trainer.py: repeat_num); 256 -> 6, 128 -> 5, 64 -> 4."""
    h, w = as_hw(image_size)
    levels = int(math.log2(h)) - 2
    if levels < 3 or min(h, w) < 16:
        raise PgkitError(None, f"image size {h}x{w} is too small for PG²'s networks (height >= 32, width >= 16)")
    return levels


def same_size(n: int, levels: int) -> list[int]:
    """Side length at each level under TF "SAME" stride-2 convs: n, ceil(n/2), ..."""
    out = [n]
    for _ in range(levels - 1):
        out.append(-(-out[-1] // 2))
    return out


class SameConv2d(nn.Conv2d):
    """nn.Conv2d with TensorFlow's "SAME" padding (asymmetric when stride > 1)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, bias: bool = True):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride,
                         padding=(kernel_size // 2 if stride == 1 else 0), bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride[0] == 1:
            return super().forward(x)
        k, s = self.kernel_size[0], self.stride[0]
        pads = []
        for n in (x.shape[-1], x.shape[-2]):  # F.pad order: last dim first
            total = max((-(-n // s) - 1) * s + k - n, 0)
            pads += [total // 2, total - total // 2]
        return super().forward(F.pad(x, pads))


def glorot_init(module: nn.Module) -> None:
    """slim's defaults: xavier_initializer() (Glorot uniform) weights, zero biases."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def tflib_init(module: nn.Module, stdev: float = 0.02) -> None:
    """tflib with set_weights_stdev(0.02): uniform(-stdev*sqrt(3), stdev*sqrt(3)), zero biases;
    batch norm scale 1, offset 0."""
    bound = stdev * math.sqrt(3.0)
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.uniform_(m.weight, -bound, bound)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d) and m.affine:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def encode(x: torch.Tensor, levels: nn.ModuleList, down: nn.ModuleList) -> tuple[torch.Tensor, list]:
    """The encoder loop G1 and G2 share (models*.py): per level its block, whose output is the
    skip, then (between levels) the stride-2 conv with ReLU. Returns (bottom, skips)."""
    skips = []
    for k, block in enumerate(levels):
        x = block(x)
        skips.append(x)
        if k < len(down):
            x = torch.relu(down[k](x))
    return x, skips


def upscale_to(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """models.py `upscale`: nearest-neighbour x2. Cropped to the skip's size, which only
    matters for sides not divisible by 2**(levels-1) (e.g. 176; pgkit's extension: the
    released code reshapes to fixed sizes and cannot run there)."""
    x = F.interpolate(x, scale_factor=2, mode="nearest")
    return x[..., : like.shape[-2], : like.shape[-1]]
