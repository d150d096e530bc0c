"""Targets, acquisition functions and batch selection over a candidate set of latent points.

Targets turn a property into the objective the GP models (larger is better):
``max`` -> y; ``range:a:b`` (band gap in [a, b]) -> -(distance of y to [a, b]), 0 inside.

Acquisitions (on the GP posterior of the objective, mean m and std s):
- ``ucb``: m + kappa * s. botorch's UpperConfidenceBound(beta) is m + sqrt(beta) * s, so kappa
  here is botorch's beta = kappa^2 (the seed's kappa = 10 is beta = 100).
- ``ei``: expected improvement over the best objective seen.
- ``thompson``: the argmax of one joint posterior draw per proposal.
- ``straddle``: the level-set acquisition of Bryan et al. (NeurIPS 2005), 1.96 s - |m - t|, for a
  screen "property >= t" (target max with a threshold t) or the edges of a range target (the
  nearest edge a or b). It labels points whose side of the threshold is most uncertain: the
  decision boundary a screen has to learn, not the extremes. Level-set acquisitions model the
  property itself (not the objective), so m and s are the property's posterior.

Batches: ucb, ei and straddle pick greedily with the kriging believer (each pick is believed to take its
posterior mean, which leaves the mean unchanged and shrinks the covariance by a rank-1 update),
so one batch spreads out instead of piling onto one peak. The acquisition is optimised over a
candidate set in the latent box spanned by the data: Sobol points of the whole box plus Gaussian
steps around labelled points (the box is 128-d: a pure space-filling set rarely lands near the
decodable region). Candidates that decode to a known or already proposed composition, or to the
same composition as an earlier pick of the batch, are skipped; ones that do not decode may be
picked (they are recorded as such). A level-set campaign may start the Gaussian steps only from
the labelled points nearest its levels (`near_levels`); a pool-based campaign (loop.py,
`candidates_from`) scores the latents of given compositions instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..plugins import Registry
from .errors import ALError

ACQUISITIONS: Registry[str] = Registry("acquisition", [
    ("ucb", "upper confidence bound: mean + kappa * std"),
    ("ei", "expected improvement over the best label"),
    ("thompson", "Thompson sampling: a draw of the GP posterior"),
    ("straddle", "learn where the property crosses the screen's levels"),
    ("random", "uniform picks: the baseline"),
], error=ALError, unknown="acquisition {name!r}: expected one of {choices}")
LEVEL_SET = ("straddle",)      # model the property itself and need levels (threshold or range edges)
DEFAULT_KAPPA = 10.0
STRADDLE_Z = 1.96              # Bryan et al. 2005: the 95% interval's half-width in std units


@dataclass(frozen=True)
class Target:
    goal: str                    # max | range
    low: float | None = None
    high: float | None = None

    @classmethod
    def parse(cls, text: "str | dict | Target") -> "Target":
        """'max' or 'range:A:B' (A <= B), or the stored dict."""
        if isinstance(text, Target):
            return text
        if isinstance(text, dict):   # a stored target (perhaps a received store's): same checks
            if text.get("goal") == "max":
                return cls("max")
            if text.get("goal") == "range":
                text = f"range:{text.get('low')}:{text.get('high')}"
            else:
                raise ALError(f"stored target {text!r}: expected goal 'max' or 'range'")
        parts = str(text).strip().split(":")
        if parts == ["max"]:
            return cls("max")
        if parts[0] == "range" and len(parts) == 3:
            try:
                a, b = float(parts[1]), float(parts[2])
            except ValueError:
                a = b = math.nan
            if math.isfinite(a) and math.isfinite(b) and a <= b:
                return cls("range", a, b)
        raise ALError(f"target {text!r}: expected 'max' or 'range:A:B' with numbers A <= B "
                      f"(e.g. range:1.0:2.0)")

    def to_dict(self) -> dict:
        return {"goal": self.goal} if self.goal == "max" else {
            "goal": self.goal, "low": self.low, "high": self.high}

    def objective(self, y: np.ndarray) -> np.ndarray:
        y = np.asarray(y, np.float64)
        if self.goal == "max":
            return y
        return -(np.maximum(self.low - y, 0.0) + np.maximum(y - self.high, 0.0))

    def hit(self, y: np.ndarray) -> np.ndarray:
        """bool: y meets the target (range: inside [a, b]; max: callers give a threshold)."""
        y = np.asarray(y, np.float64)
        return (y >= self.low) & (y <= self.high) if self.goal == "range" else np.isfinite(y)


def check(acquisition: str, kappa: float) -> None:
    ACQUISITIONS.lookup(acquisition)
    if not (math.isfinite(kappa) and kappa >= 0):
        raise ALError(f"kappa {kappa!r}: expected a finite number >= 0")


def tracked_levels(acquisition: str, target: Target, threshold) -> tuple[float, ...]:
    """The property levels a level-set acquisition tracks: (threshold,) for target max (a screen
    "property >= threshold"), the edges (a, b) for a range target; () for the other acquisitions.
    A threshold that nothing would use is refused rather than silently ignored."""
    if acquisition not in LEVEL_SET:
        if threshold is not None:
            raise ALError(f"--threshold is used by the level-set acquisitions ({', '.join(LEVEL_SET)}), "
                          f"not by {acquisition!r}")
        return ()
    if target.goal == "range":
        if threshold is not None:
            raise ALError(f"target {target.low}..{target.high}: a range target's edges are the levels "
                          f"{acquisition!r} tracks; give no --threshold")
        return (float(target.low), float(target.high))
    if threshold is None:
        raise ALError(f"acquisition {acquisition!r} with target max needs --threshold T "
                      f"(the screen's level: property >= T)")
    try:
        t = float(threshold)
    except (TypeError, ValueError):
        t = math.nan
    if not math.isfinite(t):
        raise ALError(f"--threshold {threshold!r}: expected a finite number")
    return (t,)


def straddle(mean: np.ndarray, std: np.ndarray, levels: tuple[float, ...]) -> np.ndarray:
    """1.96 std - |mean - nearest level| (Bryan et al. 2005): > 0 where the 95% interval
    straddles a level; largest where the side is most uncertain."""
    mean = np.asarray(mean, np.float64)
    dist = np.min(np.abs(mean[:, None] - np.asarray(levels, np.float64)[None, :]), axis=1)
    return STRADDLE_Z * np.asarray(std, np.float64) - dist


def candidates(train_unit: np.ndarray, n: int, rng: np.random.Generator, local_fraction: float = 0.5,
               step: float = 0.1, seed: int = 0, starts: np.ndarray | None = None) -> np.ndarray:
    """n points of the unit cube (the data's latent box): Sobol points and Gaussian steps
    (std `step` in box units) from randomly chosen training points (only those indexed by
    `starts`, if given), clipped to the box."""
    import torch  # noqa: PLC0415

    d = train_unit.shape[1]
    n_local = int(round(n * local_fraction))
    sobol = torch.quasirandom.SobolEngine(d, scramble=True, seed=seed).draw(n - n_local).double().numpy()
    origins = np.arange(len(train_unit)) if starts is None else np.asarray(starts, np.int64)
    start = train_unit[origins[rng.integers(0, len(origins), n_local)]]
    local = np.clip(start + rng.normal(0.0, step, start.shape), 0.0, 1.0)
    return np.concatenate([sobol, local])


def nearest_to_levels(y: np.ndarray, levels: tuple[float, ...], fraction: float) -> np.ndarray:
    """Indices of the `fraction` of labelled values y nearest a level (at least one): where the
    local candidates of a level-set campaign start (`near_levels`), so they explore around the
    boundary the screen must learn rather than around every labelled point."""
    dist = np.min(np.abs(np.asarray(y, np.float64)[:, None] - np.asarray(levels, np.float64)[None, :]), axis=1)
    k = max(1, int(math.ceil(fraction * len(dist))))
    return np.sort(np.argsort(dist, kind="stable")[:k])


def _ei(mean: np.ndarray, std: np.ndarray, best: float) -> np.ndarray:
    from scipy.stats import norm  # noqa: PLC0415

    s = np.maximum(std, 1e-12)
    z = (mean - best) / s
    return (mean - best) * norm.cdf(z) + s * norm.pdf(z)


def score(acquisition: str, mean: np.ndarray, std: np.ndarray, *, kappa: float = DEFAULT_KAPPA,
          best: float = 0.0, levels: tuple[float, ...] = ()) -> np.ndarray:
    """The acquisition's value at points with posterior mean and std (ucb, ei, straddle)."""
    if acquisition == "ucb":
        return mean + kappa * std
    if acquisition == "ei":
        return _ei(mean, std, best)
    if acquisition == "straddle":
        if not levels:
            raise ALError("straddle needs the levels it tracks (a threshold or a range target)")
        return straddle(mean, std, levels)
    raise ALError(f"acquisition {acquisition!r} has no closed-form score")


def select(mean: np.ndarray, cov: np.ndarray, keys: np.ndarray, n: int, *, acquisition: str = "ucb",
           kappa: float = DEFAULT_KAPPA, best: float = 0.0, noise: float = 0.0, exclude=frozenset(),
           rng: np.random.Generator | None = None, levels: tuple[float, ...] = ()) -> tuple[np.ndarray, np.ndarray]:
    """Pick n candidates: (indices in pick order, acquisition value at pick time).

    mean (m,), cov (m, m): the joint posterior of the objective (of the property, for the
    level-set acquisitions) at the candidates; keys (m,): what each decodes to (0: does not
    decode); exclude: keys never to pick (known, proposed). noise: the observation noise
    variance the kriging believer adds to a believed point. levels: see `tracked_levels()`."""
    check(acquisition, kappa)
    if acquisition == "random":
        raise ALError("random proposals need no posterior: matstore.al.loop picks them")
    m = len(mean)
    allowed = np.array([k == 0 or int(k) not in exclude for k in keys], bool)
    taken: set[int] = set()
    picks, values = [], []
    if acquisition == "thompson":
        rng = rng or np.random.default_rng(0)
        jitter = 1e-9 * max(float(np.mean(np.diag(cov))), 1e-12)
        chol = np.linalg.cholesky(cov + jitter * np.eye(m))
        for _ in range(n):
            if _take(mean + chol @ rng.standard_normal(m), keys, allowed, taken, picks, values) is None:
                break
        return np.asarray(picks, np.int64), np.asarray(values)
    cov = np.array(cov, np.float64, copy=True)
    for _ in range(n):
        std = np.sqrt(np.maximum(np.diag(cov), 0.0))
        i = _take(score(acquisition, mean, std, kappa=kappa, best=best, levels=levels),
                  keys, allowed, taken, picks, values)
        if i is None:
            break
        col = cov[:, i].copy()                      # kriging believer: rank-1 covariance update
        cov -= np.outer(col, col) / (col[i] + noise + 1e-12)
    return np.asarray(picks, np.int64), np.asarray(values)


def _take(acq: np.ndarray, keys: np.ndarray, allowed: np.ndarray, taken: set, picks: list,
          values: list) -> int | None:
    """Pick the best allowed candidate of acq (append it and its value, block its composition);
    None when no allowed candidate has a finite value."""
    acq = np.where(allowed, acq, -np.inf)
    i = int(np.argmax(acq))
    if not np.isfinite(acq[i]):
        return None
    picks.append(i)
    values.append(float(acq[i]))
    _block(i, keys, allowed, taken)
    return i


def _block(i: int, keys: np.ndarray, allowed: np.ndarray, taken: set) -> None:
    allowed[i] = False
    k = int(keys[i])
    if k != 0 and k not in taken:           # one proposal per composition
        taken.add(k)
        allowed[keys == k] = False
