"""The recipe of `pgtrain fit`: the networks, their optimisers and one training step of each stage.

In the paper's symbols (I_A condition, I_B target, P_B target pose, M_B mask):

- Stage 1: G1(I_A, P_B) minimises the pose-mask L1 ||(G1 - I_B) * (1 + M_B)||_1 (the seed;
  pg2-official: PG²'s released plain L1).
- Stage 2 (G1 frozen): per generator step, `critic_steps` discriminator steps, each on a new
  batch, then one G2 step on the last batch (pg2-official: the G2 step first, on its own batch):
  D step: one D pass over the real and fake sets (pair D: (I_A, I_B) vs (I_A, G2); triplet
  classifier: I_B vs G2 and I_A), BCE or Wasserstein loss (+ gradient penalty), then clipping;
  G step (D frozen, D's gradient flows into G2): adversarial + l1_weight * pose-mask L1.
  Every setting's source: docs/training.md, "Provenance".
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch

from pgprep import geometry
from pgtrain import checkpoint, dist, losses, nets
from pgtrain.presets import Options


class Trainer:
    """The networks, optimisers and one training step of each stage.

    Every network is built up front from `options.seed`, so Stage 2 starts from the same G2
    and D whether or not the run was interrupted in between.
    """

    def __init__(self, o: Options, image_size, device: torch.device, info: dist.DistInfo | None = None):
        self.o, self.device, self.info = o, device, info or dist.DistInfo()
        self.spec = {**o.to_dict(), "image_size": list(image_size)}
        # bf16 autocast on GPUs; amp_cpu forces it on CPU (the GPU dtype mix, tests/test_gpu_path.py)
        self.amp = o.amp and (device.type == "cuda" or (o.amp_cpu and device.type == "cpu"))
        # channels_last: standard on CUDA; on CPU it measured 12-17 % faster (benchmarks/bench_train.py)
        self.channels_last = device.type in ("cuda", "cpu") if o.channels_last is None else o.channels_last
        torch.manual_seed(o.seed)
        self.g1 = self._place(nets.build("g1", self.spec))
        self.g2 = self.d = None
        self.opt = {"g1": self._optimizer(self.g1.parameters(), o.lr, o.optimizer1, (o.beta1, o.beta2))}
        if o.discriminator is not None:
            self.g2 = self._place(nets.build("g2", self.spec))
            self.d = self._place(nets.build("d", self.spec))
            betas2 = tuple(o.betas2) if o.betas2 else (o.beta1, o.beta2)
            self.opt["g2"] = self._optimizer(self.g2.parameters(), o.lr2 or o.lr, o.optimizer, betas2)
            self.opt["d"] = self._optimizer(self.d.parameters(), o.lr_d or o.lr2 or o.lr, o.optimizer, betas2)
            if o.clip:  # the critic lives inside the clip box from the start
                losses.clip_weights(self.d, o.clip)
        # DDP wrappers for the forward passes whose gradients must be averaged over ranks
        self.g1_t, self.g2_t, self.d_t = self.g1, self.g2, self.d
        if self.info.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP  # noqa: N817

            ids = [device.index] if device.type == "cuda" else None
            self.g1_t = DDP(self.g1, device_ids=ids)
            if self.g2 is not None:
                self.g2_t = DDP(self.g2, device_ids=ids)
                self.d_t = DDP(self.d, device_ids=ids)

    def _place(self, m: torch.nn.Module) -> torch.nn.Module:
        m = m.to(self.device)
        return m.to(memory_format=torch.channels_last) if self.channels_last else m

    def _optimizer(self, params, lr: float, kind: str, betas: tuple[float, float]) -> torch.optim.Optimizer:
        if kind == "rmsprop":  # PyTorch's defaults (alpha 0.99, eps 1e-8), as in Arjovsky et al.'s WGAN code
            return torch.optim.RMSprop(params, lr=lr)
        # fused: one kernel for all parameters instead of ~10 per tensor (launch-bound at batch 4)
        return torch.optim.Adam(params, lr=lr, betas=betas, fused=self.device.type == "cuda" or None)

    def autocast(self):
        if not self.amp:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    # pose-map settings for raw batches (fit sets the data's own)
    pose: dict = geometry.DEFAULT_POSE

    def compile(self) -> None:
        """torch.compile the training forward passes (G1's in Stage 1, G2's and D's in
        Stage 2); parameters are shared, so checkpoints and eval-mode passes are unchanged."""
        self.g1_t = torch.compile(self.g1_t)
        if self.g2 is not None:
            self.g2_t, self.d_t = torch.compile(self.g2_t), torch.compile(self.d_t)

    def to_device(self, batch: dict) -> dict:
        """A collated batch on the training device (channels_last where set). A raw batch
        (PairDataset(raw=True): uint8 images and masks, keypoints) is normalised and its pose
        maps rendered there: the same tensors the float path brings (tests/test_gpu_path.py)."""
        if "keypoints" in batch:
            from pgtrain.data import to_device_batch

            batch = to_device_batch(batch, self.device, self.pose["kind"], self.pose["radius"],
                                    self.pose["sigma"])
        out = {}
        for k, v in batch.items():
            if torch.is_tensor(v) and v.is_floating_point():
                v = v.to(self.device, non_blocking=True)
                if self.channels_last and v.ndim == 4:
                    v = v.contiguous(memory_format=torch.channels_last)
            out[k] = v
        return out

    # -- Stage 1
    def stage1_step(self, batch: dict) -> dict[str, torch.Tensor]:
        b = self.to_device(batch)
        self.g1.train()
        with self.autocast():
            out = self.g1_t(b["condition"], b["pose"])
        loss = losses.STAGE1[self.o.stage1_loss](out.float(), b["target"], b["mask"])
        self.opt["g1"].zero_grad(set_to_none=True)
        loss.backward()
        self.opt["g1"].step()
        return {"l1": loss.detach()}

    # -- Stage 2
    @torch.no_grad()
    def g1_output(self, b: dict) -> torch.Tensor:
        self.g1.eval()
        with self.autocast():
            return self.g1(b["condition"], b["pose"]).float()

    def d_input(self, b: dict, x: torch.Tensor) -> torch.Tensor:
        """What D classifies for image x: the pair D sees (I_A, x), the seed's and PG²'s
        triplet classifier x alone, the triplet-pose extension (x, P_B)."""
        if self.o.discriminator == "pair":
            return torch.cat([b["condition"], x], 1)
        if self.o.discriminator == "triplet-pose":
            return torch.cat([x, b["pose"]], 1)
        return x

    def d_scores(self, d, b: dict, fake: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(real scores, [fake scores...]): I_B is real; G2's output is fake, and for the
        triplet classifiers so is I_A. One forward over the concatenated sets, as
        trainer256.py runs D on concat([I_B, G2, I_A]): batch norm sees them together."""
        sets = [b["target"], fake] + ([] if self.o.discriminator == "pair" else [b["condition"]])
        scores = d(torch.cat([self.d_input(b, x) for x in sets])).float()
        real, *fakes = scores.split(fake.shape[0])
        return real, fakes

    def g_scores(self, b: dict, fake: torch.Tensor) -> torch.Tensor:
        """D's scores of what the G step's adversarial term uses: G2's output, or every fake
        set. With batch norm, D scores them in the batch D saw ([I_B, G2, (I_A)]), since its
        statistics couple the images; without (d_norm "none") each score depends on its image
        alone, so only the sets used are run."""
        used_sets = 1 if self.o.g_adversarial_on == "g2" else None
        if self.o.d_norm == "none":
            sets = [fake] + ([] if self.o.discriminator == "pair" else [b["condition"]])
            sets = sets[:used_sets]
            return self.d(torch.cat([self.d_input(b, x) for x in sets])).float()
        _, fakes = self.d_scores(self.d, b, fake)
        return torch.cat(fakes[:used_sets])

    def g2_output(self, b: dict, g1_out: torch.Tensor) -> torch.Tensor:
        """G2's output for batch b, with gradients (the G step backpropagates through it)."""
        with self.autocast():
            return self.g2_t(g1_out, b["condition"])

    def d_step(self, b: dict, g1_out: torch.Tensor, fake: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """One D step; `fake` is G2's output for b if the caller has it already (not updated here)."""
        self.d.train()
        if fake is None:
            with torch.no_grad(), self.autocast():
                fake = self.g2(g1_out, b["condition"])
        fake = fake.detach().float()
        with self.autocast():
            real, fakes = self.d_scores(self.d_t, b, fake)
        loss = losses.discriminator_loss(self.o.adversarial, real, fakes)
        out = {"d": loss.detach(), "d_real": real.detach().mean(), "d_fake": fakes[0].detach().mean()}
        if self.o.gp:
            gp = losses.gradient_penalty(self.d, self.d_input(b, b["target"]), self.d_input(b, fake))
            loss = loss + self.o.gp * gp
            out["gp"] = gp.detach()
        self.opt["d"].zero_grad(set_to_none=True)
        loss.backward()
        self.opt["d"].step()
        if self.o.clip:
            losses.clip_weights(self.d, self.o.clip)
        return out

    def g_step(self, b: dict, g1_out: torch.Tensor, fake: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """G2 minimises adv_weight * adversarial + l1_weight * (L1 + masked L1). The
        adversarial term scores G2's output ("g2"), or every fake set ("fakes": trainer256.py
        takes the mean over [G2, I_A], whose I_A half reaches G2 only through batch norm).
        `fake` = g2_output(b, g1_out) if the caller computed it already."""
        self.d.requires_grad_(False)  # D's gradient reaches G2, D itself is not updated
        try:
            if fake is None:
                fake = self.g2_output(b, g1_out)
            with self.autocast():
                scored = self.g_scores(b, fake)
            adv = losses.generator_loss(self.o.adversarial, scored)
            l1 = losses.pose_mask_l1(fake.float(), b["target"], b["mask"])
            loss = self.o.adv_weight * adv + self.o.l1_weight * l1
            self.opt["g2"].zero_grad(set_to_none=True)
            loss.backward()
            self.opt["g2"].step()
        finally:
            self.d.requires_grad_(True)
        return {"g": loss.detach(), "g_adv": adv.detach(), "l1": l1.detach()}

    def stage2_step(self, next_batch: Callable[[], dict]) -> dict[str, torch.Tensor]:
        """`critic_steps` D steps, each on a new batch, and one G2 step: on the last D batch
        (seed, WGAN), or first, on its own batch (PG²'s train loop: g_optim2 then d_optim)."""
        out: dict[str, torch.Tensor] = {}
        if self.o.g_step_first:
            b = self.to_device(next_batch())
            out.update(self.g_step(b, self.g1_output(b)))
        for i in range(self.o.critic_steps):
            b = self.to_device(next_batch())
            g1_out = self.g1_output(b)
            # the G step reuses the last D batch: run G2 on it once, with gradients, for both
            fake = self.g2_output(b, g1_out) if i == self.o.critic_steps - 1 and not self.o.g_step_first else None
            out.update(self.d_step(b, g1_out, fake))
        if not self.o.g_step_first:
            out.update(self.g_step(b, g1_out, fake))
        return out

    # -- state
    def modules(self) -> dict[str, torch.nn.Module]:
        return {k: m for k, m in (("g1", self.g1), ("g2", self.g2), ("d", self.d)) if m is not None}

    def state_dict(self) -> dict:
        return {"nets": {k: m.state_dict() for k, m in self.modules().items()},
                "optims": {k: o.state_dict() for k, o in self.opt.items()}}

    def load_state_dict(self, ck: dict, path=None) -> None:
        for k, m in self.modules().items():
            if k in ck["nets"]:
                checkpoint.load_weights(m, ck["nets"][k], path, k.upper())
        for k, o in self.opt.items():
            if k in ck.get("optims", {}):
                o.load_state_dict(ck["optims"][k])
