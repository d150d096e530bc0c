"""`matstore structures predict`: template-based structures for stored compositions, in batches.

One `runs` row (kind 'structures') per run; compositions (those matching --where, key order) are
cut into batches of `batch_size`; each batch's structures, its run_batches row and the run's
counters commit in one transaction, so a killed run (kill -9 included) loses at most the batch in
flight. Running the same command again finds the interrupted run with the same parameters and
continues it: compositions that already hold structures of that run are skipped. Every prediction
is a pure function of (templates, composition, rule, k, seed), so a resumed run ends with the same
structures as an uninterrupted one, and re-predicting adds nothing (structure ids are hashes).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from ..errors import MatstoreError
from ..runs import count, open_run, reopen_run, tracked
from ..store import Store
from .ranking import energy_rank
from .store import structure_rows, write_rows
from .templates import Template, TemplateLibrary

KIND = "structures"
DEFAULT_BATCH = 200


class PredictStructuresError(MatstoreError, ValueError):
    """Structure prediction that cannot run as asked; the message says why."""


@dataclass
class StructurePredictResult:
    run_id: int | None
    resumed: bool
    n_compositions: int
    n_structures: int          # written by this call (new rows)
    n_fallback: int            # compositions that got pyxtal random structures
    n_none: int                # compositions that got nothing
    seconds: float

    @property
    def compositions_per_s(self) -> float:
        return self.n_compositions / self.seconds if self.seconds > 0 else float("nan")


def load_templates(store: Store, source: str | None = None) -> list[Template]:
    """The stored known structures (of materials from `source` when given) as templates."""
    from .store import to_structure  # noqa: PLC0415
    from .templates import reduced_counts  # noqa: PLC0415

    sql = ("SELECT s.structure_id, s.lattice, s.species, s.frac_coords FROM structures s "
           "LEFT JOIN materials m ON m.material_id = s.material_id WHERE s.origin = 'known'")
    params = []
    if source is not None:
        sql += " AND m.source = ?"
        params.append(source)
    with store.connect() as con:
        rows = con.execute(sql + " ORDER BY s.structure_id", params).fetchall()
    out = []
    for sid, lattice, species, frac in rows:
        s = to_structure({"lattice": lattice, "species": species, "frac_coords": frac})
        out.append(Template(int(sid), s, reduced_counts(s.composition)))
    return out


def add_compositions(store: Store, formulas) -> list[int]:
    """Parse formulas (a FormulaError names a bad one) and store their compositions; their ids."""
    import polars as pl  # noqa: PLC0415

    from .. import compositions  # noqa: PLC0415

    comps = [compositions.parse(f) for f in formulas]
    rows = pl.DataFrame({"composition_id": [c.composition_id for c in comps],
                         "formula": [c.formula for c in comps],
                         "elements": [list(c.elements) for c in comps],
                         "counts": [list(c.counts) for c in comps],
                         "n_elements": [c.n_elements for c in comps], "n_atoms": [c.n_atoms for c in comps]},
                        schema={"composition_id": pl.Int64, "formula": pl.String, "elements": pl.List(pl.String),
                                "counts": pl.List(pl.Int32), "n_elements": pl.Int32, "n_atoms": pl.Int64})
    with store.transaction() as con:
        _, taken = compositions.insert_new(con, rows)
    if taken.drop_nulls().len():
        raise PredictStructuresError(f"structures predict: {compositions.collision_reason(taken.drop_nulls()[0])}")
    return [c.composition_id for c in comps]


def _find_resumable(store: Store, params: dict) -> int | None:
    from ..runs import still_running  # noqa: PLC0415

    with store.connect() as con:
        rows = con.execute("SELECT run_id, params::VARCHAR, status, pid, host, pid_started FROM runs "
                           "WHERE kind = ? AND status IN ('interrupted', 'failed', 'running') "
                           "ORDER BY run_id DESC", [KIND]).fetchall()
    for run_id, p, status, pid, host, started in rows:
        if still_running({"status": status, "pid": pid, "host": host, "pid_started": started}):
            continue
        if json.loads(p) == json.loads(json.dumps(params)):
            return int(run_id)
    return None


def predict_structures(store: Store, where: str | None = None, k: int = 5, templates: str | None = None,
                       rule: str = "sites", volume: str = "coordination", batch_size: int = DEFAULT_BATCH,
                       seed: int = 0, fallback: bool = True, exclude_same: bool = False,
                       resume: bool = True, progress: bool = True, formulas=None,
                       rank_energy: str | None = None) -> StructurePredictResult:
    """Predict up to k structures per composition matching `where` (SQL on compositions c) from
    the known structures of source `templates` (all known structures when None). formulas: also
    (or only) these compositions, added to the store's compositions if new. rank_energy: a
    potential (e.g. 'chgnet') that re-orders each composition's first two predictions by
    single-point energy per atom (structures.ranking; ~0.2 s per composition on one CPU core)."""
    from .. import progress as bars  # noqa: PLC0415
    from ..selection import lacking, prepare  # noqa: PLC0415

    for name, v in (("-k", k), ("--batch-size", batch_size)):
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 1000 * (1 + 99 * (name != "-k")):
            raise PredictStructuresError(f"structures predict: {name} must be a positive number (k <= 1000), got {v!r}")
    t0 = time.perf_counter()
    if formulas:
        ids = add_compositions(store, formulas)
        only = f"c.composition_id IN ({', '.join(str(int(i)) for i in ids)})"
        where = only if not where else f"{only} AND ({where})"
    lib_templates = load_templates(store, templates)
    if not lib_templates and not fallback:
        raise PredictStructuresError(f"structures predict: no known structures{' of source ' + repr(templates) if templates else ''} "
                                     f"to use as templates (ingest some with `matstore ingest structures`)")
    try:
        library = TemplateLibrary(lib_templates, rule=rule, volume=volume)
    except ValueError as e:
        raise PredictStructuresError(f"structures predict: {e}") from None
    params = {"where": where, "k": k, "templates": templates, "rule": rule, "volume": volume,
              "batch_size": batch_size, "seed": seed, "fallback": fallback, "exclude_same": exclude_same,
              "n_templates": len(lib_templates)}
    ranker = None
    if rank_energy is not None:
        from ..models import potential as potentials  # noqa: PLC0415

        ranker = potentials.load(rank_energy)
        params["rank_energy"] = ranker.spec.name       # only when set: older runs still resume
    run_id = _find_resumable(store, params) if resume else None
    resumed = run_id is not None
    missing = "SELECT 1 FROM structures s WHERE s.composition_id = c.composition_id AND s.run_id = ?"
    prepare(store)   # an older store is migrated by this command's own write connection first
    if resumed:
        todo = lacking(store, missing, [run_id], where, None, "structures predict --where",
                       PredictStructuresError, ordered=True)
        reopen_run(store, run_id)
    else:
        todo = lacking(store, missing, [-1], where, None, "structures predict --where",
                       PredictStructuresError, ordered=True)
        if todo.num_rows == 0:
            return StructurePredictResult(None, False, 0, 0, 0, 0, time.perf_counter() - t0)
        run_id = open_run(store, KIND, None, params, "cpu", todo.num_rows, seed)
    result = StructurePredictResult(run_id, resumed, 0, 0, 0, 0, 0.0)
    ids, elements, counts = (todo.column(c).to_pylist() for c in ("composition_id", "elements", "counts"))
    with tracked(store, run_id), bars.bar(progress) as bar:
        task = bar.add_task(f"structures predict (k={k}, {len(lib_templates):,} templates)", total=len(ids))
        with store.connect() as con:
            batch_no = con.execute("SELECT coalesce(max(batch_no), -1) + 1 FROM run_batches WHERE run_id = ?",
                                   [run_id]).fetchall()[0][0]
        for lo in range(0, len(ids), batch_size):
            tb = time.perf_counter()
            preds, parents, details, syms, methods = [], [], [], [], []
            for cid, els, ns in zip(ids[lo:lo + batch_size], elements[lo:lo + batch_size], counts[lo:lo + batch_size]):
                got = library.predict(dict(zip(els, ns)), k, exclude_same=exclude_same,
                                      seed=(seed * 1_000_003 + cid) % (2 ** 31), fallback=fallback)
                if ranker is not None:
                    got = energy_rank(got, ranker)
                result.n_fallback += any(p.method == "pyxtal-random" for p in got)
                result.n_none += not got
                for p in got:
                    preds.append(p.structure), parents.append(p.template_id), syms.append(p.symmetry)
                    details.append(p.details), methods.append(p.method)
            n_comp = len(ids[lo:lo + batch_size])
            with store.transaction() as con:
                new = 0
                for method in sorted(set(methods)):
                    pick = [i for i, m in enumerate(methods) if m == method]
                    rows = structure_rows([preds[i] for i in pick], "template", method,
                                          parents=[parents[i] for i in pick], run_id=run_id,
                                          details=[details[i] for i in pick], symmetries=[syms[i] for i in pick])
                    new += write_rows(con, rows)
                con.execute("INSERT INTO run_batches VALUES (?, ?, ?, ?, ?, now())",
                            [run_id, batch_no, n_comp, len(preds), time.perf_counter() - tb])
                count(con, run_id, len(preds))
            batch_no += 1
            result.n_compositions += n_comp
            result.n_structures += new
            bar.update(task, advance=n_comp)
    result.seconds = time.perf_counter() - t0
    return result
