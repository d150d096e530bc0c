"""One prediction of a potential for one structure, in ASE's units and conventions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Prediction:
    energy: float          # total energy of the cell (eV)
    forces: np.ndarray     # (n_atoms, 3) eV/Å
    stress: np.ndarray     # (6,) Voigt xx yy zz yz xz xy, eV/Å^3 (ASE's sign: positive = tensile)
    error: str | None = None   # the structure could not be evaluated (e.g. an isolated atom)

    @classmethod
    def failed(cls, n_atoms: int, why: str) -> "Prediction":
        nan = np.full((n_atoms, 3), np.nan)
        return cls(float("nan"), nan, np.full(6, np.nan), why)


def voigt(stress_3x3: np.ndarray) -> np.ndarray:
    """ASE's Voigt order (xx, yy, zz, yz, xz, xy) of a 3x3 stress."""
    s = np.asarray(stress_3x3, dtype=float)
    return np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])
