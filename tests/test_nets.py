"""pgtrain.nets against PG²'s released code (charliememory/Pose-Guided-Person-Image-Generation).

The parameter counts below are derived by hand from the released layer lists, one line per
layer, not from our modules: a conv k x k from c_in to c_out has k*k*c_in*c_out weights and
c_out biases (slim.conv2d and tflib Conv2D both add biases); a fully connected layer
n_in*n_out + n_out; tflib batch norm a scale and an offset per channel. Full-size networks
are built on the meta device: counting and shape checks allocate nothing.
"""

from __future__ import annotations

import pytest
import torch

from pgprep.errors import PgkitError
from pgtrain.nets import G1, G2, DCGANDiscriminator, build
from pgtrain.nets._common import SameConv2d

pytestmark = pytest.mark.usefixtures("one_thread")


def conv(k, c_in, c_out):
    return k * k * c_in * c_out + c_out


def fc(n_in, n_out):
    return n_in * n_out + n_out


def count(m):
    return sum(p.numel() for p in m.parameters())


def released_g1_params(n=128, levels=6, bottom=(8, 8), z=64, pose=18):
    """models256.py GeneratorCNN_Pose_UAEAfterResidual_256 (repeat_num = levels)."""
    total = conv(3, 3 + pose, n)                                   # slim.conv2d(x, hidden_num, 3, 1)
    for idx in range(levels):                                      # encoder
        c = n * (idx + 1)
        total += 2 * conv(3, c, c)                                 # two 3x3 convs, then x + res
        if idx < levels - 1:
            total += conv(3, c, n * (idx + 2))                     # 3x3 stride-2 conv
    cells = bottom[0] * bottom[1]
    total += fc(cells * n * levels, z)                             # fully_connected -> z_num
    total += fc(z, cells * n)                                      # fully_connected -> 8*8*hidden
    x = n
    for idx in range(levels):                                      # decoder
        c = x + n * (levels - idx)                                 # concat with encoder_layer_list[-1-idx]
        total += 2 * conv(3, c, c)                                 # two 3x3 convs at the concat width
        if idx < levels - 1:
            x = n * (levels - idx - 1)
            total += conv(1, c, x)                                 # upscale + 1x1 conv
    total += conv(3, c, 3)                                         # out = conv2d(x, 3), no activation
    return total


def released_g2_params(n=128, levels=4, all_skips=True):
    """models.py UAE_noFC_AfterNoise (all_skips) / UAE_noFC_After2Noise, noise_dim=0."""
    total = conv(3, 6, n)                                          # input concat(G1, I_A)
    prev = n
    for idx in range(levels):
        c = n * (idx + 1)
        total += conv(3, prev, c) + conv(3, c, c)                  # two 3x3 convs, no residual
        if idx < levels - 1:
            total += conv(3, c, c)                                 # stride-2 conv, same width
        prev = c
    x = prev
    for idx in range(levels):
        has_skip = all_skips or idx < levels - 1
        c = x + (n * (levels - idx) if has_skip else 0)            # concat encoder_layer_list[-1-idx]
        total += conv(3, c, n) + conv(3, n, n)
        x = n
    total += conv(3, n, 3)                                         # DiffMap
    return total


def released_d_params(c_in=3, dim=64, layers=5, bottom=(8, 8)):
    """wgan_gp_128x64.py DCGANDiscriminator_256 (layers=5) / DCGANDiscriminator (layers=4)."""
    widths = [dim, 2 * dim, 4 * dim, 8 * dim, 8 * dim][:layers]
    total, prev = 0, c_in
    for i, w in enumerate(widths):
        total += conv(5, prev, w)                                  # Conv2D 5x5 stride 2
        if i > 0:
            total += 2 * w                                         # Batchnorm scale + offset
        prev = w
    return total + fc(prev * bottom[0] * bottom[1], 1)             # Linear -> 1


def test_parameter_counts_at_256_width_128_equal_the_released_layer_lists():
    with torch.device("meta"):
        g1, g2 = G1(256, 128), G2(256, 128)
        d_image, d_pair, d_pose = (DCGANDiscriminator(c, 256, 64) for c in (3, 6, 21))
    assert count(g1) == released_g1_params() == 122_103_235
    assert count(g2) == released_g2_params() == 12_696_067
    assert count(d_image) == released_d_params() == 10_896_257
    assert count(d_pair) == released_d_params(c_in=6) == 10_896_257 + 25 * 3 * 64
    assert count(d_pose) == released_d_params(c_in=21)


def test_parameter_counts_at_market_128x64():
    with torch.device("meta"):
        g1, g2, d = G1((128, 64), 128), G2((128, 64), 128), DCGANDiscriminator(3, (128, 64), 64)
    assert g1.levels == 5 and g1.bottom == (128, 8, 4)
    assert count(g1) == released_g1_params(levels=5, bottom=(8, 4))
    assert g2.skips == "inner" and count(g2) == released_g2_params(levels=3, all_skips=False)
    assert count(d) == released_d_params(layers=4, bottom=(8, 4))


def test_g1_decoder_works_at_the_concatenated_width():
    with torch.device("meta"):
        g = G1(256, 128)
    assert [u.conv1.in_channels for u in g.dec] == [896, 1280, 1024, 768, 512, 256]
    assert [c.out_channels for c in g.up] == [640, 512, 384, 256, 128]
    assert all(c.kernel_size == (1, 1) for c in g.up)
    assert g.to_rgb.in_channels == 256 and g.to_rgb.out_channels == 3
    assert not any(isinstance(m, (torch.nn.BatchNorm2d, torch.nn.Tanh)) for m in g.modules())


@pytest.mark.parametrize("size", [(256, 256), (128, 64), (256, 176)])
def test_output_shapes(size):
    with torch.device("meta"):
        g1, g2, d = G1(size, 128), G2(size, 128), DCGANDiscriminator(3, size, 64)
        i_a, p_b = torch.empty(2, 3, *size), torch.empty(2, 18, *size)
        y1 = g1(i_a, p_b)
        y2 = g2(y1, i_a)
        s = d(torch.cat([y2, i_a]))
    assert y1.shape == y2.shape == (2, 3, *size)
    assert s.shape == (4,)


def test_same_conv_pads_like_tensorflow():
    # TF "SAME", stride 2, 3x3 on 4 pixels: output 2, pad 0 before and 1 after, so output
    # pixel i sees inputs 2i..2i+2 (centre 2i+1). The kernel picks the centre row, left
    # column: rows 1, 3 and columns 0, 2. PyTorch's padding=1 would centre on rows 0, 2.
    c = SameConv2d(1, 1, 3, stride=2, bias=False)
    with torch.no_grad():
        c.weight.zero_()
        c.weight[0, 0, 1, 0] = 1.0  # middle row, left column
    x = torch.arange(16.0).view(1, 1, 4, 4)
    out = c(x)
    assert out.shape == (1, 1, 2, 2)
    assert out[0, 0].tolist() == [[4.0, 6.0], [12.0, 14.0]]
    sym = torch.nn.functional.conv2d(x, c.weight, stride=2, padding=1)
    assert sym[0, 0].tolist() == [[0.0, 1.0], [0.0, 9.0]]  # padding=1: centres (0|2, 0|2), left tap -1 is padding
    # 5x5 stride 2 on 8: pad 1 before, 2 after; odd side 7 -> ceil(7/2) = 4
    assert SameConv2d(1, 1, 5, stride=2)(torch.zeros(1, 1, 8, 7)).shape == (1, 1, 4, 4)


def test_every_parameter_gets_a_gradient():
    torch.manual_seed(0)
    g1, g2 = G1(32, 4, fc_dim=8), G2(32, 4)
    d = DCGANDiscriminator(3, 32, 4, norm="none")
    i_a, p_b = torch.randn(2, 3, 32, 32), torch.randn(2, 18, 32, 32)
    d(g2(g1(i_a, p_b), i_a)).sum().backward()
    for m in (g1, g2, d):
        for name, p in m.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_g2_returns_g1_plus_its_difference_map():
    torch.manual_seed(0)
    g2 = G2(32, 8)
    g1_out, i_a = torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32)
    assert torch.allclose(g2(g1_out, i_a) - g1_out, g2.diff_map(g1_out, i_a), atol=1e-6)


def test_initialisation_is_glorot_for_generators_and_tflib_uniform_for_d():
    torch.manual_seed(0)
    g = G1(64, 16)
    w = g.dec[0].conv1.weight  # fan_in = fan_out = 9 * c
    bound = (6 / (2 * 9 * w.shape[0])) ** 0.5
    assert w.abs().max() <= bound and w.abs().max() > 0.95 * bound
    assert all(float(m.bias.detach().abs().max()) == 0 for m in g.modules() if isinstance(m, torch.nn.Conv2d))
    d = DCGANDiscriminator(3, 64, 32)
    dw = torch.cat([m.weight.flatten() for m in d.modules() if isinstance(m, torch.nn.Conv2d)])
    assert abs(dw.std().item() - 0.02) < 0.001 and dw.abs().max() <= 0.02 * 3 ** 0.5
    bns = [m for m in d.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(bns) == 2 and not any(b.track_running_stats for b in bns)


def test_d_normalises_with_the_batch_it_is_given_in_eval_mode_too():
    torch.manual_seed(0)
    d = DCGANDiscriminator(3, 32, 4).eval()
    x = torch.randn(4, 3, 32, 32)
    alone = d(x[:2])
    together = d(x)[:2]
    assert not torch.allclose(alone, together)  # statistics of the concatenated batch


def test_small_sizes_are_refused_with_a_message():
    with pytest.raises(PgkitError, match="too small"):
        G1(16, 8)


def test_build_from_options():
    o = {"image_size": [64, 64], "channels": 16, "fc_dim": 32, "discriminator": "triplet",
         "adversarial": "wasserstein", "d_norm": "batch", "d_channels": None}
    assert build("g1", o).fc_in.out_features == 32
    d = build("d", o)
    assert d.in_channels == 3 and d.body[0].out_channels == 8
    assert build("d", {**o, "discriminator": "pair"}).in_channels == 6
    assert build("d", {**o, "discriminator": "triplet-pose"}).in_channels == 21
    assert build("g2", {**o, "g2_skips": "inner"}).skips == "inner"
