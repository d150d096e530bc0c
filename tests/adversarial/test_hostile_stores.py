"""Issue 22, "Done when": a generated hostile store. From a store of real rows, >= 200 random
catalogue mutations (see _hostile_stores.py); on each, every reading command either works or
refuses with one line; no file outside the store is read (a canary's text never shows) or
written; no extension is installed (HOME is an empty folder and stays so); memory stays under
2 GiB (RLIMIT_DATA in the subprocess, and its peak RSS)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # tests/_runner_helpers.py
from _runner_helpers import load_compositions, mp_formulas  # noqa: E402
from _store_data import new_store

HERE = Path(__file__).resolve().parent
N_STORES = 220


@pytest.mark.slow
def test_every_reading_command_holds_on_generated_hostile_stores(tmp_path, read_formulas):
    (tmp_path / "template").mkdir()
    template = new_store(tmp_path / "template" / "t.duckdb")
    formulas, values = mp_formulas(read_formulas, 120)
    load_compositions(template, formulas, "mp", values)
    home = tmp_path / "home"
    home.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "HOME": str(home), "PYTHONPATH": str(HERE.parents[1])}
    r = subprocess.run([sys.executable, str(HERE / "_hostile_stores.py"), template.path, str(work),
                        str(N_STORES), "22"], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads(r.stdout.strip().splitlines()[-1])
    assert report["failures"] == [], json.dumps(report["failures"][:10], indent=1)
    assert report["stores"] >= 200 and report["mutations"] >= 200, report
    assert len(report["kinds"]) >= 12, report["kinds"]
    assert report["ok"] > 0 and report["refused"] > 0, report
    assert report["maxrss_mb"] < 2048, report["maxrss_mb"]
    assert list(home.iterdir()) == [], list(home.rglob("*"))
