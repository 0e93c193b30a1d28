"""How a published script brought images to the size it scored: crop, resize, white padding.

A `Bring` is applied to uint8-valued float tensors (N, 3, H, W) (masks: (N, 1, H, W)) and
returns the same kind of tensor, so every metric after it sees what the script saw:

- `size` (H, W): the size the script scored at; `None` keeps every image as it is.
- `rule`: how an image of another size reaches `size`: "crop" (centre columns: the standard
  benchmark's 256x256 -> 256x176 is columns 40..216) or "resize" with `filter`.
- `filter`: "cv2-linear" (cv2.resize's default INTER_LINEAR on uint8, rounded back to
  uint8), "cv2-linear-float" (the same on float32 values, not rounded: PIDM resized the
  float arrays imageio gave it), "pil-bicubic" (PIL's BICUBIC, which antialiases when shrinking, uint8 result),
  "pil-bilinear".
- `pad_white`: columns of 255 added on each side afterwards (PATN's `addBounding`: 40 turns
  176 back into 256).

Only the sizes in `accepts` are brought; anything else makes the protocol skip with a reason
(a DeepFashion script cannot say anything about 128x64 Market images).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

FILTERS = ("cv2-linear", "cv2-linear-float", "pil-bicubic", "pil-bilinear")


@dataclass(frozen=True)
class Bring:
    size: tuple[int, int] | None = None
    rule: str = "crop"
    filter: str = "cv2-linear"
    pad_white: int = 0
    accepts: tuple[tuple[int, int], ...] | None = None   # None: any size

    def problem(self, hw: tuple[int, int]) -> str | None:
        """Why images of `hw` cannot be scored this way, or None."""
        if self.accepts is not None and tuple(hw) not in self.accepts and tuple(hw) != self.size:
            sizes = ", ".join(f"{h}x{w}" for h, w in self.accepts)
            return f"scores {sizes} images; these are {hw[0]}x{hw[1]}"
        if self.size and self.rule == "crop" and (hw[0] != self.size[0] or hw[1] < self.size[1]):
            return f"crops to {self.size[0]}x{self.size[1]}; cannot crop {hw[0]}x{hw[1]}"
        return None

    def key(self) -> tuple:
        return (self.size, self.rule if self.size else None, self.filter if self.rule == "resize" else None,
                self.pad_white)

    def __call__(self, x: torch.Tensor, is_mask: bool = False) -> torch.Tensor:
        h, w = x.shape[-2:]
        if self.size and (h, w) != tuple(self.size):
            th, tw = self.size
            if self.rule == "crop":
                left = (w - tw) // 2
                top = (h - th) // 2
                x = x[..., top:top + th, left:left + tw]
            elif is_mask:
                x = F.interpolate(x.float(), size=(th, tw), mode="nearest")
            else:
                x = resize_u8(x, (th, tw), self.filter)
        if self.pad_white:
            x = F.pad(x, (self.pad_white, self.pad_white, 0, 0), value=0.0 if is_mask else 255.0)
        return x


def resize_u8(x: torch.Tensor, size: tuple[int, int], filter: str) -> torch.Tensor:
    """Resize uint8-valued (N, C, H, W) images with a library's filter, uint8 result as float."""
    if filter not in FILTERS:
        raise ValueError(f"unknown resize filter {filter!r}; known: {FILTERS}")
    th, tw = size
    if filter == "cv2-linear-float":
        arr = x.detach().to("cpu", torch.float32).permute(0, 2, 3, 1).numpy()
        out = np.stack([cv2.resize(img, (tw, th), interpolation=cv2.INTER_LINEAR).reshape(th, tw, -1)
                        for img in arr]) if len(arr) else np.zeros((0, th, tw, arr.shape[3]), np.float32)
        return torch.from_numpy(out).permute(0, 3, 1, 2).to(device=x.device)
    arr = x.detach().to("cpu").round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    out = np.empty((arr.shape[0], th, tw, arr.shape[3]), np.uint8)
    for i, img in enumerate(arr):
        if filter == "cv2-linear":
            r = cv2.resize(img, (tw, th), interpolation=cv2.INTER_LINEAR)
        else:
            from PIL import Image

            resample = Image.BICUBIC if filter == "pil-bicubic" else Image.BILINEAR
            r = np.asarray(Image.fromarray(img.squeeze(-1) if img.shape[-1] == 1 else img)
                           .resize((tw, th), resample=resample))
        out[i] = r.reshape(th, tw, -1)
    return torch.from_numpy(out).permute(0, 3, 1, 2).to(device=x.device, dtype=torch.float32)
