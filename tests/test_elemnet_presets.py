"""ElemNet presets: the original 17-layer ElemNet next to the seed's Table 1 default."""

import pytest
import torch
from torch import nn

from matstore import models
from matstore.models.elemnet import ElemNet, ElemNetConfig, elemnet17


def test_elemnet17_is_the_original_depth():
    net = ElemNet(elemnet17(86))
    linears = [(m.in_features, m.out_features) for m in net.net if isinstance(m, nn.Linear)]
    assert len(linears) == 17
    assert [o for _, o in linears] == [1024] * 4 + [512] * 3 + [256] * 3 + [128] * 3 + [64] * 2 + [32, 1]
    drops = [m.p for m in net.net if isinstance(m, nn.Dropout)]
    assert drops == pytest.approx([0.2, 0.1, 0.3, 0.2])  # keep probabilities 0.8, 0.9, 0.7, 0.8
    assert net(torch.rand(3, 86)).shape == (3,)


def test_dropouts_round_trip_and_are_checked():
    cfg = models.make_config("elemnet", models.config_dict(elemnet17(86)))
    assert cfg == elemnet17(86)
    assert ElemNetConfig().rates() == (0.0, 0.2, 0.0, 0.0, 0.0)  # Table 1 default unchanged
    with pytest.raises(ValueError, match="3 rates for 5 hidden layers"):
        ElemNetConfig(dropouts=(0.1, 0.1, 0.1))
