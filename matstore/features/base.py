"""The common face of every featurizer (like matminer's BaseFeaturizer, but batch-first).

A featurizer turns a CompositionBatch into an array of shape (n, *shape) with array operations.
Rows it cannot encode (an element outside its table, a count beyond its range) are NaN in
float outputs (all-zero for the one-hot map) and False in `encodable(batch)`.

The face is checked when a subclass is created, not when it is first used: a concrete featurizer
must set name, version, labels (one per output value) and shape, and define transform(),
citations() and implementors(); it then registers itself under its name in REGISTRY, the one
list of featurizers the library and the CLI read. `register=False` (as Concat, whose name and
shape depend on its parts) skips the attribute check and the registration.
"""

from __future__ import annotations

import numpy as np

from ..compositions import CompositionBatch
from ..errors import MatstoreError
from ..plugins import Registry

_METHODS = ("transform", "citations", "implementors")


class FeaturizerError(MatstoreError, ValueError):
    """An unknown featurizer name; the message names the choices."""


REGISTRY: Registry[type["Featurizer"]] = Registry(   # name -> class; filled by class creation
    "featurizer", error=FeaturizerError,
    unknown="unknown featurizer {name!r}; choose one of {choices} (or several joined with '+')")


def _check_face(cls) -> None:
    missing = [m for m in _METHODS if getattr(cls, m) is getattr(Featurizer, m)]
    if missing:
        raise TypeError(f"featurizer {cls.__name__} does not define {', '.join(missing)}()")
    for attr, kind in (("name", str), ("version", str), ("labels", list), ("shape", tuple)):
        if not isinstance(getattr(cls, attr, None), kind):
            raise TypeError(f"featurizer {cls.__name__} needs a class attribute {attr} "
                            f"({kind.__name__})")
    if len(cls.labels) != int(np.prod(cls.shape)):
        raise TypeError(f"featurizer {cls.__name__}: {len(cls.labels)} labels for shape "
                        f"{cls.shape} ({int(np.prod(cls.shape))} values)")
    if cls.name in REGISTRY or "+" in cls.name:
        raise TypeError(f"featurizer {cls.__name__}: name {cls.name!r} is taken or contains '+'")


class Featurizer:
    name: str
    version: str
    labels: list[str]
    shape: tuple[int, ...]

    def __init_subclass__(cls, register: bool = True, **kwargs):
        super().__init_subclass__(**kwargs)
        if register:
            _check_face(cls)
            REGISTRY[cls.name] = cls
        elif any(getattr(cls, m) is getattr(Featurizer, m) for m in _METHODS):
            raise TypeError(f"featurizer {cls.__name__} does not define {', '.join(_METHODS)}()")

    def transform(self, batch: CompositionBatch) -> np.ndarray:
        """(n, *shape) values; rows that cannot be encoded are signalled (see encodable)."""
        raise NotImplementedError

    def citations(self) -> list[str]:
        """BibTeX entries of the work this featurizer reproduces."""
        raise NotImplementedError

    def implementors(self) -> list[str]:
        """Who wrote this implementation."""
        raise NotImplementedError

    def encodable(self, batch: CompositionBatch) -> np.ndarray:
        """bool (n,): True where transform gives a real encoding. Default: every row."""
        return np.ones(len(batch), bool)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def __repr__(self) -> str:
        return f"<featurizer {self.name} v{self.version} shape={self.shape}>"
