"""Screens a chemist trusts (issue 24): reference coverage, the model's bias on known phases,
oxidation-state plausibility and the self-consistent hull, on real OQMD data."""

from __future__ import annotations

import itertools

import numpy as np
import polars as pl
import pytest
from _store_data import new_store

OQMD_FE = "oqmd/formation_enthalpy_train.csv"


@pytest.fixture(scope="module")
def known(tmp_path_factory, shared_data):
    """A store with 3,000 OQMD phases (csv source) and their DFT-hull rows (model 0)."""
    from matstore.ingest import run as ingest_run
    from matstore.stability import compute
    from matstore.store import Store

    store = new_store(tmp_path_factory.mktemp("screens") / "s.duckdb")
    ingest_run(store, "csv", file=str(shared_data / OQMD_FE), limit=3000,
               props=["formation_energy_per_atom=target:eV/atom"])
    compute(store, progress=False)
    return store


def _recount(ref_sets: set, elements: list[str]) -> tuple[float, float | None, set]:
    """Coverage by brute force: element subsets against the reference's element sets."""
    k = len(elements)   # proper sub-systems only
    pairs = list(itertools.combinations(elements, 2)) if k > 2 else []
    triples = list(itertools.combinations(elements, 3)) if k > 3 else []
    miss = {frozenset(s) for s in pairs + triples if frozenset(s) not in ref_sets}
    cov = 1.0 if not pairs else sum(frozenset(p) in ref_sets for p in pairs) / len(pairs)
    tern = None if not triples else sum(frozenset(t) in ref_sets for t in triples) / len(triples)
    return cov, tern, miss


def test_coverage_equals_recount(known, read_formulas):
    from matstore import compositions
    from matstore.compositions import CompositionBatch
    from matstore.stability import load_reference, rows

    store = known
    ref_sets = {frozenset(e) for e in store.query(
        "SELECT DISTINCT c.elements FROM properties p JOIN compositions c USING (composition_id) "
        "WHERE p.name = 'formation_energy_per_atom' AND c.n_elements BETWEEN 2 AND 3")["elements"].to_list()}
    # the stored rows of the known phases
    got = store.query("SELECT s.coverage, s.ternary_coverage, s.missing_systems, c.elements "
                      "FROM stability s JOIN compositions c USING (composition_id)")
    assert got.height > 2500 and got["coverage"].null_count() == 0
    for cov, tern, missing, els in got.iter_rows():
        c, t, m = _recount(ref_sets, els)
        assert cov == pytest.approx(c) and (tern is None) == (t is None) and (t is None or tern == pytest.approx(t))
        assert {frozenset(s.split("-")) for s in missing} == m
        # binaries first
        sizes = [s.count("-") + 1 for s in missing]
        assert sizes == sorted(sizes)
    # compositions the reference does not hold (OQMD rows past the first 3,000)
    df = read_formulas(OQMD_FE).slice(3000, 3000)
    comps = [c for c in map(compositions.try_parse, df["formula"].to_list()) if not isinstance(c, str)]
    b = CompositionBatch.from_lists([list(c.elements) for c in comps], [list(c.counts) for c in comps],
                                    [c.composition_id for c in comps])
    tab = rows(load_reference(store, "csv"), b.composition_id, b.z, b.counts,
               np.full(len(comps), -0.5), 7, None)
    partial = 0
    for c, cov, tern, missing in zip(comps, tab.column("coverage").to_pylist(),
                                     tab.column("ternary_coverage").to_pylist(),
                                     tab.column("missing_systems").to_pylist()):
        exp_c, exp_t, exp_m = _recount(ref_sets, list(c.elements))
        assert cov == pytest.approx(exp_c) and (tern is None) == (exp_t is None)
        assert {frozenset(s.split("-")) for s in missing} == exp_m
        partial += cov < 1
    assert partial > 100       # the check saw uncovered binaries, not only covered ones


# --- a study: known phases, a predictor with its split, candidates on the hull ------------------
@pytest.fixture(scope="module")
def study(tmp_path_factory, read_formulas):
    """MP phases (mp source), an RF FE predictor, generated candidates validated, predicted and
    placed on the mp hull, and the predictor's bias measured on the mp phases it did not train on."""
    from matstore import runner, training
    from matstore.featurize import validate_store
    from matstore.predict import predict
    from matstore.stability import compute
    from matstore.stability.bias import measure
    from matstore.store import Store
    from _runner_helpers import ReplayGenerator, load_compositions, mp_formulas

    store = new_store(tmp_path_factory.mktemp("screens_study") / "s.duckdb")
    formulas, values = mp_formulas(read_formulas, 1800)
    load_compositions(store, formulas[:1200], "mp", values[:1200])
    load_compositions(store, formulas[1500:1800], "gaps", ingest_id=2)   # known, no energy
    mv = training.train(store, "rf-fe", target_source="mp", max_rows=800,
                        config={"n_estimators": 10, "n_jobs": 1}, progress=False)
    runner.generate(store, ReplayGenerator(formulas[1000:1500]), 1000, batch_size=500, seed=5,
                    device="cpu", progress=False)
    validate_store(store, progress=False)
    predict(store, mv.ref, where="composition_id IN (SELECT composition_id FROM candidates)",
            device="cpu", progress=False)
    compute(store, model=mv.ref, reference="mp", progress=False)
    measure(store, mv.ref, reference="mp", device="cpu", progress=False)
    return store, mv


ANIONS = ["F", "O", "Cl", "N", "Br", "I", "S", "C", "Se", "H", "P", "As", "Te", "B", "Sb"]
NAMES = ["fluoride", "oxide", "chloride", "nitride", "bromide", "iodide", "sulfide", "carbide",
         "selenide", "hydride", "phosphide", "arsenide", "telluride", "boride", "antimonide"]


def _family(elements) -> str:
    """The most electronegative anion former by pymatgen's Pauling X (ties: the listed order)."""
    from pymatgen.core import Element

    if len(elements) < 2:
        return "element"
    an = [e for e in elements if e in ANIONS]
    if not an:
        return "intermetallic"
    best = max(an, key=lambda e: (Element(e).X, -ANIONS.index(e)))
    return NAMES[ANIONS.index(best)]


def test_bias_view_equals_recomputation(study):
    from matstore.compositions import CompositionBatch
    from matstore.stability import load_reference, rows

    store, mv = study
    ref = load_reference(store, "mp")
    trained = set(store.query("SELECT composition_id FROM composition_sets WHERE model_id = ? "
                              "AND role IN ('train', 'val')", [mv.model_id])["composition_id"].to_list())
    phases = store.query(
        "SELECT p.composition_id, c.elements, c.counts, min(p.value) AS dft FROM properties p "
        "JOIN materials m USING (material_id) JOIN compositions c ON c.composition_id = p.composition_id "
        "WHERE m.source = 'mp' AND p.name = 'formation_energy_per_atom' GROUP BY ALL ORDER BY 1")
    pred = dict(store.query("SELECT composition_id, value FROM predictions WHERE model_id = ?",
                            [mv.model_id]).iter_rows())
    phases = phases.filter(pl.col("composition_id").is_in(list(set(pred) - trained)))
    assert phases.height > 100
    b = CompositionBatch.from_lists(phases["elements"].to_list(), phases["counts"].to_list(),
                                    phases["composition_id"].to_list())
    e_dft = ref.hulls.evaluate(b.z, b.counts, phases["dft"].to_numpy()).e_above_hull
    e_pred = rows(ref, b.composition_id, b.z, b.counts,
                  np.array([pred[i] for i in phases["composition_id"]]), 1, None).column("e_above_hull").to_numpy()
    err = e_pred - e_dft
    groups = {("all", "all"): np.ones(len(err), bool)}
    nel = np.array([len(e) for e in phases["elements"]])
    for k in ("1", "2", "3", "4", "5+"):
        groups[("n_elements", k)] = (nel >= 5) if k == "5+" else (nel == int(k))
    fam = np.array([_family(e) for e in phases["elements"]])
    for f in set(fam):
        groups[("anion_family", f)] = fam == f
    expect = {g: (int(m.sum()), err[m].mean(), np.abs(err[m]).mean()) for g, m in groups.items() if m.any()}
    got = store.query("SELECT grouping, group_value, n_phases, mean_error, mae FROM model_bias "
                      "WHERE model_id = ? AND reference = 'mp'", [mv.model_id])
    assert {(g, v) for g, v, *_ in got.iter_rows()} == set(expect)
    for g, v, n, mean, mae in got.iter_rows():
        assert (n, pytest.approx(mean, abs=1e-9), pytest.approx(mae, abs=1e-9)) == expect[(g, v)]
    # every hull hit shows the overall numbers beside its e_above_hull
    hits = store.query("SELECT fe_model_bias, fe_model_mae, e_above_hull_bar FROM candidate_hull")
    overall = expect[("all", "all")]
    assert hits.height > 0 and np.allclose(hits["fe_model_bias"].to_numpy(), overall[1])
    assert all(f"model bias {overall[1]:+.3f}" in s for s in hits["e_above_hull_bar"])


def test_ion_shares_match_smact_and_rarest_ion(study):
    from matstore.validity.plausibility import MIN_ION_SHARE, rarest_share, shares

    store, _ = study
    table = {(e, s): (n, share) for e, s, n, share in store.query(
        "SELECT element, oxidation_state, reports, share FROM ion_reports").iter_rows()}
    assert table.keys() == shares().keys()
    assert all(table[k][0] == shares()[k][0] and table[k][1] == pytest.approx(shares()[k][1]) for k in table)
    got = store.query("SELECT c.elements, v.oxidation_states, p.rarest_ion_share FROM ion_plausibility p "
                      "JOIN composition_validity v USING (composition_id) JOIN compositions c USING (composition_id)")
    assert got.height > 100
    for els, states, share in got.iter_rows():
        assert share == pytest.approx(rarest_share(els, states))
    # the screens' default threshold is the documented one
    from matstore.store import view_definitions
    for name, body in view_definitions().items():
        # structure_stable judges a relaxed structure's energy under a potential, known phases
        # included, not a composition model's oxidation-state assignment
        if name.startswith("screen_") and name != "screen_structure_stable":
            assert f"rarest_ion_share >= {MIN_ION_SHARE}" in body, name
    # screen rows respect it; relaxed, rarer ones come back
    from matstore.report import run_screen
    strict = run_screen(store, "hull_novel", relax=("coverage",))
    loose = run_screen(store, "hull_novel", relax=("coverage", "ions"))
    assert (strict["rarest_ion_share"] >= MIN_ION_SHARE).all() and loose.height > strict.height


def test_screens_require_full_binary_coverage_by_default(study):
    from matstore.report import run_screen, screen_notes

    store, _ = study
    default = run_screen(store, "hull_novel")
    relaxed = run_screen(store, "hull_novel", relax=("coverage",))
    assert (default["coverage"] == 1.0).all()
    assert (relaxed["coverage"] < 1).sum() > 0 and relaxed.height > default.height
    assert "relaxed" in screen_notes("hull_novel", ("coverage",))[0]


def test_screens_share_one_schema(study):
    from matstore.report import run_screen

    store, _ = study
    schemas = {n: run_screen(store, n, relax=("coverage", "ions")).columns
               for n in ("hull_novel", "stable_novel", "semiconductors", "stable_semiconductors")}
    first = schemas["hull_novel"]
    assert all(cols == first for cols in schemas.values()), schemas
    for col in ("decomposition", "ions", "rarest_ion_share", "coverage", "missing_systems",
                "fe_model_bias", "e_above_hull_bar"):
        assert col in first


def test_max_std_says_the_model_has_no_spread(study):
    from matstore.report import ReportError, run_screen

    store, mv = study
    with pytest.raises(ReportError, match=rf"NULL on all .*{mv.ref} is a single model"):
        run_screen(store, "stable_novel", max_std=0.3)


def test_screen_descriptions_hide_declarations():
    from matstore.report import screens

    q = screens()
    assert q.height >= 4
    assert not q["question"].str.contains("depends:|key:").any()


@pytest.mark.parametrize("hull", ["mixed", "model"])
def test_self_consistent_hull_equals_pymatgen(study, hull):
    from pymatgen.analysis.phase_diagram import PDEntry, PhaseDiagram
    from pymatgen.core import Composition

    from matstore.stability import compute

    store, mv = study
    res = compute(store, model=mv.ref, reference="mp", hull=hull, progress=False)
    name = "mp+model" if hull == "mixed" else "mp:model"
    assert res.reference == name and res.n_computed > 100
    # the hull's phases, independently: DFT (mp) and the model's predictions, per composition
    dft = dict(store.query("SELECT p.composition_id, min(p.value) FROM properties p JOIN materials m "
                           "USING (material_id) WHERE m.source = 'mp' GROUP BY 1").iter_rows())
    pred = dict(store.query("SELECT composition_id, value FROM predictions WHERE model_id = ?",
                            [mv.model_id]).iter_rows())
    gaps = set(store.query("SELECT composition_id FROM materials WHERE source = 'gaps'")["composition_id"])
    if hull == "model":
        energy = {i: pred[i] for i in dft}
    else:
        energy = dict(dft) | {i: pred[i] for i in gaps - set(dft)}
    comp = {i: (f, set(e)) for i, f, e in store.query(
        "SELECT composition_id, formula, elements FROM compositions").iter_rows()}
    if hull == "mixed":   # no predicted element enters a mixed hull
        energy = {i: v for i, v in energy.items() if i in dft or len(comp[i][1]) > 1}
    # elements count as DFT (their reference is min(0, entry))
    predicted = {i for i in (set(energy) - set(dft) if hull == "mixed" else set(energy)) if len(comp[i][1]) > 1}
    got = store.query("SELECT s.composition_id, s.formation_energy_per_atom, s.e_above_hull, "
                      "s.decomposition, s.products_dft, s.products_predicted FROM stability s "
                      "WHERE s.reference = ? ORDER BY random()", [name]).head(60)
    n_pred = 0
    for cid, e, above, dec, n_dft, n_p in got.iter_rows():
        els = comp[cid][1]
        ents = [PDEntry(Composition(comp[i][0]), energy[i] * Composition(comp[i][0]).num_atoms, name=str(i))
                for i in energy if comp[i][1] <= els]
        ents += [PDEntry(Composition(x), 0.0, name="el") for x in els]
        c = Composition(comp[cid][0])
        d, e_pmg = PhaseDiagram(ents).get_decomp_and_e_above_hull(PDEntry(c, e * c.num_atoms),
                                                                   allow_negative=True)
        assert above == pytest.approx(e_pmg, abs=1e-7)
        prods = [x["composition_id"] for x in dec]
        assert n_dft + n_p == len(prods) and n_p == sum(p in predicted for p in prods)
        n_pred += n_p
    assert n_pred > 0     # the check saw predicted phases under the candidates


def test_self_consistent_hull_rows_show_the_dft_measured_bias(study):
    from matstore.stability import compute

    store, mv = study
    compute(store, model=mv.ref, reference="mp", hull="mixed", progress=False)
    got = store.query("SELECT DISTINCT reference, fe_model_bias FROM candidate_hull ORDER BY 1")
    dft = store.query("SELECT mean_error FROM model_bias WHERE grouping = 'all' AND reference = 'mp'")[0, 0]
    assert set(got["reference"]) >= {"mp", "mp+model"}
    assert all(v == pytest.approx(dft) for v in got["fe_model_bias"])


def test_cli_screen_says_when_a_default_filter_is_relaxed(study):
    from click.testing import CliRunner

    from matstore.cli import main

    store, _ = study
    strict = CliRunner().invoke(main, ["screen", "hull_novel", "--db", str(store.path), "--csv"])
    loose = CliRunner().invoke(main, ["screen", "hull_novel", "--db", str(store.path), "--csv",
                                      "--partial-coverage"])
    assert strict.exit_code == 0 and loose.exit_code == 0, loose.output
    assert "relaxed" not in strict.output
    assert "screen hull_novel: relaxed: binary sub-systems without a reference phase" in loose.output
    assert loose.output.count("\n") > strict.output.count("\n")


def test_rows_written_before_coverage_are_filled_by_the_next_stability_run(study):
    from matstore.stability import compute

    store, mv = study
    cols = "composition_id, model_id, coverage, ternary_coverage, missing_systems, products_dft, products_predicted"
    before = store.query(f"SELECT {cols} FROM stability WHERE reference = 'mp' ORDER BY 1, 2")
    assert before.height > 1000 and before["model_id"].n_unique() == 2   # known phases and the model's
    with store.transaction() as con:   # as an older store's rows look after migration 0012
        con.execute("UPDATE stability SET coverage = NULL, ternary_coverage = NULL, missing_systems = NULL, "
                    "products_dft = NULL, products_predicted = NULL WHERE reference = 'mp'")
    assert compute(store, reference="mp", progress=False).n_computed == 0
    after = store.query(f"SELECT {cols} FROM stability WHERE reference = 'mp' ORDER BY 1, 2")
    assert after.equals(before)


def test_cli_bias_prints_the_model_bias_rows(study):
    from click.testing import CliRunner

    from matstore.cli import main

    store, mv = study
    r = CliRunner().invoke(main, ["bias", "--db", str(store.path), "--model", mv.ref, "--reference", "mp",
                                  "--csv", "--no-progress"])
    assert r.exit_code == 0, r.output
    rows = [l for l in r.output.splitlines() if l.startswith(f"{mv.model_id},{mv.ref},mp,")]
    n = store.query("SELECT count(*) AS n FROM model_bias WHERE model_id = ? AND reference = 'mp'",
                    [mv.model_id])["n"][0]
    assert len(rows) == n > 5 and any(",all,all," in l for l in rows)


def test_screens_show_the_mixed_hull_where_it_was_computed(study):
    from matstore.report import run_screen, screen_notes
    from matstore.stability import compute

    store, mv = study
    compute(store, model=mv.ref, reference="mp", hull="mixed", progress=False)
    every = run_screen(store, "hull_novel", relax=("hulls",))
    default = run_screen(store, "hull_novel")
    assert set(every["reference"]) >= {"mp", "mp+model"}
    assert set(default["reference"]) == {"mp+model"} and default["preferred_hull"].all()
    mixed = every.filter(pl.col("reference") == "mp+model")
    assert sorted(default["composition_id"]) == sorted(mixed["composition_id"])
    assert "mixed hull" in screen_notes("hull_novel", ("hulls",))[0]


def test_default_screen_top_30_have_reference_phases_in_every_binary(study):
    """Issue 24: the default screen's top 30 hold no composition with a binary sub-system
    lacking reference phases, recounted from the store's phases, not from the coverage column."""
    from matstore.report import run_screen
    from matstore.stability import compute

    store, mv = study
    compute(store, model=mv.ref, reference="mp", hull="mixed", progress=False)
    dft = {frozenset(e) for e in store.query(
        "SELECT DISTINCT c.elements FROM properties p JOIN materials m USING (material_id) "
        "JOIN compositions c ON c.composition_id = p.composition_id WHERE m.source = 'mp' "
        "AND p.name = 'formation_energy_per_atom'")["elements"].to_list()}
    known = {frozenset(e) for e in store.query(
        "SELECT DISTINCT c.elements FROM known k JOIN compositions c USING (composition_id)")["elements"].to_list()}
    systems = {"mp": dft, "mp+model": dft | known}   # the mixed hull adds every known composition

    def lacking(rows) -> list[str]:
        bad = []
        for formula, els, ref in rows.select("formula", "elements", "reference").iter_rows():
            pairs = itertools.combinations(els, 2) if len(els) > 2 else []
            bad += [formula for p in pairs if frozenset(p) not in systems[ref]][:1]
        return bad

    elements = store.query("SELECT composition_id, elements FROM compositions")
    top = run_screen(store, "hull_novel").head(30).join(elements, on="composition_id")
    old = (run_screen(store, "hull_novel", relax=("coverage", "ions", "hulls"))
           .filter(pl.col("reference") == "mp").head(30).join(elements, on="composition_id"))
    assert top.height >= 10 and lacking(top) == []    # the fixture's screen holds 13 rows
    assert len(lacking(old)) > 0      # today's screen without the filters does show such rows
