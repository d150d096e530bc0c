"""CSP on real perovskites: a template's two substitutions are the two A/B cation orderings (also
where an anion shares the A cation's Wyckoff letter), the CSP parity of a store (Python, report
figure, CLI) agrees with StructureMatcher, and CHGNet re-ranking orders by the potential's energy."""

from __future__ import annotations

import polars as pl
import pytest
from click.testing import CliRunner

from matstore.cli import main
from matstore.ingest import run
from matstore.structures.prediction import load_templates, predict_structures
from matstore.structures.templates import TemplateLibrary, reduced_counts
from _store_data import new_store

N_TEMPLATES = 300
ANIONS = {"O", "N", "F", "S"}


@pytest.fixture(scope="module")
def store(tmp_path_factory, shared_data):
    s = new_store(tmp_path_factory.mktemp("csp") / "t.duckdb")
    run(s, "structures", file=str(shared_data / "structures/perov_5/val.csv"), limit=N_TEMPLATES,
        source_name="perov5", kind="dft", method="GLLB-SC")
    return s


@pytest.fixture(scope="module")
def targets(shared_data):
    from pymatgen.core import Structure

    df = pl.read_csv(shared_data / "structures/perov_5/val.csv", n_rows=N_TEMPLATES + 200)
    return [Structure.from_str(c, fmt="cif") for c in df["cif"][N_TEMPLATES:]]


def test_second_substitution_swaps_the_cations(store, targets):
    """ABO2N / ABON2 (P4mm: the A cation and the apical anion share letter a): the nearest
    template's two substitutions keep the anions on anion sites and swap A and B (a few strongly
    distorted templates, e.g. a layered KWN2O whose prototype label another template shares with
    O on K's orbit, are ambiguous: at least 90 %)."""
    lib = TemplateLibrary(load_templates(store, "perov5"))
    swaps = checked = 0
    for t in targets:
        counts = reduced_counts(t.composition)
        if sorted(counts.values()) != [1, 1, 1, 2] or set(counts) & ANIONS != {"N", "O"}:
            continue         # ABO2N / ABON2 with two distinct cations
        first, second = lib.predict(counts, 2)[:2]
        m1, m2 = first.details["substitution"], second.details["substitution"]
        assert first.details["template_structure_id"] == second.details["template_structure_id"]
        kept = all((old in ANIONS) == (new in ANIONS) for m in (m1, m2) for old, new in m.items())
        changed = {old for old in m1 if m1[old] != m2[old]}
        swapped = len(changed) == 2 and not changed & ANIONS
        if swapped:
            a, b = changed
            swapped = m1[a] == m2[b] and m1[b] == m2[a]
        swaps += kept and swapped
        checked += 1
    assert checked >= 10 and swaps >= 0.9 * checked, (swaps, checked)


def test_store_parity_report_figure_and_cli(store, tmp_path):
    from pymatgen.analysis.structure_matcher import StructureMatcher

    from matstore.report.structure_section import csp_parity, parity_html
    from matstore.structures import read_structures
    from matstore.structures.parity import store_parity, summary

    assert store_parity(store).height == 0          # nothing predicted yet: no parity, no error
    assert parity_html(store, lambda *a, **k: "FIGURE") == ""
    ids = store.query("SELECT DISTINCT composition_id FROM structures ORDER BY composition_id LIMIT 12")
    where = f"c.composition_id IN ({', '.join(str(i) for i in ids['composition_id'])})"
    r = predict_structures(store, where=where, k=1, templates="perov5", exclude_same=True, progress=False)
    assert r.n_compositions == 12
    df = store_parity(store)
    assert df.height == 12 and df["pred_volume_per_atom"].is_finite().all()
    assert df.filter(pl.col("matched"))["rmsd"].null_count() == 0
    # each row's verdict is StructureMatcher's on the stored pair
    rows = store.query(f"SELECT p.structure_id AS p, k.structure_id AS k FROM structures p JOIN structures k "
                       f"USING (composition_id) WHERE p.origin = 'template' AND k.origin = 'known' "
                       f"AND p.composition_id IN ({', '.join(str(i) for i in ids['composition_id'])}) "
                       f"ORDER BY p.composition_id, k.structure_id")
    m = StructureMatcher(stol=0.5, angle_tol=10, ltol=0.3)
    direct = {}
    for p, k in zip(rows["p"], rows["k"]):
        pred, ref = read_structures(store, [p, k])
        direct[pred.composition.reduced_formula] = (direct.get(pred.composition.reduced_formula, False)
                                                    or m.get_rms_dist(pred, ref) is not None)
    assert dict(zip(df["formula"], df["matched"])) == direct
    s = summary(df)
    assert s["n"] == 12 and s["match_rate"] == pytest.approx(100 * sum(direct.values()) / 12)
    fig = csp_parity(df, "test")
    assert len(fig.axes) == 2
    html = parity_html(store, lambda f, name, caption, none, wide=False: name if f is not None else none)
    assert html == "csp_parity.png"

    out = tmp_path / "parity.png"
    res = CliRunner().invoke(main, ["structures", "parity", "--db", str(store.path), "--plot", str(out)])
    assert res.exit_code == 0, res.output
    assert f"{s['match_rate']:.2f} %" in res.output and out.stat().st_size > 10_000
    again = CliRunner().invoke(main, ["structures", "parity", "--db", str(store.path), "--plot", str(out)])
    assert again.exit_code != 0 and "exists" in again.output


@pytest.mark.slow
def test_energy_rank_orders_by_chgnet_energy(store, targets):
    from pymatgen.io.ase import AseAtomsAdaptor

    from matstore.models import potential
    from matstore.structures.ranking import energy_rank

    lib = TemplateLibrary(load_templates(store, "perov5"))
    pot = potential.load("chgnet")
    for t in targets[:3]:
        preds = lib.predict(reduced_counts(t.composition), 3)
        ranked = energy_rank(list(preds), pot)
        assert {id(p) for p in ranked} == {id(p) for p in preds} and ranked[2] is preds[2]
        e = [p.details["energy_rank"]["single_point_energy_per_atom"] for p in ranked[:2]]
        assert e[0] <= e[1]
        direct = pot.predict([AseAtomsAdaptor.get_atoms(p.structure) for p in ranked[:2]])
        assert e == pytest.approx([d.energy / len(p.structure) for d, p in zip(direct, ranked[:2])], abs=1e-5)
        assert [p.details["rank"] for p in ranked] == [1, 2, 3]
        assert ranked[0].details["energy_rank"]["potential"].startswith("chgnet")
