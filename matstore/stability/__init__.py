"""Energy above the convex hull of known phases, stored per (composition, model version, reference).

`compute(store, model=..., reference=...)` places every composition with a formation-energy
prediction of that model version (without a model: the reference's own known phases, model_id 0)
that lacks a stability row against the lower hull of the reference source's known phases
(materials.source = reference, their ground-state formation_energy_per_atom), and appends the rows
in short transactions under a `runs` row of kind 'stability'. The hull kernel is `hull.py`;
`Reference` holds the hulls of one source so a generate run builds them once (runner's stage).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from ..errors import MatstoreError
from ..store import Store, append_new
from . import coverage, selfconsistent
from .hull import HullResult, Hulls

PROPERTY = "formation_energy_per_atom"
KEY = ["composition_id", "model_id", "reference"]
DEFAULT_CHUNK = 100_000

__all__ = ["Hulls", "HullResult", "Reference", "StabilityError", "StabilityResult", "compute",
           "default_reference", "load_reference", "rows"]


class StabilityError(MatstoreError, RuntimeError):
    """A stability computation that cannot be done as asked; the message says why."""


@dataclass
class Reference:
    """The known phases of one source and their hulls (built per chemical system on first use)."""

    source: str
    ingests: list[int]
    hulls: Hulls
    predicted: np.ndarray | None = None   # per phase (hulls.phase_ids order): energy predicted
    _coverage_keys: np.ndarray | None = None

    @property
    def coverage_keys(self) -> np.ndarray:
        """Packed element sets of the reference's 2- and 3-element phases (coverage.py)."""
        if self._coverage_keys is None:
            self._coverage_keys = coverage.system_keys(self.hulls.phase_ranks)
        return self._coverage_keys

    @property
    def predicted_phases(self) -> np.ndarray:
        return np.zeros(self.hulls.n_phases, bool) if self.predicted is None else self.predicted


@dataclass
class StabilityResult:
    run_id: int | None
    model_id: int
    model: str | None
    reference: str
    n_phases: int               # reference phases (ground states) the hulls were built from
    n_computed: int
    n_below: int                # e_above_hull < 0: below the known hull
    seconds: float


def default_reference(store: Store) -> str:
    """The one source holding formation energies; with several, the caller must choose."""
    got = store.query("SELECT m.source, count(*) AS n FROM properties p JOIN materials m "
                      "USING (material_id) WHERE p.name = ? AND p.value IS NOT NULL "
                      "GROUP BY m.source ORDER BY n DESC, m.source", [PROPERTY])
    if got.height == 0:
        raise StabilityError(f"no source in {store.path} has {PROPERTY} values to build a hull from; "
                             f"ingest known phases first (e.g. `matstore ingest oqmd`)")
    if got.height > 1:
        listed = ", ".join(f"{s} ({n:,})" for s, n in got.iter_rows())
        raise StabilityError(f"several sources have {PROPERTY} ({listed}); choose the hull's "
                             f"reference with --reference SOURCE (energies of different sources "
                             f"do not share one hull)")
    return got["source"][0]


def load_reference(store: Store, source: str, hull: str = "dft", model=None,
                   progress: bool = False) -> Reference:
    """Read the ground-state formation energy per composition of source's phases; hulls are lazy.
    hull 'mixed' / 'model' (selfconsistent.py): phases at model's predicted energies too."""
    from ..featurize import batch_from_arrow  # noqa: PLC0415

    if hull not in selfconsistent.HULLS:
        raise StabilityError(f"hull {hull!r} is not one of: {', '.join(selfconsistent.HULLS)}")
    if hull != "dft":
        if model is None:
            raise StabilityError(f"a {hull!r} hull takes its energies from a formation-energy model: "
                                 f"name one (--model)")
        model_id, model_ref = resolve_model(store, model)
        ingests = load_reference(store, source).ingests     # checks the source has phases
        tab = selfconsistent.phases(store, source, hull, model_ref, model_id, progress)
        b = batch_from_arrow(tab)
        hulls = Hulls(b.composition_id, b.z, b.counts, tab.column("energy").to_numpy(),
                      tab.column("formula").to_pylist())
        return Reference(selfconsistent.reference_name(source, hull), ingests, hulls,
                         selfconsistent.predicted_mask(hulls.phase_ids, tab))
    with store.connect() as con:
        tab = con.sql(
            "SELECT p.composition_id, any_value(c.elements) AS elements, any_value(c.counts) AS counts, "
            "min(p.value) AS energy, any_value(c.formula) AS formula FROM properties p "
            "JOIN materials m USING (material_id) JOIN compositions c ON c.composition_id = p.composition_id "
            "WHERE m.source = ? AND p.name = ? AND p.value IS NOT NULL AND isfinite(p.value) "
            "GROUP BY p.composition_id ORDER BY p.composition_id",
            params=[source, PROPERTY]).to_arrow_table()
        ingests = [r[0] for r in con.execute(
            "SELECT DISTINCT m.ingest_id FROM properties p JOIN materials m USING (material_id) "
            "WHERE m.source = ? AND p.name = ? AND p.value IS NOT NULL ORDER BY 1",
            [source, PROPERTY]).fetchall()]
        if tab.num_rows == 0:
            sources = [r[0] for r in con.execute("SELECT DISTINCT source FROM materials ORDER BY 1")
                       .fetchall()]
            raise StabilityError(f"reference {source!r} has no {PROPERTY} values in {store.path} "
                                 f"(sources: {', '.join(sources) or 'none'})")
    b = batch_from_arrow(tab)
    hulls = Hulls(b.composition_id, b.z, b.counts, tab.column("energy").to_numpy(),
                  tab.column("formula").to_pylist())
    return Reference(source, ingests, hulls)


def rows(ref: Reference, composition_id, z, counts, energy, model_id: int,
         run_id: int | None) -> pa.Table:
    """stability-table rows of compositions (padded z/counts) with energies (NaN: NULL)."""
    energy = np.asarray(energy, np.float64)
    res = ref.hulls.evaluate(z, counts, energy)
    cov = coverage.evaluate(ref.coverage_keys, z, counts)
    return _table(ref, np.asarray(composition_id, np.int64), energy, res, cov, model_id, run_id)


def _table(ref: Reference, ids: np.ndarray, energy: np.ndarray, res: HullResult,
           cov: coverage.Coverage, model_id: int, run_id: int | None) -> pa.Table:
    n = len(ids)
    n_products = np.diff(res.offsets)
    pred = ref.predicted_phases
    is_pred = (res.product < len(pred)) & pred[np.minimum(res.product, max(len(pred) - 1, 0))] \
        if len(pred) else np.zeros(len(res.product), bool)
    row_of = np.repeat(np.arange(n), n_products)
    n_pred = np.bincount(row_of[is_pred], minlength=n).astype(np.int32)
    bad = ~np.isfinite(energy)
    ingests = pa.array([ref.ingests] * n, pa.list_(pa.int32())) if n else pa.array([], pa.list_(pa.int32()))
    return pa.table({
        "composition_id": pa.array(ids),
        "model_id": pa.array(np.full(n, model_id, np.int32)),
        "reference": pa.array([ref.source] * n, pa.string()),
        "reference_ingests": ingests,
        "formation_energy_per_atom": pa.array(energy, mask=bad),
        "e_above_hull": pa.array(res.e_above_hull, mask=bad | ~np.isfinite(res.e_above_hull)),
        "decomposition": res.decomposition(ref.hulls),
        "run_id": pa.array(np.full(n, -1 if run_id is None else run_id, np.int32),
                           mask=np.full(n, run_id is None)),
        "hull_energy_per_atom": pa.array(res.hull_energy, mask=~np.isfinite(res.hull_energy)),
        "coverage": pa.array(cov.coverage),
        "ternary_coverage": pa.array(cov.ternary_coverage, mask=np.isnan(cov.ternary_coverage)),
        "missing_systems": cov.missing,
        "products_dft": pa.array((n_products - n_pred).astype(np.int32)),
        "products_predicted": pa.array(n_pred)})


def _pending(store: Store, model_id: int, reference: str) -> pa.Table:
    """(composition_id, elements, counts, energy) of model_id's FE predictions lacking a row."""
    with store.connect() as con:
        return con.sql(
            "SELECT p.composition_id, any_value(c.elements) AS elements, any_value(c.counts) AS counts, "
            "min(p.value) AS energy FROM predictions p JOIN compositions c USING (composition_id) "
            "WHERE p.model_id = ? AND p.property = ? AND NOT EXISTS (SELECT 1 FROM stability s "
            "WHERE s.composition_id = p.composition_id AND s.model_id = ? AND s.reference = ?) "
            "GROUP BY p.composition_id ORDER BY p.composition_id",
            params=[model_id, PROPERTY, model_id, reference]).to_arrow_table()


def _known_pending(store: Store, ref: Reference) -> np.ndarray:
    """Mask over ref's phases of those without a model-0 row for this reference."""
    with store.connect() as con:
        have = con.sql("SELECT composition_id FROM stability WHERE model_id = 0 AND reference = ?",
                       params=[ref.source]).fetchnumpy()["composition_id"]
    return ~np.isin(ref.hulls.phase_ids, have)


def resolve_model(store: Store, model) -> tuple[int, str]:
    """A formation-energy predictor reference -> (model_id, 'name@version')."""
    from ..registry import resolve_record  # noqa: PLC0415

    rec = resolve_record(store, model)
    prop = (rec.get("hyperparams") or {}).get("property")
    if prop != PROPERTY:
        raise StabilityError(f"model {rec['name']}@{rec['version']} predicts {prop or 'no property'}, "
                             f"not {PROPERTY}; the hull needs a formation-energy predictor")
    return int(rec["model_id"]), f"{rec['name']}@{rec['version']}"


def compute(store: Store, model=None, reference: str | None = None, chunk_size: int = DEFAULT_CHUNK,
            progress: bool = True, ref: Reference | None = None, hull: str = "dft", executor=None,
            insecure: bool = False) -> StabilityResult:
    """Energy above the hull of reference's known phases for every composition with a
    formation-energy prediction of model (None: the reference's own phases) lacking a row.
    hull: 'dft' (the source's DFT energies), 'mixed' or 'model' (selfconsistent.py; the rows'
    reference is then 'SOURCE+model' or 'SOURCE:model'). executor: where chunks are placed on the
    hull (matstore.executor; the reference is sent to the workers once); this process writes."""
    from ..featurize import batch_from_arrow  # noqa: PLC0415
    from ..runs import open_run  # noqa: PLC0415

    t0 = time.perf_counter()
    reference = reference or (ref.source if ref else default_reference(store))
    model_id, model_ref = resolve_model(store, model) if model is not None else (0, None)
    if hull != "dft":
        if model is None:
            raise StabilityError(f"the {hull!r} hull is made with a model's energies: name the "
                                 f"formation-energy model (--model)")
        ref = load_reference(store, reference, hull, model_ref, progress)
        reference = ref.source
    ref = ref if ref is not None and ref.source == reference else load_reference(store, reference)
    h = ref.hulls
    if model_id == 0:
        todo = _known_pending(store, ref)
        n_todo = int(todo.sum())
    else:
        pend = _pending(store, model_id, reference)
        n_todo = pend.num_rows
    result = StabilityResult(None, model_id, model_ref, reference, h.n_phases, 0, 0, 0.0)
    backfill_coverage(store, ref)
    if n_todo == 0:
        result.seconds = time.perf_counter() - t0
        return result
    from ..executor import open_executor, payload_params  # noqa: PLC0415
    from ..executor.batch_checks import stability_rows  # noqa: PLC0415
    from ..executor.worker_tasks import stability_chunk  # noqa: PLC0415

    def chunk(a: int):   # (ids, z, counts, energy) of the chunk starting at a
        if model_id == 0:
            sel = idx[a:a + chunk_size]
            return h.phase_ids[sel], z_all[sel], h.phase_frac[sel], h.phase_energy[sel]
        part = pend.slice(a, chunk_size)
        b = batch_from_arrow(part)
        return b.composition_id, b.z, b.counts, part.column("energy").to_numpy(zero_copy_only=False)

    if model_id == 0:
        idx = np.flatnonzero(todo)
        z_all = np.where(h.phase_ranks < (1 << 30), _z_of_ranks(h.phase_ranks), 0)
    with open_executor(executor, insecure=insecure, announce=progress) as ex:
        ex.check_versions()   # before any chunk; the reference travels with the tasks
        run_id = open_run(store, "stability", model_id or None,
                          {"model": model_ref, "reference": reference, "reference_ingests": ref.ingests,
                           "n_reference_phases": h.n_phases}, "cpu", n_todo, executor=ex.name,
                          workers=ex.workers)
        result.run_id = run_id
        starts = list(range(0, n_todo, chunk_size))
        items = [(k, chunk(a) if ex.name != "local" else None) for k, a in enumerate(starts)]
        want = rows(ref, np.zeros(0, np.int64), np.zeros((0, 1), np.int64), np.zeros((0, 1), np.int64),
                    np.zeros(0), model_id, run_id).schema
        got = ex.map(items, lambda it: rows(ref, *chunk(starts[it[0]]), model_id, run_id), stability_chunk,
                     (ref, payload_params(model_id=model_id, run_id=run_id)),
                     lambda it, data: stability_rows(data, want, it[1][0], ex.name, it[0]))
        _write(store, ref, model_id, model_ref, reference, got, n_todo, progress, result, t0)
    result.seconds = time.perf_counter() - t0
    return result


def _write(store, ref, model_id, model_ref, reference, got, n_todo, progress, result, t0) -> None:
    """Commit each chunk's rows in order, one transaction each, counting them in the run."""
    from ..progress import bar as progress_bar  # noqa: PLC0415
    from ..runs import count, tracked  # noqa: PLC0415

    run_id = result.run_id
    label = f"stability vs {reference} ({model_ref or 'known phases'})"
    with tracked(store, run_id), progress_bar(progress, "compositions") as prog:
        task = prog.add_task(label, total=n_todo)
        for tab in got:
            with store.transaction() as con:
                n = append_new(con, "stability", tab, KEY, distinct=False)
                count(con, run_id, n, (result.n_computed + n) / max(time.perf_counter() - t0, 1e-9))
            result.n_computed += n
            e = tab.column("e_above_hull").to_numpy(zero_copy_only=False)
            result.n_below += int(np.sum(np.nan_to_num(e, nan=0.0) < 0))
            prog.update(task, advance=tab.num_rows)
        got.close()


def backfill_coverage(store: Store, ref: Reference) -> int:
    """Fill coverage and product counts of ref's DFT-hull rows written before migration 0012."""
    from ..featurize import batch_from_arrow  # noqa: PLC0415

    with store.connect() as con:
        old = con.sql("SELECT s.composition_id, s.model_id, c.elements, c.counts, len(s.decomposition) AS n "
                      "FROM stability s JOIN compositions c USING (composition_id) "
                      "WHERE s.reference = ? AND s.coverage IS NULL", params=[ref.source]).to_arrow_table()
    if old.num_rows == 0:
        return 0
    b = batch_from_arrow(old)
    cov = coverage.evaluate(ref.coverage_keys, b.z, b.counts)
    tab = pa.table({"composition_id": old.column("composition_id"), "model_id": old.column("model_id"),
                    "coverage": pa.array(cov.coverage),
                    "ternary_coverage": pa.array(cov.ternary_coverage, mask=np.isnan(cov.ternary_coverage)),
                    "missing_systems": cov.missing, "products_dft": old.column("n")})
    with store.transaction() as con:
        con.register("cov_fill", tab)
        con.execute("UPDATE stability SET coverage = f.coverage, ternary_coverage = f.ternary_coverage, "
                    "missing_systems = f.missing_systems, products_dft = f.products_dft, "
                    "products_predicted = 0 FROM cov_fill f WHERE stability.composition_id = "
                    "f.composition_id AND stability.model_id = f.model_id AND stability.reference = ? "
                    "AND stability.coverage IS NULL",
                    [ref.source])
        con.unregister("cov_fill")
    return old.num_rows


def _z_of_ranks(ranks: np.ndarray) -> np.ndarray:
    from .hull import N_EL, Z_OF_RANK  # noqa: PLC0415

    return Z_OF_RANK[np.minimum(ranks, N_EL - 1)]
