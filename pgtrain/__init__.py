"""pgtrain: PG2-style two-stage pose-guided person image generation in PyTorch."""

from pgprep import __version__

__all__ = ["__version__"]
