"""Energy above the convex hull: the kernel against pymatgen's PhaseDiagram on real OQMD energies,
the store job (`matstore stability`), and the fused stage of generate."""

from __future__ import annotations

import itertools

import numpy as np
import polars as pl
import pytest

from matstore import compositions
from matstore.compositions import CompositionBatch
from matstore.stability.hull import Hulls
from _store_data import new_store

OQMD_FE = "oqmd/formation_enthalpy_train.csv"


@pytest.fixture(scope="module")
def oqmd(read_formulas):
    """Parsed OQMD compositions with DFT formation energies, split 90/10 (seeded): (known, held)."""
    df = read_formulas(OQMD_FE)
    comps = [compositions.try_parse(f) for f in df["formula"].to_list()]
    keep = [i for i, c in enumerate(comps) if not isinstance(c, str)]
    comps = [comps[i] for i in keep]
    energy = df["target"].to_numpy()[keep]
    held = np.random.default_rng(12).random(len(comps)) < 0.1
    return comps, energy, held


class PymatgenOracle:
    """pymatgen PhaseDiagram per chemical system of the known phases (elements at 0 eV/atom),
    entries named by composition id; one diagram per system, built on first use."""

    def __init__(self, comps, energy):
        from pymatgen.analysis.phase_diagram import PDEntry  # noqa: F401 (import check)

        self.by_system: dict[frozenset, list[int]] = {}
        for i, c in enumerate(comps):
            self.by_system.setdefault(frozenset(c.elements), []).append(i)
        self.comps, self.energy = comps, energy
        self.entries: dict[int, object] = {}
        self.diagrams: dict[frozenset, object] = {}

    def entry(self, i):
        from pymatgen.analysis.phase_diagram import PDEntry
        from pymatgen.core import Composition

        e = self.entries.get(i)
        if e is None:
            comp = Composition(self.comps[i].formula)
            e = self.entries[i] = PDEntry(comp, self.energy[i] * comp.num_atoms,
                                          name=str(self.comps[i].composition_id))
        return e

    def n_phases(self, elements) -> int:
        els = sorted(elements)
        return sum(len(self.by_system.get(frozenset(s), ()))
                   for n in range(1, len(els) + 1) for s in itertools.combinations(els, n))

    def diagram(self, elements):
        from pymatgen.analysis.phase_diagram import PDEntry, PhaseDiagram
        from pymatgen.core import Composition

        key = frozenset(elements)
        pd = self.diagrams.get(key)
        if pd is None:
            els = sorted(key)
            ents = [self.entry(i) for n in range(1, len(els) + 1) for s in itertools.combinations(els, n)
                    for i in self.by_system.get(frozenset(s), ())]
            ents += [PDEntry(Composition(s), 0.0, name=str(compositions.parse(s).composition_id))
                     for s in els]
            pd = self.diagrams[key] = PhaseDiagram(ents)
        return pd

    def evaluate(self, comp, energy, entry=None):
        """(e_above_hull, {composition_id: fraction}) as pymatgen computes them."""
        from pymatgen.analysis.phase_diagram import PDEntry
        from pymatgen.core import Composition

        pd = self.diagram(comp.elements)
        if entry is None:
            c = Composition(comp.formula)
            entry = PDEntry(c, energy * c.num_atoms)
        decomp, e = pd.get_decomp_and_e_above_hull(entry, allow_negative=True)
        out: dict[int, float] = {}
        for ent, f in decomp.items():
            cid = compositions.parse(ent.composition.reduced_formula).composition_id
            out[cid] = out.get(cid, 0.0) + f
        return e, out


def _ours(res, hulls, j):
    a, b = res.offsets[j], res.offsets[j + 1]
    return {int(hulls.product_ids[p]): float(f) for p, f in zip(res.product[a:b], res.fraction[a:b])}


def _compare(oqmd, n_held: int, n_known: int, max_phases: int = 150,
             methods: tuple = ("simplex", "qhull")):
    """Our kernel (each method) vs pymatgen on n_held held-out compositions (their DFT energy as
    a candidate's) and n_known known phases (their own distance to the hull); returns the number
    checked."""
    comps, energy, held = oqmd
    known = np.flatnonzero(~held)
    kb = CompositionBatch.from_compositions([comps[i] for i in known])
    hulls = Hulls(kb.composition_id, kb.z, kb.counts, energy[known], [comps[i].formula for i in known])
    oracle = PymatgenOracle([comps[i] for i in known], energy[known])
    rng = np.random.default_rng(3)
    # systems capped in size so pymatgen's diagrams stay quick to build
    def pick(pool, n):
        pool = rng.permutation(pool)
        return [i for i in pool if oracle.n_phases(comps[i].elements) <= max_phases][:n]

    cand_held = pick(np.flatnonzero(held), n_held)
    # known phases: the ground state per composition (the hull's own entry)
    gs: dict[int, int] = {}
    for pos, i in enumerate(known):
        cid = comps[i].composition_id
        if cid not in gs or energy[i] < energy[known[gs[cid]]]:
            gs[cid] = pos
    cand_known = pick([known[p] for p in gs.values()], n_known)
    cand = cand_held + cand_known
    cb = CompositionBatch.from_compositions([comps[i] for i in cand])
    results = {meth: hulls.evaluate(cb.z, cb.counts, energy[cand], method=meth) for meth in methods}
    pos_of = {i: p for p, i in enumerate(known)}
    worst = dict.fromkeys(methods, 0.0)
    for j, i in enumerate(cand):
        entry = oracle.entry(pos_of[i]) if j >= len(cand_held) else None
        e_pm, d_pm = oracle.evaluate(comps[i], energy[i], entry)
        for meth, res in results.items():
            worst[meth] = max(worst[meth], abs(res.e_above_hull[j] - e_pm))
            d = _ours(res, hulls, j)
            assert set(d) == set(d_pm), (meth, comps[i].formula, d, d_pm)
            assert all(abs(d[k] - d_pm[k]) <= 1e-6 for k in d), (meth, comps[i].formula, d, d_pm)
            assert abs(sum(d.values()) - 1) < 1e-6
    assert max(worst.values()) <= 1e-6, worst
    res = results[methods[0]]
    assert res.offsets[-1] == len(res.product)
    # the checks would catch a wrong hull: held-out phases are both above and below it
    e_held = res.e_above_hull[:len(cand_held)]
    assert (e_held > 1e-3).any() and (e_held < -1e-3).any()
    assert (res.e_above_hull[len(cand_held):] >= 0).all()
    assert (res.e_above_hull[len(cand_held):] == 0).any()
    return len(cand)


def test_hull_matches_pymatgen_fast(oqmd):
    assert _compare(oqmd, 600, 400, max_phases=60) == 1000


@pytest.mark.slow
def test_hull_matches_pymatgen_10k(oqmd):
    assert _compare(oqmd, 4000, 6000) == 10_000


def test_edge_cases_match_pymatgen(oqmd, monkeypatch):
    """Unary systems, a candidate equal to a known composition, a system with no compounds (flat
    hull), an element absent from the reference, NaN energies, an all-positive system."""
    comps, energy, held = oqmd
    by = {}
    for i, c in enumerate(comps):
        by.setdefault(c.formula, i)
    # a real binary system with compounds, plus a subset of phases of the reference
    fe_o = [i for i, c in enumerate(comps) if set(c.elements) <= {"Fe", "O"} and len(c.elements) == 2]
    ti = [i for i, c in enumerate(comps) if set(c.elements) == {"Ti"}]
    ref = fe_o + ti
    assert len(fe_o) >= 2
    rb = CompositionBatch.from_compositions([comps[i] for i in ref])
    hulls = Hulls(rb.composition_id, rb.z, rb.counts, energy[ref], [comps[i].formula for i in ref])
    oracle = PymatgenOracle([comps[i] for i in ref], energy[ref])
    cases = [("Fe", 0.1), ("O", -0.05), ("Ti", 0.0), ("Xe", 0.2),     # unary, absent element
             (comps[fe_o[0]].formula, energy[fe_o[0]] + 0.01),          # a known composition
             (comps[fe_o[0]].formula, energy[fe_o[0]] - 0.3),
             ("Fe3O7", -1.0), ("FeO9", 0.5),
             ("TiXe2", -0.1), ("TiXe2", 0.3),                           # flat hull: no compounds
             ("FeTiO3", -2.5), ("Fe2TiXeO5", -1.5),                     # Ti-O has no phases here
             ("LiBeBCNFeNaMgAlO2", -0.4)]                               # > 9 elements: qhull path
    cb = CompositionBatch.from_formulas([f for f, _ in cases])
    e = np.array([v for _, v in cases])
    for meth in ("qhull", "simplex"):
        res = hulls.evaluate(cb.z, cb.counts, e, method=meth)
        for j, (f, v) in enumerate(cases):
            e_pm, d_pm = oracle.evaluate(compositions.parse(f), v)
            assert abs(res.e_above_hull[j] - e_pm) <= 1e-9, (meth, f, res.e_above_hull[j], e_pm)
            d = _ours(res, hulls, j)
            assert set(d) == set(d_pm) and all(abs(d[k] - d_pm[k]) <= 1e-9 for k in d), (meth, f, d, d_pm)
    # the simplex's rows it cannot settle go to the qhull path: same answers
    from matstore.stability import simplex as simplex_mod

    full = hulls.evaluate(cb.z, cb.counts, e, method="qhull")
    monkeypatch.setattr(simplex_mod, "MAX_PIVOTS", 1)
    few = hulls.evaluate(cb.z, cb.counts, e)
    assert np.allclose(few.e_above_hull, full.e_above_hull, atol=1e-12)
    assert [_ours(few, hulls, j).keys() for j in range(len(e))] == \
           [_ours(full, hulls, j).keys() for j in range(len(e))]
    # flat hull: the elements, energy unchanged
    assert res.e_above_hull[8] == pytest.approx(-0.1) and len(_ours(res, hulls, 8)) == 2
    # NaN energy: no e_above_hull, the decomposition still given
    nan = hulls.evaluate(cb.z[:1], cb.counts[:1], [np.nan])
    assert np.isnan(nan.e_above_hull[0]) and nan.offsets[-1] == 1
    # a reference with no phases at all: every hull is the elements at 0
    empty = Hulls([], np.zeros((0, 1), np.int64), np.zeros((0, 1), np.int64), [], [])
    r0 = empty.evaluate(cb.z, cb.counts, e)
    assert np.allclose(r0.e_above_hull, e)


# --- the store job ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def study(tmp_path_factory, shared_data):
    """A store with 3,000 OQMD phases ingested as csv and an RF formation-energy predictor."""
    from matstore import training
    from matstore.ingest import run as ingest_run
    from matstore.store import Store

    store = new_store(tmp_path_factory.mktemp("stab") / "s.duckdb")
    ingest_run(store, "csv", file=str(shared_data / OQMD_FE), limit=3000,
               props=["formation_energy_per_atom=target:eV/atom"])
    mv = training.train(store, "rf-fe", max_rows=2000, config={"n_estimators": 10, "n_jobs": 1},
                        progress=False)
    return store, mv


def _hulls_of(store):
    ref = store.query("SELECT composition_id, elements, counts, min(value) AS e, any_value(formula) AS f "
                      "FROM properties JOIN compositions USING (composition_id) "
                      "WHERE name = 'formation_energy_per_atom' GROUP BY ALL")
    b = CompositionBatch.from_lists(ref["elements"].to_list(), ref["counts"].to_list(),
                                    ref["composition_id"].to_list())
    return Hulls(b.composition_id, b.z, b.counts, ref["e"].to_numpy(), ref["f"].to_list()), ref


def test_known_phases_job_and_rerun(study):
    from matstore.runner import run_status
    from matstore.stability import compute

    store, _ = study
    res = compute(store, progress=False)               # the only source: csv
    hulls, ref = _hulls_of(store)
    assert res.reference == "csv" and res.model_id == 0 and res.n_computed == ref.height
    got = store.query("SELECT * FROM stability ORDER BY composition_id")
    assert got.height == ref.height and (got["model_id"] == 0).all()
    assert got["reference_ingests"].to_list()[0] == [1]
    assert (got["e_above_hull"] >= 0).all() and (got["e_above_hull"] == 0).sum() > 50
    # independently: the kernel on the same phases, row by row
    ref = ref.sort("composition_id")
    b = CompositionBatch.from_lists(ref["elements"].to_list(), ref["counts"].to_list(),
                                    ref["composition_id"].to_list())
    expect = hulls.evaluate(b.z, b.counts, ref["e"].to_numpy())
    assert np.allclose(got["e_above_hull"].to_numpy(), expect.e_above_hull, atol=1e-12)
    assert np.allclose(got["formation_energy_per_atom"].to_numpy(), ref["e"].to_numpy())
    frac = got["decomposition"].list.eval(pl.element().struct.field("fraction").sum()).explode()
    assert np.allclose(frac.to_numpy(), 1.0)
    on_hull = got.filter(pl.col("e_above_hull") == 0)
    assert (on_hull["decomposition"].list.len() == 1).all()
    assert run_status(store, res.run_id)["kind"] == "stability"
    assert run_status(store, res.run_id)["status"] == "done"
    again = compute(store, reference="csv", progress=False)
    assert again.n_computed == 0 and again.run_id is None
    assert store.query("SELECT count(*) AS n FROM stability")["n"][0] == ref.height


def test_predicted_job_matches_kernel(study):
    from matstore.predict import predict
    from matstore.stability import StabilityError, compute

    store, mv = study
    predict(store, mv.ref, where="c.n_elements >= 2", device="cpu", progress=False)
    res = compute(store, model=mv.ref, reference="csv", progress=False)
    pred = store.query("SELECT composition_id, elements, counts, value FROM predictions "
                       "JOIN compositions USING (composition_id) WHERE model_id = ? "
                       "ORDER BY composition_id", [mv.model_id])
    assert res.n_computed == pred.height > 1000
    got = store.query("SELECT * FROM stability WHERE model_id = ? ORDER BY composition_id", [mv.model_id])
    assert got["composition_id"].to_list() == pred["composition_id"].to_list()
    hulls, _ = _hulls_of(store)
    b = CompositionBatch.from_lists(pred["elements"].to_list(), pred["counts"].to_list(),
                                    pred["composition_id"].to_list())
    expect = hulls.evaluate(b.z, b.counts, pred["value"].to_numpy())
    assert np.allclose(got["e_above_hull"].to_numpy(), expect.e_above_hull, atol=1e-12)
    assert (got["run_id"] == res.run_id).all()
    assert compute(store, model=mv.ref, reference="csv", progress=False).n_computed == 0
    with pytest.raises(StabilityError, match="no formation_energy_per_atom"):
        compute(store, reference="nosuchsource", progress=False)


def test_generate_fused_stability_stage(study):
    from matstore import runner
    from matstore.registry import load_model
    from matstore.stability import compute
    from _runner_helpers import ReplayGenerator

    store, mv = study
    formulas = store.query("SELECT formula FROM compositions ORDER BY composition_id LIMIT 500")["formula"]
    stages = runner.Stages(predict=(mv.ref,), stability="csv")
    run = runner.generate(store, ReplayGenerator(formulas.to_list(), model_id=mv.model_id),
                          1500, batch_size=500, seed=1, device="cpu", progress=False, stages=stages)
    assert run.status == "done" and run.written["stability"] > 0
    rows = store.query("SELECT s.*, c.elements, c.counts, p.value FROM stability s "
                       "JOIN compositions c USING (composition_id) JOIN predictions p "
                       "ON p.composition_id = s.composition_id AND p.model_id = s.model_id "
                       "WHERE s.run_id = ? ORDER BY composition_id", [run.run_id])
    assert rows.height == run.written["stability"]
    assert np.allclose(rows["formation_energy_per_atom"].to_numpy(), rows["value"].to_numpy())
    hulls, _ = _hulls_of(store)
    b = CompositionBatch.from_lists(rows["elements"].to_list(), rows["counts"].to_list(),
                                    rows["composition_id"].to_list())
    expect = hulls.evaluate(b.z, b.counts, rows["value"].to_numpy())
    assert np.allclose(rows["e_above_hull"].to_numpy(), expect.e_above_hull, atol=1e-12)
    # every prediction of that run has its stability row; the job finds nothing left to do
    lacking = store.query("SELECT count(*) AS n FROM predictions p WHERE p.run_id = ? AND NOT EXISTS "
                          "(SELECT 1 FROM stability s WHERE s.composition_id = p.composition_id "
                          "AND s.model_id = p.model_id)", [run.run_id])["n"][0]
    assert lacking == 0
    assert compute(store, model=mv.ref, reference="csv", progress=False).n_computed == 0
    assert load_model(store, mv.ref).property == "formation_energy_per_atom"
    with pytest.raises(runner.RunError, match="needs a --predict model"):
        runner.generate(store, ReplayGenerator(["NaCl"]), 10, device="cpu", progress=False,
                        stages=runner.Stages(stability="csv"))


def test_merge_keeps_known_phase_rows_and_remaps_ids(study, tmp_path, shared_data):
    from matstore.ingest import run as ingest_run
    from matstore.merge import merge
    from matstore.stability import compute
    from matstore.store import Store

    store, _ = study
    compute(store, progress=False)   # the known phases' rows (model 0), if not there yet
    theirs = store.query("SELECT model_id, count(*) AS n FROM stability GROUP BY ALL ORDER BY 1")
    ours = new_store(tmp_path / "ours.duckdb")   # an ingest of its own first: ids differ
    ingest_run(ours, "csv", file=str(shared_data / "oqmd/bandgap_val.csv"), limit=50,
               props=["band_gap=target:eV"])
    res = merge(ours, store.path)
    got = ours.query("SELECT model_id, count(*) AS n FROM stability GROUP BY ALL ORDER BY 1")
    assert got["n"].to_list() == theirs["n"].to_list() and got["model_id"][0] == 0
    remap = res.id_maps["model_versions"]
    assert got["model_id"].to_list() == [0] + sorted(remap[m] for m in theirs["model_id"].to_list()[1:])
    ingests = ours.query("SELECT DISTINCT reference_ingests AS r FROM stability")["r"].to_list()
    assert ingests == [[res.id_maps["ingests"][1]]] and ingests != [[1]]
    assert merge(ours, store.path).total_added == 0


def test_cli_stability(tmp_path, shared_data):
    from click.testing import CliRunner

    from matstore.cli import main
    from matstore.ingest import run as ingest_run
    from matstore.store import Store

    store = new_store(tmp_path / "c.duckdb")
    ingest_run(store, "csv", file=str(shared_data / OQMD_FE), limit=300,
               props=["formation_energy_per_atom=target:eV/atom"])
    r = CliRunner()
    res = r.invoke(main, ["stability", "--db", store.path, "--no-progress"])
    n = store.query("SELECT count(DISTINCT composition_id) AS n FROM properties")["n"][0]
    assert res.exit_code == 0 and f"{n} rows" in res.output.replace(",", ""), res.output
    res = r.invoke(main, ["stability", "--db", store.path, "--reference", "csv", "--no-progress"])
    assert res.exit_code == 0 and " 0 rows" in res.output
    for args, msg in ((["--reference", "mp"], "no formation_energy_per_atom"),
                      (["--model", "nosuch"], "no model 'nosuch'")):
        res = r.invoke(main, ["stability", "--db", store.path, *args])
        assert res.exit_code == 1 and msg in res.output and "Traceback" not in res.output, res.output
