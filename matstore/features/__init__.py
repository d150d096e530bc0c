"""Featurizer registry: `get(name)` returns the featurizer; FEATURIZERS lists the names."""

from __future__ import annotations

from .base import Featurizer

FEATURIZERS = ("onehot", "magpie", "fractions")


def get(name: str) -> Featurizer:
    """The featurizer called `name` (one of FEATURIZERS); ValueError names the choices."""
    if name == "onehot":
        from .onehot import OneHot

        return OneHot()
    if name == "magpie":
        from .magpie import Magpie

        return Magpie()
    if name == "fractions":
        from .fractions import Fractions

        return Fractions()
    raise ValueError(f"unknown featurizer {name!r}; choose one of {', '.join(FEATURIZERS)}")


__all__ = ["FEATURIZERS", "Featurizer", "get"]
