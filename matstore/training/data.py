"""A SQL selection of the store -> compositions (+ targets), a data hash, and a seeded split.

The selection is any query returning ``composition_id``; targets come from the
``composition_properties`` view (one ground-state value per composition). Rows are ordered by
composition_id before sampling/splitting, so the same store, query and seed give the same split.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import duckdb
import numpy as np

from ..compositions import CompositionBatch
from ..query import check_selection
from ..store import Store, frame


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


def selection_sql(selection: str, target: str | None) -> str:
    sel = selection.strip().rstrip(";")
    sql = (f"SELECT c.composition_id, c.elements, c.counts"
           f"{', cp.' + target + ' AS y' if target else ''}\n"
           f"FROM (SELECT DISTINCT composition_id FROM ({sel}) s) q\n"
           f"JOIN compositions c USING (composition_id)\n")
    if target:
        sql += f"JOIN composition_properties cp USING (composition_id)\nWHERE cp.{target} IS NOT NULL\n"
    return sql + "ORDER BY c.composition_id"


def load(store: Store, selection: str, target: str | None = None, max_rows: int | None = None,
         seed: int = 0) -> Dataset:
    """Run the selection; max_rows keeps a seeded random subset (still ordered by id).

    The selection is user SQL (`train --on`): checked to be one SELECT and run on a guarded
    read-only connection (no COPY TO, ATTACH, other files, extensions)."""
    check_selection(selection, "train --on")
    sql = selection_sql(selection, target)
    try:
        with store.connect(write=False, guarded=True) as con:
            df = frame(con, sql)
    except duckdb.Error as e:
        raise ValueError(f"training selection must be a query returning composition_id; "
                         f"{selection.strip()!r} failed: {e}") from None
    n = df.height
    if n == 0:
        what = f" with a {target} value" if target else ""
        raise ValueError(f"training selection {selection.strip()!r} returned no compositions{what} "
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
        raise ValueError(f"need at least 3 rows to split into train/val/test, got {n}")
    perm = np.random.default_rng(seed).permutation(n)
    n_val = max(1, int(round(n * fractions[1])))
    n_test = max(1, int(round(n * fractions[2])))
    n_train = n - n_val - n_test
    return Split(seed, tuple(fractions), np.sort(perm[:n_train]),
                 np.sort(perm[n_train:n_train + n_val]), np.sort(perm[n_train + n_val:]))
