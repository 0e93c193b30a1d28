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
              help="Image side in pixels (DeepFashion: 256; 64 for fast CPU training). Market: always 128x64.")
@click.option("--kind", type=click.Choice(["deepfashion", "market"]), default="deepfashion", show_default=True,
              help="deepfashion: the In-shop tree; market: the Market-1501 release (--items = identities).")
@click.option("--jobs", default=None, type=click.IntRange(min=1),
              help="Worker processes (default: all cores). Output does not depend on it.")
@click.option("--hard-cases", default=0.0, show_default=True, type=click.FloatRange(0, 1),
              help="Fraction of items rendered as hard cases for the completeness rule: floor-length "
                   "gowns (legs hidden, complete), knee-length dresses, and frames cut just above the "
                   "knees (incomplete); truth.csv kinds long_gown, knee_dress, cut_knees.")
@debug_option
def command(root, items, seed, size, jobs, kind, hard_cases):
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
      pgprep synth data/market --kind market --items 100
      pgprep synth data/hard --items 100 --hard-cases 0.5   # gowns, knee dresses, cut at the knees

    \b
    --kind market renders Market-1501 instead (docs/market.md): 128x64 pedestrian boxes in
    ROOT/bounding_box_train/, bounding_box_test/ and query/ named like 0002_c1s1_000451_03.jpg,
    2-6 cameras per identity with their own street and lighting, low resolution and blur,
    junk (-1_...) and distractor (0000_...) boxes; the same truth and pose files, plus
    PATN's ROOT/pose/market-annotation-{train,test}.csv.

    ROOT must be empty or a previous synth output with the same options; a killed run is
    finished by running the same command again.
    """
    if kind == "market":
        from pgprep.synth.market import synthesize_market

        if click.get_current_context().get_parameter_source("size") is not click.core.ParameterSource.DEFAULT:
            raise click.UsageError("--size does not apply to --kind market: Market-1501 boxes are 128x64")

        res = synthesize_market(root, identities=items, seed=seed, jobs=jobs)
        verb = "up to date" if res["up_to_date"] else f"rendered in {res['seconds']:.1f} s"
        f = res["folders"]
        click.echo(f"{root}: Market-1501-shaped, {res['images']} boxes of {res['items']} identities ({verb}): "
                   f"bounding_box_train {f['bounding_box_train']}, bounding_box_test {f['bounding_box_test']} "
                   f"(junk {res['junk']}, distractors {res['distractors']}), query {f['query']}")
        click.echo(f"  next: pgprep filter {root} --poses {root}/pose/openpose -o WORK")
        return
    res = synthesize(root, items=items, seed=seed, size=size, jobs=jobs, hard_cases=hard_cases)
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
               f"cut_off {k['cut_off']}, close_up {k['close_up']}"
               + (f", cut_knees {k['cut_knees']}" if "cut_knees" in k else "") + f"); truth in {root}/truth.csv")
    if hard_cases:
        click.echo(f"  hard cases: cut_knees {k.get('cut_knees', 0)} (incomplete), long_gown "
                   f"{k.get('long_gown', 0)} and knee_dress {k.get('knee_dress', 0)} (complete)")
    click.echo(f"  next: pgprep filter {root} --poses {root}/pose/openpose -o WORK")
