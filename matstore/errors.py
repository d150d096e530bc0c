"""The one base of matstore's own errors: what the CLI shows as a clear line, not a traceback.

Every error class of the package derives from MatstoreError (and keeps its older ValueError /
RuntimeError base, so callers that caught those still do). Anything else that escapes a command is
a bug and shows as one.
"""

from __future__ import annotations


class MatstoreError(Exception):
    """Input or state that matstore refuses, with a message that says why (nothing was lost)."""
