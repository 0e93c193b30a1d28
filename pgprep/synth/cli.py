"""`pgprep synth`: the command-line face of pgprep.synth.synthesize."""

from __future__ import annotations

import click

from pgprep.cliutil import debug_option
from pgprep.synth.writer import synthesize


@click.command("synth")
@click.argument("root", type=click.Path(file_okay=False))
@click.option("--items", default=200, show_default=True, type=click.IntRange(min=1),
              help="Number of items (identities); each has 2-6 images.")
@click.option("--seed", default=0, show_default=True, type=int, help="Random seed; same seed, same bytes.")
@click.option("--size", default=256, show_default=True, type=click.IntRange(min=32),
              help="Image side in pixels (DeepFashion: 256; 64 for fast CPU training).")
@click.option("--jobs", default=None, type=click.IntRange(min=1),
              help="Worker processes (default: all cores). Output does not depend on it.")
@debug_option
def command(root, items, seed, size, jobs):
    """Render a synthetic DeepFashion In-shop set of people into ROOT.

    Writes ROOT/img/<MEN|WOMEN>/<Category>/id_XXXXXXXX/01_<n>_<view>.jpg (2-6 views per
    item: front, side, back, full, additional), ROOT/Eval/list_eval_partition.txt
    (train / query / gallery by item), OpenPose JSON per image under ROOT/pose/openpose/,
    the same poses as ROOT/pose/annotations.csv (PATN format), and the ground truth:
    ROOT/truth.csv (person count, completeness, true keypoints) with a silhouette PNG per
    image under ROOT/truth/. About 5 % of images are distractors (two people, a person cut
    off above the knees, a close-up) for `pgprep filter` to reject.

    \b
    Examples:
      pgprep synth data/synth                         # 200 items at 256x256
      pgprep synth data/synth64 --items 1000 --size 64 --jobs 2
      pgprep synth data/synth --items 200             # rerun: says it is up to date

    ROOT must be empty or a previous synth output with the same options; a killed run is
    finished by running the same command again.
    """
    res = synthesize(root, items=items, seed=seed, size=size, jobs=jobs)
    if res["up_to_date"]:
        click.echo(f"{root}: up to date ({res['images']} images of {res['items']} items, "
                   f"seed {seed}, {size}px); nothing to do")
        return
    k = res["kinds"]
    click.echo(f"{root}: {res['images']} images of {res['items']} items in {res['seconds']:.1f} s "
               f"({res['images'] / max(res['seconds'], 1e-9):.0f} images/s)")
    click.echo(f"  partition: {res['train_items']} train items, {res['test_items']} test items "
               f"({res['query']} query / {res['gallery']} gallery images)")
    click.echo(f"  distractors: {res['distractors']} (two_people {k['two_people']}, "
               f"cut_off {k['cut_off']}, close_up {k['close_up']}); truth in {root}/truth.csv")
    click.echo(f"  next: pgprep filter {root} --poses {root}/pose/openpose -o WORK")
