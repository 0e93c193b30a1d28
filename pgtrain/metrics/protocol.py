"""The settings of one published evaluation script, as data.

A `Protocol` names every setting that changes a number: how images reach the scored size
(`Bring`), each SSIM variant, the masks of mask-SSIM / mask-IS, the Inception network and its
input rule, the FID real set, batch rules that drop images, IS splits, LPIPS. The instances
live in `pgtrain.metrics.protocols` with a citation (file:line at a commit) per setting;
`pgtrain.scoring` runs them.

Metric names inside a protocol are the generic ones a paper's table uses: `ssim`,
`ssim_256`, `mask_ssim`, `is`, `mask_is`, `fid`, `lpips`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pgtrain.metrics.bring import Bring
from pgtrain.metrics.ssim import SSIMConvention
from pgtrain.metrics.tvinception import TVInput

NETWORKS = ("tf-2015-12-05", "tv-inception-v3")
MASKS = ("pg2", "pg2-condition", "defgan")   # PG² body mask of the target (M_B) / condition (M_A); produce_ma_mask
ROUNDTRIPS = ("pg2", "defgan", "patn")     # how a script's data loader re-quantised the targets


@dataclass(frozen=True)
class SSIMSpec:
    """One SSIM number. Values in [0, 1] with data_range 1 and in 0..255 with data_range 255
    give the same SSIM (C1, C2 scale with the range), so every variant runs on uint8 values."""

    metric: str
    convention: SSIMConvention
    bring: Bring = Bring()
    mask: str | None = None          # both images multiplied by this mask first (mask-SSIM)
    generated_first: bool = False    # argument order (matters only for a range taken from one image)


@dataclass(frozen=True)
class RealSet:
    """FID's real images: which split of the data, which images, brought how."""

    split: str = "train"
    images: str = "all"              # "all": every distinct image of the split; "targets": distinct targets
    bring: Bring = Bring()


@dataclass(frozen=True)
class FIDSpec:
    network: str                     # one of NETWORKS
    bring: Bring = Bring()
    input: TVInput | None = None     # tv-inception-v3's input rule (tf-2015-12-05: TF1 bilinear to 299, (x-128)/128)
    batch: int = 50
    drop_last: bool = False          # the script's loop skips the last partial batch
    real: RealSet = RealSet()
    dims: int = 2048


@dataclass(frozen=True)
class ISSpec:
    metric: str = "is"
    splits: int = 10
    bring: Bring = Bring()
    mask: str | None = None          # mask-IS: generated images multiplied by this mask
    batch: int = 1
    drop_last: bool = False


@dataclass(frozen=True)
class LPIPSSpec:
    net: str = "alex"
    bring: Bring = Bring()
    batch: int = 1
    drop_last: bool = False


@dataclass(frozen=True)
class Protocol:
    name: str
    title: str
    script: str                      # repository and file(s)
    commit: str
    ssim: tuple[SSIMSpec, ...] = ()
    inception_score: tuple[ISSpec, ...] = ()
    fid: FIDSpec | None = None
    lpips: LPIPSSpec | None = None
    # when pgkit scores its own model's outputs (eval), what happened to images before the script
    # read them: generated images are always floored to uint8 (every script used astype(uint8));
    target_roundtrip: str | None = None     # the loader's float round trip of the targets (ROUNDTRIPS)
    generated_jpeg: int | None = None       # saved as JPEG at this PIL/imageio quality
    target_jpeg: int | None = None
    sources: dict[str, str] = field(default_factory=dict)   # setting -> "file:line" of `script`
    notes: str = ""

    def metrics(self) -> list[str]:
        out = list(dict.fromkeys([s.metric for s in self.ssim] + [s.metric for s in self.inception_score]))
        return out + (["fid"] if self.fid else []) + (["lpips"] if self.lpips else [])

    def masks(self) -> set[str]:
        return {s.mask for s in self.ssim + self.inception_score if s.mask}
