"""`matstore info` counts every table of the schema, read from the store file itself."""

from __future__ import annotations

import polars as pl

from matstore import migrations
from matstore.info import store_info
from matstore.ingest import ingest
from matstore.merge import expected_schema
from matstore.sources import open_source


def test_info_lists_every_table_the_migrations_build_with_its_row_count(store, read_formulas, tmp_path):
    path = tmp_path / "fe.csv"
    read_formulas("mp/e_form.csv").head(60).write_csv(path)
    res = ingest(store, open_source("csv", file=str(path), props=["formation_energy_per_atom=target"]))
    assert res.rows_kept > 0
    with store.transaction() as con:
        con.execute("INSERT INTO composition_sets (set_name, composition_id, created_at) "
                    "SELECT 'probe', composition_id, now() FROM compositions LIMIT 3")

    info = store_info(store)
    counts = dict(info.table_counts.select("table", "rows").iter_rows())
    # the tables named by the schema our migrations build, not a hand list (once left out
    # composition_sets, curated, sources, stability, validity_checkers)
    assert set(counts) == set(expected_schema())
    for t in ("composition_sets", "curated", "sources", "stability", "validity_checkers"):
        assert t in counts, t
    for t, n in counts.items():
        assert n == store.query(f'SELECT count(*) AS n FROM "{t}"')["n"][0], t
    assert counts["composition_sets"] == 3
    assert counts["materials"] == res.rows_kept
    assert info.schema_version == info.code_schema_version == migrations.latest_version()
    assert info.ingests.height == 1 and info.ingests["status"].to_list() == ["done"]
    assert isinstance(info.source_counts, pl.DataFrame) and info.source_counts["materials"].sum() == res.rows_kept
