"""The relaxation layer's error."""

from __future__ import annotations

from ..errors import MatstoreError


class RelaxError(MatstoreError, ValueError):
    """Relaxation settings or input that cannot be used; the message names it and says why."""
