"""Store side of features and validity: compute what is missing, batch by batch, and append.

Rows are keyed by (composition_id, featurizer, version) and (composition_id, checker_version):
a new kernel version leaves old rows in place and recomputes everything for the new one. The
pending set is read in one short read, each batch is computed with no connection open, then
written in its own short transaction (idempotent anti-join insert), so readers get in between.
A composition a featurizer cannot encode (an element or count outside its table) gets an empty
vector: it is done for that version, and `len(vector) = 0` tells it apart.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from .compositions import Z_OF, CompositionBatch
from .progress import bar as progress_bar
from .selection import lacking, prepare
from .store import Store, append_new

DEFAULT_BATCH = 100_000
FEATURE_KEY = ["composition_id", "featurizer", "version"]
VALIDITY_KEY = ["composition_id", "checker_version"]


@dataclass
class StoreResult:
    pending: int          # compositions lacking rows of the current version
    written: int          # rows appended
    version: str
    not_encodable: int = 0
    seconds: float = 0.0


def batch_from_arrow(table: pa.Table) -> CompositionBatch:
    """compositions rows (composition_id, elements VARCHAR[], counts INTEGER[]) -> padded batch,
    without a Python loop per row."""
    ids = table.column("composition_id").to_numpy().astype(np.int64)
    n = len(ids)
    el = table.column("elements").combine_chunks()
    ct = table.column("counts").combine_chunks()
    offsets = np.asarray(el.offsets, dtype=np.int64)
    lengths = np.diff(offsets)
    k = int(lengths.max()) if n else 1
    flat = el.flatten().dictionary_encode()
    z_of_dict = np.array([Z_OF[s] for s in flat.dictionary.to_pylist()], dtype=np.int16)
    zflat = z_of_dict[np.asarray(flat.indices, dtype=np.int64)] if len(flat) else np.zeros(0, np.int16)
    cflat = np.asarray(ct.flatten(), dtype=np.int64)
    rows = np.repeat(np.arange(n), lengths)
    cols = np.arange(len(zflat)) - np.repeat(offsets[:-1], lengths)
    z = np.zeros((n, k), np.int16)
    c = np.zeros((n, k), np.int64)
    z[rows, cols] = zflat
    c[rows, cols] = cflat
    return CompositionBatch(ids, z, c)


def vectors(values: np.ndarray, ok: np.ndarray) -> pa.Array:
    """(n, d) values -> FLOAT[] column from one flat float32 buffer + offsets (no Python list per
    row); rows not ok are empty lists (the featurizer cannot encode them)."""
    n = len(values)
    flat = np.asarray(values, np.float32).reshape(n, -1)
    offsets = np.zeros(n + 1, np.int64)
    np.cumsum(np.where(ok, flat.shape[1], 0), out=offsets[1:])
    data = pa.array(flat.reshape(-1) if ok.all() else flat[ok].reshape(-1))
    if offsets[-1] >= 2**31:
        return pa.LargeListArray.from_arrays(pa.array(offsets), data)
    return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), data)


def feature_rows(ids: np.ndarray, feat, values: np.ndarray, ok: np.ndarray) -> pa.Table:
    """features-table rows of one featurizer: (n, ...) values of compositions ids, empty
    vectors where not ok (the featurizer cannot encode them)."""
    return pa.table({"composition_id": pa.array(np.asarray(ids, np.int64), pa.int64()),
                     "featurizer": pa.array([feat.name] * len(ids), pa.string()),
                     "version": pa.array([feat.version] * len(ids), pa.string()),
                     "vector": vectors(values, ok)})


def featurize_store(store: Store, featurizer_name: str, where: str | None = None,
                    batch_size: int = DEFAULT_BATCH, progress: bool = True,
                    params: dict | None = None) -> StoreResult:
    """Compute `featurizer_name` for compositions (optionally those matching the SQL condition
    `where` over the compositions table) that have no row of the featurizer's current version."""
    import time

    from .features import get
    from .option_checks import at_least_one

    batch_size = at_least_one("featurize: the batch size", batch_size)
    feat = get(featurizer_name)
    t0 = time.perf_counter()
    prepare(store)   # an older store is migrated by this command's first write connection
    todo = lacking(store, "SELECT 1 FROM features f WHERE f.composition_id = c.composition_id "
                   "AND f.featurizer = ? AND f.version = ?", [feat.name, feat.version], where, params)
    res = StoreResult(pending=todo.num_rows, written=0, version=feat.version)
    with progress_bar(progress and todo.num_rows > 0, "compositions") as bar:
        task = bar.add_task(f"featurize {feat.name}", total=todo.num_rows)
        for s in range(0, todo.num_rows, batch_size):
            batch = batch_from_arrow(todo.slice(s, batch_size))
            ok = feat.encodable(batch)
            rows = feature_rows(batch.composition_id, feat, feat.transform(batch), ok)
            with store.transaction() as con:
                res.written += append_new(con, "features", rows, key=FEATURE_KEY, distinct=False)
            res.not_encodable += int((~ok).sum())
            bar.advance(task, len(batch))
    res.seconds = time.perf_counter() - t0
    return res


def validity_rows(batch: CompositionBatch, oxidation_set: str) -> pa.Table:
    """validity-table rows for a batch under one oxidation-state set. Flags are NULL where smact
    has no data for an element (it would raise); oxidation_states lists one state per element in
    the batch's slot order (= compositions.elements for batches from batch_from_arrow or
    compositions.canonical), NULL where the composition is not electronegativity-balanced."""
    from .validity import check, checker_version

    flags = check(batch, oxidation_set, assign=True)
    null = ~flags["supported"]
    has = flags["electronegativity_balanced"]
    present = np.asarray(batch.z) > 0
    offsets = np.zeros(len(batch) + 1, np.int32)
    np.cumsum(np.where(has, present.sum(1), 0), out=offsets[1:])
    states = flags["oxidation_states"][has[:, None] & present].astype(np.int32)
    return pa.table({
        "composition_id": pa.array(batch.composition_id, pa.int64()),
        "checker_version": pa.array([checker_version(oxidation_set)] * len(batch), pa.string()),
        **{name: pa.array(flags[name], pa.bool_(), mask=null)
           for name in ("charge_neutral", "electronegativity_balanced", "smact_valid")},
        "oxidation_states": pa.ListArray.from_arrays(pa.array(offsets), pa.array(states, pa.int32()),
                                                     mask=pa.array(~has)),
    })


def register_checker(con, oxidation_set: str) -> None:
    """Record (inside the caller's transaction) that this matstore writes checker_version(set) for
    the set; writing the default set makes it the one the views use (validity_checkers)."""
    from .validity import DEFAULT_SET, checker_version

    con.execute("INSERT INTO validity_checkers VALUES (?, ?, ?, now()) ON CONFLICT (oxidation_set) "
                "DO UPDATE SET checker_version = excluded.checker_version, updated_at = excluded.updated_at",
                [oxidation_set, checker_version(oxidation_set), oxidation_set == DEFAULT_SET])
    if oxidation_set == DEFAULT_SET:
        con.execute("UPDATE validity_checkers SET is_default = (oxidation_set = ?)", [oxidation_set])


def validate_store(store: Store, where: str | None = None, batch_size: int = DEFAULT_BATCH,
                   progress: bool = True, oxidation_set: str | None = None,
                   params: dict | None = None) -> StoreResult:
    """Validity flags and oxidation-state assignments under one oxidation-state set (default:
    validity.DEFAULT_SET) for compositions lacking a row of that set's checker version. Flags are
    NULL where smact has no data for an element (it would raise). At the end (also when nothing
    was pending) the set's version is registered in validity_checkers, so an interrupted run
    leaves the views on the checker they used before."""
    import time

    from .option_checks import at_least_one
    from .validity import DEFAULT_SET, checker_version

    batch_size = at_least_one("validate: the batch size", batch_size)
    oxidation_set = oxidation_set or DEFAULT_SET
    version = checker_version(oxidation_set)
    t0 = time.perf_counter()
    prepare(store)
    todo = lacking(store, "SELECT 1 FROM validity v WHERE v.composition_id = c.composition_id "
                   "AND v.checker_version = ?", [version], where, params)
    res = StoreResult(pending=todo.num_rows, written=0, version=version)
    with progress_bar(progress and todo.num_rows > 0, "compositions") as bar:
        task = bar.add_task(f"validate {oxidation_set}", total=todo.num_rows)
        for s in range(0, todo.num_rows, batch_size):
            batch = batch_from_arrow(todo.slice(s, batch_size))
            rows = validity_rows(batch, oxidation_set)
            with store.transaction() as con:
                res.written += append_new(con, "validity", rows, key=VALIDITY_KEY, distinct=False)
            res.not_encodable += int(rows.column("smact_valid").null_count)
            bar.advance(task, len(batch))
    with store.transaction() as con:
        register_checker(con, oxidation_set)
    res.seconds = time.perf_counter() - t0
    return res
