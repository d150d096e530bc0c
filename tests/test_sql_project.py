"""SQL as a project (issue 11, item 3): views created in the order their headers declare (checked
against DuckDB's parse of their SQL), one base view for model refs, the views' declared keys
unique and not NULL on a real store, migrations checked by number and name, the final schema
pinned (as simonw/llm pins its schema)."""

from __future__ import annotations

import duckdb
import pytest

from matstore import migrations, runner, training
from matstore.featurize import validate_store
from matstore.migrations import SchemaMismatchError
from matstore.predict import predict
from matstore.stability import compute as compute_stability
from matstore.store import Store, view_definitions
from matstore.views import ViewError, order_views, package_views, referenced_relations, view_question

from _runner_helpers import ReplayGenerator, load_compositions, mp_formulas
from _store_data import new_store

SCHEMA = {  # table -> 'column TYPE' in order: the schema every migration adds up to
    'al_campaigns': [
        'campaign_id INTEGER', 'name VARCHAR', 'property VARCHAR', 'target JSON',
        'acquisition VARCHAR', 'kappa DOUBLE', 'batch_size INTEGER', 'oracle VARCHAR',
        'oracle_model_id INTEGER', 'autoencoder_id INTEGER', 'base_selection VARCHAR',
        'base_source VARCHAR', 'base_rows BIGINT', 'params JSON', 'seed BIGINT',
        'created_at TIMESTAMP',
    ],
    'al_labels': [
        'proposal_id BIGINT', 'campaign_id INTEGER', 'composition_id BIGINT', 'value DOUBLE',
        'source VARCHAR', 'model_id INTEGER', 'material_id BIGINT', 'labelled_at TIMESTAMP',
    ],
    'al_proposals': [
        'proposal_id BIGINT', 'campaign_id INTEGER', 'round_no INTEGER', 'rank INTEGER',
        'latent FLOAT[]', 'composition_id BIGINT', 'formula VARCHAR', 'acquisition DOUBLE',
        'mean DOUBLE', 'std DOUBLE',
    ],
    'al_rounds': [
        'campaign_id INTEGER', 'round_no INTEGER', 'n_train BIGINT', 'train_hash VARCHAR',
        'gp JSON', 'n_proposed INTEGER', 'n_decodable INTEGER', 'seconds DOUBLE',
        'proposed_at TIMESTAMP', 'closed_at TIMESTAMP',
    ],
    'composition_sets': [
        'set_name VARCHAR', 'composition_id BIGINT', 'model_id INTEGER', 'role VARCHAR',
        'created_at TIMESTAMP',
    ],
    'compositions': [
        'composition_id BIGINT', 'formula VARCHAR', 'elements VARCHAR[]', 'counts INTEGER[]',
        'n_elements INTEGER', 'n_atoms BIGINT',
    ],
    'curated': [
        'ingest_id INTEGER', 'row_ref VARCHAR', 'raw VARCHAR', 'rule VARCHAR',
    ],
    'features': [
        'composition_id BIGINT', 'featurizer VARCHAR', 'version VARCHAR', 'vector FLOAT[]',
    ],
    'generation_quality': [
        'run_id INTEGER', 'model_id INTEGER', 'reference VARCHAR', 'checker_version VARCHAR',
        'n_samples BIGINT', 'n_decodable BIGINT', 'n_unique BIGINT', 'unique_pct DOUBLE',
        'n_novel BIGINT', 'novel_pct DOUBLE', 'n_checked BIGINT', 'charge_neutral_pct DOUBLE',
        'electronegativity_balanced_pct DOUBLE', 'both_valid_pct DOUBLE', 'train_size BIGINT',
        'train_recovered BIGINT', 'train_recovery_pct DOUBLE', 'leave_out_size BIGINT',
        'leave_out_recovered BIGINT', 'leave_out_recovery_pct DOUBLE', 'tv_element_count DOUBLE',
        'tv_element_frequency DOUBLE', 'frechet_magpie DOUBLE', 'frechet_n_generated BIGINT',
        'frechet_n_reference BIGINT', 'frechet_seed BIGINT', 'computed_at TIMESTAMP',
        'n_samples_checked BIGINT', 'charge_neutral_samples_pct DOUBLE',
        'electronegativity_balanced_samples_pct DOUBLE', 'both_valid_samples_pct DOUBLE',
        'tv_element_count_samples DOUBLE', 'tv_element_frequency_samples DOUBLE',
    ],
    'generated': [
        'run_id INTEGER', 'batch_no INTEGER', 'sample_no BIGINT', 'composition_id BIGINT',
    ],
    'ingests': [
        'ingest_id INTEGER', 'source VARCHAR', 'uri VARCHAR', 'params JSON', 'status VARCHAR',
        'cursor VARCHAR', 'started_at TIMESTAMP', 'finished_at TIMESTAMP', 'rows_seen BIGINT',
        'rows_kept BIGINT', 'rows_rejected BIGINT', 'rows_curated BIGINT', 'rows_duplicate BIGINT',
        'curation JSON', 'pid INTEGER', 'host VARCHAR', 'pid_started DOUBLE',
    ],
    'latents': [
        'composition_id BIGINT', 'model_id INTEGER', 'vector FLOAT[]',
    ],
    'materials': [
        'material_id BIGINT', 'ingest_id INTEGER', 'source VARCHAR', 'external_id VARCHAR',
        'composition_id BIGINT', 'raw_formula VARCHAR',
    ],
    'model_versions': [
        'model_id INTEGER', 'name VARCHAR', 'version INTEGER', 'kind VARCHAR', 'config JSON',
        'hyperparams JSON', 'training_query VARCHAR', 'training_rows BIGINT', 'data_hash VARCHAR',
        'split JSON', 'metrics JSON', 'weights BLOB', 'weights_sha256 VARCHAR', 'software JSON',
        'device VARCHAR', 'seed BIGINT', 'created_at TIMESTAMP', 'card JSON',
    ],
    'predictions': [
        'composition_id BIGINT', 'model_id INTEGER', 'run_id INTEGER', 'property VARCHAR',
        'value DOUBLE', 'std DOUBLE', 'p_metal DOUBLE',
    ],
    'properties': [
        'material_id BIGINT', 'composition_id BIGINT', 'name VARCHAR', 'value DOUBLE',
        'unit VARCHAR',
    ],
    'ion_reports': [
        'element VARCHAR', 'oxidation_state INTEGER', 'reports INTEGER', 'share DOUBLE',
    ],
    'relaxations': [
        'structure_id BIGINT', 'model_id INTEGER', 'settings_hash VARCHAR', 'run_id INTEGER',
        'batch_no INTEGER', 'composition_id BIGINT', 'relaxed_structure_id BIGINT', 'status VARCHAR',
        'steps INTEGER', 'fmax DOUBLE', 'energy_per_atom DOUBLE', 'initial_energy_per_atom DOUBLE',
        'volume_change DOUBLE', 'n_sites INTEGER', 'seconds DOUBLE', 'message VARCHAR',
        'created_at TIMESTAMP',
    ],
    'rejects': [
        'ingest_id INTEGER', 'row_ref VARCHAR', 'raw VARCHAR', 'reason VARCHAR',
    ],
    'run_batches': [
        'run_id INTEGER', 'batch_no INTEGER', 'n_samples BIGINT', 'n_decodable BIGINT',
        'seconds DOUBLE', 'committed_at TIMESTAMP',
    ],
    'runs': [
        'run_id INTEGER', 'kind VARCHAR', 'model_id INTEGER', 'params JSON', 'seed BIGINT',
        'device VARCHAR', 'status VARCHAR', 'started_at TIMESTAMP', 'finished_at TIMESTAMP',
        'n_requested BIGINT', 'n_written BIGINT', 'rows_per_s DOUBLE', 'pid INTEGER',
        'host VARCHAR', 'pid_started DOUBLE', 'executor VARCHAR', 'workers INTEGER',
    ],
    'schema_migrations': [
        'version INTEGER', 'name VARCHAR', 'applied_at TIMESTAMP',
    ],
    'sources': [
        'name VARCHAR', 'kind VARCHAR', 'method VARCHAR', 'description VARCHAR',
    ],
    'stability': [
        'composition_id BIGINT', 'model_id INTEGER', 'reference VARCHAR',
        'reference_ingests INTEGER[]', 'formation_energy_per_atom DOUBLE', 'e_above_hull DOUBLE',
        'decomposition STRUCT(composition_id BIGINT, formula VARCHAR, fraction DOUBLE)[]',
        'run_id INTEGER', 'hull_energy_per_atom DOUBLE', 'coverage DOUBLE',
        'ternary_coverage DOUBLE', 'missing_systems VARCHAR[]', 'products_dft INTEGER',
        'products_predicted INTEGER', 'structure_id BIGINT', 'convention VARCHAR',
        'reference_structures BIGINT[]',
    ],
    'structures': [
        'structure_id BIGINT', 'composition_id BIGINT', 'material_id BIGINT', 'origin VARCHAR',
        'method VARCHAR', 'parent_structure_id BIGINT', 'ingest_id INTEGER', 'run_id INTEGER',
        'lattice DOUBLE[3][3]', 'species VARCHAR[]', 'frac_coords DOUBLE[3][]', 'n_sites INTEGER',
        'volume DOUBLE', 'spacegroup_number INTEGER', 'spacegroup_symbol VARCHAR', 'symprec DOUBLE',
        'prototype VARCHAR', 'fingerprint VARCHAR', 'details JSON', 'created_at TIMESTAMP',
    ],
    'validity': [
        'composition_id BIGINT', 'checker_version VARCHAR', 'charge_neutral BOOLEAN',
        'electronegativity_balanced BOOLEAN', 'smact_valid BOOLEAN', 'oxidation_states INTEGER[]',
    ],
    'validity_checkers': [
        'oxidation_set VARCHAR', 'checker_version VARCHAR', 'is_default BOOLEAN',
        'updated_at TIMESTAMP',
    ],
}


# --- views in declared order ------------------------------------------------------------------
def test_views_build_in_declared_order_on_a_fresh_schema(tmp_path):
    """Each view compiles the first time, right after the views it declares (no retrying), and
    every declared dependency is a view its SQL really reads."""
    con = duckdb.connect(str(tmp_path / "fresh.duckdb"))
    migrations.migrate(con, "fresh")
    made: set[str] = set()
    for v in package_views():
        assert set(v.depends) <= made, v.name
        assert set(v.depends) == referenced_relations(v.body) & set(view_definitions()), v.name
        con.execute(f'CREATE VIEW "{v.name}" AS {v.body}')   # raises if anything is missing
        made.add(v.name)
    assert made == set(view_definitions())
    con.close()


def test_an_undeclared_view_read_is_an_error_naming_the_view():
    defs = view_definitions()
    bad = dict(defs, screen_stable_novel=defs["screen_stable_novel"].replace("-- depends: candidate_screen_rows\n", ""))
    with pytest.raises(ViewError, match=r"sql/screen_stable_novel\.sql reads views \['candidate_screen_rows'\]"):
        order_views(bad)
    extra = dict(defs, known="-- depends: model_refs\n" + defs["known"])   # declared, never read
    with pytest.raises(ViewError, match=r"sql/known\.sql .*declares `-- depends: model_refs`"):
        order_views(extra)
    with pytest.raises(ViewError, match=r"sql/known\.sql declares `depends: nope`: no such view"):
        order_views(dict(defs, known="-- depends: nope\n" + defs["known"]))


def test_a_cycle_is_an_error_naming_its_views():
    defs = {"a": "-- depends: b\nSELECT * FROM b", "b": "-- depends: c\nSELECT * FROM c",
            "c": "-- depends: a\nSELECT * FROM a", "d": "SELECT 1 AS x"}
    with pytest.raises(ViewError, match=r"cycle: a -> b -> c -> a"):
        order_views(defs)
    ok = order_views({"late": "-- depends: early\nSELECT * FROM early", "early": "SELECT 1 AS x"})
    assert [v.name for v in ok] == ["early", "late"]


def test_declarations_stay_out_of_the_view_comment():
    for name, body in view_definitions().items():
        q = view_question(body)
        assert q and "depends:" not in q and "key:" not in q, name


def test_model_refs_is_the_one_spelling_of_name_at_version():
    """name || '@' || version is written once, in model_refs; the validity views read the checker
    version Python registers (validity_checkers), not a string max()."""
    import inspect

    from matstore import provenance

    for name, body in view_definitions().items():
        flat = " ".join(body.split())
        assert ("|| '@' ||" in flat) == (name == "model_refs"), name
        assert "max(checker_version" not in flat.replace(" ", ""), name
    assert "'@'" not in inspect.getsource(provenance) and "model_refs" in inspect.getsource(provenance)
    reads = {name: referenced_relations(body) for name, body in view_definitions().items()}
    assert "validity_checkers" in reads["composition_validity"]
    assert "validity_checkers" in reads["generation_stats"]
    assert "composition_validity" in reads["candidates"]


# --- keys unique and not NULL on a real store ---------------------------------------------------
@pytest.fixture(scope="module")
def study(tmp_path_factory, read_formulas) -> Store:
    """MP formulas with formation energies (two sources), an RF predictor with its split, a
    generation run, validity, predictions of the candidates and their stability."""
    store = new_store(tmp_path_factory.mktemp("sqlproject") / "study.duckdb")
    formulas, values = mp_formulas(read_formulas, 600)
    load_compositions(store, formulas[:450], "mp", values[:450])
    load_compositions(store, formulas[300:600], "oqmd", values[300:600], ingest_id=2)
    mv = training.train(store, "rf-fe", target_source="mp", max_rows=400,
                        config={"n_estimators": 10, "n_jobs": 1}, progress=False)
    runner.generate(store, ReplayGenerator(formulas[:450]), 1200, batch_size=600, seed=5,
                    device="cpu", progress=False)
    validate_store(store, progress=False)
    predict(store, mv.ref, where="composition_id IN (SELECT composition_id FROM candidates)",
            device="cpu", progress=False)
    compute_stability(store, model=mv.ref, reference="mp", progress=False)
    from matstore.stability.bias import measure
    measure(store, mv.ref, reference="mp", device="cpu", progress=False)
    _add_structures(store)
    return store


def _grid_structure(formula: str):
    """A toy structure of formula: its atoms on a 3 A grid of a cubic cell (views need rows)."""
    import math

    from pymatgen.core import Composition, Lattice, Structure

    species = [str(el) for el, n in Composition(formula).items() for _ in range(int(n))]
    side = math.ceil(len(species) ** (1 / 3))
    coords = [((i % side) / side, (i // side % side) / side, (i // side // side) / side)
              for i in range(len(species))]
    return Structure(Lattice.cubic(3.0 * side), species, coords)


def _add_structures(store):
    """A known structure per material with a property, a template structure per candidate."""
    from matstore.structures import write_structures

    known = store.query("SELECT DISTINCT m.material_id, c.formula FROM materials m JOIN properties p "
                        "USING (material_id) JOIN compositions c ON c.composition_id = m.composition_id "
                        "ORDER BY 1 LIMIT 5").rows()
    ids = write_structures(store, [_grid_structure(f) for _, f in known], "known", "test-grid",
                           material_ids=[m for m, _ in known])
    cands = store.query("SELECT formula FROM candidates ORDER BY composition_id LIMIT 5")["formula"]
    write_structures(store, [_grid_structure(f) for f in cands], "template", "test-grid",
                     parents=ids[: len(cands)], details={"template_formula": known[0][1], "rank": 1})
    _add_relaxations(store, ids[:2], [f for _, f in known[:2]])


def _add_relaxations(store, parents, formulas):
    """Two relaxations with a registered potential (rows as matstore.relax.run writes them)."""
    from matstore.models.potential.registry import register
    from matstore.structures import write_structures

    model_id, _ = register(store, "chgnet")
    out = write_structures(store, [_grid_structure(f) for f in formulas], "relaxed", "chgnet-0.3.0",
                           parents=parents)
    with store.transaction() as con:
        for k, (p, o) in enumerate(zip(parents, out)):
            con.execute("INSERT INTO relaxations (structure_id, model_id, settings_hash, composition_id, "
                        "relaxed_structure_id, status, steps, fmax, energy_per_atom, created_at) "
                        "SELECT ?, ?, 'test', composition_id, ?, 'converged', 3, 0.01, ?, now() "
                        "FROM structures WHERE structure_id = ?", [p, model_id, o, -5.0 - k, p])


def test_the_study_fills_most_views(study):
    empty = [v.name for v in package_views()
             if study.query(f'SELECT count(*) AS n FROM "{v.name}"')["n"][0] == 0]
    # no band-gap model in this study: only the band-gap views and screens may be empty, and the hull
    # screen: 450 reference phases cover few binary sub-systems (its default coverage filter)
    assert set(empty) <= {"screen_semiconductors", "screen_stable_semiconductors", "screen_hull_novel",
                          "screen_photoanode_mgmno", "screen_structure_stable", "latest_band_gap",
                          "physical_outliers"}, empty   # MP energies: none beyond 5 eV/atom
    from matstore.report import screen_sql
    with study.connect(guarded=True) as con:
        assert con.execute(f"SELECT count(*) FROM ({screen_sql('hull_novel', ('coverage',))})").fetchone()[0] > 0


@pytest.mark.parametrize("view", sorted(view_definitions()))
def test_view_key_is_unique_and_not_null(study, view):
    v = next(x for x in package_views() if x.name == view)
    assert v.key, f"sql/{view}.sql declares no `-- key:`"
    cols = ", ".join(f'"{c}"' for c in v.key)
    nulls = " OR ".join(f'"{c}" IS NULL' for c in v.key)
    row = study.query(f'SELECT count(*) AS n, count(DISTINCT ({cols})) AS n_keys, '
                      f'count(*) FILTER (WHERE {nulls}) AS n_null FROM "{view}"').row(0, named=True)
    assert row["n_null"] == 0 and row["n_keys"] == row["n"], (view, row)


# --- migrations by name, the final schema pinned ------------------------------------------------
def test_a_store_with_another_migration_under_a_known_number_is_refused(tmp_path):
    path = tmp_path / "other.duckdb"
    new_store(path)
    last = migrations.known_migrations()[-1]
    con = duckdb.connect(str(path))
    con.execute("UPDATE schema_migrations SET name = 'someone_elses' WHERE version = ?", [last.version])
    con.close()
    Store(path).forget_prepared()  # as a fresh process would
    with pytest.raises(SchemaMismatchError, match=rf"migration {last.version:04d}_someone_elses.*"
                                                 rf"is '{last.name}'"):
        Store(path).query("SELECT 1")
    con = duckdb.connect(str(path), read_only=True)
    assert con.execute("SELECT name FROM schema_migrations WHERE version = ?",
                       [last.version]).fetchall() == [("someone_elses",)]   # not changed
    con.close()


def test_final_schema_is_pinned(store):
    got = dict(store.query("""
        SELECT table_name AS t, list(column_name || ' ' || data_type ORDER BY ordinal_position) AS c
        FROM information_schema.columns
        WHERE table_schema = 'main' AND table_name IN (
            SELECT table_name FROM information_schema.tables
            WHERE table_type = 'BASE TABLE' AND table_schema = 'main')
        GROUP BY table_name""").iter_rows())
    assert got == SCHEMA
    assert [m.name for m in migrations.known_migrations()] == [
        r[0] for r in store.query("SELECT name FROM schema_migrations ORDER BY version").iter_rows()]
