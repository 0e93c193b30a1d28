"""SSIM in the conventions the literature used, plus mask-SSIM, L1 and PSNR — batched torch.

`ssim()` reproduces scikit-image's `structural_similarity(..., channel_axis=-1)` exactly
(tests compare to 1e-4): the window filters the local means/variances, the SSIM map is
averaged over the pixels at least (win - 1) / 2 away from every border (skimage crops that
strip, so a 'valid' convolution gives the same map without any padding), then over channels.

Conventions (`CONVENTIONS`):
- `pg2`  — PG² (Ma et al. 2017) and the seed: `compare_ssim` defaults on uint8 RGB: 7x7
  uniform window, sample covariance (N / (N - 1)), data_range 255.
- `patn` — Deformable GAN / PATN scripts: Gaussian window sigma 1.5 (11 taps), population
  covariance, data_range = max - min of the *generated* image. PATN also pads 176-wide
  images with 40 white columns on each side first (`patn_pad=40`), which raises the score.

Numerics: statistics are computed on images centred by their own per-channel mean
(variances do not change; it removes the E[x²] - E[x]² cancellation), so float32 (the
default) agrees with skimage's float64 to ~1e-7.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from pgtrain.metrics import MeanOf, MetricContext, ScoreBatch, register_metric


@dataclass(frozen=True)
class SSIMConvention:
    gaussian: bool
    win_size: int = 7            # uniform window side (gaussian: 2 * int(truncate * sigma + 0.5) + 1)
    sigma: float = 1.5
    sample_covariance: bool = True
    range_from_image: bool = False   # data_range = max - min of one image (per image)
    K1: float = 0.01
    K2: float = 0.03
    truncate: float = 3.5        # gaussian taps: skimage >= 0.15 truncates at 3.5 sigma (11 taps at 1.5),
                                 # skimage 0.13/0.14 used scipy's default 4.0 (13 taps)
    crop: int | None = None      # border left out of the mean; None = (window - 1) // 2. skimage < 0.15
                                 # cropped (11 - 1) // 2 = 5 around its 13-tap filter

    @property
    def window(self) -> int:
        if self.gaussian:
            return 2 * int(self.truncate * self.sigma + 0.5) + 1   # as scipy.ndimage's radius
        return self.win_size

    @property
    def border(self) -> int:
        return (self.window - 1) // 2 if self.crop is None else self.crop


CONVENTIONS = {
    "pg2": SSIMConvention(gaussian=False, win_size=7, sample_covariance=True),
    "patn": SSIMConvention(gaussian=True, sigma=1.5, sample_covariance=False, range_from_image=True),
}


def _kernel_1d(conv: SSIMConvention, dtype, device) -> torch.Tensor:
    n = conv.window
    if not conv.gaussian:
        return torch.full((n,), 1.0 / n, dtype=dtype, device=device)
    r = (n - 1) // 2
    x = torch.arange(-r, r + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (x / conv.sigma) ** 2)
    return (k / k.sum()).to(dtype=dtype, device=device)


def _pad_symmetric(x: torch.Tensor, r: int) -> torch.Tensor:
    """Mirror `r` pixels at every border, edge pixel repeated: scipy.ndimage's mode 'reflect'."""
    x = torch.cat([x[..., :r].flip(-1), x, x[..., -r:].flip(-1)], dim=-1)
    return torch.cat([x[..., :r, :].flip(-2), x, x[..., -r:, :].flip(-2)], dim=-2)


def _filter_valid(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Separable window over (B, 1, H, W) without padding: the map skimage keeps after its crop.

    Run as one depthwise convolution over B channels (~10x faster on CPU than B images of
    one channel)."""
    b, _, h, w = x.shape
    n = k.numel()
    x = x.reshape(1, b, h, w)
    x = F.conv2d(x, k.view(1, 1, 1, n).expand(b, 1, 1, n), groups=b)
    x = F.conv2d(x, k.view(1, 1, n, 1).expand(b, 1, n, 1), groups=b)
    return x.reshape(b, 1, h - n + 1, w - n + 1)


def ssim(x: torch.Tensor, y: torch.Tensor, convention: str | SSIMConvention = "pg2",
         data_range: float | torch.Tensor | None = None, dtype: torch.dtype | None = None
         ) -> torch.Tensor:
    """Mean SSIM per image of two batches (N, C, H, W) in the same units (e.g. 0..255).

    `data_range`: a number, a (N,) tensor, or None = the convention's rule (255, or the
    range of `y` for `patn` — pass the generated image as `y`, as PATN's script did).
    Returns (N,) in `dtype` (default float32).
    """
    conv = CONVENTIONS[convention] if isinstance(convention, str) else convention
    if x.shape != y.shape or x.ndim != 4:
        raise ValueError(f"ssim needs two (N, C, H, W) batches of one shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    n, c, h, w = x.shape
    win = conv.window
    border = conv.border
    if min(h, w) < win or min(h, w) <= 2 * border:
        raise ValueError(f"images of {h}x{w} are smaller than the {win}x{win} SSIM window")
    dtype = dtype or torch.float32
    x, y = x.to(dtype), y.to(dtype)
    if data_range is None:
        data_range = ((y.amax(dim=(1, 2, 3)) - y.amin(dim=(1, 2, 3))) if conv.range_from_image
                      else torch.full((n,), 255.0, dtype=dtype, device=x.device))
        # a flat generated image has range 0: skimage would divide 0 by 0; fall back to 255
        data_range = torch.where(data_range > 0, data_range, torch.full_like(data_range, 255.0))
    R = torch.as_tensor(data_range, dtype=dtype, device=x.device).reshape(-1)
    R = R.expand(n).reshape(n, 1, 1, 1).repeat_interleave(c, dim=0)   # per (image, channel)

    cx = x.mean(dim=(2, 3), keepdim=True)
    cy = y.mean(dim=(2, 3), keepdim=True)
    xc = (x - cx).reshape(n * c, 1, h, w)
    yc = (y - cy).reshape(n * c, 1, h, w)
    k = _kernel_1d(conv, dtype, x.device)
    planes = torch.cat([xc, yc, xc * xc, yc * yc, xc * yc])
    r = (win - 1) // 2
    if border != r:   # filter the whole image (scipy's reflect borders), then leave `border` out
        stats = _filter_valid(_pad_symmetric(planes, r), k)
        stats = stats[..., border:stats.shape[-2] - border, border:stats.shape[-1] - border]
    else:             # the map skimage keeps is exactly the 'valid' part: no padding involved
        stats = _filter_valid(planes, k)
    mxc, myc, mxx, myy, mxy = stats.split(n * c)
    np_ = (2 * border + 1) ** 2   # skimage's NP = win_size ** 2, and its crop is (win_size - 1) // 2
    cov_norm = np_ / (np_ - 1) if conv.sample_covariance else 1.0
    vx = cov_norm * (mxx - mxc * mxc)
    vy = cov_norm * (myy - myc * myc)
    vxy = cov_norm * (mxy - mxc * myc)
    ux = mxc + cx.reshape(n * c, 1, 1, 1)
    uy = myc + cy.reshape(n * c, 1, 1, 1)
    C1 = (conv.K1 * R) ** 2
    C2 = (conv.K2 * R) ** 2
    s = ((2 * ux * uy + C1) * (2 * vxy + C2)) / ((ux * ux + uy * uy + C1) * (vx + vy + C2))
    return s.mean(dim=(1, 2, 3)).reshape(n, c).mean(dim=1)


def pad_white(x: torch.Tensor, columns: int) -> torch.Tensor:
    """Add `columns` white (255) columns on both sides (PATN's `addBounding` for 176-wide images)."""
    if columns <= 0:
        return x
    return F.pad(x, (columns, columns, 0, 0), value=255.0)


def psnr(x: torch.Tensor, y: torch.Tensor, data_range: float = 255.0) -> torch.Tensor:
    """Per-image PSNR in dB (skimage.metrics.peak_signal_noise_ratio), +inf for identical images."""
    mse = ((x.double() - y.double()) ** 2).mean(dim=(1, 2, 3))
    return 10.0 * torch.log10(data_range ** 2 / mse)


# ---------------------------------------------------------------- registered metrics
# The reference image goes first, the generated one second (the order of the published
# scripts; it matters only for `patn`, whose data_range comes from the generated image).

@register_metric("ssim_pg2", help="SSIM, PG²/seed convention: 7x7 uniform window, sample covariance, uint8, range 255.")
def _ssim_pg2(ctx: MetricContext):
    return MeanOf("ssim_pg2", lambda b: ssim(b.real_u8, b.fake_u8, "pg2"))


@register_metric("ssim_patn", help="SSIM, PATN/Deformable-GAN convention: gaussian sigma 1.5, population covariance, range of the generated image (+ --patn-pad white columns).")
def _ssim_patn(ctx: MetricContext):
    pad = ctx.patn_pad
    return MeanOf("ssim_patn", lambda b: ssim(pad_white(b.real_u8, pad), pad_white(b.fake_u8, pad), "patn"))


@register_metric("mask_ssim_pg2", help="mask-SSIM (PG²): both images multiplied by the body mask, then SSIM in the PG² convention.")
def _mask_ssim_pg2(ctx: MetricContext):
    def fn(b: ScoreBatch):
        if b.mask is None:
            raise ValueError("mask-SSIM needs masks")
        m = (b.mask > 0).to(b.fake_u8.dtype)
        return ssim(b.real_u8 * m, b.fake_u8 * m, "pg2")
    return MeanOf("mask_ssim_pg2", fn)


@register_metric("mask_ssim_patn", help="mask-SSIM in the PATN convention (not a published number; for comparison).", default=False)
def _mask_ssim_patn(ctx: MetricContext):
    def fn(b: ScoreBatch):
        m = (b.mask > 0).to(b.fake_u8.dtype)
        return ssim(b.real_u8 * m, b.fake_u8 * m, "patn")
    return MeanOf("mask_ssim_patn", fn)


@register_metric("l1", help="Mean absolute error in the networks' [-1, 1] range (the scale of the L1 training loss).")
def _l1(ctx: MetricContext):
    return MeanOf("l1", lambda b: (b.fake.double() - b.real.double()).abs().mean(dim=(1, 2, 3)))


@register_metric("psnr", help="PSNR in dB on uint8 images, mean over images (identical pairs are counted apart).")
def _psnr(ctx: MetricContext):
    return MeanOf("psnr", lambda b: psnr(b.real_u8, b.fake_u8))
