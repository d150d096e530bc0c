"""Predictions for stored compositions: a predictor model version over those that lack its rows.

Pending compositions (id, elements, counts) are read once as Arrow; each chunk is predicted with
no connection held and written in its own short transaction with a `runs` row of
kind 'predict' keeping count, so a killed run simply continues where it stopped when re-run.
Compositions the model cannot featurize get a NULL value (so they are not retried forever).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa

from . import models
from .runs import close_run, count, open_run
from .store import Store, append
from .errors import MatstoreError
from .options import at_least_one

DEFAULT_CHUNK = 65536


class PredictError(MatstoreError, RuntimeError):
    """A prediction run that cannot start; the message says why."""


@dataclass
class PredictResult:
    run_id: int | None
    model: str
    property: str
    n_predicted: int
    n_null: int
    seconds: float


def pending(store: Store, model_id: int, where: str | None = None,
            params: dict | None = None) -> pa.Table:
    """(composition_id, elements, counts) of compositions with no prediction row from model_id
    (optionally only those matching `where`, one SQL condition on compositions alias c, checked
    and evaluated on a guarded read-only connection)."""
    from .query import check_condition, where_params  # noqa: PLC0415

    if where:
        check_condition(where, "predict --where")
    missing, bound = where_params("SELECT 1 FROM predictions p WHERE p.composition_id = c.composition_id "
                                  "AND p.model_id = ?", [model_id], where, params, "predict --where")
    cond = f"AND ({where})" if where else ""
    sql = (f"SELECT c.composition_id, c.elements, c.counts FROM compositions c WHERE NOT EXISTS "
           f"({missing}) {cond} ORDER BY c.composition_id")
    with store.connect(write=False, guarded=True) as con:
        try:
            return con.sql(sql, params=bound).to_arrow_table()
        except Exception as e:  # a bad --where: name it rather than show DuckDB's context
            if where and "duckdb" in type(e).__module__:
                raise PredictError(f"predict --where {where!r}: {str(e).splitlines()[0]}") from None
            raise


def predict(store: Store, model, where: str | None = None, chunk_size: int = DEFAULT_CHUNK,
            device: str | None = None, progress: bool = True, params: dict | None = None) -> PredictResult:
    """Predict model's property for every composition lacking it (where: SQL over compositions)."""
    from .featurize import batch_from_arrow  # noqa: PLC0415
    from .registry import load_model  # noqa: PLC0415
    from .devices import resolve_device  # noqa: PLC0415
    from .runner import _progress  # noqa: PLC0415

    chunk_size = at_least_one("predict: the chunk size", chunk_size, error=PredictError)
    device = resolve_device(device)
    loaded = load_model(store, model, device=device) if isinstance(model, (str, int)) else model
    if loaded.kind not in models.PREDICTOR_KINDS or not loaded.property:
        raise PredictError(f"model {loaded.ref} is a {loaded.kind}, not a property predictor")
    todo = pending(store, loaded.model_id, where, params)
    result = PredictResult(None, loaded.ref, loaded.property, 0, 0, 0.0)
    if todo.num_rows == 0:
        return result
    run_id = open_run(store, "predict", loaded.model_id,
                      {"where": where, "params": params or None, "chunk_size": chunk_size,
                       "model": loaded.ref}, device, todo.num_rows)
    result.run_id = run_id
    t0 = time.perf_counter()
    status = "failed"
    try:
        with _progress(progress, run_id, todo.num_rows) as prog:
            task = prog.add_task(f"predict {loaded.property} ({loaded.ref})", total=todo.num_rows)
            for i in range(0, todo.num_rows, chunk_size):
                batch = batch_from_arrow(todo.slice(i, chunk_size))
                values = np.asarray(loaded.predict(batch, device=device), dtype=np.float64).reshape(-1)
                ok = np.isfinite(values)
                rows = pa.table({
                    "composition_id": pa.array(batch.composition_id.astype(np.int64)),
                    "model_id": pa.array(np.full(len(batch), loaded.model_id, np.int32)),
                    "run_id": pa.array(np.full(len(batch), run_id, np.int32)),
                    "property": pa.array([loaded.property] * len(batch), pa.string()),
                    "value": pa.array(values, mask=~ok)})
                with store.transaction() as con:
                    append(con, "predictions", rows)
                    count(con, run_id, len(batch), (result.n_predicted + len(batch)) /
                          max(time.perf_counter() - t0, 1e-9))
                result.n_predicted += len(batch)
                result.n_null += int((~ok).sum())
                prog.update(task, advance=len(batch))
        status = "done"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        result.seconds = time.perf_counter() - t0
        close_run(store, run_id, status)
    return result
