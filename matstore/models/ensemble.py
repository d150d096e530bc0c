"""Composite predictors: K members of one kind in one module (an ensemble), each optionally two
stages (a metal / non-metal classifier + a regressor trained on the non-metals), and how their
outputs combine into a value, a standard deviation and a metal probability.

A forest (kind rf) trained as an ensemble is one forest whose trees are the members (bootstrap
resamples, ``resample="bootstrap"``, the trees' own seeds recorded): no extra weights.

A composite is stored as one model version of the member's kind: the record's ``kind`` and
``config`` are the member's (so featurizing and input shapes are the member's), and
``hyperparams["members"]`` (see ``spec``) says how many members there are, their seeds and
whether they are two-stage. The weights are one torch state_dict of ``Members`` (keys
``regressors.<i>.…`` and ``classifiers.<i>.…``), read with ``weights_only=True`` like any other.

Combination (``combine``), per composition, float64:
- a member's value: two-stage: 0 where its p_metal = sigmoid(logit) >= 0.5, else its regressor's
  value; a property that cannot be negative (``NON_NEGATIVE``: band gaps) is clamped at 0 first;
- value = mean over members; std = sample standard deviation over members (ddof=1: K draws
  estimate the spread) times the version's ``std_scale`` (a deep ensemble's spread is too
  narrow; the scale is fitted on the validation rows), NaN for one member; p_metal = mean of the members' p_metal (NaN when not
  two-stage).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

NON_NEGATIVE = frozenset({"band_gap"})   # a negative band gap is not a gap: clamp at 0
METAL_THRESHOLD = 0.5                    # p_metal >= this: the member predicts 0 (a metal)
MAX_MEMBERS = 64                         # a stored spec asking for more is refused (a received
                                         # store's hyperparams must not make us build 10^6 networks)


@dataclass(frozen=True)
class Spec:
    """How a composite version is made: ``k`` members seeded ``seeds``, two-stage or not."""

    k: int
    seeds: tuple[int, ...]
    two_stage: bool = False
    resample: str = "seeds"     # "seeds": networks differing by seed (init, batch order, dropout),
                                # same rows; "bootstrap": a forest's trees (bootstrap resamples)
    std_scale: float = 1.0      # the members' spread times this is the std reported (fitted on
                                # the validation rows after training: training.composite)

    def to_dict(self) -> dict:
        return {"k": self.k, "seeds": list(self.seeds), "two_stage": self.two_stage,
                "resample": self.resample, "std_scale": self.std_scale}


def spec(hyperparams: dict | None) -> Spec | None:
    """The composite spec recorded in a version's hyperparameters; None for a single model."""
    if isinstance(hyperparams, (str, bytes)):   # a record read straight from a file or table
        import json  # noqa: PLC0415

        hyperparams = json.loads(hyperparams)
    m = (hyperparams or {}).get("members") if isinstance(hyperparams, dict) else None
    if not isinstance(m, dict):
        return None
    k = int(m.get("k", 0))
    seeds = tuple(int(s) for s in m.get("seeds") or ())
    if k < 1 or len(seeds) != k:
        from .errors import ModelConfigError  # noqa: PLC0415

        raise ModelConfigError(f"members: k={k} with {len(seeds)} seeds; expected k >= 1 and one "
                               f"seed per member")
    scale = float(m.get("std_scale", 1.0))
    if not (np.isfinite(scale) and scale > 0):
        from .errors import ModelConfigError  # noqa: PLC0415

        raise ModelConfigError(f"members: std_scale={scale}; expected a finite number > 0")
    return Spec(k, seeds, bool(m.get("two_stage")), str(m.get("resample", "seeds")), scale)


class Members(nn.Module):
    """K modules of one kind (and K classifiers of that kind when two-stage).
    forward(x) -> (n, K, C): C = 1 (the value) or 2 (the metal logit, the regressor's value)."""

    def __init__(self, regressors: list[nn.Module], classifiers: list[nn.Module] | None = None):
        super().__init__()
        self.regressors = nn.ModuleList(regressors)
        self.classifiers = nn.ModuleList(classifiers) if classifiers else None
        if self.classifiers is not None and len(self.classifiers) != len(self.regressors):
            raise ValueError("a two-stage composite needs one classifier per regressor")

    @classmethod
    def build(cls, kind: str, config, s: Spec) -> "Members":
        from . import build  # noqa: PLC0415

        if s.k > MAX_MEMBERS:
            from .errors import ModelConfigError  # noqa: PLC0415

            raise ModelConfigError(f"members: k={s.k}; at most {MAX_MEMBERS} networks")

        regs = [build(kind, config, seed=seed) for seed in s.seeds]
        clfs = [build(kind, config, seed=seed) for seed in s.seeds] if s.two_stage else None
        return cls(regs, clfs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._stacked(lambda m: m(x), len(x))

    def bucket_keys(self, x: np.ndarray) -> np.ndarray | None:
        """The members' row buckets (loops.predict_module), None when their kind has none."""
        first = self.regressors[0]
        return first.bucket_keys(x) if hasattr(first, "bucket_keys") else None

    def forward_bucket(self, x: torch.Tensor, key: int) -> torch.Tensor:
        return self._stacked(lambda m: m.forward_bucket(x, key), len(x))

    def _stacked(self, run, n: int) -> torch.Tensor:
        v = torch.stack([run(m).reshape(n) for m in self.regressors], dim=1)
        if self.classifiers is None:
            return v.unsqueeze(-1)
        c = torch.stack([run(m).reshape(n) for m in self.classifiers], dim=1)
        return torch.stack([c, v], dim=-1)


@dataclass
class Outputs:
    """What a predictor says per composition: value, std (NaN: one model), p_metal (NaN: not
    two-stage)."""

    value: np.ndarray
    std: np.ndarray
    p_metal: np.ndarray

    @classmethod
    def empty(cls, n: int) -> "Outputs":
        return cls(*(np.full(n, np.nan) for _ in range(3)))

    def put(self, mask: np.ndarray, other: "Outputs") -> None:
        self.value[mask], self.std[mask], self.p_metal[mask] = other.value, other.std, other.p_metal


def clamp(prop: str | None, values: np.ndarray) -> np.ndarray:
    """Values of a property that cannot be negative clamped at +0 (NaN stays NaN; -0 becomes 0)."""
    v = np.asarray(values, np.float64)
    return np.where(v <= 0, 0.0, v) if prop in NON_NEGATIVE else v


def sigmoid(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, np.float64)
    return 0.5 * (1.0 + np.tanh(0.5 * z))   # stable for large |z|


def member_values(out: np.ndarray, prop: str | None, two_stage: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """(n, K, C) raw member outputs -> ((n, K) member values, (n, K) p_metal or None)."""
    out = np.asarray(out, np.float64)
    if not two_stage:
        return clamp(prop, out[..., 0]), None
    p = sigmoid(out[..., 0])
    reg = clamp(prop, out[..., 1])
    return np.where(p >= METAL_THRESHOLD, 0.0, reg), p


def combine(out: np.ndarray, prop: str | None, two_stage: bool, std_scale: float = 1.0) -> Outputs:
    """(n, K, C) member outputs -> Outputs (see the module docstring)."""
    vals, p = member_values(out, prop, two_stage)
    n, k = vals.shape
    std = vals.std(axis=1, ddof=1) * std_scale if k > 1 else np.full(n, np.nan)
    return Outputs(vals.mean(axis=1), std, p.mean(axis=1) if p is not None else np.full(n, np.nan))
