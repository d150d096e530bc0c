"""MatGAN thesis CNN regressor on the 22x6 Magpie statistics matrix (Table 4.1).

conv 1x6 (32) -> conv 1x1 (32) -> conv 22x1 (32), each with batch norm + ReLU, then FC 32 (ReLU)
-> FC 1. Decisions:
- Inputs are min-max scaled per matrix cell (thesis Eq. 4-2) with ``x_min``/``x_max`` buffers
  fitted on the training rows (``fit_scaling``), so the saved weights carry their scaling; NaN
  features (elements without a Magpie value) become 0 after scaling (= the training minimum).
- The output is ``y_mean + y_std * head(x)`` with buffers fitted on the training targets, so the
  head learns a standardized target while forward() returns physical units.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn
from .family import register
from .regressors import RegressorFamily


class TargetScaled(nn.Module):
    """Shared scaling buffers for the regressors (fitted once, saved in the state_dict).
    ``minmax_inputs``: whether fit_scaling also fits per-input min-max scaling."""

    minmax_inputs = True

    def _init_scaling(self, in_shape: tuple[int, ...]) -> None:
        self.register_buffer("x_min", torch.zeros(in_shape))
        self.register_buffer("x_span", torch.ones(in_shape))
        self.register_buffer("y_mean", torch.zeros(()))
        self.register_buffer("y_std", torch.ones(()))

    @torch.no_grad()
    def fit_scaling(self, x: np.ndarray, y: np.ndarray, minmax: bool | None = None) -> None:
        x = np.asarray(x, dtype=np.float64)
        if self.minmax_inputs if minmax is None else minmax:
            lo, hi = np.nanmin(x, axis=0), np.nanmax(x, axis=0)
            lo = np.where(np.isfinite(lo), lo, 0.0)
            span = np.where(np.isfinite(hi - lo) & (hi - lo > 1e-12), hi - lo, 1.0)
            self.x_min.copy_(torch.as_tensor(lo, dtype=torch.float32))
            self.x_span.copy_(torch.as_tensor(span, dtype=torch.float32))
        y = np.asarray(y, dtype=np.float64)
        self.y_mean.fill_(float(y.mean()))
        self.y_std.fill_(float(y.std()) or 1.0)

    def scale_x(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nan_to_num((x - self.x_min) / self.x_span, nan=0.0)

    def unscale_y(self, h: torch.Tensor) -> torch.Tensor:
        return self.y_mean + self.y_std * h


@dataclass
class CNNConfig:
    n_properties: int = 22
    n_stats: int = 6
    channels: int = 32       # Table 4.1: 32 kernels in every conv
    hidden: int = 32         # Fc4

    def to_dict(self) -> dict:
        return asdict(self)


def _block(conv: nn.Conv2d) -> nn.Sequential:
    return nn.Sequential(conv, nn.BatchNorm2d(conv.out_channels), nn.ReLU())


class CNNRegressor(TargetScaled):
    """x (B, 22, 6) Magpie matrix -> (B,) property value."""

    def __init__(self, config: CNNConfig):
        super().__init__()
        self.config = config
        c, p, s = config.channels, config.n_properties, config.n_stats
        self._init_scaling((p, s))
        self.conv1 = _block(nn.Conv2d(1, c, (1, s)))     # row scan: (B,1,22,6) -> (B,c,22,1)
        self.conv2 = _block(nn.Conv2d(c, c, (1, 1)))     # -> (B,c,22,1)
        self.conv3 = _block(nn.Conv2d(c, c, (p, 1)))     # full conv over properties -> (B,c,1,1)
        self.fc4 = nn.Sequential(nn.Linear(c, config.hidden), nn.ReLU())
        self.fc5 = nn.Linear(config.hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.scale_x(x.reshape(-1, self.config.n_properties, self.config.n_stats)).unsqueeze(1)
        h = self.conv3(self.conv2(self.conv1(h))).flatten(1)
        return self.unscale_y(self.fc5(self.fc4(h)).squeeze(1))


class CNNFamily(RegressorFamily):
    """Reads the Magpie statistics as a 22x6 matrix (thesis Table 4.1)."""

    name, config, module, inputs = "cnn", CNNConfig, CNNRegressor, "matrix"

    def shape_input(self, x):
        from ..features import magpie  # noqa: PLC0415

        return np.ascontiguousarray(magpie.as_matrix(x), dtype=np.float32)

    def fit_config(self, config, x, members=None):
        return {**config, "n_properties": int(x.shape[1]), "n_stats": int(x.shape[2])}


register(CNNFamily())
