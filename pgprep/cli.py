"""`pgprep`: prepare DeepFashion In-shop (or the built-in synthetic set) for pose-guided training."""

from __future__ import annotations

import click

from pgprep import __version__
from pgprep.cliutil import LazyGroup, debug_option

COMMANDS = {
    "synth": ("pgprep.synth.cli:command", "Render a synthetic DeepFashion- or Market-1501-shaped set of people."),
    "ingest": ("pgprep.ingest:command", "Any folder of photos -> a DeepFashion-shaped tree (resize + pad)."),
    "pose": ("pgprep.estimate:command", "Run a pose estimator (BlazePose) -> OpenPose JSON."),
    "filter": ("pgprep.filter:command", "Ingest keypoints; keep single, complete persons (DeepFashion or Market-1501 ROOT)."),
    "pairs": ("pgprep.pairs:command", "Cross-pose pairs per item, L/R-correct flips, splits."),
    "masks": ("pgprep.masks:command", "PG² morphological body masks from keypoints."),
    "preview": ("pgprep.preview:command", "Contact sheet of sampled pairs with overlays."),
    "pack": ("pgprep.pack:command", "Write HDF5 shards (compact or dense) + index.json."),
    "verify": ("pgprep.shards:verify_command", "Re-check shard hashes and schema."),
    "inspect": ("pgprep.shards:inspect_command", "Summarise a shard directory."),
}


@click.group(cls=LazyGroup, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pgprep")
@debug_option
def main():
    """Prepare pose-guided person image data, one stage at a time.

    \b
    pgprep synth data/synth --items 200 --size 64      # a DeepFashion-shaped synthetic set
    pgprep ingest photos/ -o data/mine                  # ... or your own photos
    pgprep pose  data/synth -o data/poses               # (optional) BlazePose keypoints
    pgprep filter data/synth --poses data/synth/pose/openpose -o data/work
    pgprep pairs data/work                              # cross-pose pairs, flips, splits
    pgprep masks data/work                              # PG² body masks
    pgprep pack  data/work -o data/shards               # compact HDF5 shards + index.json

    \b
    Market-1501: point filter at the unpacked release (bounding_box_train/, bounding_box_test/,
    query/; detected) and the rest is the same (docs/market.md):
    pgprep synth data/market --kind market --items 100      # or the real release
    pgprep filter data/market --poses data/market/pose/openpose -o data/mwork
    pgprep pairs data/mwork --rule pg2-market               # or patn; masks/pack as above

    Every stage skips work it finds done, and errors name the file at fault
    (add --debug for a traceback).
    """
