"""Sizing rules shared by the networks: how many levels an image size affords."""

from __future__ import annotations

import math

from pgprep.errors import PgkitError


def as_hw(image_size) -> tuple[int, int]:
    """`256` or `(256, 176)` -> `(H, W)`."""
    if isinstance(image_size, int):
        return image_size, image_size
    h, w = (int(v) for v in image_size)
    return h, w


def auto_levels(image_size, bottom: int = 8) -> int:
    """Number of resolution levels so the coarsest is about `bottom` pixels (PG²: 256 -> 6, 8x8)."""
    h, w = as_hw(image_size)
    side = min(h, w)
    if side < bottom:
        raise PgkitError(None, f"image size {h}x{w} is smaller than the {bottom}px bottleneck")
    return int(math.floor(math.log2(side / bottom))) + 1


def check_divisible(image_size, levels: int, what: str) -> tuple[int, int]:
    """The bottom resolution after `levels - 1` halvings; both sides must divide exactly."""
    h, w = as_hw(image_size)
    f = 2 ** (levels - 1)
    if h % f or w % f:
        raise PgkitError(None, f"{what}: image size {h}x{w} is not divisible by {f} ({levels} levels)")
    return h // f, w // f
