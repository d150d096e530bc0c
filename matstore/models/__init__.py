"""The model zoo: one family per kind of model (models.family), all in the one registry ``KINDS``.

kinds: ``wgan`` (gan.py), ``transformer`` (a composition language model), ``autoencoder``,
``cnn``, ``elemnet``, ``attention`` (torch nn.Modules; the regressors share models.regressors),
``rf`` (scikit-learn forest, forest.py). Each module defines its config, its module, its family
(input encoding, fit, predict or sample/decode, weights, card) and registers it. Every module of
this package is imported here, so a new kind is one new file; a kind defined outside the package
registers itself with ``models.register`` when its module is imported.

``build(kind, config)`` turns a stored config back into a fresh module; ``featurize(kind,
featurizer, batch)`` is the one place that turns compositions into a model's input array, used by
training and by prediction alike. ``TORCH_KINDS``, ``GENERATOR_KINDS``, ``PREDICTOR_KINDS`` and
``MAP_GENERATOR_KINDS`` are read from the registry at each use (kinds may be added later).
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

import numpy as np

from .errors import ModelConfigError
from .family import KINDS, FitData, FitResult, ModelFamily, TorchFamily, config_dict, get, names, register, unregister

# the built-in kinds first (their order is the registry's), then any other module of the package
for _module in ("gan", "transformer", "autoencoder", "cnn", "elemnet", "attention", "forest",
                *sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))):
    importlib.import_module(f"{__name__}.{_module}")

from .attention import AttentionConfig, CompositionAttention  # noqa: E402
from .autoencoder import Autoencoder, AutoencoderConfig  # noqa: E402
from .cnn import CNNConfig, CNNRegressor  # noqa: E402
from .elemnet import ElemNet, ElemNetConfig  # noqa: E402
from .forest import ForestConfig, ForestRegressor  # noqa: E402
from .gan import WGAN, WGANConfig  # noqa: E402
from .transformer import CompositionTransformer, TransformerConfig  # noqa: E402


def __getattr__(name: str) -> frozenset[str]:
    """The kind sets, read from the registry now (a kind registered later is in them)."""
    if name == "TORCH_KINDS":
        return names(torch=True)
    if name in ("GENERATOR_KINDS", "GENERATIVE_KINDS"):
        return names(generator=True)
    if name == "PREDICTOR_KINDS":
        return names(predictor=True)
    if name == "MAP_GENERATOR_KINDS":
        return frozenset(k for k in names(generator=True) if KINDS[k].inputs == "maps")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def make_config(kind: str, config: dict | Any):
    """A config dataclass from a dict (as stored in JSON) or pass one through."""
    return get(kind).make_config(config)


def build(kind: str, config: dict | Any, seed: int = 0):
    """A fresh (untrained) module or estimator of this kind."""
    return get(kind).build(config, seed)


def featurize(kind: str, featurizer: str, batch) -> np.ndarray:
    """Compositions -> the model's input array (float32): (n, 22, 6) for the CNN, flat else."""
    from .. import features  # noqa: PLC0415 (written by another module; imported when used)

    return shape_input(kind, features.get(featurizer).transform(batch))


def shape_input(kind: str, x: np.ndarray) -> np.ndarray:
    """A featurizer's (n, *shape) values as this kind's input (float32)."""
    return get(kind).shape_input(x)


__all__ = ["KINDS", "FitData", "FitResult", "ModelFamily", "TorchFamily", "ModelConfigError",
           "register", "unregister", "get", "names", "make_config", "build", "config_dict",
           "featurize", "shape_input"]
