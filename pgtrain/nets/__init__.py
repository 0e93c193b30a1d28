"""The networks of PG² as released (G1, G2, the DCGAN D) and what each preset feeds D.

`build(kind, options)` makes a network from a run's options (a dict or presets.Options), so
the loop and checkpoint loading construct exactly the same modules.
"""

from __future__ import annotations

from pgtrain.nets.discriminators import DCGANDiscriminator
from pgtrain.nets.g1 import G1
from pgtrain.nets.g2 import G2

__all__ = ["G1", "G2", "DCGANDiscriminator", "D_INPUTS", "build"]

# presets.Options.discriminator -> channels of what D classifies (see discriminators.py)
D_INPUTS = {
    "triplet": 3,        # released PG² D and the seed's triplet classifier: one image
    "pair": 6,           # the seed's pair D: (I_A, X)
    "triplet-pose": 21,  # pgkit extension: (X, P_B)
}


def _get(options, key, default=None):
    return options.get(key, default) if isinstance(options, dict) else getattr(options, key, default)


def build(kind: str, options):
    """kind in {"g1", "g2", "d"}; options carry image_size, channels, d_channels, ..."""
    size = tuple(_get(options, "image_size"))
    ch = int(_get(options, "channels"))
    if kind == "g1":
        return G1(size, ch, fc_dim=int(_get(options, "fc_dim", 64)))
    if kind == "g2":
        return G2(size, ch, skips=_get(options, "g2_skips"), diffmap_init=float(_get(options, "diffmap_init", 1.0)))
    if kind == "d":
        dch = _get(options, "d_channels") or max(1, ch // 2)
        disc = _get(options, "discriminator")
        if disc not in D_INPUTS:
            raise ValueError(f"no discriminator {disc!r}")
        return DCGANDiscriminator(D_INPUTS[disc], size, dch, norm=_get(options, "d_norm", "batch"))
    raise ValueError(f"unknown network {kind!r}")
