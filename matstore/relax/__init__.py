"""Relaxing structures with a universal ML potential (matstore.models.potential).

engine: the batched FIRE + FrechetCellFilter relaxation (relax_batch) and its one-at-a-time
ASE reference (relax_sequential).
"""

from __future__ import annotations

from .engine import STATUSES, RelaxResult, RelaxSettings, relax_batch, relax_sequential
from .errors import RelaxError

__all__ = ["STATUSES", "RelaxError", "RelaxResult", "RelaxSettings", "relax_batch", "relax_sequential"]
