"""A synthetic DeepFashion In-shop: catalogue photos of rendered people with known poses.

`synthesize(root, items, seed, size, jobs)` writes the tree; see docs/synth.md.
Modules: body (posed 3-D skeleton, views), clothing (per-item garments), render (drawing),
scene (framing, distractors, detector-like keypoints), writer (files), cli (the command).
"""

from pgprep.synth.writer import synthesize

__all__ = ["synthesize"]
