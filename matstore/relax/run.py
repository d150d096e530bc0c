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
from ..query import check_selection
from ..store import Store, append
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
    evaluated on a guarded read-only connection."""
    cond = where if where and where.strip() else DEFAULT_WHERE
    sql = f"SELECT s.structure_id FROM structures s WHERE ({cond})"
    check_selection(sql, "relax --where")
    params = []
    if before is not None:
        sql += " AND s.created_at <= ?"
        params.append(before)
    with store.connect(guarded=True) as con:
        try:
            return [r[0] for r in con.execute(sql + " ORDER BY s.structure_id", params).fetchall()]
        except Exception as e:  # noqa: BLE001 - DuckDB's message, one line, naming the option
            raise RelaxError(f"relax --where {cond!r}: {str(e).splitlines()[0]}") from None


def pending(store: Store, ids: list[int], model_id: int, shash: str) -> list[int]:
    with store.connect() as con:
        done = {r[0] for r in con.execute(
            "SELECT structure_id FROM relaxations WHERE model_id = ? AND settings_hash = ?",
            [int(model_id), shash]).fetchall()}
    return [i for i in ids if i not in done]


def relax_structures(store: Store, where: str | None = None, potential: str | None = None,
                     settings: RelaxSettings = RelaxSettings(), batch: int = 16, resume: int | None = None,
                     device: str = "cpu", show_progress: bool = False, loaded=None) -> RelaxRun:
    """Relax the selected structures (see the module docstring); returns what this call did.
    loaded: an already loaded potential of the same name (tests and benchmarks reuse one)."""
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
    if resume is not None:
        run_id = int(resume)
        runs.reopen_run(store, run_id)
    else:
        run_id = runs.open_run(store, KIND, model_id, params, device, len(todo))
    t0 = time.perf_counter()
    counts: dict[str, int] = {}
    pot = loaded
    with runs.tracked(store, run_id), progress.bar(show_progress, "structures") as prog:
        task = prog.add_task(f"relax run {run_id} ({spec.name})", total=len(todo))
        if todo and pot is None:
            pot = potentials.load(spec.name, device)
        with store.connect() as con:
            batch_no = con.execute("SELECT coalesce(max(batch_no) + 1, 0) FROM run_batches WHERE run_id = ?",
                                   [run_id]).fetchall()[0][0]
        for start in range(0, len(todo), int(batch)):
            chunk = todo[start:start + int(batch)]
            done = _relax_chunk(store, pot, spec.name, model_id, shash, settings, run_id, batch_no, chunk,
                                lambda *_: prog.update(task, advance=1))
            for st in done:
                counts[st] = counts.get(st, 0) + 1
            batch_no += 1
    return RelaxRun(run_id, model_id, ref, shash, len(ids), len(todo), counts, time.perf_counter() - t0)


def _relax_chunk(store, pot, method, model_id, shash, settings, run_id, batch_no, chunk, tick) -> list[str]:
    from ..structures import read_structures, write_structures  # noqa: PLC0415

    t = time.perf_counter()
    with store.connect() as con:
        inputs = read_structures(con, chunk)
        comp = dict(con.execute("SELECT structure_id, composition_id FROM structures WHERE "
                                "list_contains(?::BIGINT[], structure_id)", [chunk]).fetchall())
    results = relax_batch(pot, inputs, settings, on_done=tick)
    from pymatgen.io.ase import AseAtomsAdaptor  # noqa: PLC0415

    out_idx = [k for k, r in enumerate(results) if r.atoms is not None]
    now = dt.datetime.now()
    seconds = time.perf_counter() - t
    with store.transaction() as con:
        new_ids = write_structures(
            con, [AseAtomsAdaptor.get_structure(results[k].atoms) for k in out_idx], "relaxed", method,
            parents=[chunk[k] for k in out_idx], run_id=run_id,
            details=[{"relaxation": results[k].status, "settings_hash": shash} for k in out_idx]) if out_idx else []
        relaxed = dict(zip(out_idx, new_ids))
        rows = pl.DataFrame({
            "structure_id": chunk, "model_id": [model_id] * len(chunk), "settings_hash": [shash] * len(chunk),
            "run_id": [run_id] * len(chunk), "batch_no": [batch_no] * len(chunk),
            "composition_id": [comp[i] for i in chunk],
            "relaxed_structure_id": [relaxed.get(k) for k in range(len(chunk))],
            "status": [r.status for r in results], "steps": [r.steps for r in results],
            "fmax": [r.fmax for r in results], "energy_per_atom": [r.energy_per_atom for r in results],
            "initial_energy_per_atom": [r.initial_energy_per_atom for r in results],
            "volume_change": [r.volume_change for r in results], "n_sites": [len(s) for s in inputs],
            "seconds": [r.seconds for r in results], "message": [r.message for r in results],
            "created_at": [now] * len(chunk)},
            schema_overrides={"relaxed_structure_id": pl.Int64, "fmax": pl.Float64, "energy_per_atom": pl.Float64,
                              "initial_energy_per_atom": pl.Float64, "volume_change": pl.Float64,
                              "message": pl.Utf8})
        append(con, "relaxations", rows)
        con.execute("INSERT INTO run_batches (run_id, batch_no, n_samples, n_decodable, seconds, committed_at) "
                    "VALUES (?, ?, ?, ?, ?, now())", [run_id, batch_no, len(chunk), len(out_idx), seconds])
        runs.count(con, run_id, len(chunk))
    return [r.status for r in results]
