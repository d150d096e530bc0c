"""Issue 10, findings 4 and 11: export --overwrite removes only a previous export; resume with
stages equals a clean run exactly; bad flags (device, counts, tolerance) and a non-store file
given to init are clear errors that change nothing."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from matstore.export import ExportError, export_parquet
from matstore.store import Store

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # tests/_runner_helpers.py
from _runner_helpers import load_compositions, mp_formulas  # noqa: E402


def _cli(*args, cwd=None, env=None, timeout=180):
    return subprocess.run([sys.executable, "-m", "matstore.cli", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=cwd, env=env)


def _said(r) -> str:
    """stderr with rich's line wrapping undone."""
    return " ".join(r.stderr.split())


def _sha(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture
def small(tmp_path, read_formulas) -> Store:
    """A store of 300 real MP compositions with formation energies, alone in its folder."""
    d = tmp_path / "study"
    d.mkdir()
    store = Store.init(d / "s.duckdb")
    formulas, values = mp_formulas(read_formulas, 300)
    load_compositions(store, formulas, "mp", values)
    return store


# --- finding 4: export --overwrite --------------------------------------------------------------
def test_export_overwrite_into_the_store_folder_is_refused_and_removes_nothing(small):
    folder = Path(small.path).parent
    (folder / "notes.txt").write_text("unrelated")
    before = _sha(small.path)
    r = _cli("export", "parquet", ".", "--overwrite", "--db", "s.duckdb", cwd=folder)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "holds the store" in _said(r)
    assert _sha(small.path) == before and (folder / "notes.txt").read_text() == "unrelated"
    assert small.query("SELECT count(*) n FROM compositions")["n"][0] > 250
    # an ancestor of the store's folder too, and without --overwrite as well
    for out in (folder.parent, folder):
        with pytest.raises(ExportError, match="holds the store"):
            export_parquet(small, out, overwrite=True)
    assert _sha(small.path) == before
    assert not list(folder.parent.glob(".*partial*"))


def test_export_overwrite_refuses_a_folder_that_is_not_an_export(small, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("chapter 1")
    (out / "compositions").mkdir()
    (out / "compositions" / "data.parquet").write_bytes(b"not ours")
    with pytest.raises(ExportError, match="not a matstore export"):
        export_parquet(small, out, overwrite=True)
    (out / "manifest.json").write_text(json.dumps({"format": "something-else", "tables": {}}))
    with pytest.raises(ExportError, match="not a matstore export"):
        export_parquet(small, out, overwrite=True)
    assert (out / "thesis.tex").read_text() == "chapter 1"
    assert (out / "compositions" / "data.parquet").read_bytes() == b"not ours"
    r = _cli("export", "parquet", str(out), "--overwrite", "--db", small.path)
    assert r.returncode == 1 and "Traceback" not in r.stderr and "not a matstore export" in _said(r)
    assert sorted(p.name for p in out.iterdir()) == ["compositions", "manifest.json", "thesis.tex"]


def test_export_overwrite_replaces_only_the_previous_exports_tables(small, tmp_path):
    out = tmp_path / "exp"
    export_parquet(small, out, tables=["compositions", "materials"])
    (out / "README.md").write_text("what this export is")
    with small.transaction() as con:
        con.execute("DELETE FROM materials WHERE material_id IN (SELECT material_id FROM materials LIMIT 10)")
    summary = export_parquet(small, out, overwrite=True, tables=["materials", "properties"])
    assert (out / "README.md").read_text() == "what this export is"
    # compositions belonged to the previous export: replaced by the new export's tables
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "manifest.json", "materials", "properties"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["tables"]) == {"materials", "properties"}
    n = small.query("SELECT count(*) n FROM materials")["n"][0]
    assert summary.filter(summary["table"] == "materials")["rows"][0] == n == manifest["tables"]["materials"]["rows"]
    import polars as pl

    assert pl.read_parquet(out / "materials" / "data.parquet").height == n
    assert not list(tmp_path.glob(".exp.*"))


def test_export_overwrite_refuses_a_forged_or_edited_manifest(small, tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "data.parquet").write_bytes(b"elsewhere")
    out = tmp_path / "exp"
    export_parquet(small, out, tables=["compositions"])
    manifest = json.loads((out / "manifest.json").read_text())
    forged = {**manifest, "tables": {"../victim": {"rows": 0}}}
    (out / "manifest.json").write_text(json.dumps(forged))
    with pytest.raises(ExportError, match="not plain names"):
        export_parquet(small, out, overwrite=True)
    assert (victim / "data.parquet").read_bytes() == b"elsewhere"
    (out / "manifest.json").write_text(json.dumps(manifest))
    (out / "compositions" / "my_notes.txt").write_text("kept")   # a user's file in a table folder
    with pytest.raises(ExportError, match="my_notes.txt was not written by a matstore export"):
        export_parquet(small, out, overwrite=True)
    assert (out / "compositions" / "my_notes.txt").read_text() == "kept"
    (out / "compositions" / "my_notes.txt").unlink()
    (out / "runs").mkdir()                     # a folder the previous export did not write
    (out / "runs" / "x.txt").write_text("mine")
    with pytest.raises(ExportError, match="not part of its previous export"):
        export_parquet(small, out, overwrite=True, tables=["compositions", "runs"])
    assert (out / "runs" / "x.txt").read_text() == "mine" and (out / "compositions").is_dir()
