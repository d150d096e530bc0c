"""The model zoo: one explicit config dataclass + one module per kind, and how inputs are made.

kinds: ``wgan`` (gan.py), ``autoencoder``, ``cnn``, ``elemnet`` (torch nn.Modules), ``rf``
(scikit-learn forest). ``build(kind, config)`` turns a stored config back into a fresh module;
``featurize(kind, featurizer, batch)`` is the one place that turns compositions into a model's
input array, used by training and by prediction alike.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .autoencoder import Autoencoder, AutoencoderConfig
from .cnn import CNNConfig, CNNRegressor
from .elemnet import ElemNet, ElemNetConfig
from .forest import ForestConfig, ForestRegressor
from .gan import WGAN, WGANConfig

KINDS: dict[str, tuple[type, type]] = {
    "wgan": (WGANConfig, WGAN),
    "autoencoder": (AutoencoderConfig, Autoencoder),
    "cnn": (CNNConfig, CNNRegressor),
    "elemnet": (ElemNetConfig, ElemNet),
    "rf": (ForestConfig, ForestRegressor),
}
TORCH_KINDS = {"wgan", "autoencoder", "cnn", "elemnet"}
GENERATIVE_KINDS = {"wgan", "autoencoder"}


def _kind(kind: str) -> tuple[type, type]:
    try:
        return KINDS[kind]
    except KeyError:
        raise ValueError(f"unknown model kind {kind!r} (known: {', '.join(KINDS)})") from None


def make_config(kind: str, config: dict | Any):
    """A config dataclass from a dict (as stored in JSON) or pass one through."""
    cls, _ = _kind(kind)
    if isinstance(config, cls):
        return config
    try:
        return cls(**(config or {}))
    except TypeError as e:
        raise ValueError(f"config for kind {kind!r} does not fit {cls.__name__}: {e}") from None


def build(kind: str, config: dict | Any, seed: int = 0):
    """A fresh (untrained) module or estimator of this kind."""
    _, module_cls = _kind(kind)
    cfg = make_config(kind, config)
    return module_cls(cfg, seed=seed) if kind == "rf" else module_cls(cfg)


def config_dict(config) -> dict:
    return config.to_dict() if hasattr(config, "to_dict") else dict(config)


def featurize(kind: str, featurizer: str, batch) -> np.ndarray:
    """Compositions -> the model's input array (float32): (n, 22, 6) for the CNN, flat else."""
    from .. import features  # noqa: PLC0415 (written by another module; imported when used)

    x = features.get(featurizer).transform(batch)
    if kind == "cnn":
        from ..features import magpie  # noqa: PLC0415

        x = magpie.as_matrix(x)
    elif kind in ("rf", "elemnet"):
        x = x.reshape(len(x), -1)
    return np.ascontiguousarray(x, dtype=np.float32)
