"""Featurizer registry: `get(name)` returns the featurizer; FEATURIZERS (name -> class) is filled
as each featurizer class is created (base.Featurizer checks its face then), and names joined with
"+" (``fractions+magpie``) put several side by side (concat.py)."""

from __future__ import annotations

from . import onehot, magpie, fractions  # noqa: F401,I001 (importing one registers it; this order)
from .base import REGISTRY as FEATURIZERS
from .base import Featurizer, FeaturizerError
from .concat import Concat


def get(name: str) -> Featurizer:
    """The featurizer called `name` (one of FEATURIZERS, or several joined with "+");
    FeaturizerError (a ValueError) names the choices."""
    if "+" in name:
        return Concat([get(part) for part in name.split("+")])
    return FEATURIZERS.lookup(name)()


__all__ = ["FEATURIZERS", "Featurizer", "FeaturizerError", "get"]
