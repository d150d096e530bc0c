"""The shipped screen_* views: list them and run one by name."""

from __future__ import annotations

import math
import re

import polars as pl

from ..store import Store, frame, view_definitions
from ..views import view_question
from ..errors import MatstoreError

_NAME_RE = re.compile(r"^[A-Za-z0-9_]+$")


class ReportError(MatstoreError, RuntimeError):
    """A screen or report that cannot be made; the message says why."""


def screens() -> pl.DataFrame:
    """The shipped screen_* views and the question each answers (its leading comment)."""
    rows = []
    for name, body in view_definitions().items():
        if name.startswith("screen_"):
            comment = view_question(body)
            rows.append((name.removeprefix("screen_"), comment))
    return pl.DataFrame(rows, schema=["screen", "question"], orient="row")


def std_columns(store: Store, name: str) -> list[str]:
    """The ensemble-spread columns (*_std) of shipped screen_<name>, in the view's order."""
    with store.connect(guarded=True) as con:
        cols = [r[0] for r in con.execute(f'DESCRIBE SELECT * FROM "screen_{name}"').fetchall()]
    return [c for c in cols if c.endswith("_std") and _NAME_RE.match(c)]


RELAXABLE = {"coverage": "binary sub-systems without a reference phase allowed (hull partly the "
                         "elements' tie plane there)",
             "ions": "oxidation-state assignments with an ion the ICSD rarely reports allowed",
             "hulls": "rows of every hull shown (default: a source's mixed hull where it was computed)"}
_RELAX_RE = re.compile(r"--\s*relax:\s*([a-z_]+)\s*$")


def screen_sql(name: str, relax=()) -> str:
    """The SELECT of shipped screen_<name>, without its default filters named in relax (lines
    tagged `-- relax: KIND` in the sql file); no relax: the view itself."""
    unknown = sorted(set(relax) - set(RELAXABLE))
    if unknown:
        raise ReportError(f"cannot relax {', '.join(unknown)} (relaxable: {', '.join(RELAXABLE)})")
    relax = set(relax) & _tags(name)   # a screen without that filter has nothing to relax
    if not relax:
        return f'SELECT * FROM "screen_{name}"'
    lines = view_definitions()[f"screen_{name}"].splitlines()
    kept = [l for l in lines if not ((m := _RELAX_RE.search(l)) and m.group(1) in relax)]
    return "SELECT * FROM (\n" + "\n".join(kept) + "\n)"


def _tags(name: str) -> set[str]:
    body = view_definitions().get(f"screen_{name}", "")
    return {m.group(1) for m in map(_RELAX_RE.search, body.splitlines()) if m}


def screen_notes(name: str | None, relax=()) -> list[str]:
    """One line per default filter a screen run relaxed, for the user to see beside the rows."""
    if not name:
        return []
    name = name.removeprefix("screen_")
    return [f"screen {name}: relaxed: {RELAXABLE[k]}" for k in sorted(set(relax) & _tags(name))]


def run_screen(store: Store, name: str | None, max_std: float | None = None,
               relax=()) -> pl.DataFrame:
    """Rows of view screen_<name>; no name: the list of screens. ``max_std``: keep only rows
    whose every predicted column's ensemble spread (the screen's *_std columns) is known and
    <= max_std (a single model's prediction has no spread, NULL, and does not pass; where a
    spread is NULL on every row, that is an error naming the model versions). ``relax``: default
    filters to drop ('coverage', 'ions'; screen_sql)."""
    if not name:
        if max_std is not None or relax:
            raise ReportError("--max-std and relaxing filters apply to a screen's rows: name the screen")
        return screens()
    name = name.removeprefix("screen_")
    if not _NAME_RE.match(name):
        raise ReportError(f"screen {name!r}: a screen name is letters, digits and _")
    # only the package's screens: a view stored in the file is a received file's SQL, not ours
    shipped = sorted(v.removeprefix("screen_") for v in view_definitions() if v.startswith("screen_"))
    if name not in shipped:
        raise ReportError(f"no screen {name!r} (screens: {', '.join(shipped) or 'none'}); "
                          f"a view of the file itself runs with `matstore query`")
    base = screen_sql(name, tuple(relax))
    where, params = "", []
    if max_std is not None:
        bound = float(max_std)
        if not math.isfinite(bound) or bound < 0:
            raise ReportError(f"--max-std {max_std!r}: a spread bound is a finite number >= 0")
        cols = std_columns(store, name)
        if not cols:
            raise ReportError(f"screen {name!r} has no *_std column to filter on")
        # column names are the view's own (checked above); the bound is bound, never pasted
        _check_spreads(store, name, base, cols)
        # a spread filters the rows that have its prediction (hull_novel's rows have no band gap)
        where = " WHERE " + " AND ".join(f'("{_value_of(c)}" IS NULL OR "{c}" <= ?)' for c in cols)
        params = [bound] * len(cols)
    with store.connect(guarded=True) as con:  # the read connection's views are the package's
        return frame(con, f"SELECT * FROM ({base}){where}", params or None)


_VALUE_OF = {"pred_formation_energy_std": ("pred_formation_energy_per_atom", "fe_model"),
             "pred_band_gap_std": ("pred_band_gap", "band_gap_model")}


def _value_of(std_col: str) -> str:
    return _VALUE_OF.get(std_col, (std_col.removesuffix("_std"), None))[0]


def _check_spreads(store: Store, name: str, base: str, cols: list[str]) -> None:
    """A --max-std that can only return nothing says why: a spread NULL on every row that has
    its prediction (the model behind it is a single model, not an ensemble)."""
    with store.connect(guarded=True) as con:
        have = {r[0] for r in con.execute(f"DESCRIBE {base}").fetchall()}
        for c in cols:
            value, model = _VALUE_OF.get(c, (c.removesuffix("_std"), None))
            if value not in have:
                continue
            n, n_std = con.execute(f'SELECT count("{value}"), count("{c}") FROM ({base})').fetchone()
            if n and n_std == 0:
                models = [r[0] for r in con.execute(
                    f'SELECT DISTINCT "{model}" FROM ({base}) WHERE "{model}" IS NOT NULL ORDER BY 1'
                ).fetchall()] if model in have else []
                raise ReportError(f"--max-std: {c} is NULL on all {n:,} predicted rows of screen "
                                  f"{name!r}: {', '.join(models) or 'its model'} is a single model with "
                                  f"no ensemble spread (train an ensemble to filter on it, or drop --max-std)")


def latest_run(store: Store) -> int:
    df = store.query("SELECT max(run_id) AS r FROM runs WHERE kind = 'generate'")
    if df["r"][0] is None:
        raise ReportError(f"no generation runs in {store.path}; run `matstore generate` first")
    return int(df["r"][0])
