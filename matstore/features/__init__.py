"""Featurizer registry: `get(name)` returns the featurizer; FEATURIZERS lists the names, and
names joined with "+" (``fractions+magpie``) put several side by side (concat.py)."""

from __future__ import annotations

from .base import Featurizer

FEATURIZERS = ("onehot", "magpie", "fractions")


def get(name: str) -> Featurizer:
    """The featurizer called `name` (one of FEATURIZERS, or several joined with "+");
    ValueError names the choices."""
    if "+" in name:
        from .concat import Concat

        return Concat([get(part) for part in name.split("+")])
    if name == "onehot":
        from .onehot import OneHot

        return OneHot()
    if name == "magpie":
        from .magpie import Magpie

        return Magpie()
    if name == "fractions":
        from .fractions import Fractions

        return Fractions()
    raise ValueError(f"unknown featurizer {name!r}; choose one of {', '.join(FEATURIZERS)} "
                     f"(or several joined with '+')")


__all__ = ["FEATURIZERS", "Featurizer", "get"]
