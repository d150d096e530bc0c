"""Each module's layer shapes are the paper tables' (thesis Tables 3.1, 3.2, 3.5, 4.1; seed 004 Table 1)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from matstore import models
from matstore.models.autoencoder import Autoencoder, AutoencoderConfig, decodable, dice_loss
from matstore.models.cnn import CNNConfig, CNNRegressor
from matstore.models.elemnet import ElemNet, ElemNetConfig
from matstore.models.gan import WGAN, WGANConfig

# one intra-op thread: on a shared 2-core CI box, 2 contending threads run ~10x slower
torch.set_num_threads(1)


def _shapes(module: nn.Module, kind, x) -> list[tuple]:
    """Output shapes of every layer of a type, in call order, as NHWC like the tables."""
    out = []
    hooks = [m.register_forward_hook(lambda m, i, o: out.append(tuple(o.shape)))
             for m in module.modules() if isinstance(m, kind)]
    module.eval()
    with torch.no_grad():
        module(x)
    for h in hooks:
        h.remove()
    return [(s[0], s[2], s[3], s[1]) if len(s) == 4 else s for s in out]


# Table 3.1: each layer's input shape; the next layer's input is this layer's output.
OQMD_G = [(2, 11, 8, 128), (2, 22, 8, 128), (2, 22, 8, 64), (2, 43, 8, 64), (2, 43, 8, 32),
          (2, 85, 8, 32), (2, 85, 8, 1)]
OQMD_D = [(2, 85, 8, 32), (2, 43, 8, 32), (2, 43, 8, 64), (2, 22, 8, 64), (2, 22, 8, 128),
          (2, 11, 8, 128), (2, 6, 4, 256)]
SMALL_G = [(2, 11, 8, 64), (2, 22, 8, 32), (2, 43, 8, 16), (2, 85, 8, 1)]
SMALL_D = [(2, 43, 8, 16), (2, 22, 8, 32), (2, 11, 8, 64), (2, 6, 4, 128)]


@pytest.mark.parametrize("cfg, g_shapes, d_shapes, fc", [
    (WGANConfig.oqmd(), OQMD_G, OQMD_D, 6 * 4 * 256),
    (WGANConfig.small(), SMALL_G, SMALL_D, 6 * 4 * 128),
])
def test_gan_layer_shapes_match_tables(cfg, g_shapes, d_shapes, fc):
    gan = WGAN(cfg)
    assert cfg.latent_dim == 128
    assert gan.generator.fc.out_features == fc and gan.critic.fc.in_features == fc
    z = torch.randn(2, 128)
    assert _shapes(gan.generator, nn.ConvTranspose2d, z) == g_shapes
    x = gan(z)
    assert x.shape == (2, 8, 85)
    assert float(x.min()) >= 0 and float(x.max()) <= 1  # sigmoid output
    assert _shapes(gan.critic, nn.Conv2d, x) == d_shapes
    assert gan.critic(x).shape == (2,)


def test_gan_sample_is_seeded():
    gan = WGAN(WGANConfig.small()).eval()
    a = gan.sample(5, torch.Generator().manual_seed(3), "cpu")
    b = gan.sample(5, torch.Generator().manual_seed(3), "cpu")
    c = gan.sample(5, torch.Generator().manual_seed(4), "cpu")
    assert a.shape == (5, 8, 85) and torch.equal(a, b) and not torch.equal(a, c)


def test_critic_norm_options():
    for norm, cls in (("batch", nn.BatchNorm2d), ("layer", nn.GroupNorm)):
        gan = WGAN(WGANConfig.oqmd(norm=norm))
        assert sum(isinstance(m, cls) for m in gan.critic.modules()) == 7
    with pytest.raises(ValueError, match="unknown norm"):
        WGAN(WGANConfig.oqmd(norm="weird"))


def test_autoencoder_shapes_match_table_3_5():
    ae = Autoencoder(AutoencoderConfig())
    x = (torch.rand(2, 8, 85) > 0.97).float()
    assert _shapes(ae.encoder, nn.Conv2d, x) == OQMD_D
    assert ae.encode(x).shape == (2, 128)
    assert _shapes(ae.decoder, nn.ConvTranspose2d, torch.randn(2, 128)) == OQMD_G
    assert ae(x).shape == (2, 8, 85)


def test_dice_and_decodable():
    x = torch.zeros(3, 8, 85)
    x[:, 0, 5] = 1
    x[:, 1, 7] = 1
    assert float(dice_loss(x, x)) == pytest.approx(-1.0, abs=1e-6)
    assert float(dice_loss(1 - x, x)) == pytest.approx(0.0, abs=1e-6)
    pred = x * 0.9 + 0.05
    pred[2, 3, 3] = 0.7  # one wrong cell above threshold
    assert decodable(pred, x).tolist() == [True, True, False]


def test_cnn_shapes_match_table_4_1():
    cnn = CNNRegressor(CNNConfig())
    x = torch.rand(4, 22, 6)
    assert _shapes(cnn, nn.Conv2d, x) == [(4, 22, 1, 32), (4, 22, 1, 32), (4, 1, 1, 32)]
    assert [(m.in_features, m.out_features) for m in cnn.modules() if isinstance(m, nn.Linear)] \
        == [(32, 32), (32, 1)]
    assert cnn(x).shape == (4,)


def test_cnn_scaling_buffers_apply():
    cnn = CNNRegressor(CNNConfig()).eval()
    x = np.random.default_rng(0).normal(5, 3, size=(50, 22, 6))
    y = np.random.default_rng(1).normal(-1, 0.5, size=50)
    cnn.fit_scaling(x, y)
    scaled = cnn.scale_x(torch.as_tensor(x, dtype=torch.float32))
    assert float(scaled.min()) == pytest.approx(0, abs=1e-5)
    assert float(scaled.max()) == pytest.approx(1, abs=1e-5)
    assert float(cnn.y_mean) == pytest.approx(y.mean(), rel=1e-5)
    assert "x_min" in cnn.state_dict() and "y_std" in cnn.state_dict()


def test_elemnet_layers_match_seed_table_1():
    net = ElemNet(ElemNetConfig(n_inputs=86))
    linears = [(m.in_features, m.out_features) for m in net.modules() if isinstance(m, nn.Linear)]
    assert linears == [(86, 128), (128, 128), (128, 64), (64, 64), (64, 32), (32, 1)]
    kinds = [type(m).__name__ for m in net.net]
    assert kinds.index("Dropout") == 4  # after the two 128 layers (+ their ReLUs)
    assert kinds.count("Dropout") == 1 and kinds.count("ReLU") == 5
    assert net(torch.rand(3, 86)).shape == (3,)


def test_build_round_trips_config_json():
    import json

    from matstore.models.potential import resolve

    for kind in models.KINDS:
        # a potential has no default: its config is the installed potential's identity
        cfg = models.make_config(kind, resolve("chgnet").identity() if kind == "potential" else {})
        again = models.make_config(kind, json.loads(json.dumps(models.config_dict(cfg))))
        assert again == cfg
        models.build(kind, again)
    with pytest.raises(ValueError, match="unknown model kind"):
        models.build("diffusion", {})
    with pytest.raises(ValueError, match="does not fit"):
        models.build("cnn", {"kernels": 3})
