"""Validity per oxidation-state set against smact_validity(oxidation_states_set=SET), the stored
oxidation-state assignment, the checker the views use (validity_checkers), and the
screen_stable_semiconductors view against a polars recount."""

from __future__ import annotations

import datetime as dt
import itertools
import re
import warnings

import duckdb
import numpy as np
import polars as pl
import pytest

from matstore import migrations, validity
from matstore.compositions import Composition, CompositionBatch, parse, try_parse
from matstore.featurize import validate_store
from matstore.store import Store, append

SETS = ["icsd24", "icsd16", "smact14", "pymatgen_sp"]


def _smact(formula, oxidation_set, **kw):
    from smact.screening import smact_validity

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return smact_validity(formula, oxidation_states_set=oxidation_set, **kw)


def _real(read_formulas, n_gen, n_oqmd, n_mp, seed=0):
    gen = read_formulas("matgan/gan_icsd_generated_1024.csv")["formula"].to_list()[:n_gen]
    oqmd = read_formulas("oqmd/formation_enthalpy_train.csv").sample(n=n_oqmd, seed=seed)["formula"].to_list()
    mp = read_formulas("mp/e_form.csv").sample(n=n_mp, seed=seed + 1)["formula"].to_list()
    comps = [c for c in map(try_parse, gen + oqmd + mp) if isinstance(c, Composition)]
    return comps, CompositionBatch.from_compositions(comps)


def _compare(comps, batch, oxidation_set):
    ours = validity.check(batch, oxidation_set)
    ref = np.array([_smact(c.formula, oxidation_set) for c in comps])
    bad = [comps[i].formula for i in np.flatnonzero(ours["smact_valid"] != ref)[:5]]
    assert not bad, f"{oxidation_set}: differs from smact on {bad}"
    assert ours["supported"].all()
    return int(ref.sum())


@pytest.fixture(scope="module")
def small(read_formulas):
    return _real(read_formulas, 300, 600, 600, seed=11)


@pytest.mark.parametrize("oxidation_set", SETS)
def test_sets_equal_smact_validity(small, oxidation_set):
    comps, batch = small
    n_valid = _compare(comps, batch, oxidation_set)
    assert len(comps) >= 1400 and 0 < n_valid < len(comps)


@pytest.mark.slow
@pytest.mark.parametrize("oxidation_set", SETS)
def test_sets_equal_smact_validity_20k(read_formulas, oxidation_set):
    comps, batch = _real(read_formulas, 1024, 10_000, 9_500, seed=5)
    n_valid = _compare(comps, batch, oxidation_set)
    print(f"{oxidation_set}: {len(comps):,} compositions, {n_valid:,} valid (smact and ours)")
    assert len(comps) >= 20_000


@pytest.mark.parametrize("oxidation_set", SETS)
def test_separate_flags_equal_smact_options(small, oxidation_set):
    comps, _ = small
    multi = [c for c in comps if c.n_elements > 1][::5]
    ours = validity.check(CompositionBatch.from_compositions(multi), oxidation_set)
    cn = [_smact(c.formula, oxidation_set, include_alloys=False, use_pauling_test=False) for c in multi]
    en = [_smact(c.formula, oxidation_set, include_alloys=False) for c in multi]
    assert ours["charge_neutral"].tolist() == cn and ours["electronegativity_balanced"].tolist() == en


def test_sets_differ_and_default_is_not_smacts_own():
    """The store's default (icsd24: > 5 ICSD reports) is stricter than smact_validity's own
    default (icsd24c3: >= 3 reports), which check() keeps when no set is named."""
    assert validity.DEFAULT_SET == "icsd24" and validity.SMACT_DEFAULT_SET == "icsd24c3"
    fs = ("CaCl", "CdCl", "NaCl")  # Ca+ and Cd+ have 3-5 ICSD reports
    b = CompositionBatch.from_formulas(list(fs))
    assert validity.check(b)["smact_valid"].tolist() == [_smact(f, None) for f in fs] == [True] * 3
    assert validity.check(b, "icsd24")["smact_valid"].tolist() == [_smact(f, "icsd24") for f in fs]
    assert validity.check(b, "icsd24")["smact_valid"].tolist() == [False, False, True]
    versions = {validity.checker_version(s) for s in validity.OXIDATION_SETS}
    assert len(versions) == len(validity.OXIDATION_SETS) and validity.CHECKER_VERSION.endswith("-icsd24")
    with pytest.raises(validity.OxidationSetError, match="wiki"):
        validity.check(b, "wiki")


# ---- the oxidation-state assignment ---------------------------------------------------------------

def _score(t, els, cnt, states):
    return sum(c * t.pos_w[z, list(t.pos[z, : t.n_pos[z]]).index(s)] if s > 0
               else c * t.neg_w[z, list(t.neg[z, : t.n_neg[z]]).index(-s)]
               for z, c, s in zip(els, cnt, states))


def _passes(t, els, cnt, states):
    x = [t.eneg[z] for z in els]
    return (sum(c * s for c, s in zip(cnt, states)) == 0 and all(s in t.states[z] for z, s in zip(els, states))
            and all(not (o1 > 0 > o2 and x1 >= x2) and not (o1 < 0 < o2 and x1 <= x2)
                    for (o1, x1), (o2, x2) in itertools.combinations(zip(states, x), 2)))


@pytest.mark.parametrize("oxidation_set", ["icsd24", "smact14"])
def test_assignment_neutral_pauling_and_null_iff_unbalanced(read_formulas, oxidation_set):
    comps, batch = _real(read_formulas, 1024, 8000, 8000, seed=2)
    t = validity.tables(oxidation_set)
    out = validity.check(batch, oxidation_set, assign=True)
    ox, bal = out["oxidation_states"], out["electronegativity_balanced"]
    for i in range(len(comps)):
        els, cnt = [z for z in batch.z[i] if z], [c for z, c in zip(batch.z[i], batch.counts[i]) if z]
        st = ox[i][: len(els)].tolist()
        if bal[i]:
            assert _passes(t, els, cnt, st), (comps[i].formula, st)
        else:
            assert not any(ox[i]), comps[i].formula
    print(f"{oxidation_set}: {int(bal.sum()):,} of {len(comps):,} assigned")
    assert bal.sum() > 5000


def test_assignment_is_the_most_probable_by_enumeration():
    """Random 2-5 element compositions: the stored assignment has the best score of all
    charge-neutral, Pauling-passing assignments (enumerated as smact does)."""
    t = validity.tables("icsd24")
    rng = np.random.default_rng(3)
    zs = [z for z in range(1, 104) if t.states[z] and not np.isnan(t.eneg[z])]
    n_checked = 0
    for _ in range(400):
        els = rng.choice(zs, size=rng.integers(2, 6), replace=False).tolist()
        cnt = rng.integers(1, 7, size=len(els)).tolist()
        b = CompositionBatch.from_lists([[validity.SYMBOLS[z] for z in els]], [cnt])
        out = validity.check(b, "icsd24", assign=True)
        e2, c2 = [int(z) for z in b.z[0] if z], [int(c) for z, c in zip(b.z[0], b.counts[0]) if z]
        ok = [st for st in itertools.product(*(t.states[z] for z in e2)) if _passes(t, e2, c2, st)]
        assert bool(ok) == bool(out["electronegativity_balanced"][0])
        if ok:
            got = out["oxidation_states"][0][: len(e2)].tolist()
            assert _passes(t, e2, c2, got)
            assert _score(t, e2, c2, got) == pytest.approx(max(_score(t, e2, c2, st) for st in ok), abs=1e-9)
            n_checked += 1
    assert n_checked > 50


def test_dense_and_unbounded_programs_agree(read_formulas):
    comps, batch = _real(read_formulas, 1024, 500, 500, seed=4)
    t = validity.tables("icsd24")
    out = validity.check(batch, "icsd24", assign=True)
    for i in np.flatnonzero(out["electronegativity_balanced"])[::3]:
        keep = batch.z[i] > 0
        z, c = batch.z[i][keep].astype(int), batch.counts[i][keep].astype(int)
        order = np.argsort(t.eneg[z], kind="stable")
        slow = np.zeros(len(z), int)
        slow[order] = validity.kernel.assign_one(t, z[order].tolist(), c[order].tolist())
        assert slow.tolist() == out["oxidation_states"][i][keep].tolist(), comps[i].formula
    big = CompositionBatch.from_formulas(["Li40Fe30O70", "Ba70Ti70O210", "La50Ni50O150"])  # totals > 64
    got = validity.check(big, "icsd24", assign=True)
    for i in range(3):
        st = got["oxidation_states"][i][big.z[i] > 0]
        assert got["electronegativity_balanced"][i] and (st * big.counts[i][big.z[i] > 0]).sum() == 0


def test_known_compounds_and_pymatgen_guess():
    """Known compounds read as a chemist writes them; where pymatgen's oxi_state_guesses (an
    independent, ICSD-probability ranking) has a single-valence answer, it is the same."""
    from pymatgen.core import Composition as PmgComposition

    want = {"MgZrS3": "Mg2+ Zr4+ S2-", "Fe2O3": "Fe3+ O2-", "BaTiO3": "Ba2+ Ti4+ O2-", "NaCl": "Na+ Cl-",
            "CdTe": "Cd2+ Te2-", "Cu2ZnSnS4": "Zn2+ Cu+ Sn4+ S2-", "LaOF": "La3+ O2- F-", "GaAs": "Ga3+ As3-"}
    b = CompositionBatch.from_formulas(list(want))
    out = validity.check(b, "icsd24", assign=True)
    for i, (f, ions) in enumerate(want.items()):
        els = b.elements(i)
        assert validity.ions(els, out["oxidation_states"][i][: len(els)].tolist()) == ions
        guess = PmgComposition(f).oxi_state_guesses(max_sites=-50)[0]
        assert {e: int(round(guess[e])) for e in els} == dict(zip(els, out["oxidation_states"][i][: len(els)].tolist()))


# ---- the store: sets coexist, the views' checker, upgrade of older rows ---------------------------

FORMULAS = ["MgZrS3", "Fe2O3", "NaCl", "LiCo2O4", "CuZn", "Og2O", "CaCl", "BaTiO3", "CeO4", "Cu2ZnSnS4"]


def _fill(store, formulas=FORMULAS):
    comps = [parse(f) for f in formulas]
    with store.transaction() as con:
        append(con, "compositions", pl.DataFrame({
            "composition_id": [c.composition_id for c in comps], "formula": [c.formula for c in comps],
            "elements": [list(c.elements) for c in comps],
            "counts": pl.Series([list(c.counts) for c in comps], dtype=pl.List(pl.Int32)),
            "n_elements": [c.n_elements for c in comps], "n_atoms": [c.n_atoms for c in comps]}))
    return comps


def test_sets_coexist_and_views_use_the_default(store):
    comps = _fill(store)
    r16 = validate_store(store, oxidation_set="icsd16", progress=False)
    assert r16.written == len(comps) and r16.version == validity.checker_version("icsd16")
    assert store.query("SELECT count(*) n FROM composition_validity")["n"][0] == 0  # default not yet run
    r = validate_store(store, progress=False)
    assert r.version == validity.CHECKER_VERSION and r.written == len(comps) and r.not_encodable == 1
    chk = store.query("SELECT * FROM validity_checkers ORDER BY oxidation_set")
    assert chk["oxidation_set"].to_list() == ["icsd16", "icsd24"] and chk["is_default"].to_list() == [False, True]
    assert store.query("SELECT count(DISTINCT checker_version) n FROM validity")["n"][0] == 2
    by = {r["formula"]: r for r in store.query("SELECT * FROM composition_validity").iter_rows(named=True)}
    v = {f: by[parse(f).formula] for f in FORMULAS}
    assert len(by) == len(comps) and {r["checker_version"] for r in v.values()} == {validity.CHECKER_VERSION}
    assert v["MgZrS3"]["ions"] == "Mg2+ Zr4+ S2-" and v["Fe2O3"]["ions"] == "Fe3+ O2-"
    assert v["CeO4"]["ions"] == "Ce4+ O-"  # valid only as a peroxide: the assignment shows it
    assert v["CuZn"]["smact_valid"] and v["CuZn"]["ions"] is None  # an alloy: valid, no ionic reading
    assert v["Og2O"]["smact_valid"] is None and v["LiCo2O4"]["ions"] is None
    # every stored assignment: charge-neutral over compositions.counts, NULL iff not balanced
    bad = store.query("""
        SELECT c.formula FROM validity v JOIN compositions c USING (composition_id)
        WHERE (v.oxidation_states IS NOT NULL) IS DISTINCT FROM coalesce(v.electronegativity_balanced, false)
           OR (v.oxidation_states IS NOT NULL AND (len(v.oxidation_states) <> len(c.counts)
               OR list_sum(list_transform(list_zip(c.counts, v.oxidation_states), lambda x: x[1] * x[2])) <> 0))""")
    assert bad.height == 0, bad
    assert validate_store(store, oxidation_set="icsd16", progress=False).written == 0
    # validating another set leaves the views on the default
    assert store.query("SELECT oxidation_set FROM validity_checkers WHERE is_default")[0, 0] == "icsd24"
    with pytest.raises(validity.OxidationSetError):
        validate_store(store, oxidation_set="nope", progress=False)


def test_views_follow_the_registered_checker_not_the_highest_string(store):
    comps = _fill(store, ["NaCl", "Fe2O3"])
    validate_store(store, progress=False)
    with store.transaction() as con:  # a version string that sorts above ours, all flags False
        append(con, "validity", pl.DataFrame({
            "composition_id": [c.composition_id for c in comps], "checker_version": "zzz-smact9.99-icsd24",
            "charge_neutral": False, "electronegativity_balanced": False, "smact_valid": False}))
    v = store.query("SELECT smact_valid, checker_version FROM composition_validity")
    assert v["smact_valid"].to_list() == [True, True] and set(v["checker_version"]) == {validity.CHECKER_VERSION}
    with store.transaction() as con:  # the views read whichever version validity_checkers names
        con.execute("UPDATE validity_checkers SET checker_version = 'zzz-smact9.99-icsd24'")
    assert store.query("SELECT smact_valid FROM composition_validity")["smact_valid"].to_list() == [False, False]


def _store_before(path, name):
    """A store with the migrations before `name` applied (an older matstore's file)."""
    migs = migrations.known_migrations()
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, "
                "applied_at TIMESTAMP NOT NULL)")
    for m in migs[: [m.name for m in migs].index(name)]:
        con.execute(m.sql())
        con.execute("INSERT INTO schema_migrations VALUES (?, ?, now())", [m.version, m.name])
    return con


def test_older_store_keeps_its_verdicts_until_the_default_set_is_validated(tmp_path):
    path = tmp_path / "old.duckdb"
    con = _store_before(path, "oxidation_states")
    comps = [parse(f) for f in ["NaCl", "CaCl", "Fe2O3"]]
    for c in comps:
        con.execute("INSERT INTO compositions VALUES (?, ?, ?, ?, ?, ?)",
                    [c.composition_id, c.formula, list(c.elements), list(c.counts), c.n_elements, c.n_atoms])
        for ver in ("001-smact3.9-icsd24c3", "001-smact3.10-icsd24c3"):  # 3.10 is the newer smact
            con.execute("INSERT INTO validity VALUES (?, ?, true, true, ?)",
                        [c.composition_id, ver, ver.startswith("001-smact3.10")])
    con.close()
    store = Store(path)
    Store.init(path)  # upgrade
    assert store.version() == migrations.latest_version()
    v = store.query("SELECT formula, smact_valid, checker_version, oxidation_set, ions FROM composition_validity")
    assert v.height == 3 and set(v["checker_version"]) == {"001-smact3.10-icsd24c3"}
    assert v["smact_valid"].to_list() == [True] * 3 and v["oxidation_set"][0] == "icsd24c3"
    assert v["ions"].null_count() == 3
    validate_store(store, progress=False)  # now the default set: CaCl needs Ca+ (< 6 ICSD reports)
    v = dict(store.query("SELECT formula, smact_valid FROM composition_validity").iter_rows())
    assert v == {"NaCl": True, "CaCl": False, "Fe2O3": True}
    assert store.query("SELECT count(*) n FROM validity")["n"][0] == 3 * 3  # old rows kept


def test_cli_validate_oxidation_set(store):
    from click.testing import CliRunner

    from matstore.cli import main

    _fill(store)
    runner = CliRunner()
    res = runner.invoke(main, ["validate", "--db", store.path, "--no-progress", "--oxidation-set", "pymatgen_sp"])
    assert res.exit_code == 0 and "pymatgen_sp" in res.output, res.output
    res = runner.invoke(main, ["validate", "--db", store.path, "--oxidation-set", "wiki"])
    assert res.exit_code == 2 and "wiki" in res.output
    assert store.query("SELECT count(*) n FROM validity")["n"][0] == len(FORMULAS)


# ---- screen_stable_semiconductors against a recount ----------------------------------------------

STABILITY_COLS = ["composition_id", "model_id", "reference", "reference_ingests", "formation_energy_per_atom",
                  "e_above_hull", "decomposition", "run_id", "coverage"]


ELEMENTS_ONLY = [{"composition_id": 1, "formula": "Fe", "fraction": 0.4},
                 {"composition_id": 2, "formula": "O2", "fraction": 0.6}]
WITH_COMPOUND = [{"composition_id": 3, "formula": "Fe2O3", "fraction": 0.7},
                 {"composition_id": 2, "formula": "O2", "fraction": 0.3}]


def test_screen_stable_semiconductors_matches_recount(store, read_formulas):
    from matstore import runner

    from _runner_helpers import ReplayGenerator, load_compositions, mp_formulas

    formulas, values = mp_formulas(read_formulas, 1500)
    load_compositions(store, formulas, "oqmd", values)
    res = runner.generate(store, ReplayGenerator(formulas), 3000, batch_size=1000, seed=1, device="cpu",
                          progress=False, stages=runner.Stages(validate=True))
    now = dt.datetime.now()
    with store.transaction() as con:
        for name, kind in (("fe-model", "rf"), ("bg-model", "rf"), ("bg-model", "rf")):
            con.execute("INSERT INTO model_versions (name, version, kind, created_at) VALUES "
                        "(?, (SELECT count(*) + 1 FROM model_versions WHERE name = ?), ?, ?)", [name, name, kind, now])
    ids = store.query(f"SELECT DISTINCT composition_id FROM generated WHERE run_id = {res.run_id} "
                      "ORDER BY composition_id")["composition_id"].to_numpy()
    rng = np.random.default_rng(0)
    n = len(ids)
    # two band-gap models: the later run wins; FE model 1 placed on two references' hulls
    pred = pl.DataFrame({"composition_id": np.concatenate([ids, ids]), "model_id": [2] * n + [3] * n,
                         "run_id": [10] * n + [11] * n, "property": "band_gap",
                         "value": np.concatenate([rng.uniform(0, 3, n), rng.uniform(0.5, 2.5, n)])},
                        schema_overrides={"model_id": pl.Int32, "run_id": pl.Int32})
    stab = pl.DataFrame({
        "composition_id": np.concatenate([ids, ids[::2], ids[:50]]),
        "model_id": [1] * n + [1] * len(ids[::2]) + [0] * 50,   # model 0: a reference's own DFT row
        "reference": ["oqmd"] * n + ["mp"] * len(ids[::2]) + ["oqmd"] * 50,
        "reference_ingests": [[1]] * (n + len(ids[::2]) + 50),
        "formation_energy_per_atom": rng.normal(-1, 0.5, n + len(ids[::2]) + 50),
        "e_above_hull": rng.uniform(-0.05, 0.3, n + len(ids[::2]) + 50),
        "decomposition": [ELEMENTS_ONLY if i % 2 else WITH_COMPOUND for i in range(n + len(ids[::2]) + 50)],
        "run_id": 5,
        "coverage": rng.choice([1.0, 0.5], n + len(ids[::2]) + 50, p=[0.8, 0.2])}, schema_overrides={"model_id": pl.Int32, "run_id": pl.Int32,
                                         "reference_ingests": pl.List(pl.Int32)})
    stab = stab.unique(["composition_id", "model_id", "reference"])
    with store.transaction() as con:
        append(con, "predictions", pred)
        append(con, "stability", stab.select(STABILITY_COLS))
    got = store.query("SELECT * FROM screen_stable_semiconductors")

    # recount from the raw tables
    known = set(store.query("SELECT composition_id FROM materials")["composition_id"].to_list())
    cur = store.query("SELECT checker_version FROM validity_checkers WHERE is_default")[0, 0]
    assert cur == validity.CHECKER_VERSION
    val = store.query("SELECT composition_id, charge_neutral AND electronegativity_balanced AS ok "
                      "FROM validity WHERE checker_version = ?", [cur])
    valid = set(val.filter(pl.col("ok"))["composition_id"].to_list())
    # the default filters: plausible ions (rarest ICSD share >= 1 %), full binary coverage
    from matstore.validity.plausibility import MIN_ION_SHARE, rarest_share
    ox = store.query("SELECT c.composition_id, c.elements, v.oxidation_states FROM validity v "
                     "JOIN compositions c USING (composition_id) WHERE checker_version = ?", [cur])
    plausible = {i for i, e, o in ox.iter_rows() if (rarest_share(e, o) or 0) >= MIN_ION_SHARE}
    valid &= plausible
    stab = stab.filter(pl.col("coverage") >= 1.0)
    bg = pred.sort(["run_id", "model_id"]).group_by("composition_id").last()
    want = (stab.filter(pl.col("model_id") > 0, pl.col("e_above_hull") <= 0.1)
            .join(bg.select("composition_id", pl.col("value").alias("bg"), pl.col("model_id").alias("bgm")),
                  on="composition_id")
            .filter(pl.col("bg").is_between(1.0, 2.0),
                    pl.col("composition_id").is_in(list(valid - known)),
                    pl.col("composition_id").is_in(ids.tolist())))
    assert 20 < got.height == want.height
    assert got["e_above_hull"].to_list() == sorted(got["e_above_hull"].to_list())
    key = ["composition_id", "reference"]
    assert sorted(got.select(key).rows()) == sorted(want.select(key).rows())
    assert set(got["fe_model"]) == {"fe-model@1"} and set(got["band_gap_model"]) == {"bg-model@2"}
    assert set(got["reference"]) == {"oqmd", "mp"}
    m = got.join(want, on=key)
    assert np.allclose(m["pred_band_gap"].to_numpy(), m["bg"].to_numpy())
    assert np.allclose(m["pred_formation_energy_per_atom"].to_numpy(), m["formation_energy_per_atom"].to_numpy())
    assert got["ions"].null_count() == 0 and all(" " in s for s in got["ions"].to_list())
    # a hull of elements only (the reference knows no compound under it) is flagged
    elements_only = [all(re.fullmatch(r"[A-Z][a-z]?\d*", d["formula"]) for d in dec)
                     for dec in m["decomposition_right"].to_list()]
    assert m["decomposes_to_elements"].to_list() == elements_only and 0 < sum(elements_only) < m.height
