"""pgtrain.presets: every Table 1 row has the values its source gives (docs/training.md)."""

from __future__ import annotations

import pytest

from pgprep.errors import PgkitError
from pgtrain.presets import PRESETS, TABLE1, resolve


def test_the_seed_rows_share_the_seed_schedule():
    for name in ("g1", "pg2", "triplet", "wgan-triplet"):
        o = PRESETS[name]
        assert (o.batch_size, o.steps1, o.lr, o.optimizer1, o.stage1_loss) == (4, 40_000, 5e-5, "adam", "pose-mask-l1")
        assert o.steps2 == (0 if name == "g1" else 25_000)


def test_discriminators_and_adversarial_settings():
    assert PRESETS["pg2"].discriminator == "pair" and PRESETS["pg2"].adversarial == "bce"
    assert PRESETS["triplet"].discriminator == "triplet" and PRESETS["triplet"].g_adversarial_on == "g2"
    w = PRESETS["wgan-triplet"]
    assert (w.discriminator, w.adversarial, w.optimizer, w.optimizer1, w.critic_steps, w.clip, w.lr) == (
        "triplet", "wasserstein", "rmsprop", "adam", 10, 0.01, 5e-5)
    assert PRESETS["triplet-pose"].discriminator == "triplet-pose"
    assert set(TABLE1) <= set(PRESETS)


def test_pg2_official_is_the_released_configuration():
    o = PRESETS["pg2-official"]
    # run_DF_train.sh: batch 1, 80k steps, lr 2e-5 (trainer.py _getOptimizer hard-codes 2e-5,
    # beta1 0.5); trainer.py train(): G1 alone for step < 22000; trainer256.py: one-image D
    # over [I_B, G2, I_A], G2's adversarial term over [G2, I_A], 50 x (L1 + masked L1)
    assert (o.batch_size, o.steps1, o.steps1 + o.steps2, o.lr, o.beta1, o.beta2) == (1, 22_000, 80_000, 2e-5, 0.5, 0.999)
    assert (o.discriminator, o.g_adversarial_on, o.stage1_loss, o.g_step_first, o.l1_weight) == (
        "triplet", "fakes", "l1", True, 50.0)
    assert o.optimizer == o.optimizer1 == "adam" and o.lr2 is None and o.critic_steps == 1


def test_bad_values_are_refused():
    with pytest.raises(PgkitError, match="stage1_loss"):
        resolve("g1", stage1_loss="l2")
    with pytest.raises(PgkitError, match="unknown preset"):
        resolve("pg3")
