"""A SQL selection of the store -> compositions (+ targets), a data hash, and a seeded split.

The selection is any query returning ``composition_id``; targets come from ONE source's values
(``composition_properties_by_source``: the ground state within that source), chosen explicitly or,
by default, the one DFT source that has the property (see target_source). Rows are ordered by
composition_id before sampling/splitting, so the same store, query and seed give the same split.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import duckdb
import numpy as np

from ..compositions import CompositionBatch
from ..errors import MatstoreError
from ..catalogue import printable
from ..query import QueryError
from ..selection import ids_of, query_sql, registered
from ..store import Store, frame

_SAFE_SOURCE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")  # a source name we may write into SQL text


class SelectionError(MatstoreError, ValueError):
    """A training selection that returns no usable rows; the message shows the query."""


class TargetSourceError(MatstoreError, ValueError):
    """No single source to take a training target from, or a source that does not have it."""


@dataclass(frozen=True)
class TargetSource:
    source: str
    kind: str            # dft, experiment, unknown
    method: str | None   # level of theory where known

    def to_dict(self) -> dict:
        return {"target_source": self.source, "target_kind": self.kind, "target_method": self.method}


def target_source(store: Store, prop: str, requested: str | None = None,
                  option: str = "--target-source") -> TargetSource:
    """The source whose `prop` values a predictor trains on. Default: the one DFT source that has
    the property; where none does, the one source of unknown kind (a file ingested without
    --kind). Several candidates, or only experimental values, need an explicit choice; values of
    different sources are never pooled. `option` is the caller's option that names the source
    (the error says which to use)."""
    if prop not in ("formation_energy_per_atom", "band_gap", "energy_above_hull"):
        raise TargetSourceError(f"no property column {prop!r} to train on")
    with store.connect() as con:
        rows = con.execute(f"SELECT source, kind, method, count(*) FROM composition_properties_by_source "
                           f"WHERE {prop} IS NOT NULL GROUP BY ALL ORDER BY source").fetchall()
    have = {r[0]: TargetSource(r[0], r[1], r[2]) for r in rows}
    listing = ", ".join(f"{r[0]} ({r[1]}{', ' + r[2] if r[2] else ''}; {r[3]:,} compositions)"
                        for r in rows) or "none"
    if requested is not None:
        if requested not in have:
            raise TargetSourceError(f"target source {requested!r} has no {prop} values in {store.path} "
                                    f"(sources with {prop}: {listing})")
        found = have[requested]
    else:
        dft = [t for t in have.values() if t.kind == "dft"]
        unknown = [t for t in have.values() if t.kind == "unknown"]
        pool = dft or unknown
        if len(pool) != 1:
            why = (f"several {'DFT' if dft else 'unlabelled'} sources have {prop}" if pool else
                   f"no DFT source has {prop}")
            raise TargetSourceError(f"{why} in {store.path}: {listing}; choose one with {option} "
                                    f"(Python: {option.lstrip('-').replace('-', '_')}=...)")
        found = pool[0]
    if not _SAFE_SOURCE.match(found.source):
        raise TargetSourceError(f"source name {found.source!r} in {store.path} is not a plain identifier")
    return found


@dataclass
class Dataset:
    query: str                       # the SQL that was run (selection wrapped with the join)
    batch: CompositionBatch
    y: np.ndarray | None             # float64 targets, or None for generative models
    n_selected: int                  # distinct compositions the selection returned (with target)

    def __len__(self) -> int:
        return len(self.batch)

    def subset(self, idx: np.ndarray) -> "Dataset":
        b = self.batch
        return Dataset(self.query, CompositionBatch(b.composition_id[idx], b.z[idx], b.counts[idx]),
                       None if self.y is None else self.y[idx], self.n_selected)

    @property
    def data_hash(self) -> str:
        """sha256 over the (sorted) composition ids and targets actually trained on."""
        order = np.argsort(self.batch.composition_id, kind="stable")
        h = hashlib.sha256(np.ascontiguousarray(self.batch.composition_id[order], np.int64).tobytes())
        if self.y is not None:
            h.update(np.ascontiguousarray(self.y[order], np.float64).tobytes())
        return h.hexdigest()


def target_sources(store: Store, prop: str, requested) -> list[TargetSource]:
    """Several sources named explicitly, in priority order (e.g. active-learning labels, then the
    base data): each is checked as target_source checks one. Never chosen by default."""
    found = [target_source(store, prop, r) for r in requested]
    if len({t.source for t in found}) != len(found):
        raise TargetSourceError(f"target sources {list(requested)}: a source is named twice")
    return found


def selection_sql(selection: str, target: str | None, source: str | tuple | list | None = None) -> str:
    """The training query; `source` (a checked plain identifier) is the target's one source.
    A tuple of sources (explicit, in priority order) takes each composition's value from the first
    of them that has one: the query says so, and the version records the sources."""
    sel = selection.strip().rstrip(";")
    sql = (f"SELECT c.composition_id, c.elements, c.counts"
           f"{', cp.' + target + ' AS y' if target else ''}\n"
           f"FROM (SELECT DISTINCT composition_id FROM ({sel}) s) q\n"
           f"JOIN compositions c USING (composition_id)\n")
    if target:
        several = isinstance(source, (tuple, list))
        names = list(source) if several else [source]
        if not names or any(s is None or not _SAFE_SOURCE.match(s) for s in names):
            raise TargetSourceError(f"a training target needs plain source names, got {source!r}")
        if several and len(names) > 1:
            rank = " ".join(f"WHEN '{s}' THEN {i}" for i, s in enumerate(names))
            sql += (f"JOIN (SELECT * FROM composition_properties_by_source\n"
                    f"      WHERE source IN ({', '.join(repr(s) for s in names)}) AND {target} IS NOT NULL\n"
                    f"      QUALIFY row_number() OVER (PARTITION BY composition_id\n"
                    f"                                 ORDER BY CASE source {rank} END) = 1) cp\n"
                    f"  USING (composition_id)\n")
        else:
            sql += (f"JOIN composition_properties_by_source cp USING (composition_id)\n"
                    f"WHERE cp.source = '{names[0]}' AND cp.{target} IS NOT NULL\n")
    return sql + "ORDER BY c.composition_id"


def load(store: Store, selection: str, target: str | None = None, max_rows: int | None = None,
         seed: int = 0, source: str | tuple | None = None, option: str = "train --on") -> Dataset:
    """Run the selection; targets from `source` (default: target_source's choice); max_rows keeps
    a seeded random subset (still ordered by id).

    The selection is user SQL (`train --on`): matstore.selection evaluates it on a guarded
    read-only connection to composition ids, and the rows are re-read by id. The returned
    Dataset's sql is the training query as written (the selection's text, for provenance)."""
    sel_sql = query_sql(selection, option)
    if target and source is None:
        source = target_source(store, target).source
    sql = selection_sql(selection, target, source)
    try:
        with store.connect(write=False) as con:
            ids = ids_of(con, sel_sql, selection, option)
            with registered(con, ids) as table:
                df = frame(con, selection_sql(f"SELECT composition_id FROM {table}", target, source))
    except (duckdb.Error, QueryError) as e:
        raise SelectionError(f"training selection must be a query returning composition_id; "
                             f"{printable(selection.strip(), 200)!r} failed: {e}") from None
    n = df.height
    if n == 0:
        what = f" with a {target} value from source {source}" if target else ""
        raise SelectionError(f"training selection {selection.strip()!r} returned no compositions{what} "
                         f"in {store.path}")
    keep = np.arange(n)
    if max_rows is not None and n > max_rows:
        keep = np.sort(np.random.default_rng(seed).choice(n, size=max_rows, replace=False))
        df = df[keep]
    batch = CompositionBatch.from_lists(df["elements"].to_list(), df["counts"].to_list(),
                                        df["composition_id"].to_numpy())
    y = df["y"].to_numpy().astype(np.float64) if target else None
    return Dataset(sql, batch, y, n)


@dataclass
class Split:
    seed: int
    fractions: tuple[float, float, float]
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def to_dict(self) -> dict:
        return {"method": "seeded permutation of rows ordered by composition_id",
                "seed": self.seed, "fractions": list(self.fractions),
                "n_train": len(self.train), "n_val": len(self.val), "n_test": len(self.test)}


def split(n: int, seed: int = 0, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)) -> Split:
    """Seeded train/val/test indices; val and test get at least one row each when n >= 3."""
    if n < 3:
        raise SelectionError(f"need at least 3 rows to split into train/val/test, got {n}")
    perm = np.random.default_rng(seed).permutation(n)
    n_val = max(1, int(round(n * fractions[1])))
    n_test = max(1, int(round(n * fractions[2])))
    n_train = n - n_val - n_test
    return Split(seed, tuple(fractions), np.sort(perm[:n_train]),
                 np.sort(perm[n_train:n_train + n_val]), np.sort(perm[n_train + n_val:]))
