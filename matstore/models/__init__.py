"""The model zoo: one explicit config dataclass + one module per kind, and how inputs are made.

kinds: ``wgan`` (gan.py), ``transformer`` (a composition language model), ``autoencoder``,
``cnn``, ``elemnet``, ``attention`` (torch nn.Modules), ``rf``
(scikit-learn forest). ``build(kind, config)`` turns a stored config back into a fresh module;
``featurize(kind, featurizer, batch)`` is the one place that turns compositions into a model's
input array, used by training and by prediction alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .attention import AttentionConfig, CompositionAttention
from .cccgan.config import CCCGANConfig
from .cccgan.networks import CCCGAN
from .autoencoder import Autoencoder, AutoencoderConfig
from .cnn import CNNConfig, CNNRegressor
from .elemnet import ElemNet, ElemNetConfig
from .errors import ModelConfigError
from .forest import ForestConfig, ForestRegressor
from .gan import WGAN, WGANConfig
from .transformer import CompositionTransformer, TransformerConfig


@dataclass(frozen=True)
class ModelKind:
    """What a kind of model is: its config and module classes and what it can do."""

    name: str
    config: type
    module: type
    torch: bool          # a torch nn.Module (weights: a state_dict); else a scikit-learn forest
    generator: bool      # samples compositions (the runner's `generate --model`)
    predictor: bool      # predicts a property from a featurizer's vectors (`predict --model`)
    inputs: str          # "maps" (one-hot 8x85), "tokens" (element/count sequences), "matrix"
                         # (Magpie 22x6) or "flat" (a vector)
    seeded: bool = False  # the module takes seed= (torch modules are seeded by the trainer)


# The one list of model kinds; everything below, and the runner, predict, registry and training,
# read it. (Oracles, issue 16, will be a registry of their own beside this one.)
KINDS: dict[str, ModelKind] = {k.name: k for k in [
    ModelKind("wgan", WGANConfig, WGAN, torch=True, generator=True, predictor=False, inputs="maps"),
    ModelKind("transformer", TransformerConfig, CompositionTransformer, torch=True, generator=True,
              predictor=False, inputs="tokens"),
    ModelKind("autoencoder", AutoencoderConfig, Autoencoder, torch=True, generator=True,
              predictor=False, inputs="maps"),
    ModelKind("cnn", CNNConfig, CNNRegressor, torch=True, generator=False, predictor=True,
              inputs="matrix"),
    ModelKind("elemnet", ElemNetConfig, ElemNet, torch=True, generator=False, predictor=True,
              inputs="flat"),
    ModelKind("attention", AttentionConfig, CompositionAttention, torch=True, generator=False,
              predictor=True, inputs="flat"),
    ModelKind("rf", ForestConfig, ForestRegressor, torch=False, generator=False, predictor=True,
              inputs="flat", seeded=True),
    # a structure generator (structgen runs, not the composition runner)
    ModelKind("cccgan", CCCGANConfig, CCCGAN, torch=True, generator=False, predictor=False,
              inputs="image"),
]}
TORCH_KINDS = frozenset(k for k, v in KINDS.items() if v.torch)
GENERATIVE_KINDS = frozenset(k for k, v in KINDS.items() if v.generator)   # the generators
PREDICTOR_KINDS = frozenset(k for k, v in KINDS.items() if v.predictor)
GENERATOR_KINDS = GENERATIVE_KINDS
MAP_GENERATOR_KINDS = frozenset(k for k in GENERATIVE_KINDS if KINDS[k].inputs == "maps")


def _kind(kind: str) -> ModelKind:
    try:
        return KINDS[kind]
    except KeyError:
        raise ModelConfigError(f"unknown model kind {kind!r} (known: {', '.join(KINDS)})") from None


def make_config(kind: str, config: dict | Any):
    """A config dataclass from a dict (as stored in JSON) or pass one through."""
    cls = _kind(kind).config
    if isinstance(config, cls):
        return config
    try:
        return cls(**(config or {}))
    except TypeError as e:
        raise ModelConfigError(f"config for kind {kind!r} does not fit {cls.__name__}: {e}") from None


def build(kind: str, config: dict | Any, seed: int = 0):
    """A fresh (untrained) module or estimator of this kind."""
    k = _kind(kind)
    cfg = make_config(kind, config)
    return k.module(cfg, seed=seed) if k.seeded else k.module(cfg)


def config_dict(config) -> dict:
    return config.to_dict() if hasattr(config, "to_dict") else dict(config)


def featurize(kind: str, featurizer: str, batch) -> np.ndarray:
    """Compositions -> the model's input array (float32): (n, 22, 6) for the CNN, flat else."""
    from .. import features  # noqa: PLC0415 (written by another module; imported when used)

    return shape_input(kind, features.get(featurizer).transform(batch))


def shape_input(kind: str, x: np.ndarray) -> np.ndarray:
    """A featurizer's (n, *shape) values as this kind's input (float32): the CNN reads the Magpie
    statistics as a 22x6 matrix, the forest and the ElemNet DNN a flat vector, generators maps."""
    if _kind(kind).inputs == "matrix":
        from ..features import magpie  # noqa: PLC0415

        x = magpie.as_matrix(x)
    elif KINDS[kind].inputs == "flat":
        x = np.asarray(x).reshape(len(x), -1)
    return np.ascontiguousarray(x, dtype=np.float32)
