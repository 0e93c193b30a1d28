"""Training options as data: one frozen dataclass, one preset per system of the seed's Table 1.

`resolve(preset, tiny=False, **overrides)` = the preset's options, then the CPU-sized
`TINY` profile if asked, then the caller's overrides. Defaults are the seed's schedule:
batch 4, 40k Stage-1 + 25k Stage-2 steps, lr 5e-5, Adam (beta1 0.5); RMSProp and 10
critic steps with clipping at 0.01 for the WGAN triplet critic; G2's loss = adversarial +
50 x pose-mask L1 (PG²).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from pgprep.errors import PgkitError


@dataclass(frozen=True)
class Options:
    preset: str = "g1"
    stage: str = "both"             # "1", "2" or "both" (g1: only 1 exists)
    steps1: int = 40_000            # Stage-1 (G1) steps
    steps2: int = 25_000            # Stage-2 (G2 + D) generator steps
    batch_size: int = 4             # global batch (split over DDP ranks)
    channels: int = 128             # base width of G1/G2 (PG²: 128)
    d_channels: int | None = None   # D's base width (None: channels // 2, PG²'s 64)
    fc_dim: int = 64                # G1's fully connected bottleneck (PG²: 64)
    lr: float = 5e-5                # every stage, every network (seed)
    lr2: float | None = None        # Stage-2 lr (G2 and D) if different from lr
    lr_d: float | None = None       # D's lr if different (default lr2, then lr)
    optimizer: str = "adam"         # "adam" or "rmsprop"
    beta1: float = 0.5
    beta2: float = 0.999
    discriminator: str | None = None  # None (G1 only), "pair" (PG²), "triplet" (seed)
    d_norm: str = "batch"           # D's normalisation: "batch" or "none"
    adversarial: str = "bce"        # "bce" or "wasserstein"
    critic_steps: int = 1           # D steps per G2 step (WGAN: 10)
    clip: float | None = None       # critic weight clipping (WGAN: 0.01)
    gp: float = 0.0                 # WGAN-GP weight (0: off)
    l1_weight: float = 50.0         # lambda of the pose-mask L1 in G2's loss (PG²: 50)
    adv_weight: float = 1.0
    seed: int = 0
    device: str = "auto"            # auto -> cuda, mps, cpu
    amp: bool = True                # bf16 autocast (GPU only; ignored on CPU)
    channels_last: bool | None = None  # None: on CUDA and CPU (CPU measured faster), off on MPS
    workers: int | None = None      # DataLoader workers (None: 0 on CPU, 4 on GPU)
    log_every: int = 50
    sample_every: int = 1000
    ckpt_every: int = 1000
    sample_count: int = 4           # rows in the sample grid
    init_from: str | None = None    # Stage-2 start: a checkpoint holding G1
    tiny: bool = False

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @property
    def stages(self) -> tuple[int, ...]:
        if self.discriminator is None:
            return (1,)
        return {"1": (1,), "2": (2,), "both": (1, 2)}[self.stage]


_SEED = Options()
PRESETS: dict[str, Options] = {
    "g1": dataclasses.replace(_SEED, preset="g1", stage="1", steps2=0),
    "pg2": dataclasses.replace(_SEED, preset="pg2", discriminator="pair"),
    "triplet": dataclasses.replace(_SEED, preset="triplet", discriminator="triplet"),
    "wgan-triplet": dataclasses.replace(
        _SEED, preset="wgan-triplet", discriminator="triplet", adversarial="wasserstein",
        optimizer="rmsprop", critic_steps=10, clip=0.01),
    # not in the seed: the gradient-penalty critic (Gulrajani et al.: Adam(0, 0.9), 5 critic
    # steps, lambda 10, no batch norm in the critic)
    "wgan-gp-triplet": dataclasses.replace(
        _SEED, preset="wgan-gp-triplet", discriminator="triplet", adversarial="wasserstein",
        beta1=0.0, beta2=0.9, critic_steps=5, gp=10.0, d_norm="none"),
}

# CPU-sized: 64x64 synthetic people train in minutes on two cores.
TINY = dict(channels=16, batch_size=8, steps1=600, steps2=200, lr=1e-3, lr2=1e-4, log_every=10,
            sample_every=100, ckpt_every=100)

# do not change what is trained (ignored when deciding that a finished run is up to date)
COSMETIC = frozenset({"device", "workers", "log_every", "sample_every", "ckpt_every", "amp",
                      "channels_last"})
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
    if o.optimizer not in ("adam", "rmsprop"):
        bad(f"optimizer must be adam or rmsprop, not {o.optimizer!r}")
    if o.adversarial not in ("bce", "wasserstein"):
        bad(f"adversarial loss must be bce or wasserstein, not {o.adversarial!r}")
    if o.discriminator not in (None, "pair", "triplet"):
        bad(f"discriminator must be pair or triplet, not {o.discriminator!r}")
    if o.gp and o.d_norm == "batch":
        bad("the gradient penalty needs a critic without batch norm (d_norm='none')")
    if o.clip is not None and o.clip <= 0:
        bad("--clip must be > 0")
