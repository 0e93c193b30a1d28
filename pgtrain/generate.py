"""`pgtrain generate`: one photo of a person + a target pose -> the stage-1 and stage-2 images.

The target pose comes from an OpenPose JSON file, a row of a PATN annotation CSV, or another
photo whose pose the BlazePose estimator reads (`pgprep pose`'s model; optional). Inputs of
any size are fitted to the model's size the way the training data looks: scaled to fit
(aspect ratio kept) and centred on white, with the keypoints moved by the same transform;
every such change is reported on stderr.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import click
import cv2
import numpy as np
import torch

from pgprep import draw, imageio, skeleton
from pgprep.atomic import check_user_output, mark_image, write_bytes_atomic
from pgprep.cliutil import debug_option
from pgprep.errors import PgkitError
from pgprep.formats import read_openpose_json, read_patn_csv
from pgprep.geometry import (
    DEFAULT_POSE,
    Letterbox,
    encode_jpeg,
    encode_png,
    normalise,
    parse_hw,
    pose_maps,
    read_rgb,
)
from pgtrain.dist import default_device
from pgtrain.nets._common import as_hw

IMAGE_SUFFIXES = set(imageio.EXTENSIONS)  # the one reading policy: JPEG, PNG, WebP
OUTPUT_SUFFIXES = {".png": ".png", ".jpg": ".jpg", ".jpeg": ".jpg", ".webp": ".webp"}
FRAME_SLACK = 2.0  # px a keypoint may lie outside the frame it is said to belong to
MAX_UPSCALE = 64  # --upscale; the picture must also stay within imageio.max_pixels()
MARK = "pgkit generate"  # in every image written: -o may replace it later without --force


def describe_fit(fit: Letterbox, what: str) -> str:
    """One stderr line saying how an input was fitted to the model's size."""
    (h, w), (H, W) = fit.src, fit.dst  # noqa: N806
    pad = (f", padded with white by {fit.pad_x}px left/right and {fit.pad_y}px top/bottom"
           if (fit.pad_x or fit.pad_y) else "")
    return f"{what}: {w}x{h} -> {W}x{H} (scaled x{fit.scale:.3g}{pad}, the model's size)"


def _largest(people: list[np.ndarray]) -> np.ndarray:
    return max(people, key=lambda kp: (int(skeleton.present(kp).sum()),
                                       np.ptp(kp[skeleton.present(kp), 1]) if skeleton.present(kp).any() else 0))


def read_target_pose(src: str | os.PathLike, name: str | None = None,
                     notes: list[str] | None = None) -> tuple[np.ndarray, tuple[int, int] | None]:
    """Keypoints (18, 3) from SRC and the (h, w) of their frame when known (images only)."""
    src = Path(src)
    notes = notes if notes is not None else []
    suffix = src.suffix.lower()
    if suffix == ".json":
        people = read_openpose_json(src)
        if not people:
            raise PgkitError(src, "no person in this OpenPose file")
        if len(people) > 1:
            notes.append(f"pose: {len(people)} people in {src.name}; using the most complete one")
        return _largest(people), None
    if suffix == ".csv":
        table = read_patn_csv(src)
        if name is None:
            if len(table.poses) != 1:
                raise PgkitError(src, f"holds {len(table.poses)} poses; choose one with --name")
            name = next(iter(table.poses))
        if name not in table.poses:
            why = table.errors.get(name, "no row with this name")
            raise PgkitError(src, f"{name}: {why}")
        return table.poses[name], None
    if suffix in IMAGE_SUFFIXES:
        rgb = read_rgb(src)
        try:
            estimator = _estimator()
        except (ImportError, PgkitError, OSError, ValueError) as exc:
            raise PgkitError(src, "reading a pose from a photo needs the BlazePose estimator "
                             "(pip install ai-edge-litert; pip install --no-deps mediapipe==0.10.21): "
                             f"{exc}") from None
        people = estimator(rgb)
        if not people:
            raise PgkitError(src, "the pose estimator found no person in this image")
        if len(people) > 1:
            notes.append(f"pose: {len(people)} people found in {src.name}; using the most complete one")
        return _largest(people), rgb.shape[:2]
    raise PgkitError(src, "unknown pose source: expected OpenPose .json, PATN .csv or an image")


@functools.lru_cache(maxsize=1)
def _estimator():
    from pgprep.estimate import BlazePose

    return BlazePose()


def check_pose_frame(kp: np.ndarray, frame: tuple[int, int] | None, condition_size: tuple[int, int],
                     model_size: tuple[int, int], pose_src, pose_size_given: bool) -> tuple[int, int]:
    """The (h, w) frame the target keypoints are in; PgkitError when it is unknown or they do
    not fit it. Keypoint files carry no frame: they are taken to be in the condition's frame
    only when the condition already has the model's size (the usual case: both from the same
    data set); otherwise --pose-size must say which frame they belong to."""
    if frame is None:
        if condition_size != tuple(model_size):
            ch, cw = condition_size
            raise PgkitError(pose_src, (
                f"the keypoints' frame is unknown: the condition is {ch}x{cw} (HxW) and the model "
                f"{model_size[0]}x{model_size[1]}; say which frame the keypoints are in with "
                f"--pose-size HxW (e.g. {model_size[0]}x{model_size[1]} for a pose from the training data, "
                f"{ch}x{cw} for one made on the condition photo)"))
        frame = tuple(condition_size)
    h, w = frame
    ok = skeleton.present(kp)
    out = ok & ((kp[:, 0] > w - 1 + FRAME_SLACK) | (kp[:, 1] > h - 1 + FRAME_SLACK))
    if out.any():
        j = int(np.flatnonzero(out)[0])
        said = "--pose-size" if pose_size_given else "the condition's size"
        raise PgkitError(pose_src, (
            f"{skeleton.JOINTS[j]} at ({kp[j, 0]:.1f}, {kp[j, 1]:.1f}) lies outside the {h}x{w} (HxW) frame "
            f"({said}); pass the frame the keypoints were made in with --pose-size HxW"))
    return int(h), int(w)


def generate(run, condition, pose, *, name: str | None = None, pose_size: tuple[int, int] | None = None,
             flip: bool = False, device: str = "cpu", which: str = "last", check_person: bool = True) -> dict:
    """Run G1 (and G2) on one condition image and one target pose.

    Returns uint8 images `condition`, `pose` (stick figure), `stage1`, `stage2` (or None) at
    the model's size, the fitted keypoints, `notes` (what was resized or chosen) and
    `warnings` (e.g. no person found in the condition by the pose estimator, when
    `check_person` and the estimator is installed).
    """
    from pgtrain.checkpoint import load_generators

    gens = load_generators(run, device=device, which=which)
    H, W = as_hw(gens.options["image_size"])  # noqa: N806
    notes: list[str] = []
    warnings: list[str] = []
    cond = read_rgb(condition)
    fit_c = Letterbox.fit(cond.shape[:2], (H, W))
    if not fit_c.identity:
        notes.append(describe_fit(fit_c, f"condition {Path(condition).name}"))
    kp, frame = read_target_pose(pose, name, notes)
    frame = check_pose_frame(kp, frame or pose_size, tuple(cond.shape[:2]), (H, W), pose, pose_size is not None)
    fit_p = Letterbox.fit(tuple(frame), (H, W))
    if not fit_p.identity:
        notes.append(describe_fit(fit_p, "pose keypoints"))
    kp = fit_p.keypoints(skeleton.clean(kp))
    if flip:
        kp = skeleton.flip(kp, W)
        notes.append("pose mirrored (left/right joints swapped)")
    n_ok = int(skeleton.present(kp).sum())
    if n_ok == 0:
        raise PgkitError(pose, "no keypoint of the target pose is present")
    maps = pose_maps(kp, (H, W), kind=gens.options.get("pose_kind", DEFAULT_POSE["kind"]),
                     radius=float(gens.options.get("pose_radius", DEFAULT_POSE["radius"])),
                     sigma=float(gens.options.get("pose_sigma", DEFAULT_POSE["sigma"])))
    I_A = torch.from_numpy(normalise(fit_c.image(cond)).transpose(2, 0, 1))[None].to(device)  # noqa: N806
    P_B = torch.from_numpy(maps)[None].to(device)  # noqa: N806
    with torch.inference_mode():
        g1 = gens.g1(I_A, P_B)
        g2 = gens.g2(g1, I_A) if gens.g2 is not None else None
    if gens.g2 is None:
        notes.append("this run has no trained stage 2; showing stage 1 only")
    if check_person:
        try:
            found = len(_estimator()(cond))
        except (ImportError, PgkitError, OSError, ValueError):
            found = None
            notes.append("condition not checked for a person (the BlazePose estimator is not installed)")
        if found == 0:
            warnings.append(f"warning: the pose estimator finds no person in the condition "
                            f"{Path(condition).name}; the output will not show that person")
    return {"condition": draw.to_uint8(I_A[0]),
            "pose": draw.skeleton_image(kp, (H, W)),
            "stage1": draw.to_uint8(g1[0]),
            "stage2": None if g2 is None else draw.to_uint8(g2[0]),
            "keypoints": kp, "notes": notes, "warnings": warnings, "joints": n_ok}


def output_format(path: Path) -> str:
    """'.png', '.jpg' or '.webp' from the output name; PgkitError for anything else."""
    ext = OUTPUT_SUFFIXES.get(Path(path).suffix.lower())
    if ext is None:
        raise PgkitError(path, f"output format from the extension: use .png, .jpg/.jpeg or .webp "
                               f"(got {Path(path).suffix or 'no extension'!r})")
    return ext


def save_image(path: Path, img: np.ndarray) -> None:
    """Write uint8 RGB in the format the extension names, marked as pgkit's, atomically: PNG
    and JPEG (quality 95) through pgprep.geometry's encoders (as `draw.save_png`), WebP lossless."""
    ext = output_format(path)
    rgb = draw.to_uint8(img)
    if ext == ".webp":  # only generate writes WebP
        ok, buf = cv2.imencode(ext, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_WEBP_QUALITY, 101])
        if not ok:
            raise PgkitError(path, f"could not encode the image as {ext}")
        data = buf.tobytes()
    else:
        data = encode_jpeg(rgb) if ext == ".jpg" else encode_png(rgb)
    write_bytes_atomic(path, mark_image(data, MARK))


def output_paths(output: Path, result: dict | None, separate: bool) -> list[Path]:
    """Every file `command` writes: OUT, and with `separate` OUT-stage1.EXT and, when the run
    has a trained stage 2, OUT-stage2.EXT (not known before the checkpoint is read: `result` None)."""
    paths = [output]
    if separate:
        for stage in ("stage1", "stage2"):
            if stage == "stage1" or (result is not None and result[stage] is not None):
                paths.append(output.with_name(f"{output.stem}-{stage}{output.suffix}"))
    return paths


def side_by_side(result: dict, upscale: int = 1) -> np.ndarray:
    cols = ["condition", "pose", "stage1"] + (["stage2"] if result["stage2"] is not None else [])
    labels = {"condition": "condition", "pose": "target pose", "stage1": "stage-1", "stage2": "stage-2"}
    ims = [result[c] for c in cols]
    pixels = sum(im.shape[0] * im.shape[1] for im in ims) * upscale * upscale
    if pixels > imageio.max_pixels():  # before the resize allocates it
        raise click.BadParameter(f"{upscale} makes a picture of {pixels:,} pixels, over the limit of "
                                 f"{imageio.max_pixels():,} (PGKIT_MAX_PIXELS)", param_hint="'--upscale'")
    if upscale > 1:
        ims = [cv2.resize(im, None, fx=upscale, fy=upscale, interpolation=cv2.INTER_NEAREST) for im in ims]
    return draw.grid([ims], col_labels=[labels[c] for c in cols])


def _parse_size(ctx, param, value):
    if value is None:
        return None
    try:
        return parse_hw(value, what="--pose-size")
    except PgkitError as exc:
        raise click.BadParameter(f"expected HxW, e.g. 256x176 ({exc.reason})") from None


@click.command("generate")
@click.argument("run", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--condition", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Photo of the person (any size; fitted to the model's size).")
@click.option("--pose", "pose", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Target pose: OpenPose .json, PATN annotation .csv (with --name), or a photo.")
@click.option("--name", default=None, help="Row of the PATN CSV to use.")
@click.option("--pose-size", callback=_parse_size, default=None,
              help="HxW of the image the JSON/CSV keypoints belong to (default: the condition's size).")
@click.option("--flip", is_flag=True, help="Mirror the target pose (left/right joints swapped).")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Output image, condition | target pose | stage-1 | stage-2; the format follows the "
                   "extension: .png, .jpg/.jpeg or .webp.")
@click.option("--separate", is_flag=True,
              help="Also write OUT-stage1.EXT and OUT-stage2.EXT at the model's size.")
@click.option("--check-person/--no-check-person", default=True, show_default=True,
              help="Warn when the pose estimator (if installed) finds no person in the condition.")
@click.option("--upscale", type=click.IntRange(1, MAX_UPSCALE), default=1, show_default=True,
              help=f"Enlarge the side-by-side picture N times (nearest; 1..{MAX_UPSCALE}, within PGKIT_MAX_PIXELS).")
@click.option("--force", is_flag=True,
              help="Replace existing output files that pgkit did not write (never a directory or a link).")
@click.option("--device", default=None, help="torch device (default: cuda if available).")
@click.option("--which", default="last", show_default=True, help="Checkpoint: last, stage1 or a .pt path.")
@debug_option
def command(run, condition, pose, name, pose_size, flip, output, separate, check_person, upscale, force,
            device, which):
    """Generate a person in a new pose: stage-1 and stage-2 images side by side.

    \b
    pgtrain generate runs/pg2 --condition a.jpg --pose b_keypoints.json -o out.png
    pgtrain generate runs/pg2 --condition a.jpg --pose fasion-resize-annotation-test.csv \\
        --name fashionWOMENDressesid0000262902_3back.jpg --pose-size 256x176 -o out.png
    pgtrain generate runs/pg2 --condition a.jpg --pose b.jpg -o out.png   # BlazePose reads b.jpg

    \b
    Inputs of another size than the model's are scaled to fit (aspect ratio kept) and
    centred on white; keypoints are moved by the same transform. JSON/CSV keypoints carry no
    frame: they are taken to be in the condition's frame when the condition has the model's
    size, otherwise --pose-size HxW must say which frame they are in (an error says so), and
    keypoints outside that frame are refused. Each change is reported on stderr, as is a
    condition in which the pose estimator (if installed) finds no person. The output format
    follows the extension of -o (.png, .jpg/.jpeg, .webp; others are refused).

    \b
    An existing output file is replaced only if pgkit wrote it (every image generate
    writes carries a mark); any other file needs --force, and a directory or a symbolic
    link is never replaced.
    """
    output_format(output)  # refuse an unknown extension before loading anything
    for p in output_paths(output, None, separate):
        check_user_output(p, force)
    device = device or default_device()
    res = generate(run, condition, pose, name=name, pose_size=pose_size, flip=flip, device=device, which=which,
                   check_person=check_person)
    for note in res["notes"] + res["warnings"]:
        click.echo(note, err=True)
    picture = side_by_side(res, upscale)
    written = output_paths(output, res, separate)
    for p in written:  # again: a file may have appeared while the model ran
        check_user_output(p, force)
    save_image(output, picture)
    for p in written[1:]:
        save_image(p, res[p.stem.rsplit("-", 1)[1]])
    for p in written:
        click.echo(str(p))
