"""A model family: everything one kind of model is, in one place; and the one registry of kinds.

A *family* (``ModelFamily`` subclass, one instance per kind) owns its config dataclass, its
module, how compositions become its input, the kind-specific part of training (``fit``), how it
predicts (predictors) or samples and decodes (generators), its weights format and the kind part of
its model card. Everything else - ``training.train`` (select -> split -> ``family.fit`` -> save),
the registry (save, load, export, import, merge), the runner, the fused stages and active
learning - asks the family and never compares a kind's name.

Adding a kind (e.g. a machine-learned interatomic potential or a crystal-structure GAN)::

    from matstore.models import family

    @dataclass
    class ToyConfig:                      # plain JSON-able fields; to_dict() or asdict()
        width: int = 8
        def to_dict(self): return asdict(self)

    class ToyFamily(family.TorchFamily):  # or family.ModelFamily for a non-torch module
        name, config, module = "toy", ToyConfig, ToyNet
        predictor = True                  # or generator = True (then sample/decode)
        def fit(self, module, data: family.FitData) -> family.FitResult: ...

    family.register(ToyFamily())          # at import time of the module defining it

A module under ``matstore/models/`` is imported (and so registered) when ``matstore.models`` is;
a kind defined elsewhere (a plug-in, a test) registers when its module is imported. A training
preset (``training.presets.register``) then makes the kind trainable by name from the CLI.

The registry: ``register(f)``, ``unregister(name)``, ``get(name)`` (a ModelConfigError naming
the known kinds), ``names()`` and iteration over ``KINDS`` (name -> family). What the rest of the
code asks a family (the protocol) is the set of attributes and methods of ``ModelFamily`` below;
defaults cover what a kind does not do (a predictor has no ``sample``; a generator no
``predict``).
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field, is_dataclass
from typing import Any, Callable, ClassVar, Iterator

import numpy as np

from ..plugins import Registry
from .errors import ModelConfigError

# True while modules are built to receive a stored version's weights: data that lives in the
# state_dict (attention's element vectors) need not be computed or imported again
FOR_STORED_WEIGHTS: ContextVar[bool] = ContextVar("for_stored_weights", default=False)


@contextmanager
def for_stored_weights() -> Iterator[None]:
    token = FOR_STORED_WEIGHTS.set(True)
    try:
        yield
    finally:
        FOR_STORED_WEIGHTS.reset(token)


@dataclass
class FitData:
    """What ``train`` hands a family's ``fit``: the encoded rows, their split and the run's
    settings. ``x``: the family's input rows (``encode``); ``y``: targets (predictors; None for
    generators); ``split``: index arrays ``train``/``val``/``test`` into x; ``hyper``: the preset's
    hyperparameters with the run's overrides; ``members``: the composite spec (models.ensemble.Spec)
    or None; ``batch``: the CompositionBatch of x's rows; ``known_ids``: () -> composition ids known
    to the store (novelty of a generator's samples)."""

    x: np.ndarray
    y: np.ndarray | None
    split: Any
    hyper: dict
    config: dict
    property: str | None
    members: Any
    batch: Any
    device: Any
    seed: int
    max_steps: int | None
    progress: bool
    label: str
    known_ids: Callable[[], np.ndarray] = field(default=lambda: np.zeros(0, np.int64))


@dataclass
class FitResult:
    """A fitted module, its metrics (e.g. ``val``/``test`` dicts, ``history``, ``sample``) and the
    composite spec as fitted (members' seeds and std scale), or None for one model."""

    module: Any
    metrics: dict
    members: Any = None


class ModelFamily:
    """One kind of model. Subclass, set the class attributes, override what the kind does.

    Required: ``name``, ``config`` (a dataclass), ``module`` (called ``module(config)``, or
    ``module(config, seed=seed)`` when ``seeded``), ``fit``, and ``predict`` (predictors) or
    ``sample`` (generators). Everything else has a default."""

    name: ClassVar[str]
    config: ClassVar[type]
    module: ClassVar[type]
    torch: ClassVar[bool] = False      # weights are a torch state_dict (TorchFamily)
    generator: ClassVar[bool] = False  # samples compositions (`generate --model`)
    predictor: ClassVar[bool] = False  # predicts a property from a featurizer (`predict --model`)
                                       # (neither: a kind its own commands use, e.g. a structure
                                       # generator or an interatomic potential)
    inputs: ClassVar[str] = "flat"     # "maps" (one-hot 8x85), "tokens", "matrix" or "flat": what
                                       # the model card and the fused stages say the input is
    seeded: ClassVar[bool] = False     # the module takes seed=
    sampling_options: ClassVar[tuple[str, ...]] = ()   # per-draw options sample() takes
    latent_space: ClassVar[bool] = False  # encode()/decode() compositions <-> latent vectors (AL)
    check_on_merge: ClassVar[bool] = False  # merge rebuilds its weights fully (cheap kinds)
    legacy_format: ClassVar[str | None] = None  # an old weights format `models convert` rewrites
    weights_in_store: ClassVar[bool] = True  # False: the weights live outside the store (a wheel's
                                             # file, e.g. the potentials); load() gets weights None

    # --- config and module -----------------------------------------------------------------------
    def make_config(self, config: dict | Any):
        """A config dataclass from a dict (as stored in JSON) or pass one through."""
        if isinstance(config, self.config):
            return config
        try:
            return self.config(**(config or {}))
        except TypeError as e:
            raise ModelConfigError(f"config for kind {self.name!r} does not fit "
                                   f"{self.config.__name__}: {e}") from None

    def build(self, config, seed: int = 0):
        """A fresh (untrained) module of this kind."""
        cfg = self.make_config(config)
        return self.module(cfg, seed=seed) if self.seeded else self.module(cfg)

    def fresh(self, config, seed: int = 0):
        """The module training starts from (torch kinds seed their initial weights here)."""
        return self.build(config, seed)

    # --- inputs --------------------------------------------------------------------------------
    def encode(self, batch, featurizer: str | None, config: dict) -> tuple[np.ndarray, np.ndarray]:
        """Compositions -> (x for the encodable rows only, ok (n,) bool). Default: the
        featurizer's values shaped by ``shape_input`` (predictors)."""
        from .. import features  # noqa: PLC0415

        f = features.get(featurizer)
        ok = np.asarray(f.encodable(batch), bool)
        sub = batch if ok.all() else type(batch)(batch.composition_id[ok], batch.z[ok], batch.counts[ok])
        return self.shape_input(f.transform(sub)), ok

    def shape_input(self, x: np.ndarray) -> np.ndarray:
        """A featurizer's (n, *shape) values as this kind's input (float32; flat by default)."""
        return np.ascontiguousarray(np.asarray(x).reshape(len(x), -1), dtype=np.float32)

    def fit_config(self, config: dict, x: np.ndarray, members=None) -> dict:
        """The config with the fields that follow from the input rows (e.g. their width)."""
        return config

    # --- training ------------------------------------------------------------------------------
    def members_spec(self, k: int, two_stage: bool, seeds: tuple[int, ...], what: str):
        """The composite a run of ``--ensemble k`` / ``--two-stage`` makes (models.ensemble.Spec),
        or a ModelConfigError if this kind has none."""
        raise ModelConfigError(f"kind {self.name}: {what} needs a property predictor that "
                               f"supports members")

    def fit(self, module, data: FitData) -> FitResult:
        raise NotImplementedError(f"kind {self.name} cannot be trained here")

    # --- the model card and weights ------------------------------------------------------------
    def card(self, config, hyperparams: dict) -> dict:
        """The kind part of the model card: ``inputs``, ``outputs``/``target`` (plain JSON)."""
        from .. import features  # noqa: PLC0415
        from ..sources import UNITS  # noqa: PLC0415

        hp = hyperparams or {}
        name = hp.get("featurizer")
        f = features.get(name) if name else None
        card = {"inputs": ({"featurizer": name, "featurizer_version": f.version,
                            "shape": list(f.shape), "labels": list(f.labels)} if f else None)}
        prop = hp.get("property")
        card["target"] = {"property": prop, "unit": UNITS.get(prop), "source": hp.get("target_source"),
                          "source_kind": hp.get("target_kind"), "method": hp.get("target_method")}
        if hp.get("members"):   # a composite: K members (two-stage: classifier + regressor each)
            card["members"] = hp["members"]
        return card

    def serialize(self, module, card: dict) -> bytes:
        raise NotImplementedError(f"kind {self.name} defines no weights format")

    def load(self, weights: bytes, record: dict, members, ref: str):
        """The module from stored weights, checked; raises registry.ModelError (or ValueError)."""
        raise NotImplementedError(f"kind {self.name} defines no weights format")

    # --- predictors ----------------------------------------------------------------------------
    def predict(self, module, x: np.ndarray, device, batch_size: int | None = None) -> np.ndarray:
        """One model's values (n,) for encoded x."""
        raise ModelConfigError(f"kind {self.name} is not a property predictor")

    def member_outputs(self, module, x: np.ndarray, members, device,
                       batch_size: int | None = None) -> np.ndarray:
        """A composite's raw member outputs (n, K, C) for encoded x (models.ensemble)."""
        raise ModelConfigError(f"kind {self.name} has no members")

    # --- generators ----------------------------------------------------------------------------
    def sample(self, loaded, n: int, generator, device, **sampling):
        """What ``decode`` reads: n samples of a loaded version (registry.LoadedModel)."""
        raise ModelConfigError(f"kind {self.name} is not a generator")

    def decode(self, samples, tolerance: float | None, batch_no: int, first_sample: int):
        """``sample``'s output -> samples.DecodedBatch (the runner never looks inside)."""
        raise ModelConfigError(f"kind {self.name} is not a generator")

    # --- legacy weights (models convert) -------------------------------------------------------
    def legacy_weights(self, weights: bytes) -> bool:
        """Weights in an old format that ``convert_legacy`` rewrites (forests: pickles)."""
        return False

    def convert_legacy(self, weights: bytes, config, seed: int) -> bytes:
        raise ModelConfigError(f"kind {self.name} has no legacy weights format")

    def __repr__(self) -> str:
        return f"<model kind {self.name}>"


class TorchFamily(ModelFamily):
    """A kind whose module is a torch nn.Module: weights are a card + state_dict, read back with
    ``torch.load(weights_only=True)`` and checked key by key and shape by shape."""

    torch = True

    def fresh(self, config, seed: int = 0):
        import torch  # noqa: PLC0415

        torch.manual_seed(seed)   # initial weights from the seed, not the process's RNG state
        return self.build(config, seed)

    def serialize(self, module, card: dict) -> bytes:
        from .torch_weights import torch_bytes  # noqa: PLC0415

        return torch_bytes(module, card)

    def load(self, weights: bytes, record: dict, members, ref: str):
        from .torch_weights import load_torch  # noqa: PLC0415

        return load_torch(self.build(record["config"], record.get("seed") or 0), weights, ref, self.name)

    def predict(self, module, x, device, batch_size=None) -> np.ndarray:
        from .loops import predict_module  # noqa: PLC0415

        return predict_module(module, x, device, batch_size)


def config_dict(config) -> dict:
    """A config as a plain dict (its to_dict(), a dataclass's fields, or a dict)."""
    if hasattr(config, "to_dict"):
        return config.to_dict()
    return asdict(config) if is_dataclass(config) else dict(config)


# The one registry of model kinds: name -> family.
KINDS: Registry[ModelFamily] = Registry("model kind", error=ModelConfigError,
                                        unknown="unknown model kind {name!r} (known: {choices})")


def register(family: ModelFamily, *, replace: bool = False) -> ModelFamily:
    """Add a kind; its name must be new unless ``replace``. Returns the family (decorator use)."""
    if isinstance(family, type):
        family = family()
    for attr in ("name", "config", "module"):
        if not hasattr(family, attr):
            raise TypeError(f"{type(family).__name__} needs a class attribute {attr}")
    if family.generator and family.predictor:
        raise TypeError(f"kind {family.name}: a generator or a predictor, not both")
    # the same class again (a module imported twice) replaces itself; another class is refused
    return KINDS.register(family.name, family,
                          replace=replace or type(KINDS.get(family.name)) is type(family))


def unregister(name: str) -> None:
    KINDS.unregister(name)


def get(name: str) -> ModelFamily:
    """The family of a kind; a ModelConfigError naming the known kinds otherwise."""
    return KINDS.lookup(name)


def names(*, generator: bool | None = None, predictor: bool | None = None,
          torch: bool | None = None) -> frozenset[str]:
    """The registered kinds, optionally only generators / predictors / torch kinds."""
    return frozenset(k for k, f in KINDS.items()
                     if (generator is None or f.generator == generator)
                     and (predictor is None or f.predictor == predictor)
                     and (torch is None or f.torch == torch))
