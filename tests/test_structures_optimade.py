"""OPTIMADE ingest against the `optimade` package's reference server on 127.0.0.1 (its bundled
test structures, mongomock backend): count and a structure compared, paging, resume after a
kill -9, server errors and timeouts as one clear message."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from matstore.ingest import run
from matstore.sources import SourceError
from matstore.store import Store
from matstore.structures import read_structures, structures_frame
from _store_data import new_store

pytestmark = pytest.mark.slow   # the server takes seconds to start
KEEP = dict(min_distance=0.0, allow_partial=True)   # the test data are toy cells: keep what can be kept


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    cfg = tmp_path_factory.mktemp("optimade") / "config.json"
    # the bundled test data name their ids task_id: the server's documented alias
    cfg.write_text(json.dumps({"aliases": {"structures": {"id": "task_id"}}, "insert_test_data": True,
                               "database_backend": "mongomock"}))
    port = _free_port()
    env = {**os.environ, "OPTIMADE_CONFIG_FILE": str(cfg)}
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "optimade.server.main:app", "--host", "127.0.0.1",
                             "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            try:
                if requests.get(f"{url}/v1/info", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if proc.poll() is not None:
                pytest.skip("the optimade reference server did not start")
            time.sleep(0.25)
        else:
            pytest.skip("the optimade reference server did not answer in 60 s")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _server_entries(url):
    doc = requests.get(f"{url}/v1/structures?page_limit=100", timeout=10).json()
    return {d["id"]: d for d in doc["data"]}, doc["meta"]["data_returned"]


def test_stores_what_the_server_holds(server, tmp_path):
    from optimade.adapters import Structure as OptimadeStructure
    from pymatgen.analysis.structure_matcher import StructureMatcher

    entries, total = _server_entries(server)
    store = new_store(tmp_path / "o.duckdb")
    r = run(store, "optimade", api_url=server, page_size=4, **KEEP)
    assert r.rows_seen == total == len(entries) and r.rows_kept + r.rows_rejected == total
    assert r.rows_kept >= 1
    kept = store.query("SELECT s.structure_id, m.external_id FROM structures s JOIN materials m "
                       "USING (material_id) ORDER BY m.external_id")
    rejected = store.query("SELECT row_ref, reason FROM rejects")
    assert sorted(kept["external_id"].to_list() + rejected["row_ref"].to_list()) == sorted(entries)
    ext, sid = kept["external_id"][0], kept["structure_id"][0]
    mine = read_structures(store, [sid])[0]
    theirs = OptimadeStructure(entries[ext]).as_pymatgen
    assert StructureMatcher(stol=0.5, angle_tol=10, ltol=0.3).fit(mine, theirs)
    assert abs(mine.volume - theirs.volume) < 1e-6 and mine.composition.reduced_formula == theirs.composition.reduced_formula
    # a page size of 100 (one page) stores the same structures: paging loses and repeats nothing
    other = new_store(tmp_path / "one.duckdb")
    run(other, "optimade", api_url=server, page_size=100, **KEEP)
    assert sorted(structures_frame(other)["structure_id"]) == sorted(structures_frame(store)["structure_id"])
    # again: nothing new
    again = run(store, "optimade", api_url=server, page_size=4, **KEEP)
    assert again.rows_kept == 0 and again.rows_duplicate + again.rows_rejected == total


KILLER = """
import os, signal, sys
from matstore.ingest import ingest
from matstore.sources import open_source
from matstore.store import Store
src = open_source("optimade", api_url=sys.argv[2], page_size=3, min_distance=0.0, allow_partial=True)
def die(res):
    if res.rows_seen >= 6:      # two pages committed
        os.kill(os.getpid(), signal.SIGKILL)
ingest(Store(sys.argv[1]), src, on_chunk=die)
"""


def test_resumes_after_kill_9(server, tmp_path):
    _, total = _server_entries(server)
    path = tmp_path / "k.duckdb"
    new_store(path)
    repo = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([repo] + sys.path)}
    p = subprocess.run([sys.executable, "-c", KILLER, str(path), server], env=env, timeout=120)
    assert p.returncode == -signal.SIGKILL
    store = Store(path)
    store.forget_prepared()
    half = store.query("SELECT rows_seen, status FROM ingests").row(0)
    assert half == (6, "running")
    r = run(store, "optimade", api_url=server, page_size=3, **KEEP)
    assert r.resumed and r.ingest_id == 1 and r.rows_seen == total
    full = new_store(tmp_path / "full.duckdb")
    run(full, "optimade", api_url=server, page_size=3, **KEEP)
    assert sorted(structures_frame(store)["structure_id"]) == sorted(structures_frame(full)["structure_id"])
    assert store.query("SELECT count(*) AS n FROM rejects")["n"][0] == full.query("SELECT count(*) AS n FROM rejects")["n"][0]


def test_server_errors_and_timeouts_are_one_clear_message(server, tmp_path):
    store = new_store(tmp_path / "e.duckdb")
    with pytest.raises(SourceError, match=r"^OPTIMADE .*400.*Bad Request: Unable to parse filter"):
        run(store, "optimade", api_url=server, filter="nelements >< 3", retries=0)
    closed = _free_port()
    with pytest.raises(SourceError, match=rf"^OPTIMADE http://127.0.0.1:{closed}/v1/structures.*ConnectionError"):
        run(store, "optimade", api_url=f"http://127.0.0.1:{closed}", retries=0, timeout=2)
    with socket.socket() as silent:            # accepts, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        port = silent.getsockname()[1]
        t = time.monotonic()
        with pytest.raises(SourceError, match=r"^OPTIMADE .*(Timeout|timed out)"):
            run(store, "optimade", api_url=f"http://127.0.0.1:{port}", retries=1, timeout=1)
        assert time.monotonic() - t < 20
    for e in store.query("SELECT status FROM ingests")["status"]:
        assert e == "failed"
    with pytest.raises(SourceError, match="expected an http"):
        run(store, "optimade", api_url="file:///etc/passwd")
