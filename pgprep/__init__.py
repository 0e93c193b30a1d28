"""pgprep: DeepFashion preparation for pose-guided person image generation."""

__version__ = "0.1.0"
