"""Ingesting files and the builtin data: counts against the files, curation against an
independent polars computation, rejects, unreadable files, idempotence, views, CLI."""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner

from matstore.curation import Curation
from matstore.ingest import ingest, material_ids
from matstore.sources import SourceError, open_source
from matstore.store import Store
from _store_data import new_store

EXCLUDE = ("He", "Kr")


# --- an independent curation: regex + numpy on the formula strings, the 85 from the CSV -------

def independent_curation(df: pl.DataFrame, table85: list[str], fe: bool) -> dict[str, int]:
    """Rule counts in matstore's documented order, computed without matstore's parser."""
    assert not df["formula"].str.contains(r"[.()]").any()  # plain El<int> formulas only
    long = (df.with_row_index("i")
            .select("i", pl.col("formula").str.extract_all(r"[A-Z][a-z]?\d*").alias("p"))
            .explode("p")
            .select("i", pl.col("p").str.extract(r"^([A-Z][a-z]?)").alias("el"),
                    pl.col("p").str.extract(r"(\d+)$").cast(pl.Int64).fill_null(1).alias("n"))
            .group_by("i", "el").agg(pl.col("n").sum())
            .sort("i", "el"))
    i = long["i"].to_numpy()
    starts = np.flatnonzero(np.r_[True, i[1:] != i[:-1]])
    g = np.gcd.reduceat(long["n"].to_numpy(), starts)
    long = long.with_columns((pl.col("n") // pl.Series(np.repeat(g, np.diff(np.r_[starts, len(i)])))).alias("r"))
    per = long.group_by("i").agg(
        pl.col("el").is_in(list(EXCLUDE)).any().alias("excluded"),
        ((~pl.col("el").is_in(table85)) | (pl.col("r") > 8)).any().alias("outside"),
        pl.len().alias("n_el"),
        (pl.col("el") + ":" + pl.col("r").cast(pl.String)).sort().str.join(",").alias("key"))
    rows = df.with_row_index("i").join(per, on="i").sort("i")
    out = {}
    for rule, drop in (("exclude_elements", pl.col("excluded")), ("matgan_elements", pl.col("outside")),
                       ("single_element", pl.col("n_el") == 1)):
        out[rule] = rows.filter(drop).height
        rows = rows.filter(~drop)
    if not fe:
        return out | {"fe_outliers": 0, "lowest_fe": 0}
    t = rows["target"].to_numpy()
    mean, std = t.mean(), t.std(ddof=1)
    inside = (t >= mean - 5 * std) & (t <= mean + 5 * std)
    out["fe_outliers"] = int((~inside).sum())
    rows = rows.filter(pl.Series(inside))
    out["lowest_fe"] = rows.height - rows["key"].n_unique()
    return out


@pytest.fixture(scope="module")
def table85(shared_data):
    return (shared_data / "matgan" / "periodic_table_85.csv").read_text().split()


def counts_hold(res) -> None:
    assert res.rows_seen == res.rows_rejected + res.rows_curated + res.rows_duplicate + res.rows_kept
    assert res.rows_curated == sum(res.curation.values())


def table_count(store: Store, table: str) -> int:
    return store.query(f"SELECT count(*) AS n FROM {table}")["n"][0]


@pytest.mark.slow
def test_bandgap_train_whole_file_curated(tmp_path, shared_data, read_formulas, table85):
    path = shared_data / "oqmd" / "bandgap_train.csv"
    df = read_formulas("oqmd/bandgap_train.csv")
    assert df.height == 239_125
    store = new_store(tmp_path / "s.duckdb")
    res = ingest(store, open_source("oqmd", file=str(path), props=["band_gap=target:eV"]),
                 Curation.matgan(EXCLUDE))
    counts_hold(res)
    assert res.status == "done" and res.rows_seen == df.height and res.rows_rejected == 0
    assert res.curation == independent_curation(df, table85, fe=False)
    assert table_count(store, "materials") == res.rows_kept == df.height - res.rows_curated
    assert table_count(store, "properties") == res.rows_kept
    row = store.query("SELECT * FROM ingests")
    assert json.loads(row["curation"][0]) == res.curation and row["rows_curated"][0] == res.rows_curated
    # the stored band gaps are the file's, row for row (external id = file#row)
    got = store.query("SELECT m.external_id, p.value, p.unit FROM materials m JOIN properties p USING (material_id)")
    assert set(got["unit"]) == {"eV"}
    rowno = got["external_id"].str.extract(r"#(\d+)$").cast(pl.Int64) - 1
    assert np.allclose(got["value"].to_numpy(), df["target"].to_numpy()[rowno.to_numpy()])


@pytest.mark.slow
def test_formation_enthalpy_train_curated(tmp_path, shared_data, read_formulas, table85):
    df = read_formulas("oqmd/formation_enthalpy_train.csv")
    assert df.height == 51_255
    store = new_store(tmp_path / "s.duckdb")
    src = open_source("oqmd", file=str(shared_data / "oqmd" / "formation_enthalpy_train.csv"),
                      props=["formation_energy_per_atom=target:eV/atom"])
    res = ingest(store, src, Curation.matgan(EXCLUDE))
    counts_hold(res)
    assert res.rows_seen == df.height
    assert res.curation == independent_curation(df, table85, fe=True)
    assert res.curation["fe_outliers"] > 0
    # rerunning the same ingest adds nothing and says so
    before = {t: table_count(store, t) for t in ("materials", "properties", "compositions", "rejects")}
    again = ingest(store, src, Curation.matgan(EXCLUDE))
    counts_hold(again)
    assert again.rows_kept == 0 and again.rows_duplicate == res.rows_kept
    assert before == {t: table_count(store, t) for t in before}


@pytest.mark.slow
def test_mp_e_form_lowest_energy_per_composition(tmp_path, shared_data, read_formulas, table85):
    df = read_formulas("mp/e_form.csv")
    assert df.height == 132_752
    store = new_store(tmp_path / "s.duckdb")
    res = ingest(store, open_source("mp", file=str(shared_data / "mp" / "e_form.csv"),
                                    props=["formation_energy_per_atom=target"]), Curation.matgan(EXCLUDE))
    counts_hold(res)
    assert res.rows_seen == df.height and res.rows_rejected == 0
    want = independent_curation(df, table85, fe=True)
    assert res.curation == want and want["lowest_fe"] > 10_000
    # one entry per composition survives, and it is the lowest energy of that composition
    assert table_count(store, "materials") == store.query(
        "SELECT count(DISTINCT composition_id) AS n FROM materials")["n"][0]
    unit = store.query("SELECT DISTINCT unit FROM properties")["unit"].to_list()
    assert unit == ["eV/atom"]  # the default unit of a known property


def test_rejects_bad_rows_and_carries_on(tmp_path, store):
    path = tmp_path / "mixed.csv"
    path.write_text("formula,target\nFe2O3,-1.5\nXx2O,-1.0\n,0.3\nNaCl,abc\nLi0.5CoO2,\nMgO, -3.0 \nFe4O6,-1.2\n")
    res = ingest(store, open_source("csv", file=str(path), props=["formation_energy_per_atom=target"]))
    counts_hold(res)
    assert (res.rows_seen, res.rows_rejected, res.rows_kept) == (7, 3, 4)
    rej = store.query("SELECT row_ref, raw, reason FROM rejects ORDER BY row_ref")
    pre = hashlib.sha256(path.read_bytes()).hexdigest()[:16]  # default ids: file content + row
    assert rej["row_ref"].to_list() == [f"{pre}#2", f"{pre}#3", f"{pre}#4"]
    assert "unknown element 'Xx'" in rej["reason"][0]
    assert rej["reason"][1] == "empty formula"
    assert rej["reason"][2] == "formation_energy_per_atom: not a number: abc"
    assert json.loads(rej["raw"][2]) == {"formula": "NaCl", "target": "abc"}
    props = store.query("SELECT external_id, value FROM materials LEFT JOIN properties USING (material_id) "
                        "ORDER BY external_id")
    assert props["value"].to_list() == [-1.5, None, -3.0, -1.2]  # empty value: material without it
    # Fe2O3 and Fe4O6 are one composition
    assert table_count(store, "compositions") == 3


@pytest.mark.parametrize("case", ["missing", "directory", "binary", "no_formula", "no_prop_column",
                                  "empty", "ragged"])
def test_unreadable_file_leaves_store_as_it_was(tmp_path, store, case):
    path = tmp_path / "in.csv"
    opts = {"props": ["band_gap=target"]}
    if case == "directory":
        path = tmp_path
    elif case == "binary":
        path.write_bytes(bytes(range(256)) * 40)
    elif case == "no_formula":
        path.write_text("name_of_thing,target\nFe2O3,1\n")
    elif case == "no_prop_column":
        path.write_text("formula,gap\nFe2O3,1\n")
    elif case == "empty":
        path.write_text("")
    elif case == "ragged":
        path.write_text("formula,target\nFe2O3,1,2,3\n")
    before = hashlib.sha256(open(store.path, "rb").read()).hexdigest()
    with pytest.raises(SourceError) as err:
        ingest(store, open_source("csv", file=str(path), **opts))
    assert str(path) in str(err.value) or path.name in str(err.value)
    assert hashlib.sha256(open(store.path, "rb").read()).hexdigest() == before
    assert table_count(store, "ingests") == 0


@pytest.mark.slow
def test_builtin_counts_and_per_atom_conversion(store):
    from importlib import resources
    import gzip

    from pymatgen.core import Composition

    res = ingest(store, open_source("builtin"))
    counts_hold(res)
    assert res.rows_seen == 2135 + 47_737 and res.rows_rejected == 0
    exp = json.load(gzip.open(resources.files("pymatgen.analysis.compatibility") / "exp_compounds.json.gz"))
    got = store.query("SELECT m.external_id, p.value, p.unit FROM materials m JOIN properties p USING (material_id) "
                      "WHERE m.source = 'builtin'")
    assert got.height == 2135 and set(got["unit"]) == {"eV/atom"}
    value = dict(zip(got["external_id"], got["value"]))
    for e in exp:  # eV per formula unit as written / atoms of the formula as written (pymatgen)
        want = e["exp energy"] / Composition(e["formula"]).num_atoms
        assert value[f"exp:{e['formula']}"] == pytest.approx(want, rel=1e-12)
    # peroxides are written Li2O2 but reduce to the 2-atom composition LiO: 4 atoms count here
    e = next(e for e in exp if e["formula"] == "Li2O2")
    assert value["exp:Li2O2"] == pytest.approx(e["exp energy"] / 4)
    assert store.query("SELECT n_atoms FROM compositions WHERE formula = 'Li2O2'")["n_atoms"][0] == 2
    mp = store.query("SELECT external_id FROM materials WHERE external_id LIKE 'mp-%'")
    assert mp.height == 47_737
    again = ingest(store, open_source("builtin"))
    assert again.rows_kept == 0 and again.rows_duplicate == res.rows_kept


def test_views_known_and_composition_properties(tmp_path, shared_data, store):
    ingest(store, open_source("builtin"))
    ingest(store, open_source("oqmd", file=str(shared_data / "oqmd" / "formation_enthalpy_train.csv"),
                              props=["formation_energy_per_atom=target"], limit=5000))
    mats = store.query("SELECT composition_id, source FROM materials")
    want = (mats.group_by("composition_id")
            .agg(pl.col("source").unique().sort().alias("sources"), pl.len().alias("n_entries")))
    known = store.query("SELECT composition_id, sources, n_entries FROM known")
    joined = want.join(known, on="composition_id", how="full", suffix="_v")
    assert joined.height == want.height == known.height
    assert (joined["sources"] == joined["sources_v"]).all() and (joined["n_entries"] == joined["n_entries_v"]).all()
    assert known.filter(pl.col("sources").list.len() == 2).height > 0  # in builtin and oqmd both
    # each column holds one source's ground state: OQMD's (DFT) and builtin's (experiment), never
    # the lowest of both (issue 12)
    fe = store.query("SELECT m.source, p.composition_id, min(p.value) AS fe FROM properties p "
                     "JOIN materials m USING (material_id) WHERE p.name = 'formation_energy_per_atom' "
                     "GROUP BY ALL")
    view = store.query("SELECT * FROM composition_properties")
    for source, col in (("oqmd", "formation_energy_per_atom"), ("builtin", "formation_energy_experiment")):
        want = fe.filter(pl.col("source") == source)
        got = view.filter(pl.col(col).is_not_null())
        both = want.join(got, on="composition_id")
        assert both.height == want.height == got.height > 1000
        assert np.allclose(both["fe"].to_numpy(), both[col].to_numpy())
    assert set(view["formation_energy_source"].drop_nulls()) == {"oqmd"}
    assert set(view["formation_energy_experiment_source"].drop_nulls()) == {"builtin"}
    differ = view.filter((pl.col("formation_energy_per_atom") - pl.col("formation_energy_experiment")).abs() > 0.01)
    assert differ.height > 10  # compositions in both sources whose values differ stay apart


def test_icsd_export_and_parquet_csv(tmp_path, store):
    icsd = tmp_path / "icsd.csv"
    icsd.write_text("CollectionCode,StructuredFormula,Density\n15840,Fe2 O3,5.2\n28230,(Mg0.5 Fe0.5)2 Si O4,3.9\n")
    res = ingest(store, open_source("icsd", file=str(icsd), props=["density=Density:g/cm3"]))
    assert res.rows_kept == 2
    got = store.query("SELECT external_id, c.formula, value, unit FROM materials m JOIN compositions c "
                      "USING (composition_id) JOIN properties USING (material_id) ORDER BY external_id")
    assert got.rows() == [("15840", "Fe2O3", 5.2, "g/cm3"), ("28230", "MgFeSiO4", 3.9, "g/cm3")]
    pq = tmp_path / "gaps.parquet"
    pl.DataFrame({"comp": ["GaAs", "Si", "ZnO"], "gap_ev": [1.42, 1.12, 3.37]}).write_parquet(pq)
    res = ingest(store, open_source("csv", file=str(pq), formula_col="comp", props=["band_gap=gap_ev:eV"]))
    assert res.rows_kept == 3
    got = store.query("SELECT external_id, value FROM materials JOIN properties USING (material_id) "
                      "WHERE source = 'csv' ORDER BY external_id")
    pre = hashlib.sha256(pq.read_bytes()).hexdigest()[:16]
    assert got.rows() == [(f"{pre}#1", 1.42), (f"{pre}#2", 1.12), (f"{pre}#3", 3.37)]


def test_material_id_is_blake2b_of_source_and_id():
    want = int.from_bytes(hashlib.blake2b(b"oqmd\x1f4061139", digest_size=8).digest(), "little", signed=True)
    assert material_ids("oqmd", ["4061139"]) == [want]
    assert material_ids("mp", ["4061139"]) != [want]


def test_option_errors_are_clear():
    with pytest.raises(SourceError, match="MP_API_KEY"):
        open_source("mp")
    with pytest.raises(SourceError, match="does not take --api-url"):
        open_source("csv", file="x.csv", api_url="http://x")
    with pytest.raises(SourceError, match="expected name=column"):
        open_source("csv", file="x.csv", props=["band_gap"])
    with pytest.raises(ValueError, match="unknown element"):
        Curation(exclude_elements=("Kx",))


def test_cli_ingest(tmp_path, monkeypatch):
    from matstore.cli import main

    monkeypatch.setenv("MATSTORE_DB", str(tmp_path / "cli.duckdb"))
    path = tmp_path / "f.csv"
    path.write_text("formula,target\nFe2O3,-1.5\nNaCl,-2.0\nHe,0\nKr2O,0.1\n")
    runner = CliRunner()
    r = runner.invoke(main, ["ingest", "csv", "--file", str(path), "--prop", "formation_energy_per_atom=target",
                             "--exclude-elements", "He,Kr", "--drop-single-element", "--quiet"])
    assert r.exit_code == 0, r.output
    assert "4 seen, 2 kept" in r.output.replace("\n", " ")
    r = runner.invoke(main, ["ingest", "csv", "--file", str(tmp_path / "nope.csv"), "--quiet"])
    text = " ".join(r.output.split())  # rich wraps long lines
    assert r.exit_code == 1 and "nope.csv does not exist" in text and "Traceback" not in text
    r = runner.invoke(main, ["ingest", "csv", "--file", str(path), "--quiet"])
    assert r.exit_code == 1 and "--prop" in r.output
