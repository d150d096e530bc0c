"""Issue 22, finding 2 (and 8's /dev/full, afile/sub): output options never overwrite the store,
its side files or a user's file; every path is checked in matstore.outpaths."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from matstore.cli import main
from matstore.store import Store

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # tests/_runner_helpers.py
from _runner_helpers import copy_store, mp_template  # noqa: E402


@pytest.fixture(scope="module")
def small_template(tmp_path_factory, read_formulas) -> Path:
    """100 real MP compositions with formation energies (made once; tests get copies)."""
    return mp_template(tmp_path_factory, read_formulas, 100)


@pytest.fixture
def small(small_template, tmp_path) -> Store:
    return copy_store(small_template, tmp_path / "s.duckdb")


def _sha(p) -> str:
    return hashlib.sha256(Path(p).read_bytes()).hexdigest()


def _refused(args, cwd=None) -> str:
    old = os.getcwd()
    if cwd:
        os.chdir(cwd)
    try:
        r = CliRunner().invoke(main, args)
    finally:
        os.chdir(old)
    assert r.exit_code == 1, (args, r.output, r.exception)
    assert len(r.output.strip().splitlines()) == 1 and "Traceback" not in r.output, r.output
    return r.output


def test_outputs_never_replace_the_store_or_its_side_files(small, tmp_path):
    db = small.path
    before = _sha(db)
    link = tmp_path / "link.parquet"
    link.symlink_to(db)
    cases = [
        ["--read-only", "query", "SELECT 1 AS x", "--parquet", db, "--db", db],
        ["query", "SELECT 1 AS x", "--parquet", db, "--overwrite", "--db", db],
        ["screen", "semiconductors", "--parquet", db, "--db", db],
        ["models", "export", db, "--db", db],
        ["query", "SELECT 1 AS x", "--parquet", str(link), "--overwrite", "--db", db],
        ["query", "SELECT 1 AS x", "--parquet", "./sub/../s.duckdb", "--overwrite", "--db", "s.duckdb"],
        ["export", "parquet", db + ".wal", "--db", db],
        ["query", "SELECT 1 AS x", "--parquet", db + ".tmp/x.parquet", "--db", db],
    ]
    (tmp_path / "sub").mkdir()
    for args in cases:
        text = _refused(args, cwd=tmp_path)
        assert "store" in text, (args, text)
    os.environ.pop("MATSTORE_READ_ONLY", None)
    assert _sha(db) == before and not Path(db + ".wal").is_dir()
    assert CliRunner().invoke(main, ["info", "--db", db]).exit_code == 0


def test_existing_files_and_folders_are_replaced_only_with_overwrite(small, tmp_path):
    thesis = tmp_path / "thesis.tex"
    thesis.write_text("chapter 1")
    text = _refused(["query", "SELECT 1 AS x", "--parquet", str(thesis), "--db", small.path])
    assert "--overwrite" in text and thesis.read_text() == "chapter 1"
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("my page")
    text = _refused(["report", "--out", str(site), "--db", small.path])
    assert "--overwrite" in text and (site / "index.html").read_text() == "my page"
    r = CliRunner().invoke(main, ["query", "SELECT 1 AS x", "--parquet", str(thesis), "--overwrite",
                                  "--db", small.path])
    assert r.exit_code == 0 and thesis.read_bytes()[:4] == b"PAR1"


def test_unwritable_output_paths_are_one_line(small, tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    _refused(["export", "parquet", str(afile / "sub"), "--db", small.path])
    _refused(["query", "SELECT 1 AS x", "--parquet", str(afile / "sub.parquet"), "--db", small.path])
    if Path("/dev/full").exists():
        _refused(["query", "SELECT 1 AS x", "--parquet", "/dev/full", "--overwrite", "--db", small.path])
