"""The error of the model zoo: a kind, config or input that does not fit (a ValueError too)."""

from __future__ import annotations

from ..errors import MatstoreError


class ModelConfigError(MatstoreError, ValueError):
    """An unknown model kind, a config that does not build its network, or input of the wrong
    width; the message says which."""


class WeightsError(ModelConfigError):
    """Stored weights that do not load into the module their config builds (registry.rebuild
    reports it as a ModelError)."""


class TrainingError(MatstoreError, RuntimeError):
    """A training run that produced no usable model (it is not saved)."""
