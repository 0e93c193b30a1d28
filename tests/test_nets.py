"""pgtrain.nets: PG²'s sizes at 256x256, scaling to small images, G2's difference map."""

from __future__ import annotations

import pytest
import torch

from pgprep.errors import PgkitError
from pgtrain.nets import G1, G2, PairDiscriminator, TripletCritic, TripletDiscriminator, build

pytestmark = pytest.mark.usefixtures("one_thread")


def test_g1_at_pg2_size_has_six_levels_to_8x8_768_and_fc64():
    g = G1(256, 128)
    assert g.levels == 6
    assert [b.conv1.in_channels for b in g.enc] == [128, 256, 384, 512, 640, 768]
    assert g.bottom == (128, 8, 8)
    assert (g.fc_in.in_features, g.fc_in.out_features, g.fc_out.out_features) == (8 * 8 * 768, 64, 8 * 8 * 128)
    assert not any(isinstance(m, (torch.nn.BatchNorm2d, torch.nn.Tanh)) for m in g.modules())


def test_g2_and_d_at_pg2_size():
    g2 = G2(256, 128)
    assert g2.levels == 4 and [b.conv1.in_channels for b in g2.enc] == [128, 256, 384, 512]
    assert all(b.conv1.in_channels == 128 for b in g2.dec)
    d = PairDiscriminator(256, 64)
    convs = [m for m in d.body if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 128, 256, 512, 512]
    assert all(c.kernel_size == (5, 5) and c.stride == (2, 2) for c in convs)
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in d.body) == 4  # layers 2-5
    assert d.head.in_features == 512 * 8 * 8


@pytest.mark.parametrize(("size", "levels"), [(16, 2), (32, 3), (64, 4), ((64, 48), 3)])
def test_levels_follow_the_image_size(size, levels):
    g = G1(size, 8)
    assert g.levels == levels
    h, w = (size, size) if isinstance(size, int) else size
    x, p = torch.randn(2, 3, h, w), torch.randn(2, 18, h, w)
    y = g(x, p)
    assert y.shape == (2, 3, h, w)
    assert G2(size, 8)(y, x).shape == (2, 3, h, w)
    assert PairDiscriminator(size, 4)(x, y).shape == (2,)
    assert TripletDiscriminator(size, 4)(y, p).shape == (2,)


def test_sizes_that_do_not_divide_are_refused():
    with pytest.raises(PgkitError, match="not divisible"):
        G1((64, 50), 8)
    with pytest.raises(PgkitError, match="smaller"):
        G1(4, 8)


def test_g2_returns_g1_plus_its_difference_map():
    torch.manual_seed(0)
    g2 = G2(32, 8)
    g1_out, i_a = torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32)
    out = g2(g1_out, i_a)
    assert torch.allclose(out - g1_out, g2.diff_map(g1_out, i_a), atol=1e-6)
    # the small last layer keeps G2 near G1 at the start, but not equal to it
    diff = (out - g1_out).abs().mean()
    assert 0 < diff < 0.1 * g1_out.abs().mean()


def test_d_init_is_pg2_normal_002_and_the_critic_has_no_head_bias():
    torch.manual_seed(0)
    d = PairDiscriminator(64, 32)
    w = torch.cat([m.weight.flatten() for m in d.modules() if isinstance(m, torch.nn.Conv2d)])
    assert abs(w.std().item() - 0.02) < 0.002 and abs(w.mean().item()) < 0.002
    assert TripletCritic(64, 8).head.bias is None and TripletDiscriminator(64, 8).head.bias is not None
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in TripletCritic(64, 8, norm="none").modules())


def test_build_from_options():
    o = {"image_size": [64, 64], "channels": 16, "fc_dim": 32, "discriminator": "triplet",
         "adversarial": "wasserstein", "d_norm": "batch", "d_channels": None}
    assert build("g1", o).fc_in.out_features == 32
    d = build("d", o)
    assert isinstance(d, TripletCritic) and d.body[0].out_channels == 8
    assert isinstance(build("d", {**o, "discriminator": "pair"}), PairDiscriminator)
