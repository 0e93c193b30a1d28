"""The six published evaluation protocols of pose-guided person generation, as data.

Each entry reproduces one script's settings; `sources` cites, per setting, the file and line
read at the commit given (the scripts were read, not copied). Where a script cannot be
followed exactly, `notes` says what pgkit does instead and why.

Scripts and commits read:
- pg2    charliememory/Pose-Guided-Person-Image-Generation @ c32f859 (score.py, score_mask.py,
         tflib/inception_score.py, trainer.py)
- defgan AliaksandrSiarohin/pose-gan @ 8693ec4 (test.py, pose_utils.py) + AliaksandrSiarohin/gan
         @ a4aa9a3 (inception_score.py); scikit-image 0.13.1 pinned (requirements.txt:8)
- patn   tengteng95/Pose-Transfer @ 281ee2d (tool/getMetrics_fashion.py, getMetrics_market.py,
         tool/inception_score.py, util/visualizer.py); scikit-image 0.14.2 pinned (requirements_tf.txt:27)
- gfla   RenYurui/Global-Flow-Local-Attention @ 3afa8fe (script/metrics.py, script/inception.py)
- pidm   ankanbhunia/PIDM @ e4f1d88 (utils/metrics.py, utils/inception.py)
- cfld   YanzuoLu/CFLD @ f2ea2a7 (models/metrics.py, pose_transfer_test.py, datasets/deepfashion.py)
- IS rule: openai/improved-gan @ 4f5d1ec inception_score/model.py:47-52, 91-93 (all three TF
  copies above are the same maths: softmax of pool3 @ W without the bias, contiguous splits
  [i N / 10, (i + 1) N / 10), exp of the mean KL, population std; no image dropped).
"""

from __future__ import annotations

from pgtrain.metrics.bring import Bring
from pgtrain.metrics.protocol import FIDSpec, ISSpec, LPIPSSpec, Protocol, RealSet, SSIMSpec
from pgtrain.metrics.ssim import SSIMConvention
from pgtrain.metrics.tvinception import TVInput

# SSIM conventions, by the scikit-image call that made them
PG2_SSIM = SSIMConvention(gaussian=False, win_size=7, sample_covariance=True)            # compare_ssim defaults
GAUSS_13 = SSIMConvention(gaussian=True, sigma=1.5, sample_covariance=False,             # skimage 0.13/0.14:
                          range_from_image=True, truncate=4.0, crop=5)                    # 13 taps, crop 5
GAUSS_15 = SSIMConvention(gaussian=True, sigma=1.5, sample_covariance=False, range_from_image=True)  # skimage >= 0.15
GAUSS_12 = SSIMConvention(gaussian=True, sigma=1.2, sample_covariance=False, range_from_image=True)
WIN_51 = SSIMConvention(gaussian=False, win_size=51, sample_covariance=True)             # data_range 1 on [0, 1]

FASHION = ((256, 256), (256, 176))
MARKET = ((128, 64),)
CROP_176 = Bring(size=(256, 176), rule="crop", accepts=FASHION)
# the old pytorch-fid InceptionV3: bilinear to 299 (align_corners False), [0, 1] through
# torchvision's transform_input formula, pool of Mixed_7c (2048-d)
OLD_PYTORCH_FID = TVInput(resize="bilinear", align_corners=False, scale="unit", transform_input=True)

PG2 = Protocol(
    name="pg2", title="PG² (Ma et al. 2017)",
    script="charliememory/Pose-Guided-Person-Image-Generation score.py, score_mask.py", commit="c32f859",
    ssim=(SSIMSpec("ssim", PG2_SSIM, generated_first=True),
          SSIMSpec("mask_ssim", PG2_SSIM, mask="pg2-condition", generated_first=True)),
    inception_score=(ISSpec("is", batch=100), ISSpec("mask_is", batch=100, mask="pg2-condition")),
    target_roundtrip="pg2",
    sources={
        "images": "trainer.py:390-405 (PNG, uint8 by astype: floor), 243-246 (G2 = clip((G1 + DiffMap + 1) * 127.5))",
        "target": "trainer.py:448-449,457,394 (tf-record image -> (x - 127.5) / 127.5 float32 -> x * 127.5 + 127.5 -> floor)",
        "size": "native: Market 128x64, DeepFashion 256x256 (trainer.py:438; trainer256.py:99)",
        "ssim": "score.py:71 compare_ssim(G, x_target, multichannel=True): 7x7 uniform, sample covariance, data_range 255 (skimage 0.13 defaults)",
        "mask_ssim": "score_mask.py:39,80-82: both images x the mask in directory `mask` = the CONDITION's pose_mask_r4_0 (trainer.py:402-405,433-434), then the same SSIM",
        "is": "score.py:94 get_inception_score(all generated), tflib/inception_score.py:25,35,50-55: bs 100, 10 splits, no bias",
        "mask_is": "score_mask.py:106-107: IS of the generated images x the condition's mask",
        "pairs": "trainer.py:380,110-112: 400 batches of a shuffled, cycling tf queue (DF: 400 images, Market: 12,800)",
    },
    notes="PG² scored a random, repeating stream of test pairs (slim's shuffled queue); pgkit scores every "
          "test pair once, in order (use --limit to score fewer). Its mask-SSIM/mask-IS use the condition "
          "image's mask M_A (score_mask.py reads `mask/`, which trainer.py fills with the condition's mask), "
          "not the target's.",
)

DEFGAN = Protocol(
    name="defgan", title="Deformable GAN (Siarohin et al. 2018)",
    script="AliaksandrSiarohin/pose-gan test.py, pose_utils.py; AliaksandrSiarohin/gan inception_score.py",
    commit="8693ec4",
    ssim=(SSIMSpec("ssim", GAUSS_13), SSIMSpec("mask_ssim", GAUSS_13, mask="defgan")),
    inception_score=(ISSpec("is", batch=10), ISSpec("mask_is", batch=10, mask="defgan")),
    target_roundtrip="defgan",
    sources={
        "images": "test.py:86-87,95 (255 * ((out + 1) / 2)).astype(uint8): floor",
        "target": "pose_dataset.py:117-133; test.py:94 (x / 255 - 0.5) * 2 float64, then the same floor",
        "size": "native: fasion 256x256, market 128x64 (cmd.py:79-84)",
        "ssim": "test.py:26-33 compare_ssim(reference, generated, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, multichannel=True, data_range=generated.max() - generated.min()); skimage 0.13.1 (requirements.txt:8): 13-tap Gaussian (truncate 4.0), 5-pixel crop",
        "mask_ssim": "test.py:44-57,137-138,143: produce_ma_mask of the TARGET's keypoints on both images (0 outside)",
        "mask": "pose_utils.py:108-143: 23 limbs as rectangles of half-width 4, disks r < 4 at every keypoint, 5x5 dilation then erosion",
        "is": "test.py:125; gan inception_score.py:24,34,47-52: all generated images, bs 10, 10 splits, no bias",
        "mask_is": "test.py:139: IS of the masked generated images",
        "pairs": "test.py:89; pose_dataset.py:19,171-176: every row of the test pairs CSV, in order",
    },
    notes="Mask metrics are computed for DeepFashion too (test.py:136-144).",
)

_PATN_FASHION = Bring(size=(256, 176), rule="crop", pad_white=40, accepts=FASHION)
_PATN_MARKET = Bring(accepts=MARKET)
PATN = Protocol(
    name="patn", title="PATN / Pose-Transfer (Zhu et al. 2019)",
    script="tengteng95/Pose-Transfer tool/getMetrics_fashion.py, tool/getMetrics_market.py", commit="281ee2d",
    ssim=(SSIMSpec("ssim", GAUSS_13, bring=_PATN_FASHION), SSIMSpec("ssim", GAUSS_13, bring=_PATN_MARKET),
          SSIMSpec("mask_ssim", GAUSS_13, bring=_PATN_MARKET, mask="defgan")),
    inception_score=(ISSpec("is", batch=10, bring=_PATN_FASHION), ISSpec("is", batch=10, bring=_PATN_MARKET),
                     ISSpec("mask_is", batch=10, bring=_PATN_MARKET, mask="defgan")),
    target_roundtrip="patn", generated_jpeg=75, target_jpeg=75,
    sources={
        "images": "models/PATN.py:254-273,113; util/visualizer.py:137-140: 5-panel strips <from>___<to>_vis.jpg, PIL JPEG quality 75 (panels 0 condition, 2 target, 4 generated)",
        "target": "util/util.py:14-19: ToTensor/Normalize(0.5) then ((x + 1) / 2 * 255).astype(uint8): floor; then the strip's JPEG",
        "size": "fashion 256x176 (tool/generate_fashion_datasets.py:56 crop (40, 0, 216, 256)); market 128x64",
        "strip": "getMetrics_fashion.py:74-80 w = width / 5; target [:, 2w:3w], generated [:, 4w:5w]",
        "pad": "getMetrics_fashion.py:58-64,78-80 addBounding: 40 white (255) columns each side of target and generated -> 256x256 (fashion only; market: none, getMetrics_market.py:64-66)",
        "ssim": "getMetrics_fashion.py:23-30: as Deformable GAN (sigma 1.5, population covariance, data_range of the padded generated image); skimage 0.14.2 (requirements_tf.txt:27): 13 taps, 5-pixel crop",
        "is": "getMetrics_fashion.py:102; tool/inception_score.py:24,34,47-52: the padded generated images, bs 10, 10 splits, no bias",
        "mask_ssim": "getMetrics_market.py:39-52,105-113: produce_ma_mask of the target's keypoints, Market only",
        "mask_is": "getMetrics_market.py:123: IS of the masked generated images, Market only",
    },
    notes="256x256 images are brought to 256x176 by the standard crop (columns 40..216), then padded back. "
          "When pgkit scores its own model under `patn`, generated and target panels go through PIL's "
          "JPEG at quality 75 one panel at a time (the strip's 176-wide panels are whole 16-pixel MCUs).",
)

GFLA = Protocol(
    name="gfla", title="GFLA (Ren et al. 2020)",
    script="RenYurui/Global-Flow-Local-Attention script/metrics.py, script/inception.py", commit="3afa8fe",
    ssim=(SSIMSpec("ssim", WIN_51), SSIMSpec("ssim_256", GAUSS_15)),
    fid=FIDSpec(network="tv-inception-v3", input=OLD_PYTORCH_FID, batch=64, drop_last=True,
                real=RealSet(split="train", images="all")),
    lpips=LPIPSSpec(net="alex", batch=64, drop_last=True),
    generated_jpeg=75,
    sources={
        "images": "model/base_model.py:224-237; util/util.py:19-21,223: ((x + 1) / 2 * 255).astype: floor, saved as JPG by imageio (quality 75); model/pose_model.py:110,116 name <from stem>_2_<to stem>_vis.jpg",
        "target": "script/metrics.py:428-437: gt_path/<to>.jpg read with imageio (uint8, no resize)",
        "size": "256x256 (data/fashion_dataset.py:14-18, base_dataset.py:32-35: load_size 256)",
        "ssim": "script/metrics.py:254,322-323,335-336: compare_ssim(gt, pred, data_range=1, win_size=51, multichannel=True) on [0, 1] floats",
        "ssim_256": "script/metrics.py:340-344: gaussian sigma 1.5, population covariance, data_range = pred.max() - pred.min() on x 255 (skimage unpinned, 2020: >= 0.15, 11 taps)",
        "fid": "script/inception.py:59-128: torchvision inception_v3(pretrained=True) blocks to Mixed_7c + avg pool; F.upsample bilinear to 299 (align_corners False); [0, 1] x * std / 0.5 + (mean - 0.5) / 0.5",
        "fid_batch": "script/metrics.py:50,168-172: batch 64, n_batches = n // 64 (the last partial batch is dropped) for both folders",
        "fid_real": "PERSON_IMAGE_GENERATION.md:66-86: the whole training set (train_256)",
        "lpips": "script/metrics.py:443-507: PerceptualSimilarity net-lin alex v0.1 on imread / 127.5 - 1, batch 64, last partial batch dropped",
    },
    notes="GFLA's torchvision 0.2.1 loaded inception_v3_google-1a9a5a14.pth; pgkit uses its re-save "
          "0cc3c7bd (torchvision PR #3851, assumed equal values). Its statistics.npz and metrics.npz "
          "caches (reused silently when present) are not reproduced.",
)

_PIDM_RESIZE = Bring(size=(256, 176), rule="resize", filter="cv2-linear-float", accepts=FASHION)
PIDM = Protocol(
    name="pidm", title="PIDM (Bhunia et al. 2023)",
    script="ankanbhunia/PIDM utils/metrics.py, utils/inception.py", commit="e4f1d88",
    ssim=(SSIMSpec("ssim", WIN_51), SSIMSpec("ssim_256", GAUSS_12)),
    fid=FIDSpec(network="tv-inception-v3", input=OLD_PYTORCH_FID, bring=_PIDM_RESIZE, batch=64,
                drop_last=True, real=RealSet(split="train", images="all", bring=_PIDM_RESIZE)),
    lpips=LPIPSSpec(net="alex", bring=_PIDM_RESIZE, batch=64, drop_last=True),
    sources={
        "images": "utils/gen.py:84,159-172: 256x256 PNG, ((clamp(x) + 1) / 2 * 255).astype(uint8): floor",
        "target": "utils/metrics.py:435-444: test_256x256_pngs/<to>.png",
        "size": "SSIM at the files' 256x256 (utils/metrics.py:329-330,342-343); FID and LPIPS at 176x256",
        "ssim": "utils/metrics.py:329-343: win_size 51, data_range 1, multichannel",
        "ssim_256": "utils/metrics.py:347-351: gaussian sigma 1.2, population covariance, data_range of pred (skimage 0.17.2: 9 taps)",
        "fid": "utils/inception.py (identical to GFLA's); utils/metrics.py:109-116 imageio float32 -> cv2.resize(img, (176, 256)) INTER_LINEAR -> / 255, both sets",
        "fid_batch": "utils/metrics.py:52,175-176: batch 64, last partial batch dropped",
        "fid_real": "utils/metrics.py:644-646: train_256x256_pngs (the training images)",
        "lpips": "utils/metrics.py:454,490-523: lpips.LPIPS(net='alex') on cv2.resize(..., (176, 256)) / 127.5 - 1, batch 64, last partial batch dropped",
    },
    notes="PIDM's 256x256 images are DeepFashion's high-resolution photos squashed to 256x256 "
          "(data/prepare_data.py:26,84); FID and LPIPS squash them again to 176x256.",
)

CFLD = Protocol(
    name="cfld", title="CFLD (Lu et al. 2024)",
    script="YanzuoLu/CFLD models/metrics.py, pose_transfer_test.py", commit="f2ea2a7",
    ssim=(SSIMSpec("ssim", WIN_51, bring=CROP_176), SSIMSpec("ssim_256", GAUSS_15, bring=CROP_176)),
    fid=FIDSpec(network="tv-inception-v3", input=OLD_PYTORCH_FID, bring=CROP_176, batch=16,
                drop_last=False, real=RealSet(split="train", images="all", bring=CROP_176)),
    lpips=LPIPSSpec(net="alex", bring=CROP_176),
    sources={
        "images": "pose_transfer_test.py:119-122: F.interpolate(bicubic, antialias) to 256x176, x 255 clamp, to uint8 (floor)",
        "target": "datasets/deepfashion.py:167,184-193,208: test_highres/<to> -> PIL bicubic antialiased resize to 256x176",
        "size": "256x176 (configs/fashion_256.yaml:2)",
        "ssim": "models/metrics.py:76: structural_similarity(gt, pred, data_range=1, win_size=51, channel_axis=0)",
        "ssim_256": "models/metrics.py:78-82: gaussian sigma 1.5, population covariance, data_range of pred (skimage 0.20: 11 taps)",
        "fid": "models/metrics.py:20-41,89-95: inception_v3(weights=IMAGENET1K_V1) blocks to the avg pool; F.interpolate bilinear to 299; [0, 1] x * std / 0.5 + (mean - 0.5) / 0.5",
        "fid_batch": "pose_transfer_test.py:160-201: every image (no drop)",
        "fid_real": "datasets/deepfashion.py:232-258; pose_transfer_test.py:49-55,145-147: every train_highres image, bicubic antialiased to 256x176",
        "lpips": "models/metrics.py:44,62: LPIPS(net='alex')(pred, gt, normalize=True) on [0, 1] (= [-1, 1] inside)",
    },
    notes="CFLD resizes the 750x1101 high-resolution photos to 256x176; DeepFashion's 256x256 images are "
          "those photos resized into a white square, so pgkit brings them to 256x176 by the standard "
          "centre crop (columns 40..216). Images already 256x176 are used as they are.",
)

PROTOCOLS: dict[str, Protocol] = {p.name: p for p in (PG2, DEFGAN, PATN, GFLA, PIDM, CFLD)}


def resolve(names: str | list[str] | None) -> list[Protocol]:
    """Protocol names (comma-separated or a list; "all") -> Protocols; unknown names raise."""
    from pgprep.errors import PgkitError

    if names is None:
        return []
    items = names.split(",") if isinstance(names, str) else [n for s in names for n in str(s).split(",")]
    out: list[Protocol] = []
    for n in (s.strip() for s in items):
        if not n:
            continue
        for p in (PROTOCOLS.values() if n == "all" else [PROTOCOLS.get(n)]):
            if p is None:
                raise PgkitError(None, f"unknown protocol {n!r}; known: {', '.join(PROTOCOLS)}, all")
            if p not in out:
                out.append(p)
    return out


def markdown_table() -> str:
    """docs/evaluation.md's protocol table: every setting of every protocol with its citation
    (a test keeps the docs equal to this)."""
    lines = []
    for p in PROTOCOLS.values():
        lines.append(f"### `{p.name}` — {p.title}\n")
        lines.append(f"Script: {p.script} @ `{p.commit}`. Metrics: {', '.join(p.metrics())}.\n")
        lines.append("| setting | value, file:line |")
        lines.append("|---|---|")
        for k, v in p.sources.items():
            lines.append(f"| {k} | {v.replace('|', '/')} |")
        if p.notes:
            lines.append(f"\npgkit: {p.notes}")
        lines.append("")
    return "\n".join(lines)
