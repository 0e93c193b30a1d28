"""Training options as data: one frozen dataclass, one preset per row of the seed's Table 1.

`resolve(preset, tiny=False, **overrides)` = the preset's options, then the CPU-sized
`TINY` profile if asked, then the caller's overrides. Every preset value is traced to its
source in docs/training.md ("Provenance"); the comments below name the source briefly:
"seed" = the Stanford 2018 report's text, "PG²" = Ma et al.'s released code
(trainer256.py, trainer.py, run_DF_train.sh, models*.py, wgan_gp_128x64.py).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from pgprep.errors import PgkitError

DISCRIMINATORS = (None, "pair", "triplet", "triplet-pose")
STAGE1_LOSSES = ("pose-mask-l1", "l1")
G_ADVERSARIAL_ON = ("g2", "fakes")


@dataclass(frozen=True)
class Options:
    preset: str = "g1"
    stage: str = "both"             # "1", "2" or "both" (g1: only 1 exists)
    steps1: int = 40_000            # Stage-1 (G1) steps (seed)
    steps2: int = 25_000            # Stage-2 (G2 + D) generator steps (seed)
    batch_size: int = 4             # global batch, split over DDP ranks (seed)
    channels: int = 128             # base width n of G1/G2 (PG²: conv_hidden_num 128)
    d_channels: int | None = None   # D's base width (None: channels // 2, PG²'s DIM 64)
    fc_dim: int = 64                # G1's bottleneck z_num (PG²: 64)
    g2_skips: str | None = None     # G2 variant: "all" (DeepFashion), "inner" (Market); None: by size
    diffmap_init: float = 1.0       # scale of G2's last-layer init (1: PG²'s Glorot; pgkit's --tiny: 0.1)
    lr: float = 5e-5                # every stage, every network (seed)
    lr2: float | None = None        # Stage-2 lr (G2 and D) if different from lr
    lr_d: float | None = None       # D's lr if different (default lr2, then lr)
    optimizer1: str = "adam"        # Stage 1 (seed: Adam for Stage 1 in every row)
    optimizer: str = "adam"         # Stage 2, G2 and D: "adam" or "rmsprop"
    beta1: float = 0.5              # Adam (PG²: beta1 0.5, beta2 0.999)
    beta2: float = 0.999
    betas2: tuple[float, float] | None = None  # Stage-2 Adam betas if different (WGAN-GP)
    stage1_loss: str = "pose-mask-l1"  # seed: ||(G1 - I_B)(1 + M_B)||_1; PG² code: plain L1
    discriminator: str | None = None   # None (G1 only), "pair", "triplet", "triplet-pose"
    d_norm: str = "batch"           # D's normalisation: "batch" or "none"
    adversarial: str = "bce"        # "bce" or "wasserstein"
    g_adversarial_on: str = "g2"    # G2's adversarial term on D(G2) ("g2") or on every fake set ("fakes", PG² code)
    g_step_first: bool = False      # Stage-2 order: G step then D step (PG² code) or D first
    critic_steps: int = 1           # D steps per G2 step (WGAN: 10)
    clip: float | None = None       # critic weight clipping (WGAN: 0.01)
    gp: float = 0.0                 # WGAN-GP weight (0: off)
    l1_weight: float = 50.0         # weight of G2's L1 + masked L1 (PG² trainer256.py: 50)
    adv_weight: float = 1.0
    seed: int = 0
    device: str = "auto"            # auto -> cuda, mps, cpu
    amp: bool = True                # bf16 autocast (GPU only; ignored on CPU)
    amp_cpu: bool = False           # force bf16 autocast on CPU too (tests the GPU dtype mix)
    channels_last: bool | None = None  # None: on CUDA and CPU (CPU measured faster), off on MPS
    workers: int | None = None      # DataLoader workers (None: 0 on CPU, 4 on GPU)
    data_path: str = "auto"         # batches as "raw" uint8 (maps built on the device) or "float"; auto: raw
    compile: bool = False           # torch.compile the training forward passes
    log_every: int = 50
    sample_every: int = 1000
    ckpt_every: int = 1000
    sample_count: int = 4           # rows in the sample grid
    init_from: str | None = None    # Stage-2 start: a checkpoint holding G1
    tiny: bool = False

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def batches_per_step(self, stage: int) -> int:
        """Batches one step of `stage` draws: 1 in Stage 1; in Stage 2 one per D step, plus
        one for the G2 step when it comes first on its own batch (pg2-official)."""
        return 1 if stage == 1 else self.critic_steps + int(self.g_step_first)

    @property
    def stages(self) -> tuple[int, ...]:
        if self.discriminator is None:
            return (1,)
        return {"1": (1,), "2": (2,), "both": (1, 2)}[self.stage]


_SEED = Options()
PRESETS: dict[str, Options] = {
    # Table 1 "G1": Stage 1 alone
    "g1": dataclasses.replace(_SEED, preset="g1", stage="1", steps2=0),
    # Table 1 "G1+G2+D": the seed's PG² pair D, real (I_A, I_B), fake (I_A, G2)
    "pg2": dataclasses.replace(_SEED, preset="pg2", discriminator="pair"),
    # Table 1 "Triplet": one-image classifier, I_B -> 1, G2 and I_A -> 0
    "triplet": dataclasses.replace(_SEED, preset="triplet", discriminator="triplet"),
    # Table 1 "WGAN-triplet": that classifier as a critic; RMSProp in Stage 2 only
    "wgan-triplet": dataclasses.replace(
        _SEED, preset="wgan-triplet", discriminator="triplet", adversarial="wasserstein",
        optimizer="rmsprop", critic_steps=10, clip=0.01),
    # Table 1 "Ma et al." as released: run_DF_train.sh + trainer256.py + trainer.py
    "pg2-official": dataclasses.replace(
        _SEED, preset="pg2-official", discriminator="triplet", batch_size=1, lr=2e-5,
        steps1=22_000, steps2=58_000, stage1_loss="l1", g_adversarial_on="fakes",
        g_step_first=True),
    # Ma et al.'s Market-1501 configuration as released: run_market_train.sh + trainer.py (class
    # PG2, main.py --model=1): 128x64, batch 16, 60k steps (22k Stage 1), Adam 2e-5 (trainer.py
    # _getOptimizer 'dcgan'), Stage 1 = L1 + pose-mask L1 (trainer.py g_loss1), G2's L1 weight 10
    # (trainer.py L1Loss2 * 10), G2's adversarial term on D(G2) only (_gan_loss gen_cost), G2 then D
    "pg2-official-market": dataclasses.replace(
        _SEED, preset="pg2-official-market", discriminator="triplet", batch_size=16, lr=2e-5,
        steps1=22_000, steps2=38_000, stage1_loss="pose-mask-l1", g_adversarial_on="g2",
        g_step_first=True, l1_weight=10.0, g2_skips="inner"),
    # extensions, not in the seed's table
    "triplet-pose": dataclasses.replace(_SEED, preset="triplet-pose", discriminator="triplet-pose"),
    # the gradient-penalty critic (Gulrajani et al.: Adam(0, 0.9), 5 critic steps, lambda 10,
    # no batch norm in the critic)
    "wgan-gp-triplet": dataclasses.replace(
        _SEED, preset="wgan-gp-triplet", discriminator="triplet", adversarial="wasserstein",
        betas2=(0.0, 0.9), critic_steps=5, gp=10.0, d_norm="none"),
}
TABLE1 = ("g1", "pg2", "triplet", "wgan-triplet", "pg2-official")

# CPU-sized: 64x64 synthetic people train in minutes on two cores.
# diffmap_init 0.1 (pgkit choice, CPU-sized runs only): with PG²'s Glorot init G2 starts at
# G1 + a DiffMap of std ~0.08 and needs ~200 Stage-2 steps just to get back to G1 (measured:
# SSIM G1 0.7125 -> G2 0.697 after 40 steps with the GAN term off); PG²'s 58k steps never notice.
TINY = dict(channels=16, batch_size=8, steps1=600, steps2=200, lr=1e-3, lr2=1e-4, log_every=10,
            sample_every=100, ckpt_every=100, diffmap_init=0.1)

# do not change what is trained (ignored when deciding that a finished run is up to date)
COSMETIC = frozenset({"device", "workers", "log_every", "sample_every", "ckpt_every", "amp",
                      "channels_last", "data_path", "amp_cpu", "compile"})
# may change when resuming a run (everything else must match the checkpoint)
RESUMABLE = COSMETIC | {"steps1", "steps2", "stage"}


def resolve(preset: str = "g1", *, tiny: bool = False, **overrides) -> Options:
    if preset not in PRESETS:
        raise PgkitError(None, f"unknown preset {preset!r} (choose from {', '.join(PRESETS)})")
    names = {f.name for f in dataclasses.fields(Options)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise PgkitError(None, f"unknown training option(s): {', '.join(unknown)}")
    opts = PRESETS[preset]
    if tiny:
        opts = dataclasses.replace(opts, tiny=True, **TINY)
    opts = dataclasses.replace(opts, **overrides)
    validate(opts)
    return opts


def validate(o: Options) -> None:
    def bad(msg):
        raise PgkitError(None, msg)

    if o.stage not in ("1", "2", "both"):
        bad(f"--stage must be 1, 2 or both, not {o.stage!r}")
    if o.discriminator is None and o.stage == "2":
        bad(f"preset {o.preset} has no Stage 2")
    for k in ("steps1", "steps2"):
        if getattr(o, k) < 0:
            bad(f"--{k} must be >= 0")
    for k in ("batch_size", "channels", "critic_steps", "log_every", "sample_every", "ckpt_every"):
        if getattr(o, k) < 1:
            bad(f"--{k.replace('_', '-')} must be >= 1")
    if o.lr <= 0:
        bad("--lr must be > 0")
    for k in ("optimizer1", "optimizer"):
        if getattr(o, k) not in ("adam", "rmsprop"):
            bad(f"{k} must be adam or rmsprop, not {getattr(o, k)!r}")
    if o.stage1_loss not in STAGE1_LOSSES:
        bad(f"stage1_loss must be one of {', '.join(STAGE1_LOSSES)}, not {o.stage1_loss!r}")
    if o.g_adversarial_on not in G_ADVERSARIAL_ON:
        bad(f"g_adversarial_on must be one of {', '.join(G_ADVERSARIAL_ON)}, not {o.g_adversarial_on!r}")
    if o.g2_skips not in (None, "all", "inner"):
        bad(f"g2_skips must be all or inner, not {o.g2_skips!r}")
    if o.adversarial not in ("bce", "wasserstein"):
        bad(f"adversarial loss must be bce or wasserstein, not {o.adversarial!r}")
    if o.discriminator not in DISCRIMINATORS:
        bad(f"discriminator must be one of {', '.join(map(str, DISCRIMINATORS[1:]))}, not {o.discriminator!r}")
    if o.gp and o.d_norm == "batch":
        bad("the gradient penalty needs a critic without batch norm (d_norm='none')")
    if o.clip is not None and o.clip <= 0:
        bad("--clip must be > 0")
    if o.data_path not in ("auto", "raw", "float"):
        bad(f"--data-path must be auto, raw or float, not {o.data_path!r}")
