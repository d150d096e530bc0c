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
import pyarrow as pa

from . import models
from .progress import bar as progress_bar
from .executor import open_executor, payload_params, ship_model
from .runs import count, open_run, tracked
from .store import Store, append
from .errors import MatstoreError
from .option_checks import at_least_one

DEFAULT_CHUNK = 65536


def is_predictor(model) -> bool:
    """Whether a loaded model predicts a property (generators do not)."""
    return model.kind in models.PREDICTOR_KINDS and bool(model.property)


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


def prediction_rows(ids: np.ndarray, model, run_id: int, values: np.ndarray,
                    std: np.ndarray | None = None, p_metal: np.ndarray | None = None) -> pa.Table:
    """predictions-table rows of one model (model_id, property) for compositions ids; a value
    that is not finite (the model cannot featurize the composition) is NULL, and so are std (one
    model, not an ensemble) and p_metal (not a two-stage model) where not finite or not given."""
    values = np.asarray(values, np.float64).reshape(-1)
    n = len(values)

    def column(v):
        v = np.full(n, np.nan) if v is None else np.asarray(v, np.float64).reshape(-1)
        return pa.array(v, mask=~np.isfinite(v), type=pa.float64())

    return pa.table({"composition_id": pa.array(np.asarray(ids, np.int64)),
                     "model_id": pa.array(np.full(n, model.model_id, np.int32)),
                     "run_id": pa.array(np.full(n, run_id, np.int32)),
                     "property": pa.array([model.property] * n, pa.string()),
                     "value": column(values), "std": column(std), "p_metal": column(p_metal)})


def pending(store: Store, model_id: int, where: str | None = None,
            params: dict | None = None) -> pa.Table:
    """(composition_id, elements, counts) of compositions with no prediction row from model_id, in
    key order (optionally only those matching `where`: see selection.lacking)."""
    from .selection import lacking, prepare  # noqa: PLC0415

    prepare(store)
    return lacking(store, "SELECT 1 FROM predictions p WHERE p.composition_id = c.composition_id "
                   "AND p.model_id = ?", [model_id], where, params, "predict --where", PredictError,
                   ordered=True)


def predict(store: Store, model, where: str | None = None, chunk_size: int = DEFAULT_CHUNK,
            device: str | None = None, progress: bool = True, params: dict | None = None,
            executor=None, insecure: bool = False) -> PredictResult:
    """Predict model's property for every composition lacking it (where: SQL over compositions).
    executor: where chunks are predicted (matstore.executor); this process writes, chunk order."""
    from .featurize import batch_from_arrow  # noqa: PLC0415
    from .registry import resolve  # noqa: PLC0415
    from .devices import resolve_device  # noqa: PLC0415

    chunk_size = at_least_one("predict: the chunk size", chunk_size, error=PredictError)
    device = resolve_device(device)
    loaded = resolve(store, model, device=device)   # a shipped model the store lacks: imported
    if not is_predictor(loaded):
        raise PredictError(f"model {loaded.ref} is a {loaded.kind}, not a property predictor")
    todo = pending(store, loaded.model_id, where, params)
    result = PredictResult(None, loaded.ref, loaded.property, 0, 0, 0.0)
    if todo.num_rows == 0:
        return result
    with open_executor(executor, insecure=insecure, announce=progress) as ex:
        record = ship_model(ex, store, loaded.model_id)   # versions checked before any chunk
        run_id = open_run(store, "predict", loaded.model_id,
                          {"where": where, "params": params or None, "chunk_size": chunk_size,
                           "model": loaded.ref}, device, todo.num_rows, executor=ex.name,
                          workers=ex.workers)
        result.run_id = run_id
        _run(store, loaded, todo, chunk_size, device, progress, ex, record, result)
    return result


def _run(store, loaded, todo: pa.Table, chunk_size: int, device: str, progress: bool, ex, record,
         result: PredictResult) -> None:
    """Predict todo chunk by chunk (in process or on ex's workers) and commit each in order."""
    from .executor.batch_checks import predictions  # noqa: PLC0415
    from .executor.payloads import encode  # noqa: PLC0415
    from .executor.worker_tasks import predict_chunk  # noqa: PLC0415
    from .featurize import batch_from_arrow  # noqa: PLC0415
    from .features import get as featurizer  # noqa: PLC0415

    run_id = result.run_id

    def local(item):
        batch = batch_from_arrow(todo.slice(item[0] * chunk_size, chunk_size))
        out = loaded.predict_outputs(batch, device=device)
        return batch, out.value, out.std, out.p_metal

    def accept(item, data):   # a worker's chunk, checked against the chunk sent
        batch = batch_from_arrow(todo.slice(item[0] * chunk_size, chunk_size))
        nan_ok = ~featurizer(loaded.featurizer).encodable(batch) if loaded.featurizer else None
        t = predictions(data, np.asarray(batch.composition_id, np.int64), nan_ok, ex.name, item[0])
        return (batch, *(t[c].to_numpy(zero_copy_only=False) for c in ("value", "std", "p_metal")))

    # workers get (chunk number, Arrow IPC bytes of the chunk's id, elements, counts)
    items = [(k, None if record is None else encode(todo.slice(i, chunk_size)))
             for k, i in enumerate(range(0, todo.num_rows, chunk_size))]
    got = ex.map(items, local, predict_chunk, (record, payload_params(device=device)), accept)
    t0 = time.perf_counter()
    label = "" if ex.name == "local" else f" on {ex.name} ({ex.workers} workers)"
    with tracked(store, run_id), progress_bar(progress, "compositions") as prog:
        task = prog.add_task(f"predict {loaded.property} ({loaded.ref}){label}", total=todo.num_rows)
        for batch, values, std, p_metal in got:
            rows = prediction_rows(batch.composition_id, loaded, run_id, values, std, p_metal)
            with store.transaction() as con:
                append(con, "predictions", rows)
                count(con, run_id, len(batch), (result.n_predicted + len(batch)) /
                      max(time.perf_counter() - t0, 1e-9))
            result.n_predicted += len(batch)
            result.n_null += int((~np.isfinite(values)).sum())
            prog.update(task, advance=len(batch))
        got.close()
    result.seconds = time.perf_counter() - t0


def predict_formulas(store: Store, model, formulas: list[str], device: str | None = None):
    """Predict model's property for formulas given on the spot, writing nothing to the store (the
    formulas are not ingested as known). A polars frame: formula (as given), composition (reduced),
    value, std, p_metal (a two-stage band gap is 0 where p_metal >= 0.5, as in the views), model,
    known_in (the store's sources that hold the composition, empty when it is new)."""
    import polars as pl  # noqa: PLC0415

    from . import compositions  # noqa: PLC0415
    from .registry import load_model  # noqa: PLC0415

    if not formulas:
        raise PredictError("no formula given")
    comps = []
    for f in formulas:
        c = compositions.try_parse(f)
        if isinstance(c, str):
            raise PredictError(f"formula {f!r}: {c}")
        comps.append(c)
    m = load_model(store, model, device=device)
    if not is_predictor(m):
        raise PredictError(f"model {m.ref} is a {m.kind}, not a property predictor")
    batch = compositions.CompositionBatch.from_lists([list(c.elements) for c in comps],
                                                     [list(c.counts) for c in comps],
                                                     [c.composition_id for c in comps])
    out = m.predict_outputs(batch, device=device)
    value = np.asarray(out.value, np.float64)
    p_metal = np.asarray(out.p_metal, np.float64)
    value = np.where(np.isfinite(p_metal) & (p_metal >= 0.5), 0.0, value)
    known = dict(store.query("SELECT composition_id, sources FROM known WHERE composition_id IN "
                             "(SELECT unnest(?::BIGINT[]))", [[c.composition_id for c in comps]]).iter_rows())
    nan = lambda v: [None if not np.isfinite(x) else float(x) for x in v]  # noqa: E731
    return pl.DataFrame({"formula": list(formulas), "composition": [c.formula for c in comps],
                         "property": [m.property] * len(comps), "value": nan(value),
                         "std": nan(np.asarray(out.std, np.float64)), "p_metal": nan(p_metal),
                         "model": [m.ref] * len(comps),
                         "known_in": [known.get(c.composition_id) or [] for c in comps]},
                        schema_overrides={"known_in": pl.List(pl.String)})
