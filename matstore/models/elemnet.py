"""ElemNet-style DNN on element fractions (seed 004, Table 1).

FC 128 -> FC 128 -> dropout -> FC 64 -> FC 64 -> FC 32 (ReLU) -> FC 1 (linear). Decisions:
- The table places one dropout between the 128 and 64 blocks and gives no rate; we use 0.2
  (``dropout``), and no dropout elsewhere (the seed: dropout only between layers of different
  widths, counted as "no separate layer"; the 64->32 change is left without one, as in Table 1).
- ``n_inputs`` is the width of the ``fractions`` featurizer the model was trained on.
- The output is ``y_mean + y_std * net(x)`` (buffers fitted on the training targets), like the CNN.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from .cnn import TargetScaled


@dataclass
class ElemNetConfig:
    n_inputs: int = 103
    widths: tuple[int, ...] = (128, 128, 64, 64, 32)
    dropout_after: int = 2           # dropout after this many hidden layers (the 128 block)
    dropout: float = 0.2

    def __post_init__(self):
        self.widths = tuple(int(w) for w in self.widths)

    def to_dict(self) -> dict:
        return asdict(self)


class ElemNet(TargetScaled):
    """x (B, n_inputs) element fractions -> (B,) property value."""

    def __init__(self, config: ElemNetConfig):
        super().__init__()
        self.config = config
        self._init_scaling((config.n_inputs,))  # x scaling stays identity: fractions are in [0, 1]
        layers: list[nn.Module] = []
        n = config.n_inputs
        for i, w in enumerate(config.widths):
            layers += [nn.Linear(n, w), nn.ReLU()]
            if i + 1 == config.dropout_after and config.dropout > 0:
                layers.append(nn.Dropout(config.dropout))
            n = w
        layers.append(nn.Linear(n, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.unscale_y(self.net(torch.nan_to_num(x)).squeeze(1))
