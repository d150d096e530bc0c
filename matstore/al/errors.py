"""The one error class of active learning."""

from __future__ import annotations

from ..errors import MatstoreError


class ALError(MatstoreError, ValueError):
    """An active-learning campaign, round or label file that cannot be used as asked."""
