"""`pgtrain`: train, evaluate and run PG²-style two-stage pose-guided generators."""

from __future__ import annotations

import click

from pgprep import __version__
from pgprep.cliutil import LazyGroup, debug_option

COMMANDS = {
    "demo": ("pgtrain.demo:command", "The whole pipeline on synthetic data, CPU-sized."),
    "fit": ("pgtrain.loop:command", "Train G1 / G2 with a preset (g1, pg2, triplet, wgan-triplet)."),
    "eval": ("pgtrain.evaluate:command", "SSIM, mask-SSIM, IS, FID, LPIPS; --protocol pg2,defgan,patn,gfla,pidm,cfld."),
    "score": ("pgtrain.score:command", "Another method's outputs under the published protocols."),
    "table": ("pgtrain.evaluate:table_command", "Runs and scored folders side by side (with --protocol: beside the published numbers)."),
    "generate": ("pgtrain.generate:command", "One condition image + a target pose -> images."),
    "figures": ("pgtrain.figures:command", "Result strips, sharpness view, loss curves."),
}


@click.group(cls=LazyGroup, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pgtrain")
@debug_option
def main():
    """Train G1 / G2 with the PG² pair, triplet and WGAN discriminators; evaluate; generate.

    \b
    pgtrain demo out/demo                                # everything, CPU-sized, minutes
    pgtrain fit  data/shards -o runs/g1 --preset g1      # the seed's schedule by default
    pgtrain eval runs/g1 --data data/shards              # SSIM (PG², PATN), mask-SSIM, FID, IS
    pgtrain generate runs/pg2 --condition a.jpg --pose b_keypoints.json -o out.png
    """
