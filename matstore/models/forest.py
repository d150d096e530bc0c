"""Random-forest baseline on Magpie features: the yardstick every neural predictor is reported
against. A thin scikit-learn wrapper with the regressors' small face: ``predict(x) -> (n,)``.

Decisions: 100 trees, max_features 1/3 (regression default of Breiman), min_samples_leaf 1;
scikit-learn's forest handles NaN features (elements without a Magpie value) natively.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from sklearn.ensemble import RandomForestRegressor


@dataclass
class ForestConfig:
    n_estimators: int = 100
    max_features: float = 1 / 3
    min_samples_leaf: int = 1
    max_depth: int | None = None
    n_jobs: int = -1

    def to_dict(self) -> dict:
        return asdict(self)


class ForestRegressor:
    """x (n, d) or (n, *shape) features -> (n,) predictions."""

    def __init__(self, config: ForestConfig, seed: int = 0, estimator: RandomForestRegressor | None = None):
        self.config = config
        self.estimator = estimator or RandomForestRegressor(
            n_estimators=config.n_estimators, max_features=config.max_features,
            min_samples_leaf=config.min_samples_leaf, max_depth=config.max_depth,
            n_jobs=config.n_jobs, random_state=seed)

    def fit(self, x: np.ndarray, y: np.ndarray) -> "ForestRegressor":
        self.estimator.fit(np.asarray(x, dtype=np.float32).reshape(len(x), -1), np.asarray(y))
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.estimator.predict(np.asarray(x, dtype=np.float32).reshape(len(x), -1))
