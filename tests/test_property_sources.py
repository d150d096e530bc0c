"""Properties true to their source (issue 12, item 1): each value keeps its source and kind (DFT or
experiment), views never take the lowest value across sources, merging an experimental file never
changes a DFT column, training names its target source, curation drops stay inspectable, and a
store of the previous schema upgrades with its data intact."""

from __future__ import annotations

import json
from datetime import datetime

import duckdb
import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner

from matstore import compositions as C
from matstore import migrations
from matstore.cli import main
from matstore.curation import Curation
from matstore.elements85 import ELEMENTS_85, MAX_COUNT
from matstore.ingest import ingest, material_ids, run
from matstore.merge import MergeError, merge
from matstore.sources import SourceError, open_source
from matstore.store import Store
from matstore.training import data, train
from _store_data import new_store

OQMD_GAPS = 4000  # rows of oqmd/bandgap_train.csv (+ its TiO2 row)


def _tio2_id() -> int:
    return C.parse("TiO2").composition_id


@pytest.fixture(scope="module")
def gap_files(tmp_path_factory, read_formulas, shared_data):
    """A slice of OQMD's DFT band gaps that holds TiO2 (1.965 eV), and the experimental file."""
    d = tmp_path_factory.mktemp("gaps")
    oq = read_formulas("oqmd/bandgap_train.csv")
    part = pl.concat([oq.head(OQMD_GAPS), oq.filter(pl.col("formula") == "O2Ti1")])
    part.write_csv(d / "oqmd_gaps.csv")
    return d / "oqmd_gaps.csv", shared_data / "expt" / "expt_gap.csv"


def _dft_store(path, oqmd_file) -> Store:
    s = new_store(path)
    run(s, "oqmd", file=str(oqmd_file), props=["band_gap=target:eV"])
    return s


def _expt_store(path, expt_file) -> Store:
    s = new_store(path)
    run(s, "csv", file=str(expt_file), props=["band_gap=target:eV"], source_name="expt", kind="experiment")
    return s


# --- where a value comes from ----------------------------------------------------------------

def test_source_name_and_kind_are_recorded(tmp_path, gap_files):
    s = _expt_store(tmp_path / "e.duckdb", gap_files[1])
    kinds = dict(s.query("SELECT name, kind FROM sources").rows())
    assert kinds["expt"] == "experiment" and kinds["oqmd"] == "dft" and kinds["mp"] == "dft"
    assert kinds["builtin"] == "experiment" and kinds["csv"] == "unknown"
    assert s.query("SELECT DISTINCT source FROM materials").rows() == [("expt",)]
    assert s.query("SELECT source FROM ingests").rows() == [("expt",)]
    # ids are of (source name, external id): the same file under the name csv is other materials
    ext = s.query("SELECT material_id, external_id FROM materials ORDER BY material_id LIMIT 5")
    assert ext["material_id"].to_list() == material_ids("expt", ext["external_id"].to_list())
    assert material_ids("csv", ext["external_id"].to_list()) != ext["material_id"].to_list()
    by_source = s.query("SELECT DISTINCT source, kind, method FROM composition_properties_by_source")
    assert by_source.rows() == [("expt", "experiment", None)]
    # the same name with the same kind again: allowed, nothing new (dedupe)
    again = run(s, "csv", file=str(gap_files[1]), props=["band_gap=target:eV"], source_name="expt",
                kind="experiment")
    assert again.rows_kept == 0 and again.rows_duplicate > 4000


def test_dft_source_with_level_of_theory(tmp_path, gap_files):
    s = new_store(tmp_path / "h.duckdb")
    run(s, "csv", file=str(gap_files[0]), props=["band_gap=target:eV"], source_name="my_hse", kind="dft",
        method="HSE06")
    assert s.query("SELECT kind, method FROM sources WHERE name = 'my_hse'").rows() == [("dft", "HSE06")]
    cp = s.query("SELECT DISTINCT band_gap_source, band_gap_kind FROM composition_properties "
                 "WHERE band_gap IS NOT NULL")
    assert cp.rows() == [("my_hse", "dft")]


@pytest.mark.parametrize("opts, match", [
    (dict(source_name="x'); DROP TABLE materials; --"), "short identifier"),
    (dict(source_name="Expt"), "short identifier"),
    (dict(source_name=""), "short identifier"),
    (dict(source_name="a" * 33), "short identifier"),
    (dict(source_name="oqmd"), "named source"),
    (dict(source_name="builtin", kind="experiment"), "named source"),
    (dict(source_name="expt", kind="theory"), "dft or experiment"),
    (dict(source_name="expt", kind="experiment", method="PBE"), "--kind dft"),
    (dict(source_name="expt", kind="dft", method="x" * 65), "level of theory"),
])
def test_bad_source_options_are_refused_before_anything_is_written(tmp_path, gap_files, opts, match):
    s = new_store(tmp_path / "b.duckdb")
    before = s.query("SELECT count(*) AS n FROM sources")["n"][0]
    with pytest.raises(SourceError, match=match):
        run(s, "csv", file=str(gap_files[1]), props=["band_gap=target:eV"], **opts)
    assert s.query("SELECT count(*) AS n FROM ingests")["n"][0] == 0
    assert s.query("SELECT count(*) AS n FROM sources")["n"][0] == before
    assert s.query("SELECT count(*) AS n FROM materials")["n"][0] == 0


def test_other_sources_do_not_take_source_options(tmp_path, gap_files):
    with pytest.raises(SourceError, match="--source-name"):
        open_source("oqmd", file=str(gap_files[0]), props=["band_gap=target:eV"], source_name="x")
    with pytest.raises(SourceError, match="--kind"):
        open_source("mp", file=str(gap_files[0]), props=["band_gap=target:eV"], kind="dft")


def test_a_name_keeps_its_kind(tmp_path, gap_files):
    s = _expt_store(tmp_path / "k.duckdb", gap_files[1])
    n = s.query("SELECT count(*) AS n FROM ingests")["n"][0]
    with pytest.raises(SourceError, match="recorded in this store as experiment"):
        run(s, "csv", file=str(gap_files[0]), props=["band_gap=target:eV"], source_name="expt", kind="dft")
    # an unnamed file is 'csv' of unknown kind; calling it DFT needs a name of its own
    run(s, "csv", file=str(gap_files[0]), props=["band_gap=target:eV"], limit=10)
    with pytest.raises(SourceError, match="own --source-name"):
        run(s, "csv", file=str(gap_files[0]), props=["band_gap=target:eV"], kind="dft", limit=20)
    assert s.query("SELECT count(*) AS n FROM ingests")["n"][0] == n + 1


def test_cli_ingest_source_options(tmp_path, gap_files):
    db = str(tmp_path / "c.duckdb")
    r = CliRunner().invoke(main, ["ingest", "csv", "--db", db, "--file", str(gap_files[1]), "--prop",
                                  "band_gap=target:eV", "--source-name", "expt", "--kind", "experiment",
                                  "--quiet"])
    assert r.exit_code == 0, r.output
    assert Store(db).query("SELECT kind FROM sources WHERE name = 'expt'").rows() == [("experiment",)]
    r = CliRunner().invoke(main, ["ingest", "csv", "--db", db, "--file", str(gap_files[1]), "--prop",
                                  "band_gap=target:eV", "--source-name", "Bad Name", "--quiet"])
    assert r.exit_code != 0 and "short identifier" in r.output
    r = CliRunner().invoke(main, ["ingest", "csv", "--db", db, "--file", str(gap_files[1]), "--kind", "guess"])
    assert r.exit_code != 0 and "guess" in r.output


# --- one source per column; merging experiment never touches DFT -------------------------------

def test_merge_of_experimental_gaps_never_changes_a_dft_column(tmp_path, gap_files):
    a = _dft_store(tmp_path / "a.duckdb", gap_files[0])
    b = _expt_store(tmp_path / "b.duckdb", gap_files[1])
    cols = "composition_id, band_gap, band_gap_source, band_gap_kind"
    before = a.query(f"SELECT {cols} FROM composition_properties ORDER BY composition_id")
    assert before.height > 3000 and set(before["band_gap_source"]) == {"oqmd"}
    r = merge(a, b.path)
    assert r.total_added > 4000
    after = a.query(f"SELECT {cols}, band_gap_experiment, band_gap_experiment_source "
                    "FROM composition_properties ORDER BY composition_id")
    # every composition that had a DFT gap keeps exactly that value and source ...
    kept = before.join(after, on="composition_id", how="left", suffix="_after")
    assert kept["band_gap"].equals(kept["band_gap_after"], null_equal=True)
    assert (kept["band_gap_source_after"] == "oqmd").all() and (kept["band_gap_kind_after"] == "dft").all()
    # ... and compositions only in the experimental file get no DFT value at all
    new = after.filter(~pl.col("composition_id").is_in(before["composition_id"].implode()))
    assert new.height > 3000 and new["band_gap"].null_count() == new.height
    # the experimental values are there, in their own column, equal to the file's ground state
    expt = a.query("SELECT composition_id, band_gap FROM composition_properties_by_source "
                   "WHERE source = 'expt'")
    both = expt.join(after, on="composition_id")
    assert both.height == expt.height > 3000
    assert np.allclose(both["band_gap"].to_numpy(), both["band_gap_experiment"].to_numpy())
    assert set(both["band_gap_experiment_source"]) == {"expt"}
    overlap = both.filter(pl.col("band_gap_right").is_not_null())
    assert overlap.height > 20
    assert (overlap["band_gap_right"] - overlap["band_gap"]).abs().max() > 1.0  # really different


def test_tio2_keeps_oqmd_dft_gap_beside_the_experimental_one(tmp_path, gap_files):
    a = _dft_store(tmp_path / "a.duckdb", gap_files[0])
    run(a, "csv", file=str(gap_files[1]), props=["band_gap=target:eV"], source_name="expt", kind="experiment")
    row = a.query("SELECT * FROM composition_properties WHERE composition_id = ?", [_tio2_id()]).to_dicts()[0]
    assert row["formula"] == "TiO2"
    assert row["band_gap"] == pytest.approx(1.965) and row["band_gap_source"] == "oqmd"
    assert row["band_gap_kind"] == "dft"
    assert row["band_gap_experiment"] == pytest.approx(3.3) and row["band_gap_experiment_source"] == "expt"
    assert row["sources"] == ["expt", "oqmd"]
    per = a.query("SELECT source, kind, method, band_gap FROM composition_properties_by_source "
                  "WHERE composition_id = ? ORDER BY source", [_tio2_id()]).rows()
    assert per == [("expt", "experiment", None, pytest.approx(3.3)), ("oqmd", "dft", "PBE", pytest.approx(1.965))]


@pytest.mark.slow
def test_dft_columns_follow_the_declared_order_not_the_lowest_value(tmp_path, read_formulas):
    """oqmd before mp, whichever is lower; mp's values stay readable per source."""
    s = new_store(tmp_path / "o.duckdb")
    oq = read_formulas("oqmd/formation_enthalpy_train.csv").head(3000)
    mp = read_formulas("mp/e_form.csv")
    in_oq = {C.parse(f).composition_id for f in oq["formula"]}
    shared = mp.filter(pl.Series([C.parse(f).composition_id in in_oq for f in mp["formula"]]))
    mp = pl.concat([mp.head(3000), shared]).unique(maintain_order=True)  # ~500 compositions in both
    for name, df in (("mp", mp), ("oqmd", oq)):
        f = tmp_path / f"{name}.csv"
        df.write_csv(f)
        run(s, name, file=str(f), props=["formation_energy_per_atom=target:eV/atom"])
    cp = s.query("SELECT composition_id, formation_energy_per_atom AS v, formation_energy_source AS src "
                 "FROM composition_properties")
    per = s.query("SELECT composition_id, source, formation_energy_per_atom AS v "
                  "FROM composition_properties_by_source")
    oq_v = per.filter(pl.col("source") == "oqmd").select("composition_id", pl.col("v").alias("oq"))
    mp_v = per.filter(pl.col("source") == "mp").select("composition_id", pl.col("v").alias("mp"))
    j = cp.join(oq_v, on="composition_id", how="left").join(mp_v, on="composition_id", how="left")
    assert set(j["src"].drop_nulls()) == {"oqmd"}
    assert j["v"].equals(j["oq"], null_equal=True)
    both = j.filter(pl.col("oq").is_not_null() & pl.col("mp").is_not_null())
    assert both.filter(pl.col("mp") < pl.col("oq")).height > 0  # MP lower there, OQMD's still shown
    only_mp = j.filter(pl.col("oq").is_null() & pl.col("mp").is_not_null())
    assert only_mp.height > 1000 and only_mp["v"].null_count() == only_mp.height


def test_merge_refuses_a_source_name_of_another_kind(tmp_path, gap_files):
    a = new_store(tmp_path / "a.duckdb")
    run(a, "csv", file=str(gap_files[0]), props=["band_gap=target:eV"], source_name="lab", kind="dft",
        limit=50)
    b = new_store(tmp_path / "b.duckdb")  # the other lab used the same name for experiments
    run(b, "csv", file=str(gap_files[1]), props=["band_gap=target:eV"], source_name="lab",
        kind="experiment", limit=50)
    n = a.query("SELECT count(*) AS n FROM materials")["n"][0]
    with pytest.raises(MergeError, match="lab: here dft, there experiment"):
        merge(a, b.path)
    assert a.query("SELECT count(*) AS n FROM materials")["n"][0] == n


# --- training names its target source -------------------------------------------------------

@pytest.fixture(scope="module")
def two_dft_store(tmp_path_factory, read_formulas):
    d = tmp_path_factory.mktemp("two")
    s = new_store(d / "t.duckdb")
    for name, rel in (("oqmd", "oqmd/formation_enthalpy_train.csv"), ("mp", "mp/e_form.csv")):
        f = d / f"{name}.csv"
        read_formulas(rel).head(400).write_csv(f)
        run(s, name, file=str(f), props=["formation_energy_per_atom=target:eV/atom"])
    f = d / "expt.csv"
    read_formulas("expt/expt_gap.csv").head(400).write_csv(f)
    run(s, "csv", file=str(f), props=["band_gap=target:eV"], source_name="expt", kind="experiment")
    return s


def test_an_ambiguous_source_error_names_the_callers_own_option(two_dft_store):
    """train says --target-source; al start (whose option is --base-source) says --base-source, not
    an option it does not have (issue 23: the README's `al start` failed naming --target-source)."""
    with pytest.raises(data.TargetSourceError, match=r"choose one with --target-source \(Python: target_source="):
        data.target_source(two_dft_store, "formation_energy_per_atom")
    with pytest.raises(data.TargetSourceError) as e:
        data.target_source(two_dft_store, "formation_energy_per_atom", option="--base-source")
    assert "choose one with --base-source (Python: base_source=" in str(e.value)
    assert "--target-source" not in str(e.value)


def test_training_target_source_is_explicit_and_recorded(two_dft_store):
    s = two_dft_store
    with pytest.raises(data.TargetSourceError, match=r"several DFT sources .*mp \(dft, PBE.*oqmd \(dft, PBE"):
        train(s, "rf-fe", progress=False, n_jobs=1)
    with pytest.raises(data.TargetSourceError, match="no DFT source has band_gap.*expt \\(experiment"):
        train(s, "rf-bg", progress=False, n_jobs=1)
    with pytest.raises(data.TargetSourceError, match="has no formation_energy_per_atom values"):
        train(s, "rf-fe", target_source="expt'; DROP TABLE materials; --", progress=False, n_jobs=1)
    mv = train(s, "rf-fe", target_source="mp", progress=False, n_jobs=1)
    rec = s.query("SELECT hyperparams, training_query, training_rows FROM model_versions "
                  "WHERE model_id = ?", [mv.model_id]).to_dicts()[0]
    hp = json.loads(rec["hyperparams"])
    assert (hp["target_source"], hp["target_kind"], hp["target_method"]) == ("mp", "dft", "PBE")
    assert "cp.source = 'mp'" in rec["training_query"]
    # it learned MP's values only: the training rows are MP's compositions with a value
    n_mp = s.query("SELECT count(*) AS n FROM composition_properties_by_source WHERE source = 'mp' "
                   "AND formation_energy_per_atom IS NOT NULL")["n"][0]
    ds = data.load(s, "SELECT composition_id FROM compositions", "formation_energy_per_atom", source="mp")
    want = s.query("SELECT p.composition_id, min(p.value) AS v FROM properties p JOIN materials m "
                   "USING (material_id) WHERE m.source = 'mp' GROUP BY 1 ORDER BY 1")
    assert len(ds) == n_mp == want.height and np.allclose(ds.y, want["v"].to_numpy())
    assert rec["training_rows"] <= n_mp
    # experimental gaps are used only when named
    mv = train(s, "rf-bg", target_source="expt", progress=False, n_jobs=1)
    hp = json.loads(s.query("SELECT hyperparams FROM model_versions WHERE model_id = ?",
                            [mv.model_id])["hyperparams"][0])
    assert (hp["target_source"], hp["target_kind"]) == ("expt", "experiment")


def test_single_dft_source_is_the_default_target(tmp_path, gap_files):
    s = _dft_store(tmp_path / "d.duckdb", gap_files[0])
    run(s, "csv", file=str(gap_files[1]), props=["band_gap=target:eV"], source_name="expt", kind="experiment")
    assert data.target_source(s, "band_gap") == data.TargetSource("oqmd", "dft", "PBE")
    with pytest.raises(data.TargetSourceError, match="no target property"):
        train(s, "gan-oqmd", target_source="oqmd", progress=False)


def test_cli_train_target_source(two_dft_store, tmp_path):
    r = CliRunner().invoke(main, ["train", "--db", two_dft_store.path, "--model", "rf-fe", "--no-progress"])
    assert r.exit_code != 0 and "--target-source" in r.output and "oqmd" in r.output
    r = CliRunner().invoke(main, ["train", "--db", two_dft_store.path, "--model", "rf-fe", "--no-progress",
                                  "--target-source", "oqmd", "--name", "fe-oqmd"])
    assert r.exit_code == 0, r.output
    hp = two_dft_store.query("SELECT hyperparams FROM model_versions WHERE name = 'fe-oqmd'")["hyperparams"][0]
    assert json.loads(hp)["target_source"] == "oqmd"


# --- curation drops stay inspectable --------------------------------------------------------

def test_curation_drops_are_kept_with_their_rule(tmp_path, read_formulas):
    df = read_formulas("oqmd/formation_enthalpy_train.csv").head(20000)
    # the same compositions again with higher energies: lowest_fe has rows to drop
    df = pl.concat([df, df.head(500).with_columns(pl.col("target") + 0.25)])
    f = tmp_path / "fe.csv"
    df.write_csv(f)
    s = new_store(tmp_path / "c.duckdb")
    res = ingest(s, open_source("oqmd", file=str(f), props=["formation_energy_per_atom=target:eV/atom"]),
                 Curation.matgan(("He", "Kr")))
    counts = dict(s.query("SELECT rule, count(*) AS n FROM curated GROUP BY rule").rows())
    recorded = json.loads(s.query("SELECT curation::VARCHAR AS c FROM ingests")["c"][0])
    assert {k: v for k, v in recorded.items() if v} == counts
    assert counts["lowest_fe"] > 450 and counts["matgan_elements"] > 0 and sum(counts.values()) == res.rows_curated
    # every input row is exactly one of: kept, rejected, curated, duplicate
    cur = s.query("SELECT row_ref, raw, rule FROM curated")
    kept = set(s.query("SELECT external_id FROM materials")["external_id"])
    assert not kept & set(cur["row_ref"])
    assert len(kept) + cur.height + res.rows_rejected + res.rows_duplicate == df.height
    # the raw row is the file's row: its formula and energy, and the rule is the right one
    for raw in cur.filter(pl.col("rule") == "matgan_elements")["raw"]:
        c = C.parse(json.loads(raw)["formula"])
        assert max(c.counts) > MAX_COUNT or not set(c.elements) <= set(ELEMENTS_85)
    lows = cur.filter(pl.col("rule") == "lowest_fe").with_columns(
        pl.col("raw").str.json_path_match("$.formula").alias("formula"),
        pl.col("raw").str.json_path_match("$.target").cast(pl.Float64).alias("fe"))
    best = s.query("SELECT c.formula AS canon, p.value AS best FROM materials m JOIN properties p "
                   "USING (material_id) JOIN compositions c ON c.composition_id = m.composition_id")
    lows = lows.with_columns(pl.col("formula").map_elements(lambda f: C.parse(f).formula,
                                                            return_dtype=pl.String).alias("canon"))
    j = lows.join(best, on="canon")
    assert j.height == lows.height and (j["fe"] >= j["best"]).all()


@pytest.mark.slow
def test_paged_curation_drops_are_kept(tmp_path, read_formulas):
    from oqmd_server import FakeOqmd, rows_from_csv

    df = read_formulas("oqmd/formation_enthalpy_train.csv").head(300)
    rows = rows_from_csv(pl.concat([df, df.head(30).with_columns(pl.col("target") - 0.2)]))
    s = new_store(tmp_path / "p.duckdb")
    with FakeOqmd(rows) as server:
        res = ingest(s, open_source("oqmd", api_url=server.url, page_size=64, timeout=2.0, retries=1,
                                    backoff=0.01), Curation.matgan())
    counts = dict(s.query("SELECT rule, count(*) AS n FROM curated GROUP BY rule").rows())
    assert {k: v for k, v in res.curation.items() if v} == counts and counts["lowest_fe"] >= 25
    gone = set(s.query("SELECT row_ref FROM curated")["row_ref"])
    assert {str(r["entry_id"]) for r in rows[:30]} <= gone  # the higher originals, whatever the rule
    assert not gone & set(s.query("SELECT external_id FROM materials")["external_id"])
    raw = json.loads(s.query("SELECT raw FROM curated WHERE rule = 'lowest_fe' LIMIT 1")["raw"][0])
    assert set(raw) == {"formula", "formation_energy_per_atom"}


# --- a store of the previous schema ---------------------------------------------------------

def _old_store(path, read_formulas) -> duckdb.DuckDBPyConnection:
    """A store at the migration before property_sources, filled with real rows by plain SQL."""
    mine = next(m for m in migrations.known_migrations() if m.name == "property_sources")
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, "
                "applied_at TIMESTAMP NOT NULL)")
    for m in migrations.known_migrations():
        if m.version < mine.version:
            con.execute(m.sql())
            con.execute("INSERT INTO schema_migrations VALUES (?, ?, now())", [m.version, m.name])
    parts = [("oqmd", "oqmd/bandgap_train.csv", "band_gap", "eV"),
             ("csv", "expt/expt_gap.csv", "band_gap", "eV"),
             ("builtin", "oqmd/formation_enthalpy_train.csv", "formation_energy_per_atom", "eV/atom"),
             ("lab7", "mp/e_form.csv", "formation_energy_per_atom", "eV/atom")]
    for ingest_id, (source, rel, prop, unit) in enumerate(parts, start=1):
        df = read_formulas(rel).head(1500)
        comps = [C.parse(f) for f in df["formula"]]
        ext = [f"{rel}#{i}" for i in range(df.height)]
        mids = material_ids(source, ext)
        con.execute("INSERT INTO ingests (ingest_id, source, uri, status, started_at, rows_seen, rows_kept, "
                    "curation) VALUES (?, ?, ?, 'done', ?, ?, ?, '{}')",
                    [ingest_id, source, rel, datetime(2026, 1, ingest_id), df.height, df.height])
        comp = pl.DataFrame({"composition_id": [c.composition_id for c in comps],
                             "formula": [c.formula for c in comps],
                             "elements": [list(c.elements) for c in comps],
                             "counts": [list(c.counts) for c in comps],
                             "n_elements": [c.n_elements for c in comps], "n_atoms": [c.n_atoms for c in comps]},
                            schema_overrides={"counts": pl.List(pl.Int32), "n_elements": pl.Int32}
                            ).unique("composition_id")
        mat = pl.DataFrame({"material_id": mids, "ingest_id": ingest_id, "source": source, "external_id": ext,
                            "composition_id": [c.composition_id for c in comps], "raw_formula": df["formula"]})
        prop_df = pl.DataFrame({"material_id": mids, "composition_id": mat["composition_id"], "name": prop,
                                "value": df["target"].cast(pl.Float64), "unit": unit})
        con.register("_c", comp.to_arrow())
        con.execute("INSERT INTO compositions SELECT * FROM _c WHERE composition_id NOT IN "
                    "(SELECT composition_id FROM compositions)")
        con.unregister("_c")
        for t, frame in (("materials", mat), ("properties", prop_df)):
            con.register("_f", frame.to_arrow())
            con.execute(f"INSERT INTO {t} SELECT * FROM _f")
            con.unregister("_f")
    con.execute("INSERT INTO rejects VALUES (2, 'x#9', '{\"formula\": \"Qq2\"}', 'formula: unknown element')")
    return con


OLD_TABLES = ["ingests", "rejects", "compositions", "materials", "properties", "features", "validity",
              "model_versions", "runs", "generated", "predictions", "composition_sets"]


def test_previous_schema_upgrades_and_its_data_survives(tmp_path, read_formulas):
    path = tmp_path / "old.duckdb"
    con = _old_store(path, read_formulas)
    before = {t: con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall() for t in OLD_TABLES}
    old_cols = {t: [r[0] for r in con.execute(f"DESCRIBE {t}").fetchall()] for t in OLD_TABLES}
    con.close()
    s = Store(path)
    with s.connect(write=True):  # opening read-write applies the pending migrations
        pass
    assert s.version() == migrations.latest_version()
    with s.connect() as con:
        for t in OLD_TABLES:  # every old row and value, column by column
            cols = ", ".join(f'"{c}"' for c in old_cols[t])
            assert con.execute(f"SELECT {cols} FROM {t} ORDER BY ALL").fetchall() == before[t], t
    assert sum(len(v) for v in before.values()) > 10_000
    kinds = dict(s.query("SELECT name, kind FROM sources").rows())
    assert (kinds["oqmd"], kinds["csv"], kinds["builtin"], kinds["lab7"]) == ("dft", "unknown", "experiment",
                                                                            "unknown")
    assert s.query("SELECT count(*) AS n FROM curated")["n"][0] == 0
    # the per-source view over the upgraded data equals each source's own ground state
    per = s.query("SELECT composition_id, source, band_gap, formation_energy_per_atom "
                  "FROM composition_properties_by_source")
    raw = s.query("SELECT p.composition_id, m.source, min(p.value) FILTER (WHERE p.name = 'band_gap') AS bg, "
                  "min(p.value) FILTER (WHERE p.name = 'formation_energy_per_atom') AS fe FROM properties p "
                  "JOIN materials m USING (material_id) GROUP BY ALL")
    j = per.join(raw, on=["composition_id", "source"])
    assert j.height == per.height == raw.height
    assert j["band_gap"].equals(j["bg"], null_equal=True)
    assert j["formation_energy_per_atom"].equals(j["fe"], null_equal=True)
    cp = s.query("SELECT band_gap_source, formation_energy_source, band_gap_experiment_source, "
                 "formation_energy_experiment_source FROM composition_properties")
    # DFT gaps from oqmd; FE: no DFT source, so the unlabelled lab7; builtin is experiment
    assert set(cp["band_gap_source"].drop_nulls()) == {"oqmd"}
    assert set(cp["formation_energy_source"].drop_nulls()) == {"lab7"}
    assert set(cp["formation_energy_experiment_source"].drop_nulls()) == {"builtin"}
    assert cp["band_gap_experiment_source"].drop_nulls().len() == 0
