"""ElemNet-style DNN on element fractions (seed 004, Table 1).

FC 128 -> FC 128 -> dropout -> FC 64 -> FC 64 -> FC 32 (ReLU) -> FC 1 (linear). Decisions:
- The table places one dropout between the 128 and 64 blocks and gives no rate; we use 0.2
  (``dropout``), and no dropout elsewhere (the seed: dropout only between layers of different
  widths, counted as "no separate layer"; the 64->32 change is left without one, as in Table 1).
- ``n_inputs`` is the width of the featurizer the model was trained on: ``fractions`` (Table 1)
  or ``fractions+magpie`` (fractions and the 132 Magpie statistics, 218 inputs), which needs
  ``scale_inputs`` (per-input min-max fitted on the training rows, NaN -> 0, as the CNN does;
  fractions alone are left as they are, in [0, 1]).
- The output is ``y_mean + y_std * net(x)`` (buffers fitted on the training targets), like the CNN.
- ``dropouts`` (one rate per hidden layer, 0 = none) overrides ``dropout_after``/``dropout``; the
  default config stays Table 1. ``ELEMNET_17`` is the original ElemNet (Jha et al. 2018): 16 hidden
  layers 1024x4, 512x3, 256x3, 128x3, 64x2, 32 + the output, dropout keep-probabilities 0.8, 0.9,
  0.7, 0.8 after the 1024, 512, 256, 128 blocks.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from .cnn import TargetScaled
from .errors import ModelConfigError
from .family import register
from .regressors import RegressorFamily


@dataclass
class ElemNetConfig:
    n_inputs: int = 103
    widths: tuple[int, ...] = (128, 128, 64, 64, 32)
    dropout_after: int = 2           # dropout after this many hidden layers (the 128 block)
    dropout: float = 0.2
    dropouts: tuple[float, ...] = ()  # per hidden layer; empty = use dropout_after/dropout
    scale_inputs: bool = False        # min-max scale each input (needed for Magpie inputs)

    def __post_init__(self):
        self.widths = tuple(int(w) for w in self.widths)
        self.dropouts = tuple(float(p) for p in self.dropouts)
        if self.dropouts and len(self.dropouts) != len(self.widths):
            raise ModelConfigError(f"dropouts has {len(self.dropouts)} rates for {len(self.widths)} hidden layers")

    def rates(self) -> tuple[float, ...]:
        """Dropout rate after each hidden layer."""
        if self.dropouts:
            return self.dropouts
        return tuple(self.dropout if i + 1 == self.dropout_after else 0.0 for i in range(len(self.widths)))

    def to_dict(self) -> dict:
        return asdict(self)


class ElemNet(TargetScaled):
    """x (B, n_inputs) element fractions (+ Magpie statistics) -> (B,) property value."""

    def __init__(self, config: ElemNetConfig):
        super().__init__()
        self.config = config
        self.minmax_inputs = config.scale_inputs  # else x scaling stays identity (fractions)
        self._init_scaling((config.n_inputs,))
        layers: list[nn.Module] = []
        n = config.n_inputs
        for w, p in zip(config.widths, config.rates()):
            layers += [nn.Linear(n, w), nn.ReLU()]
            if p > 0:
                layers.append(nn.Dropout(p))
            n = w
        layers.append(nn.Linear(n, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.scale_x(x) if self.config.scale_inputs else torch.nan_to_num(x)
        return self.unscale_y(self.net(x).squeeze(1))


def elemnet17(n_inputs: int = 103) -> ElemNetConfig:
    """The original 17-layer ElemNet (see the module docstring)."""
    blocks = ((1024, 4, 0.2), (512, 3, 0.1), (256, 3, 0.3), (128, 3, 0.2), (64, 2, 0.0), (32, 1, 0.0))
    widths = tuple(w for w, k, _ in blocks for _ in range(k))
    rates = tuple(p if i == k - 1 else 0.0 for _, k, p in blocks for i in range(k))
    return ElemNetConfig(n_inputs=n_inputs, widths=widths, dropouts=rates)


class ElemNetFamily(RegressorFamily):
    name, config, module = "elemnet", ElemNetConfig, ElemNet


register(ElemNetFamily())
