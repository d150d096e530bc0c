"""The OQMD API client against a loopback server: paging, HTTP 500, stalls, outages, resume."""

from __future__ import annotations

import json
import os

import polars as pl
import pytest

from matstore.curation import Curation
from matstore.ingest import ingest
from matstore.sources import open_source
from matstore.sources.oqmd import FetchError
from matstore.store import Store

from oqmd_server import FakeOqmd, rows_from_csv
from _store_data import new_store

N = 640
PAGE = 64
CUR = Curation.matgan(("He", "Kr"))


@pytest.fixture(scope="module")
def api_rows(read_formulas):
    df = read_formulas("oqmd/formation_enthalpy_train.csv").head(N)
    # the same compositions again with other energies, so "lowest per composition" has work
    again = df.head(40).with_columns(pl.col("target") + pl.Series([0.3, -0.3] * 20))
    return rows_from_csv(pl.concat([df, again]), bad_every=97)


def oqmd(server, **kw):
    opts = dict(api_url=server.url, page_size=PAGE, timeout=0.5, retries=3, backoff=0.01)
    opts.update(kw)
    return open_source("oqmd", **opts)


def snapshot(store: Store) -> dict:
    return {
        "materials": store.query("SELECT material_id, source, external_id, composition_id, raw_formula "
                                 "FROM materials ORDER BY material_id"),
        "properties": store.query("SELECT material_id, name, value, unit FROM properties "
                                  "ORDER BY material_id, name"),
        "compositions": store.query("SELECT * FROM compositions ORDER BY composition_id"),
        "rejects": store.query("SELECT row_ref, reason FROM rejects ORDER BY row_ref"),
        "counts": store.query("SELECT rows_seen, rows_kept, rows_rejected, rows_curated, rows_duplicate, "
                              "curation::VARCHAR AS curation, status FROM ingests"),
    }


def assert_same(a: dict, b: dict) -> None:
    for k in a:
        assert a[k].equals(b[k]), k


def test_api_pages_500_and_stall(tmp_path, api_rows):
    store = new_store(tmp_path / "s.duckdb")
    with FakeOqmd(api_rows, stall_seconds=3) as server:
        server.faults = {2 * PAGE: ["500"], 5 * PAGE: ["stall"], 7 * PAGE: ["500", "500"]}
        res = ingest(store, oqmd(server))
        answered = list(server.requests)
    assert res.status == "done"
    # every fault was hit once and then retried to success
    assert (2 * PAGE, "500") in answered and (5 * PAGE, "stall") in answered
    assert answered.count((7 * PAGE, "500")) == 2
    pages = -(-len(api_rows) // PAGE)
    assert sum(1 for _, what in answered if what == "ok") == pages
    # counts against the served rows
    bad = [r for r in api_rows if r["name"].startswith("Qq")]
    assert res.rows_seen == len(api_rows)
    assert res.rows_rejected == len(bad) > 0
    assert res.rows_kept == len(api_rows) - len(bad)
    got = store.query("SELECT m.external_id, p.value FROM materials m JOIN properties p USING (material_id) "
                      "WHERE p.name = 'formation_energy_per_atom'")
    want = {str(r["entry_id"]): r["delta_e"] for r in api_rows if not r["name"].startswith("Qq")}
    assert dict(zip(got["external_id"], got["value"])) == pytest.approx(want)
    rejects = store.query("SELECT row_ref, raw, reason FROM rejects")
    assert set(rejects["row_ref"]) == {str(r["entry_id"]) for r in bad}
    assert all("unknown element 'Qq'" in r for r in rejects["reason"])
    assert json.loads(rejects["raw"][0])["name"].startswith("Qq")


@pytest.mark.slow
def test_interrupt_then_resume_equals_uninterrupted(tmp_path, api_rows):
    with FakeOqmd(api_rows) as server:
        whole = new_store(tmp_path / "whole.duckdb")
        ref = ingest(whole, oqmd(server), CUR)
        assert ref.status == "done" and ref.curation["lowest_fe"] > 0

        cut = new_store(tmp_path / "cut.duckdb")
        pages = []

        def stop_after_three(res):
            pages.append(res.rows_seen)
            if len(pages) == 3:
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            ingest(cut, oqmd(server), CUR, on_chunk=stop_after_three)
        row = cut.query("SELECT status, cursor, rows_seen FROM ingests")
        assert row["status"][0] == "interrupted" and row["rows_seen"][0] == 3 * PAGE
        assert json.loads(row["cursor"][0])["rows"] == 3 * PAGE
        assert cut.query("SELECT count(*) AS n FROM materials")["n"][0] <= 3 * PAGE

        server.requests.clear()
        again = ingest(cut, oqmd(server), CUR)
        assert again.resumed and again.ingest_id == 1 and again.status == "done"
        # it asked for the pages after the last committed one, not the first ones again
        assert min(off for off, _ in server.requests) == 3 * PAGE
    assert_same(snapshot(whole), snapshot(cut))


@pytest.mark.slow
def test_outage_fails_then_resumes(tmp_path, api_rows):
    store = new_store(tmp_path / "s.duckdb")
    with FakeOqmd(api_rows) as server:
        server.down_from = 4 * PAGE
        with pytest.raises(FetchError, match="HTTP 503"):
            ingest(store, oqmd(server, retries=2))
        row = store.query("SELECT status, rows_seen FROM ingests")
        assert row["status"][0] == "failed" and row["rows_seen"][0] == 4 * PAGE
        server.down_from = None
        res = ingest(store, oqmd(server, retries=2))
        assert res.resumed and res.status == "done" and res.rows_seen == len(api_rows)
        ref = new_store(tmp_path / "ref.duckdb")
        ingest(ref, oqmd(server, retries=2))
    assert_same(snapshot(ref), snapshot(store))


def test_limit_and_rerun_adds_nothing(tmp_path, api_rows):
    store = new_store(tmp_path / "s.duckdb")
    with FakeOqmd(api_rows) as server:
        res = ingest(store, oqmd(server, limit=150))
        assert res.rows_seen == 150
        assert all(o < 150 for o, _ in server.requests)
        again = ingest(store, oqmd(server, limit=150))
    assert again.rows_kept == 0 and again.rows_duplicate == res.rows_kept
    assert store.query("SELECT count(*) AS n FROM materials")["n"][0] == res.rows_kept


def test_downloaded_pages_match_api(tmp_path, api_rows):
    """--file with saved API pages stores exactly what the API ingest stores."""
    with FakeOqmd(api_rows) as server:
        pages = [server.page({"limit": [str(PAGE)], "offset": [str(o)]}) for o in range(0, len(api_rows), PAGE)]
        api = new_store(tmp_path / "api.duckdb")
        ingest(api, oqmd(server), CUR)
    path = tmp_path / "pages.json"
    path.write_text(json.dumps(pages))
    local = new_store(tmp_path / "file.duckdb")
    ingest(local, open_source("oqmd", file=str(path)), CUR)
    a, b = snapshot(api), snapshot(local)
    for k in ("materials", "properties", "compositions", "rejects"):
        assert a[k].equals(b[k]), k


def test_not_found_is_not_retried(tmp_path, api_rows):
    store = new_store(tmp_path / "s.duckdb")
    with FakeOqmd(api_rows) as server:
        with pytest.raises(FetchError, match="HTTP 404"):
            ingest(store, open_source("oqmd", api_url=server.url + "/nope", timeout=1, retries=3, backoff=0.01))
        assert len(server.requests) == 0


@pytest.mark.slow
def test_killed_process_is_resumed(tmp_path, api_rows):
    """An ingest left 'running' by a process that no longer exists is picked up where it stopped."""
    import subprocess

    dead = subprocess.Popen(["true"])
    dead.wait()
    store = new_store(tmp_path / "s.duckdb")
    with FakeOqmd(api_rows) as server:
        def stop(res):
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            ingest(store, oqmd(server), on_chunk=stop)
        with store.transaction() as con:  # what `kill -9` leaves behind
            con.execute("UPDATE ingests SET status = 'running', pid = ?", [dead.pid])
        res = ingest(store, oqmd(server))
        assert res.resumed and res.ingest_id == 1 and res.rows_seen == len(api_rows)
        with store.transaction() as con:  # a live writer's ingest is never taken over
            con.execute("UPDATE ingests SET status = 'running', pid = ?, cursor = '{}'", [os.getpid()])
        other = ingest(store, oqmd(server))
        assert not other.resumed and other.ingest_id == 2
