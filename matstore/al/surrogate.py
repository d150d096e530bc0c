"""The Gaussian-process surrogate on latent vectors: botorch's SingleTaskGP (ARD RBF kernel,
constant mean, Gaussian noise, botorch's default hyperparameter priors) fit by maximising the
marginal likelihood.

Inputs are scaled to the unit cube of the latent box spanned by the training points and the
objective is standardised here (not by botorch's transforms), so the fitted hyperparameters
(``hyperparameters()``) describe the very GP that ``posterior`` evaluates and an independent
implementation given them reproduces its posterior (tests/test_al.py does, with scikit-learn).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import ALError


@dataclass
class Box:
    """The latent box spanned by the data: lo, hi per dimension (hi > lo)."""

    lo: np.ndarray
    hi: np.ndarray

    @classmethod
    def of(cls, x: np.ndarray) -> "Box":
        lo, hi = x.min(axis=0), x.max(axis=0)
        return cls(lo, np.where(hi > lo, hi, lo + 1e-6))

    def to_unit(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, np.float64) - self.lo) / (self.hi - self.lo)

    def from_unit(self, u: np.ndarray) -> np.ndarray:
        return self.lo + np.asarray(u, np.float64) * (self.hi - self.lo)


@dataclass
class Surrogate:
    box: Box
    y_mean: float
    y_std: float
    model: object            # botorch SingleTaskGP on unit-cube inputs and standardised outputs
    n_train: int

    def hyperparameters(self) -> dict:
        """lengthscale (per unit-cube dimension), outputscale, noise, constant mean: the kernel
        k(a, b) = outputscale * exp(-|a - b|^2 / (2 lengthscale^2)) on standardised values."""
        m = self.model
        covar = m.covar_module
        outputscale = 1.0
        if hasattr(covar, "outputscale"):
            outputscale = float(covar.outputscale.detach())
            covar = covar.base_kernel
        return {"lengthscale": covar.lengthscale.detach().double().reshape(-1).tolist(),
                "outputscale": outputscale,
                "noise": float(m.likelihood.noise.detach().reshape(-1)[0]),
                "mean": float(m.mean_module.constant.detach().reshape(-1)[0]),
                "y_mean": self.y_mean, "y_std": self.y_std, "n_train": self.n_train}

    def posterior(self, x: np.ndarray, full_cov: bool = False):
        """Objective posterior (latent function, no observation noise) at latent points x:
        (mean (m,), variance (m,)) or, with full_cov, (mean, covariance (m, m)); original units."""
        import torch  # noqa: PLC0415

        u = torch.as_tensor(self.box.to_unit(x), dtype=torch.float64)
        self.model.eval()
        with torch.no_grad():
            post = self.model.posterior(u)
            mean = post.mean.reshape(-1).numpy() * self.y_std + self.y_mean
            if full_cov:
                cov = post.mvn.covariance_matrix.numpy() * self.y_std ** 2
                return mean, cov
            var = post.variance.reshape(-1).numpy() * self.y_std ** 2
        return mean, np.maximum(var, 0.0)


MAX_FIT_POINTS = 500


def fit(x: np.ndarray, y: np.ndarray, box: Box | None = None, seed: int = 0,
        max_fit_points: int | None = MAX_FIT_POINTS) -> Surrogate:
    """Fit the GP to latent points x (n, d) and objective values y (n,). The hyperparameters are
    fit on a seeded subset of at most max_fit_points points (the marginal likelihood's cost grows
    as n^3 per optimiser step: 2,000 points took 2 CPU minutes); the posterior conditions on all
    n points with those hyperparameters."""
    import torch  # noqa: PLC0415
    import warnings  # noqa: PLC0415

    from botorch.exceptions import InputDataWarning  # noqa: PLC0415
    from botorch.fit import fit_gpytorch_mll  # noqa: PLC0415
    from botorch.models import SingleTaskGP  # noqa: PLC0415
    from gpytorch.mlls import ExactMarginalLogLikelihood  # noqa: PLC0415

    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64).reshape(-1)
    if len(x) != len(y) or len(y) < 3:
        raise ALError(f"the surrogate needs at least 3 labelled points, got {len(y)}")
    if not np.isfinite(y).all() or not np.isfinite(x).all():
        raise ALError("the surrogate's training data hold non-finite values")
    box = box or Box.of(x)
    y_mean, y_std = float(y.mean()), float(y.std()) or 1.0
    torch.manual_seed(seed)
    tx = torch.as_tensor(box.to_unit(x), dtype=torch.float64)
    ty = torch.as_tensor((y - y_mean) / y_std, dtype=torch.float64).reshape(-1, 1)
    sub = np.arange(len(y))
    if max_fit_points and len(y) > max_fit_points:
        sub = np.sort(np.random.default_rng(seed).choice(len(y), max_fit_points, replace=False))
    with warnings.catch_warnings():   # the subset is not exactly standardised; that is fine
        warnings.simplefilter("ignore", InputDataWarning)
        model = SingleTaskGP(tx[sub], ty[sub], outcome_transform=None)
        fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
    if len(sub) < len(y):
        full = SingleTaskGP(tx, ty, outcome_transform=None)
        full.load_state_dict(model.state_dict())
        model = full
    model.eval()
    return Surrogate(box, y_mean, y_std, model, len(y))
