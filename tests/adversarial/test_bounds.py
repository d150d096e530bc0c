"""Issue 22, findings 5 and 8 (hyperparameter tracebacks): resources are bounded before they are
allocated; each refusal is one line. Memory is measured in a subprocess (ru_maxrss)."""

from __future__ import annotations

import hashlib
import io
import json
import resource
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import duckdb
import polars as pl
import pytest
from click.testing import CliRunner

from matstore.bounds import BoundsError, check_value, check_weights_blob
from matstore.cli import main
from matstore.store import Store

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # tests/_runner_helpers.py
from _runner_helpers import copy_store, mp_template  # noqa: E402
from _store_data import new_store

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "matstore" / "pretrained" / "oqmd-attn-fe.parquet"


@pytest.fixture(scope="module")
def small_template(tmp_path_factory, read_formulas) -> Path:
    """100 real MP compositions with formation energies (made once; tests get copies)."""
    return mp_template(tmp_path_factory, read_formulas, 100)


@pytest.fixture
def small(small_template, tmp_path) -> Store:
    return copy_store(small_template, tmp_path / "s.duckdb")


def _bomb(declared: int) -> bytes:
    """A torch-like zip whose one data entry inflates to `declared` zero bytes (~1000x smaller)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        with z.open("archive/data/0", "w", force_zip64=True) as f:
            chunk = bytes(1 << 20)
            for _ in range(declared >> 20):
                f.write(chunk)
        z.writestr("archive/data.pkl", b"")
    return buf.getvalue()


def _one_line(r) -> str:
    assert r.exit_code == 1, (r.output, r.exception)
    assert len(r.output.strip().splitlines()) == 1 and "Traceback" not in r.output, r.output
    return r.output


def _peak_mb(code: str) -> tuple[int, str]:
    """Run code in a fresh interpreter; (its peak RSS in MB, its output)."""
    wrapper = code + "\nimport resource; print('PEAK', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)"
    r = subprocess.run([sys.executable, "-c", wrapper], capture_output=True, text=True, timeout=300,
                       cwd=REPO)
    peak = [int(x.split()[1]) for x in r.stdout.splitlines() if x.startswith("PEAK")]
    assert peak, r.stdout + r.stderr
    return peak[0], r.stdout + r.stderr


@pytest.mark.slow
def test_a_weights_blob_declaring_a_huge_tensor_is_refused_before_loading(tmp_path):
    """Finding 5: a small export file whose weights declare 2^29 floats reached 2.7 GB."""
    df = pl.read_parquet(SHIPPED)
    blob = _bomb(1 << 30)                     # declares 1 GiB
    assert len(blob) < 5_000_000
    df = df.with_columns(pl.Series("weights", [blob], pl.Binary),
                         pl.lit(hashlib.sha256(blob).hexdigest()).alias("weights_sha256"))
    bomb = tmp_path / "bomb.parquet"
    df.write_parquet(bomb)

    def import_peak(parquet: Path, db: Path) -> tuple[int, str]:
        return _peak_mb(textwrap.dedent(f"""
            from click.testing import CliRunner
            from matstore.cli import main
            from matstore.store import Store
            Store.init({str(db)!r})
            r = CliRunner().invoke(main, ["models", "import", {str(parquet)!r}, "--db", {str(db)!r}])
            print("EXIT", r.exit_code, r.output.strip())
        """))

    # The same command on the genuine file is the baseline: the interpreter, torch and the
    # imports alone take 600-900 MB depending on the machine, so only the difference is bounded.
    baseline, ok = import_peak(SHIPPED, tmp_path / "ok.duckdb")
    assert "EXIT 0" in ok, ok
    peak, out = import_peak(bomb, tmp_path / "s.duckdb")
    assert "EXIT 1" in out and "declare" in out, out
    assert peak - baseline < 300, (peak, baseline)   # loading it would add 1 GiB
    with pytest.raises(BoundsError, match="declare"):
        check_weights_blob(blob, 1000, "m@1")


@pytest.mark.slow
def test_a_config_asking_for_a_huge_model_is_refused(tmp_path):
    """Finding 5: a tampered config (d_ff = 1e8) asked for 25.6 GB (raw traceback)."""
    df = pl.read_parquet(SHIPPED)
    cfg = json.loads(df["config"][0])
    cfg["d_ff"] = 100_000_000
    df = df.with_columns(pl.lit(json.dumps(cfg)).alias("config"))
    bomb = tmp_path / "cfg.parquet"
    df.write_parquet(bomb)
    new_store(tmp_path / "s.duckdb")
    r = CliRunner().invoke(main, ["models", "import", str(bomb), "--db", str(tmp_path / "s.duckdb")])
    assert "parameters, more than" in _one_line(r)


def test_a_huge_element_list_is_refused_on_read(small):
    """Finding 5: one composition with a 3,000,000-entry element list made validate ask for 15 GiB."""
    con = duckdb.connect(small.path)
    con.execute("INSERT INTO compositions (composition_id, formula, elements, counts, n_elements, n_atoms) "
                "SELECT 42, 'X', list('H'), list(1), 3000000, 3000000 FROM range(3000000)")
    con.close()
    for args in (["validate", "--db", small.path], ["featurize", "--featurizer", "magpie", "--db", small.path],
                 ["info", "--db", small.path]):
        text = _one_line(CliRunner().invoke(main, args))
        assert "more than 32 elements" in text and len(text) < 600
    # the user's own SQL can still see and remove it
    assert CliRunner().invoke(main, ["query", "--write", "--db", small.path,
                                     "DELETE FROM compositions WHERE composition_id = 42"]).exit_code == 0
    assert CliRunner().invoke(main, ["validate", "--db", small.path]).exit_code == 0


def test_generate_n_beyond_the_bound_is_refused_before_a_run_is_recorded(small):
    r = CliRunner().invoke(main, ["generate", "--db", small.path, "--model", "gan-mp-small",
                                  "-n", str(10**18)])
    assert "samples of one run" in _one_line(r)
    assert small.query("SELECT count(*) FROM runs")[0, 0] == 0


@pytest.mark.parametrize("hyper", ["n_estimators=1e8", "n_estimators=0", "n_estimators=-1",
                                   "n_estimators=1.5", "max_depth=-5", "n_estimators=nan"])
def test_bad_hyperparameters_are_one_line(small, hyper):
    r = CliRunner().invoke(main, ["train", "--model", "rf-bg", "--db", small.path, "--hyper", hyper])
    assert f"--hyper {hyper.split('=')[0]}" in _one_line(r)


@pytest.mark.parametrize("flag", [["--lr", "nan"], ["--lr", "-1"]])
def test_bad_learning_rates_are_one_line(small, flag):
    r = CliRunner().invoke(main, ["train", "--model", "cnn-fe", "--db", small.path, *flag])
    _one_line(r)


def test_check_value_keeps_types_and_ranges():
    assert check_value("epochs", 10.0, 1000) == 10
    assert check_value("lr", 1e-2, 1e-3) == 1e-2
    assert check_value("norm", "batch", "layer") == "batch"
    with pytest.raises(BoundsError):
        check_value("lr", float("inf"), 1e-3)
    with pytest.raises(BoundsError):
        check_value("flag", 1, True)


def test_subprocess_memory_helper_measures(tmp_path):
    peak, _ = _peak_mb("x = bytearray(300 * 1024 * 1024)")
    assert peak >= 300
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss > 0


def test_a_refusal_quoting_a_huge_formula_is_cut(small, tmp_path):
    """Finding 5: merge refused a 50 MB formula but printed all of it."""
    other = tmp_path / "o" / "other.duckdb"
    other.parent.mkdir()
    new_store(other)
    con = duckdb.connect(str(other))
    con.execute("INSERT INTO compositions (composition_id, formula, elements, counts, n_elements, n_atoms) "
                "VALUES (7, repeat('H', 900) || repeat('x', 2000000), ['H'], [1], 1, 1)")
    con.close()
    text = _one_line(CliRunner().invoke(main, ["merge", str(other), "--db", small.path]))
    assert len(text) <= 501
