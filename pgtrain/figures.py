"""`pgtrain figures`: the seed report's pictures, as PNG, from a run and its shards.

- `strip`     — condition I_A | target pose P_B | stage-1 | stage-2 | target I_B, one row per
                test pair (the seed's result figure).
- `sharpness` — "sharpness via gradients": each stage's output next to its gradient
                magnitude (Sobel on luminance), with one sharpness number per stage (mean
                gradient magnitude, luminance in [0, 1]); stage 2 should be the sharper one.
- `curves`    — the losses of RUN/stats.jsonl against the step, one panel per loss, one
                colour per stage (drawn with OpenCV; no plotting library needed).
"""

from __future__ import annotations

import json
from pathlib import Path

import click
import cv2
import numpy as np
import torch

from pgprep import draw
from pgprep.atomic import canonical_path, fingerprint, is_up_to_date, mark_done, write_json_atomic
from pgprep.cliutil import debug_option, progress
from pgprep.errors import PgkitError
from pgtrain.dist import default_device
from pgtrain.stats import read_stats

KINDS = ("strip", "sharpness", "curves")
NOT_LOSSES = {"step", "stage", "global_step", "samples_per_s", "lr", "time", "seconds", "epoch"}
STAGE_COLOURS = {1: (31, 119, 180), 2: (214, 39, 40), 3: (44, 160, 44)}


# ---------------------------------------------------------------- model outputs

def _pairs_outputs(run, data, n: int, split: str, device: str, which: str) -> dict:
    """The first `n` pairs of `split`, evenly spaced over the split, with G1/G2 outputs."""
    from pgtrain.checkpoint import load_generators
    from pgtrain.data import PairDataset

    gens = load_generators(run, device=device, which=which)
    ds = PairDataset(data, split)
    if len(ds) == 0:
        raise PgkitError(data, f"split {split!r} has no pairs")
    idx = np.unique(np.linspace(0, len(ds) - 1, min(n, len(ds))).round().astype(int))
    items = [ds[int(i)] for i in idx]
    batch = {k: torch.stack([it[k] for it in items]).to(device) for k in ("condition", "target", "pose", "mask")}
    with torch.inference_mode():
        g1 = gens.g1(batch["condition"], batch["pose"])
        g2 = gens.g2(g1, batch["condition"]) if gens.g2 is not None else None
    return {"items": items, "batch": batch, "g1": g1.cpu(), "g2": None if g2 is None else g2.cpu(),
            "names": [f"{it['to']}{' (flip)' if it['flip'] else ''}" for it in items]}


def result_strip(out: dict) -> np.ndarray:
    rows = []
    for i, it in enumerate(out["items"]):
        row = [draw.to_uint8(it["condition"]), draw.pose_map_image(it["pose"]), draw.to_uint8(out["g1"][i])]
        if out["g2"] is not None:
            row.append(draw.to_uint8(out["g2"][i]))
        row.append(draw.to_uint8(it["target"]))
        rows.append(row)
    labels = ["condition", "target pose", "stage-1"] + (["stage-2"] if out["g2"] is not None else []) + ["target"]
    return draw.grid(rows, col_labels=labels)


def gradient_magnitude(img_u8: np.ndarray) -> np.ndarray:
    """Sobel gradient magnitude of the luminance in [0, 1] (float32 H x W), scaled (/ 8) to
    the derivative per pixel: a unit step gives 0.5 on each of the two pixels beside it."""
    grey = cv2.cvtColor(img_u8, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
    gx = cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3, borderType=cv2.BORDER_REPLICATE) / 8.0
    gy = cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3, borderType=cv2.BORDER_REPLICATE) / 8.0
    return np.sqrt(gx * gx + gy * gy)


def sharpness(images_u8: list[np.ndarray]) -> dict[str, float]:
    """Mean and RMS gradient magnitude over a list of images (higher = sharper).

    The mean is the number the figure shows; the RMS (square root of the gradient energy)
    also drops when a lone edge is blurred, whose mean magnitude a blur preserves."""
    return _sharpness_of([gradient_magnitude(im) for im in images_u8])


def _sharpness_of(grads: list[np.ndarray]) -> dict[str, float]:
    return {"mean": float(np.mean([g.mean() for g in grads])),
            "rms": float(np.sqrt(np.mean([(g * g).mean() for g in grads])))}


def sharpness_view(out: dict) -> tuple[np.ndarray, dict]:
    stages = {"stage-1": [draw.to_uint8(x) for x in out["g1"]]}
    if out["g2"] is not None:
        stages["stage-2"] = [draw.to_uint8(x) for x in out["g2"]]
    stages["target"] = [draw.to_uint8(it["target"]) for it in out["items"]]
    grads = {k: [gradient_magnitude(im) for im in v] for k, v in stages.items()}
    scores = {k: _sharpness_of(g) for k, g in grads.items()}
    scale = max(float(np.percentile(np.concatenate([g.ravel() for v in grads.values() for g in v]), 99.5)), 1e-6)
    rows = []
    for i in range(len(out["items"])):
        row = []
        for k in stages:
            g = np.clip(grads[k][i] / scale * 255.0, 0, 255).astype(np.uint8)
            row += [stages[k][i], np.repeat(g[:, :, None], 3, axis=2)]
        rows.append(row)
    labels = []
    for k in stages:
        labels += [k, f"grad {scores[k]['mean']:.3f}"]
    return draw.grid(rows, col_labels=labels), scores


# ---------------------------------------------------------------- loss curves

def _nice(v: float) -> str:
    return f"{v:.3g}" if abs(v) < 1e4 else f"{v:.2e}"


def _panel(title: str, series: dict, w: int = 420, h: int = 240) -> np.ndarray:
    """One loss: lines per stage on a white panel with a frame, min/max labels and a title."""
    img = np.full((h, w, 3), 255, np.uint8)
    left, right, top, bottom = 56, 10, 24, 26
    pw, ph = w - left - right, h - top - bottom
    xs_all = np.concatenate([s[0] for s in series.values()])
    ys_all = np.concatenate([s[1] for s in series.values()])
    fin = np.isfinite(ys_all)
    cv2.putText(img, title, (left, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (20, 20, 20), 1, cv2.LINE_AA)
    cv2.rectangle(img, (left, top), (left + pw, top + ph), (120, 120, 120), 1)
    if not fin.any():
        cv2.putText(img, "no finite values", (left + 10, top + ph // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 200), 1)
        return img
    x0, x1 = float(xs_all.min()), float(xs_all.max())
    y0, y1 = float(np.min(ys_all[fin])), float(np.max(ys_all[fin]))
    if x1 == x0:
        x1 = x0 + 1
    if y1 == y0:
        y0, y1 = y0 - 0.5, y1 + 0.5
    for frac in (0.25, 0.5, 0.75):   # light grid
        yy = int(top + ph * frac)
        cv2.line(img, (left + 1, yy), (left + pw - 1, yy), (235, 235, 235), 1)
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(img, _nice(y1), (2, top + 8), font, 0.35, (60, 60, 60), 1, cv2.LINE_AA)
    cv2.putText(img, _nice(y0), (2, top + ph), font, 0.35, (60, 60, 60), 1, cv2.LINE_AA)
    cv2.putText(img, f"{int(x0)}", (left, h - 8), font, 0.35, (60, 60, 60), 1, cv2.LINE_AA)
    lbl = f"{int(x1)} step"
    (tw, _), _ = cv2.getTextSize(lbl, font, 0.35, 1)
    cv2.putText(img, lbl, (left + pw - tw, h - 8), font, 0.35, (60, 60, 60), 1, cv2.LINE_AA)
    lx = left + pw - 70 * len(series)   # legend on the title row, right-aligned
    for stage, (xs, ys) in series.items():
        colour = STAGE_COLOURS.get(stage, (100, 100, 100))
        ok = np.isfinite(ys)
        px = left + (xs[ok] - x0) / (x1 - x0) * (pw - 1)
        py = top + ph - 1 - (ys[ok] - y0) / (y1 - y0) * (ph - 1)
        pts = np.stack([px, py], axis=1)
        if len(pts) == 1:
            cv2.circle(img, tuple(int(v) for v in pts[0]), 2, colour, -1)
        else:
            faint = tuple(int(255 - (255 - c) * 0.35) for c in colour)
            cv2.polylines(img, [np.rint(pts * 16).astype(np.int32)], False, faint, 1, cv2.LINE_AA, 4)
            if len(ys[ok]) >= 8:     # an exponential moving average over the raw line
                a = 2.0 / (1 + max(4, len(ys[ok]) // 20))
                sm = np.empty_like(ys[ok])
                acc = ys[ok][0]
                for i, v in enumerate(ys[ok]):
                    acc = a * v + (1 - a) * acc
                    sm[i] = acc
                pts = np.stack([px, top + ph - 1 - (sm - y0) / (y1 - y0) * (ph - 1)], axis=1)
            cv2.polylines(img, [np.rint(pts * 16).astype(np.int32)], False, colour, 2, cv2.LINE_AA, 4)
        cv2.putText(img, f"stage {stage}", (lx, 16), font, 0.4, colour, 1, cv2.LINE_AA)
        lx += 70
    return img


def loss_curves(records: list[dict], columns: int = 2) -> np.ndarray:
    """One panel per loss key of the stats records; x = global_step when logged, else step."""
    if not records:
        raise PgkitError(None, "stats.jsonl has no records")
    keys: list[str] = []
    for r in records:
        for k, v in r.items():
            if k not in NOT_LOSSES and not k.endswith("_per_s") and isinstance(v, (int, float)) \
                    and not isinstance(v, bool) and k not in keys:
                keys.append(k)
    if not keys:
        raise PgkitError(None, "stats.jsonl holds no loss values")
    panels = []
    for k in keys:
        series: dict = {}
        for r in records:
            if k in r:
                v = r[k]
                x = r.get("global_step", r.get("step", 0))
                xs, ys = series.setdefault(int(r.get("stage", 1)), ([], []))
                xs.append(float(x))
                ys.append(float("nan") if v is None else float(v))
        panels.append(_panel(k, {s: (np.asarray(xs), np.asarray(ys)) for s, (xs, ys) in series.items()}))
    rows = [panels[i:i + columns] for i in range(0, len(panels), columns)]
    blank = np.full_like(panels[0], 255)
    rows[-1] = rows[-1] + [blank] * (columns - len(rows[-1]))
    return np.concatenate([np.concatenate(r, axis=1) for r in rows], axis=0)


def read_records(run) -> list[dict]:
    path = Path(run) / "stats.jsonl"
    if not path.is_file():
        raise PgkitError(path, "no training log (stats.jsonl)")
    return read_stats(run)


# ---------------------------------------------------------------- entry points

def make_figures(run, data=None, out=None, n: int = 8, kinds=KINDS, split: str = "test",
                 device: str | None = None, which: str = "last", show_progress: bool = True) -> list[Path]:
    """Write the requested figures (PNG) into `out` (default RUN/figures); returns their paths."""
    run = Path(run)
    out = Path(out) if out else run / "figures"
    device = device or default_device()
    kinds = [kinds] if isinstance(kinds, str) else list(kinds)
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        raise PgkitError(None, f"unknown figure kind {bad[0]!r}; known: {', '.join(KINDS)}")
    paths = [out / f"{k}.png" for k in kinds] + ([out / "sharpness.json"] if "sharpness" in kinds else [])
    fp = _fingerprint(run, data, out, n, kinds, split, which)
    stamp = f"figures-{fingerprint([], {'out': str(out.resolve())})[:12]}"
    if is_up_to_date(run, stamp, fp, paths):
        click.echo(f"figures: {out} is up to date (same checkpoint, log, data and options)", err=True)
        return [out / f"{k}.png" for k in kinds]
    written = []
    outputs = None
    for kind in progress(kinds, total=len(kinds), desc="figures", unit="figure",
                         disable=None if show_progress else True):
        if kind in ("strip", "sharpness") and outputs is None:
            if data is None:
                raise PgkitError(None, f"the {kind} figure needs --data SHARDS")
            outputs = _pairs_outputs(run, data, n, split, device, which)
        if kind == "strip":
            path = out / "strip.png"
            draw.save_png(path, result_strip(outputs))
        elif kind == "sharpness":
            path = out / "sharpness.png"
            img, scores = sharpness_view(outputs)
            draw.save_png(path, img)
            write_json_atomic(out / "sharpness.json", {
                "measure": "Sobel gradient magnitude of the luminance in [0, 1], per pixel: mean and RMS",
                "pairs": len(outputs["items"]), "split": split, "sharpness": scores})
        else:
            path = out / "curves.png"
            draw.save_png(path, loss_curves(read_records(run)))
        written.append(path)
    mark_done(run, stamp, fp, out=str(out))
    return written


def _fingerprint(run: Path, data, out: Path, n: int, kinds, split: str, which: str) -> str:
    from pgtrain.checkpoint import resolve_path

    files = [run / "stats.jsonl", resolve_path(run, which)]
    if data is not None:
        files.append(Path(data) / "index.json")
    return fingerprint(files, {"n": n, "kinds": list(kinds), "split": split, "which": which,
                                "out": canonical_path(out)})


@click.command("figures")
@click.argument("run", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--data", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Shard directory (needed for strip and sharpness).")
@click.option("--kind", "kinds", default=",".join(KINDS), show_default=True,
              help="Comma-separated figures to draw: strip, sharpness, curves.")
@click.option("--n", "n", default=8, show_default=True, help="Test pairs in the strip and sharpness view.")
@click.option("--split", default="test", show_default=True)
@click.option("-o", "--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output directory (default RUN/figures).")
@click.option("--device", default=None, help="torch device (default: cuda if available).")
@click.option("--which", default="last", show_default=True, help="Checkpoint: last, stage1 or a .pt path.")
@debug_option
def command(run, data, kinds, n, split, out, device, which):
    """Draw the seed report's figures for a run: result strip, sharpness view, loss curves.

    \b
    pgtrain figures runs/pg2 --data data/shards                  # all three, RUN/figures/
    pgtrain figures runs/pg2 --data data/shards --n 4 -o figs    # 4 pairs, into figs/
    pgtrain figures runs/pg2 --kind curves                       # losses only, no data needed

    \b
    strip.png      condition | target pose | stage-1 | stage-2 | target, one row per pair
                   (pairs spread evenly over the split)
    sharpness.png  each stage's output and its gradient magnitude (Sobel on luminance);
                   the column label holds the mean magnitude; sharpness.json has mean and RMS
    curves.png     every loss in RUN/stats.jsonl against the step, colour = stage
    """
    paths = make_figures(run, data, out, n=n, kinds=[k.strip() for k in kinds.split(",") if k.strip()],
                         split=split, device=device, which=which)
    for p in paths:
        click.echo(str(p))
    sj = (Path(out) if out else run / "figures") / "sharpness.json"
    if "sharpness" in kinds and sj.is_file():
        scores = json.loads(sj.read_text())["sharpness"]
        click.echo("sharpness (mean / RMS gradient magnitude): " +
                   ", ".join(f"{k} {v['mean']:.4f} / {v['rms']:.4f}" for k, v in scores.items()))

