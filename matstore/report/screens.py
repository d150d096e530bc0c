"""The shipped screen_* views: list them and run one by name."""

from __future__ import annotations

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


def run_screen(store: Store, name: str | None) -> pl.DataFrame:
    """Rows of view screen_<name>; no name: the list of screens."""
    if not name:
        return screens()
    name = name.removeprefix("screen_")
    if not _NAME_RE.match(name):
        raise ReportError(f"screen {name!r}: a screen name is letters, digits and _")
    # only the package's screens: a view stored in the file is a received file's SQL, not ours
    shipped = sorted(v.removeprefix("screen_") for v in view_definitions() if v.startswith("screen_"))
    if name not in shipped:
        raise ReportError(f"no screen {name!r} (screens: {', '.join(shipped) or 'none'}); "
                          f"a view of the file itself runs with `matstore query`")
    with store.connect(guarded=True) as con:  # the read connection's views are the package's
        return frame(con, f'SELECT * FROM "screen_{name}"')


def latest_run(store: Store) -> int:
    df = store.query("SELECT max(run_id) AS r FROM runs WHERE kind = 'generate'")
    if df["r"][0] is None:
        raise ReportError(f"no generation runs in {store.path}; run `matstore generate` first")
    return int(df["r"][0])
