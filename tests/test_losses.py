"""pgtrain.losses against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from pgtrain import losses


def test_pose_mask_l1_counts_body_pixels_twice():
    x = torch.zeros(1, 3, 2, 2)
    target = torch.tensor([1.0, 2.0, 3.0, 4.0]).view(1, 1, 2, 2).expand(1, 3, 2, 2)
    mask = torch.tensor([1.0, 0.0, 0.0, 1.0]).view(1, 1, 2, 2)
    # per channel |d| * (1 + m) = 2, 2, 3, 8 -> mean 15 / 4
    assert losses.pose_mask_l1(x, target, mask).item() == pytest.approx(15 / 4)
    assert losses.masked_l1(x, target, mask).item() == pytest.approx((1 + 4) / 2)
    assert losses.masked_l1(x, target, torch.zeros_like(mask)).item() == 0


def test_bce_losses_are_minus_log_sigmoid():
    real, fake_a, fake_b = torch.tensor([2.0]), torch.tensor([-1.0]), torch.tensor([0.5])
    sig = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    # trainer256.py: (BCE(real, 1) + BCE(fakes pooled, 0)) / 2
    want = (-math.log(sig(2.0)) + 0.5 * (-math.log(1 - sig(-1.0)) - math.log(1 - sig(0.5)))) / 2
    assert losses.discriminator_loss("bce", real, [fake_a, fake_b]).item() == pytest.approx(want, rel=1e-6)
    assert losses.generator_loss("bce", fake_a).item() == pytest.approx(-math.log(sig(-1.0)), rel=1e-6)


def test_stage1_losses():
    x, target = torch.zeros(1, 3, 1, 2), torch.tensor([1.0, 3.0]).view(1, 1, 1, 2).expand(1, 3, 1, 2)
    mask = torch.tensor([1.0, 0.0]).view(1, 1, 1, 2)
    assert losses.STAGE1["l1"](x, target, mask).item() == pytest.approx(2.0)  # mask unused
    assert losses.STAGE1["pose-mask-l1"](x, target, mask).item() == pytest.approx((2 + 3) / 2)


def test_wasserstein_losses():
    real, fake = torch.tensor([1.0, 3.0]), torch.tensor([-2.0, 0.0])
    assert losses.discriminator_loss("wasserstein", real, [fake]).item() == pytest.approx(-1 - 2)
    assert losses.generator_loss("wasserstein", fake).item() == pytest.approx(1.0)
    with pytest.raises(ValueError):
        losses.generator_loss("hinge", fake)


def test_gradient_penalty_of_a_linear_critic_is_norm_minus_one_squared():
    torch.manual_seed(0)
    w = torch.randn(1, 3, 4, 4)
    score = lambda x: (x * w).flatten(1).sum(1)  # noqa: E731 - gradient w everywhere
    gp = losses.gradient_penalty(score, torch.randn(5, 3, 4, 4), torch.randn(5, 3, 4, 4))
    assert gp.item() == pytest.approx((w.norm().item() - 1) ** 2, rel=1e-5)


def test_clip_weights():
    m = torch.nn.Linear(4, 3)
    with torch.no_grad():
        m.weight.copy_(torch.linspace(-1, 1, 12).view(3, 4))
    losses.clip_weights(m, 0.01)
    assert m.weight.abs().max().item() == pytest.approx(0.01) and m.bias.abs().max() <= 0.01
