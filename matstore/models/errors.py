"""The error of the model zoo: a kind, config or input that does not fit (a ValueError too)."""

from __future__ import annotations

from ..errors import MatstoreError


class ModelConfigError(MatstoreError, ValueError):
    """An unknown model kind, a config that does not build its network, or input of the wrong
    width; the message says which."""
