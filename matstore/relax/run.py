"""`matstore relax`: relax a selection of stored structures with a potential, a chunk at a time.

The selection (structures matching --where, alias s; by default every structure that is not
itself a relaxation) is ordered by structure_id and cut into chunks of `batch` structures; a
chunk's structures advance together (engine.relax_batch) and everything it produced - the relaxed
structures (origin relaxed, parent = the input, method = the potential), one relaxations row per
input, a run_batches row - commits in ONE transaction. A structure is pending while it has no
relaxations row for (potential, settings), so a killed run resumes where it stopped: the pending
structures are a suffix of the selection starting at a chunk boundary, the chunks are the same
as the uninterrupted run's, and so are the rows (kill -9 safe; --resume RUN reuses that run's
settings, selection and batch and only takes structures stored before it started).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from dataclasses import dataclass

import polars as pl

from .. import progress, runs
from ..executor import LocalExecutor, open_executor
from ..query import QueryError
from ..selection import structure_ids
from ..store import Store, append
from . import relax_payload
from .engine import RelaxSettings, relax_batch
from .errors import RelaxError

KIND = "relax"
DEFAULT_WHERE = "s.origin <> 'relaxed'"
MAX_BATCH = 1024


@dataclass
class RelaxRun:
    run_id: int
    model_id: int
    potential: str
    settings_hash: str
    n_selected: int
    n_relaxed: int               # relaxed by this call
    counts: dict                 # status -> structures (this call)
    seconds: float


def settings_hash(settings: RelaxSettings) -> str:
    return hashlib.sha256(json.dumps(settings.as_dict(), sort_keys=True).encode()).hexdigest()


def select(store: Store, where: str | None, before: dt.datetime | None = None) -> list[int]:
    """Ids of the structures matching where (a condition on structures, alias s), in id order;
    evaluated on a guarded read-only connection (matstore.selection)."""
    cond = where if where and where.strip() else DEFAULT_WHERE
    try:
        return structure_ids(store, cond, "relax --where", created_before=before)
    except QueryError as e:
        raise RelaxError(str(e)) from None


def pending(store: Store, ids: list[int], model_id: int, shash: str) -> list[int]:
    with store.connect() as con:
        done = {r[0] for r in con.execute(
            "SELECT structure_id FROM relaxations WHERE model_id = ? AND settings_hash = ?",
            [int(model_id), shash]).fetchall()}
    return [i for i in ids if i not in done]


def relax_structures(store: Store, where: str | None = None, potential: str | None = None,
                     settings: RelaxSettings = RelaxSettings(), batch: int = 16, resume: int | None = None,
                     device: str = "cpu", show_progress: bool = False, loaded=None, executor=None,
                     insecure: bool = False) -> RelaxRun:
    """Relax the selected structures (see the module docstring); returns what this call did.
    loaded: an already loaded potential of the same name (tests and benchmarks reuse one; the
    in-process path only). executor: where chunks are relaxed (matstore.executor: workers load the
    potential from their own wheel, checked against this one's); this process writes, chunk order."""
    from ..models import potential as potentials  # noqa: PLC0415
    from ..models.potential.registry import register  # noqa: PLC0415

    if resume is not None:
        run = runs.get_run(store, resume)
        if run is None or run["kind"] != KIND:
            raise RelaxError(f"--resume {resume}: no relax run with that id in {store.path}")
        if runs.still_running(run):
            raise RelaxError(f"--resume {resume}: run {resume} is still running (pid {run['pid']})")
        p = json.loads(run["params"])
        where, potential, batch = p["where"], p["potential"], p["batch"]
        s = dict(p["settings"])
        s["volume_ratio_bounds"] = tuple(s["volume_ratio_bounds"])
        settings = RelaxSettings(**{k: s[k] for k in RelaxSettings.__dataclass_fields__ if k in s},
                                 relax_cell=s.get("cell_filter") is not None)
        before = run["started_at"]
    else:
        before = None
    settings.check()
    if not 1 <= int(batch) <= MAX_BATCH:
        raise RelaxError(f"--batch {batch}: must be in 1..{MAX_BATCH} structures")
    spec = potentials.resolve(potential)
    model_id, ref = register(store, spec.name)
    shash = settings_hash(settings)
    ids = select(store, where, before)
    todo = pending(store, ids, model_id, shash)
    params = {"where": where, "potential": spec.name, "potential_ref": ref, "batch": int(batch),
              "settings": settings.as_dict(), "settings_hash": shash}
    # nothing pending: no cluster is started (the run is recorded as local, with 0 structures)
    with open_executor(executor if todo else None, insecure=insecure, announce=show_progress) as ex:
        if not isinstance(ex, LocalExecutor):   # every worker's potential = this process's
            ex.check_versions([{"potential": spec.name, "device": device, **spec.identity()}])
        if resume is not None:
            run_id = int(resume)
            runs.reopen_run(store, run_id, ex.name, ex.workers)
        else:
            run_id = runs.open_run(store, KIND, model_id, params, device, len(todo), executor=ex.name,
                                   workers=ex.workers)
        counts, seconds = _run(store, ex, spec.name, model_id, shash, settings, run_id, todo, int(batch),
                               device, show_progress, loaded)
    return RelaxRun(run_id, model_id, ref, shash, len(ids), len(todo), counts, seconds)


def _run(store, ex, name, model_id, shash, settings, run_id, todo, batch, device, show_progress, loaded):
    """Relax todo chunk by chunk (in process or on ex's workers) and write each in chunk order."""
    from ..executor import payload_params  # noqa: PLC0415
    from ..executor.worker_tasks import relax_chunk  # noqa: PLC0415
    from ..models import potential as potentials  # noqa: PLC0415
    from ..structures import read_structures  # noqa: PLC0415

    t0 = time.perf_counter()
    counts: dict[str, int] = {}
    pot = [loaded]
    with runs.tracked(store, run_id), progress.bar(show_progress, "structures") as prog:
        label = "" if ex.name == "local" else f" on {ex.name} ({ex.workers} workers)"
        task = prog.add_task(f"relax run {run_id} ({name}){label}", total=len(todo))
        with store.connect() as con:
            batch_no = con.execute("SELECT coalesce(max(batch_no) + 1, 0) FROM run_batches WHERE run_id = ?",
                                   [run_id]).fetchall()[0][0]

        def items():   # read here, lazily for the in-process path (a Dask map lists them first)
            for k, start in enumerate(range(0, len(todo), batch)):
                chunk = todo[start:start + batch]
                with store.connect() as con:
                    inputs = read_structures(con, chunk)
                yield k, chunk, inputs   # outside the read: the writer opens the store next

        def local(item):
            t = time.perf_counter()
            if pot[0] is None:
                pot[0] = potentials.load(name, device)
            results = relax_batch(pot[0], item[2], settings, on_done=lambda *_: prog.update(task, advance=1))
            return item, relax_payload.table(item[1], results), time.perf_counter() - t

        last = [time.perf_counter()]

        def accept(item, data):   # a worker's chunk, checked against the chunk sent
            t = relax_payload.checked(data, item[1], item[2], settings, ex.name, item[0])
            prog.update(task, advance=len(item[1]))
            now = time.perf_counter()
            seconds, last[0] = now - last[0], now   # the chunk's wall time as the writer saw it
            return item, t, seconds

        got = ex.map(items(), local, relax_chunk,
                     (payload_params(potential=name, device=device, settings=settings),), accept)
        for (_, chunk, inputs), table, seconds in got:
            for st in write_chunk(store, name, model_id, shash, run_id, batch_no, chunk, inputs, table, seconds):
                counts[st] = counts.get(st, 0) + 1
            batch_no += 1
        got.close()
    return counts, time.perf_counter() - t0


def write_chunk(store, method, model_id, shash, run_id, batch_no, chunk, inputs, table, seconds) -> list[str]:
    """One relaxed chunk (relax_payload.table, checked when a worker made it) in ONE transaction:
    its relaxed structures, one relaxations row per input, its run_batches row; its statuses."""
    from ..structures import write_structures  # noqa: PLC0415

    with store.connect() as con:
        comp = dict(con.execute("SELECT structure_id, composition_id FROM structures WHERE "
                                "list_contains(?::BIGINT[], structure_id)", [chunk]).fetchall())
    relaxed_structs = relax_payload.structures(table)
    status = table["status"].to_pylist()
    out_idx = [k for k, s in enumerate(relaxed_structs) if s is not None]
    now = dt.datetime.now()
    col = {c: table[c].to_pylist() for c in ("steps", "fmax", "energy_per_atom", "initial_energy_per_atom",
                                             "volume_change", "seconds", "message")}
    with store.transaction() as con:
        new_ids = write_structures(
            con, [relaxed_structs[k] for k in out_idx], "relaxed", method,
            parents=[chunk[k] for k in out_idx], run_id=run_id,
            details=[{"relaxation": status[k], "settings_hash": shash} for k in out_idx]) if out_idx else []
        relaxed = dict(zip(out_idx, new_ids))
        rows = pl.DataFrame({
            "structure_id": chunk, "model_id": [model_id] * len(chunk), "settings_hash": [shash] * len(chunk),
            "run_id": [run_id] * len(chunk), "batch_no": [batch_no] * len(chunk),
            "composition_id": [comp[i] for i in chunk],
            "relaxed_structure_id": [relaxed.get(k) for k in range(len(chunk))],
            "status": status, "steps": col["steps"], "fmax": col["fmax"],
            "energy_per_atom": col["energy_per_atom"], "initial_energy_per_atom": col["initial_energy_per_atom"],
            "volume_change": col["volume_change"], "n_sites": [len(s) for s in inputs],
            "seconds": col["seconds"], "message": col["message"], "created_at": [now] * len(chunk)},
            schema_overrides={"relaxed_structure_id": pl.Int64, "fmax": pl.Float64, "energy_per_atom": pl.Float64,
                              "initial_energy_per_atom": pl.Float64, "volume_change": pl.Float64,
                              "message": pl.Utf8})
        append(con, "relaxations", rows)
        con.execute("INSERT INTO run_batches (run_id, batch_no, n_samples, n_decodable, seconds, committed_at) "
                    "VALUES (?, ?, ?, ?, ?, now())", [run_id, batch_no, len(chunk), len(out_idx), seconds])
        runs.count(con, run_id, len(chunk))
    return status
