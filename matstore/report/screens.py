"""The shipped screen_* views: list them and run one by name."""

from __future__ import annotations

import math
import re

import polars as pl

from ..store import Store, frame, view_definitions
from ..errors import MatstoreError

_NAME_RE = re.compile(r"^[A-Za-z0-9_]+$")


class ReportError(MatstoreError, RuntimeError):
    """A screen or report that cannot be made; the message says why."""


def screens() -> pl.DataFrame:
    """The shipped screen_* views and the question each answers (its leading comment)."""
    rows = []
    for name, body in view_definitions().items():
        if name.startswith("screen_"):
            comment = " ".join(l.lstrip("- ").strip() for l in body.splitlines() if l.startswith("--"))
            rows.append((name.removeprefix("screen_"), comment))
    return pl.DataFrame(rows, schema=["screen", "question"], orient="row")


def std_columns(store: Store, name: str) -> list[str]:
    """The ensemble-spread columns (*_std) of shipped screen_<name>, in the view's order."""
    with store.connect(guarded=True) as con:
        cols = [r[0] for r in con.execute(f'DESCRIBE SELECT * FROM "screen_{name}"').fetchall()]
    return [c for c in cols if c.endswith("_std") and _NAME_RE.match(c)]


def run_screen(store: Store, name: str | None, max_std: float | None = None) -> pl.DataFrame:
    """Rows of view screen_<name>; no name: the list of screens. ``max_std``: keep only rows
    whose every predicted column's ensemble spread (the screen's *_std columns) is known and
    <= max_std (a single model's prediction has no spread, NULL, and does not pass)."""
    if not name:
        if max_std is not None:
            raise ReportError("--max-std filters a screen's rows: name the screen")
        return screens()
    name = name.removeprefix("screen_")
    if not _NAME_RE.match(name):
        raise ReportError(f"screen {name!r}: a screen name is letters, digits and _")
    # only the package's screens: a view stored in the file is a received file's SQL, not ours
    shipped = sorted(v.removeprefix("screen_") for v in view_definitions() if v.startswith("screen_"))
    if name not in shipped:
        raise ReportError(f"no screen {name!r} (screens: {', '.join(shipped) or 'none'}); "
                          f"a view of the file itself runs with `matstore query`")
    where, params = "", []
    if max_std is not None:
        bound = float(max_std)
        if not math.isfinite(bound) or bound < 0:
            raise ReportError(f"--max-std {max_std!r}: a spread bound is a finite number >= 0")
        cols = std_columns(store, name)
        if not cols:
            raise ReportError(f"screen {name!r} has no *_std column to filter on")
        # column names are the view's own (checked above); the bound is bound, never pasted
        where = " WHERE " + " AND ".join(f'"{c}" <= ?' for c in cols)
        params = [bound] * len(cols)
    with store.connect(guarded=True) as con:  # the read connection's views are the package's
        return frame(con, f'SELECT * FROM "screen_{name}"{where}', params or None)


def latest_run(store: Store) -> int:
    df = store.query("SELECT max(run_id) AS r FROM runs WHERE kind = 'generate'")
    if df["r"][0] is None:
        raise ReportError(f"no generation runs in {store.path}; run `matstore generate` first")
    return int(df["r"][0])
