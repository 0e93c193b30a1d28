"""The networks of PG² and the seed: G1, G2 and the pair / triplet discriminators.

`build(kind, options)` makes a network from a run's options (a dict or presets.Options), so
the loop and checkpoint loading construct exactly the same modules.
"""

from __future__ import annotations

from pgtrain.nets.discriminators import PairDiscriminator, TripletCritic, TripletDiscriminator
from pgtrain.nets.g1 import G1
from pgtrain.nets.g2 import G2

__all__ = ["G1", "G2", "PairDiscriminator", "TripletDiscriminator", "TripletCritic", "build"]


def _get(options, key, default=None):
    return options.get(key, default) if isinstance(options, dict) else getattr(options, key, default)


def build(kind: str, options):
    """kind in {"g1", "g2", "d"}; options carry image_size, channels, d_channels, ..."""
    size = tuple(_get(options, "image_size"))
    ch = int(_get(options, "channels"))
    if kind == "g1":
        return G1(size, ch, fc_dim=int(_get(options, "fc_dim", 64)))
    if kind == "g2":
        return G2(size, ch)
    if kind == "d":
        dch = _get(options, "d_channels") or max(1, ch // 2)
        norm = _get(options, "d_norm", "batch")
        disc = _get(options, "discriminator")
        if disc == "pair":
            return PairDiscriminator(size, dch, norm=norm)
        if disc == "triplet":
            cls = TripletCritic if _get(options, "adversarial") == "wasserstein" else TripletDiscriminator
            return cls(size, dch, norm=norm)
        raise ValueError(f"no discriminator {disc!r}")
    raise ValueError(f"unknown network {kind!r}")
