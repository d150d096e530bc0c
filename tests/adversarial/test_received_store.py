"""Issue 10, findings 1, 7, 8 and 11 (merge): a received store or model file is data, never code.

Each test builds the hostile file the issue describes from a store of real rows, and checks that
matstore refuses it with a clear error, runs nothing (no file written, no marker created) and
leaves the receiving store exactly as it was.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import pickle
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import duckdb
import numpy as np
import polars as pl
import pytest

from matstore import compositions as C
from matstore.export import base_tables, checksum
from matstore.merge import COPY_PREFIX, MergeError, merge, remove_stale_copies
from matstore.store import Store
from _store_data import new_store

REPO = Path(__file__).resolve().parents[2]
PAYLOAD = ('reason") SELECT 1, \'r\', \'raw\', \'pwned\'; COPY (SELECT \'x\') TO \'x.txt\'; COMMIT; '
           'DROP TABLE materials; --')


def _ingest(store: Store, csv: Path, prop: str) -> None:
    from matstore.ingest import run

    run(store, "csv", file=str(csv), props=[prop])


@pytest.fixture(scope="module")
def stores(tmp_path_factory, read_formulas):
    """Two collaborators' stores of real rows that share some compositions (Fe2O3 among them)."""
    d = tmp_path_factory.mktemp("received")
    e_form = read_formulas("mp/e_form.csv")
    fe2o3 = e_form.filter(pl.col("formula") == "Fe2O3")
    a_rows = pl.concat([e_form.head(400), fe2o3])
    b_rows = e_form.slice(200, 400)  # 200 formulas in common with A
    a_rows.write_csv(d / "a.csv")
    b_rows.write_csv(d / "b.csv")
    a, b = new_store(d / "A.duckdb"), new_store(d / "B.duckdb")
    _ingest(a, d / "a.csv", "formation_energy_per_atom=target:eV/atom")
    _ingest(b, d / "b.csv", "formation_energy_per_atom=target:eV/atom")
    return a, b


def _copy(src: Store, dst: Path) -> Store:
    shutil.copyfile(src.path, dst)
    return Store(dst)


def _state(store: Store) -> tuple:
    """(file sha256, checksum of every table): what 'unchanged' means."""
    with store.connect() as con:
        tables = {t: checksum(con, f'"{t}"') for t in base_tables(con)}
    return hashlib.sha256(Path(store.path).read_bytes()).hexdigest(), tables


def _tamper(path: Path, *sql: str) -> None:
    con = duckdb.connect(str(path))
    try:
        for s in sql:
            con.execute(s)
    finally:
        con.close()


# --- finding 1: SQL injection through a column name -------------------------------------------

def test_merge_column_name_injection_runs_nothing(stores, tmp_path, monkeypatch):
    a0, b0 = stores
    a = _copy(a0, tmp_path / "a.duckdb")
    other = tmp_path / "other.duckdb"
    shutil.copyfile(b0.path, other)
    quoted = '"' + PAYLOAD.replace('"', '""') + '"'
    _tamper(other, f"ALTER TABLE rejects RENAME COLUMN reason TO {quoted}")
    monkeypatch.chdir(tmp_path)  # where the payload's COPY ... TO 'x.txt' would land
    before = _state(a)
    n_materials = a.query("SELECT count(*) AS n FROM materials")["n"][0]
    with pytest.raises(MergeError, match=r"table 'rejects' has column 'reason\"\) SELECT"):
        merge(a, other)
    assert not (tmp_path / "x.txt").exists(), "the payload's COPY ran"
    assert a.query("SELECT count(*) AS n FROM materials")["n"][0] == n_materials > 0
    assert _state(a) == before
    assert not list(tmp_path.glob(COPY_PREFIX + "*"))


def test_merge_extra_table_or_changed_type_is_refused(stores, tmp_path):
    a0, b0 = stores
    a = _copy(a0, tmp_path / "a.duckdb")
    before = _state(a)
    extra = tmp_path / "extra.duckdb"
    shutil.copyfile(b0.path, extra)
    _tamper(extra, 'CREATE TABLE "x; DROP TABLE materials; --" (a INTEGER)')
    with pytest.raises(MergeError, match=r"has table 'x; DROP TABLE materials; --'"):
        merge(a, extra)
    retyped = tmp_path / "retyped.duckdb"
    shutil.copyfile(b0.path, retyped)
    _tamper(retyped, "ALTER TABLE properties ALTER COLUMN value TYPE VARCHAR")
    with pytest.raises(MergeError, match=r"table 'properties' has columns .*'value', 'VARCHAR'"):
        merge(a, retyped)
    assert _state(a) == before


# --- finding 8: invalid rows ------------------------------------------------------------------

def test_merge_refuses_unknown_element(stores, tmp_path):
    a0, b0 = stores
    a = _copy(a0, tmp_path / "a.duckdb")
    other = tmp_path / "other.duckdb"
    shutil.copyfile(b0.path, other)
    from matstore.ingest import material_ids

    mid = material_ids("csv", ["xx#1"])[0]
    _tamper(other,
            "INSERT INTO compositions VALUES (4242, 'Xx2O3', ['Xx', 'O'], [2, 3], 2, 5)",
            f"INSERT INTO materials VALUES ({mid}, 1, 'csv', 'xx#1', 4242, 'Xx2O3')")
    before = _state(a)
    with pytest.raises(MergeError, match=r"'Xx2O3' \(id 4242\): unknown element 'Xx'"):
        merge(a, other)
    assert _state(a) == before
    assert a.query("SELECT count(*) AS n FROM compositions WHERE formula = 'Xx2O3'")["n"][0] == 0


def test_merge_refuses_shifted_composition_ids(stores, tmp_path):
    """Every id + 1 (consistently across tables): today's merge duplicates the shared formulas."""
    a0, b0 = stores
    a = _copy(a0, tmp_path / "a.duckdb")
    other = tmp_path / "other.duckdb"
    shutil.copyfile(b0.path, other)
    _tamper(other, *(f"UPDATE {t} SET composition_id = composition_id + 1"
                     for t in ("compositions", "materials", "properties")))
    before = _state(a)
    with pytest.raises(MergeError, match=r"composition_id"):
        merge(a, other)
    assert _state(a) == before
    n, distinct = a.query("SELECT count(*) AS n, count(DISTINCT formula) AS d FROM compositions").row(0)
    assert n == distinct


def test_merge_refuses_a_key_collision_with_our_composition(stores, tmp_path):
    """Finding 6's formula under Fe2O3's key: merged, its rows would describe our Fe2O3."""
    a0, b0 = stores
    a = _copy(a0, tmp_path / "a.duckdb")
    fe2o3 = C.parse("Fe2O3")
    assert a.query(f"SELECT count(*) AS n FROM compositions WHERE composition_id = {fe2o3.composition_id}")["n"][0] == 1
    # the issue's formula, beyond today's ingest bounds, written straight into the received file
    counts = [3382697, 567098, 870094, 663213]
    forged = SimpleNamespace(formula="Li3382697Na567098K870094Rb663213", elements=["Li", "Na", "K", "Rb"],
                             counts=counts, n_elements=4, n_atoms=sum(counts))
    other = tmp_path / "other.duckdb"
    shutil.copyfile(b0.path, other)
    from matstore.ingest import material_ids

    mid = material_ids("csv", ["forged#1"])[0]
    con = duckdb.connect(str(other))
    con.execute("DELETE FROM compositions WHERE composition_id = ?", [fe2o3.composition_id])
    con.execute("INSERT INTO compositions VALUES (?, ?, ?, ?, ?, ?)",
                [fe2o3.composition_id, forged.formula, list(forged.elements), list(forged.counts),
                 forged.n_elements, forged.n_atoms])
    con.execute("INSERT INTO materials VALUES (?, 1, 'csv', 'forged#1', ?, ?)",
                [mid, fe2o3.composition_id, forged.formula])
    con.execute("INSERT INTO properties VALUES (?, ?, 'formation_energy_per_atom', -99, 'eV/atom')",
                [mid, fe2o3.composition_id])
    con.close()
    before = _state(a)
    with pytest.raises(MergeError, match=rf"composition_id {fe2o3.composition_id} is .*K870094.* there "
                                         r"but 'Fe2O3' here"):
        merge(a, other)
    assert _state(a) == before


def test_merge_refuses_rows_pointing_at_compositions_it_does_not_have(stores, tmp_path):
    """A material that names our Fe2O3's key without carrying the composition row."""
    a0, b0 = stores
    a = _copy(a0, tmp_path / "a.duckdb")
    other = tmp_path / "other.duckdb"
    shutil.copyfile(b0.path, other)
    from matstore.ingest import material_ids

    mid = material_ids("csv", ["ghost#1"])[0]
    key = C.parse("Fe2O3").composition_id
    _tamper(other, f"DELETE FROM compositions WHERE composition_id = {key}",
            f"INSERT INTO materials VALUES ({mid}, 1, 'csv', 'ghost#1', {key}, 'Fe2O3')",
            f"INSERT INTO properties VALUES ({mid}, {key}, 'formation_energy_per_atom', -99, 'eV/atom')")
    before = _state(a)
    with pytest.raises(MergeError, match=r"rows of materials point at a composition_id that is not"):
        merge(a, other)
    assert _state(a) == before


def test_merge_refuses_forged_material_id_and_infinite_values(stores, tmp_path):
    a0, b0 = stores
    a = _copy(a0, tmp_path / "a.duckdb")
    before = _state(a)
    forged = tmp_path / "forged.duckdb"
    shutil.copyfile(b0.path, forged)
    _tamper(forged, "UPDATE materials SET material_id = material_id + 1 WHERE external_id LIKE '%#3'",
            "UPDATE properties SET material_id = material_id + 1 WHERE material_id IN "
            "(SELECT material_id - 1 FROM materials WHERE external_id LIKE '%#3')")
    with pytest.raises(MergeError, match=r"material_id .* is not .* the id of its source and external id"):
        merge(a, forged)
    inf = tmp_path / "inf.duckdb"
    shutil.copyfile(b0.path, inf)
    _tamper(inf, "UPDATE properties SET value = 'inf'::DOUBLE WHERE material_id = "
                 "(SELECT min(material_id) FROM properties)")
    with pytest.raises(MergeError, match=r"1 rows of properties have a non-finite value"):
        merge(a, inf)
    assert _state(a) == before


def test_a_valid_received_store_still_merges(stores, tmp_path):
    a0, b0 = stores
    a = _copy(a0, tmp_path / "a.duckdb")
    ours = set(a.query("SELECT formula FROM compositions")["formula"])
    theirs = set(b0.query("SELECT formula FROM compositions")["formula"])
    assert ours & theirs and theirs - ours  # shared and new compositions
    r = merge(a, b0.path)
    assert r.total_added > 0
    merged = a.query("SELECT formula FROM compositions")["formula"].to_list()
    assert sorted(merged) == sorted(ours | theirs)  # every formula once
    assert merge(a, b0.path).total_added == 0


# --- finding 7: model weights that run code -----------------------------------------------------

class _Evil:
    """Unpickling this runs a shell command (creates the marker file)."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _rf_store(store: Store, read_formulas) -> None:
    """A real forest (magpie features of real formulas, their DFT formation energies) saved."""
    from matstore import models
    from matstore.compositions import CompositionBatch
    from matstore.features import get
    from matstore.registry import save_model

    df = read_formulas("oqmd/formation_enthalpy_train.csv").head(300)
    batch = CompositionBatch.from_formulas(df["formula"].to_list())
    x = get("magpie").transform(batch)
    rf = models.build("rf", {"n_estimators": 8, "n_jobs": 1}).fit(x, df["target"].to_numpy())
    save_model(store, "rf-fe", "rf", rf, rf.config, {"property": "formation_energy_per_atom",
               "featurizer": "magpie"}, "SELECT 1", len(df), "h", {}, {}, "cpu", 0)


def _set_weights(store_or_path, blob: bytes, where: str = "kind = 'rf'") -> None:
    con = duckdb.connect(str(getattr(store_or_path, "path", store_or_path)))
    con.execute(f"UPDATE model_versions SET weights = ?, weights_sha256 = ? WHERE {where}",
                [blob, hashlib.sha256(blob).hexdigest()])
    con.close()


def test_models_import_of_a_pickle_runs_nothing(store, tmp_path, read_formulas):
    from matstore.registry import ModelError, export_models, import_models, list_models

    _rf_store(store, read_formulas)
    path = tmp_path / "m.parquet"
    export_models(store, path)
    marker = tmp_path / "PWNED"
    for blob in (pickle.dumps(_Evil(marker)), __import__("zlib").compress(pickle.dumps(_Evil(marker)))):
        df = pl.read_parquet(path).with_columns(
            pl.lit(blob).alias("weights"), pl.lit(hashlib.sha256(blob).hexdigest()).alias("weights_sha256"))
        df.write_parquet(tmp_path / "evil.parquet")
        other = new_store(tmp_path / f"o{len(blob)}.duckdb")
        with pytest.raises(ModelError, match=r"rf-fe@1 .*pickled .*not loaded.*--trust"):
            import_models(other, tmp_path / "evil.parquet")
        assert not marker.exists(), "unpickling ran the payload"
        assert list_models(other).height == 0


def test_merge_of_a_pickled_forest_then_predict_runs_nothing(stores, tmp_path, read_formulas):
    from matstore.predict import predict
    from matstore.registry import ModelError, load_model

    a0, b0 = stores
    a = _copy(a0, tmp_path / "a.duckdb")
    theirs = _copy(b0, tmp_path / "theirs.duckdb")
    _rf_store(theirs, read_formulas)
    marker = tmp_path / "PWNED"
    _set_weights(theirs, pickle.dumps(_Evil(marker)))
    before = _state(a)
    with pytest.raises(MergeError, match=r"rf-fe@1 .*pickled scikit-learn forest"):
        merge(a, theirs.path)
    assert _state(a) == before and not marker.exists()
    # a store that already holds such a row (merged before this check): predict refuses it
    with pytest.raises(ModelError, match=r"rf-fe@1 .*pickled"):
        load_model(theirs, "rf-fe")
    with pytest.raises(ModelError, match=r"rf-fe@1 .*pickled"):
        predict(theirs, "rf-fe", progress=False)
    assert not marker.exists()


def test_forest_weights_are_arrays_and_malformed_trees_are_refused(store, read_formulas):
    from matstore.models import forest
    from matstore.registry import ModelError, get_record, load_model

    _rf_store(store, read_formulas)
    w = get_record(store, "rf-fe")["weights"]
    assert w.startswith(forest.MAGIC)
    # the rebuilt forest predicts what sklearn's (sequential) forest predicts, bit for bit
    from matstore.compositions import CompositionBatch
    from matstore.features import get

    batch = CompositionBatch.from_formulas(read_formulas("mp/e_form.csv")["formula"].head(300).to_list())
    loaded = load_model(store, "rf-fe")
    est = loaded.module.estimator.set_params(n_jobs=1)
    assert np.array_equal(loaded.predict(batch), est.predict(get("magpie").transform(batch).reshape(len(batch), -1)))
    np.load(io.BytesIO(w[len(forest.MAGIC):]), allow_pickle=False)  # plain arrays only
    arrays = dict(np.load(io.BytesIO(w[len(forest.MAGIC):]), allow_pickle=False))
    arrays["left_child"] = arrays["left_child"].copy()
    inner = np.flatnonzero(arrays["left_child"] > 0)[0]
    arrays["left_child"][inner] = 10**9  # would walk outside the node array in Cython
    buf = io.BytesIO()
    buf.write(forest.MAGIC)
    np.savez(buf, **arrays)
    _set_weights(store, buf.getvalue())
    with pytest.raises(ModelError, match=r"rf-fe@1 .*malformed"):
        load_model(store, "rf-fe")


def test_legacy_pickled_forest_converts_only_with_trust(store, tmp_path, read_formulas):
    """A forest saved by the older matstore (a joblib pickle) is refused until converted."""
    import joblib

    from matstore.compositions import CompositionBatch
    from matstore.registry import ModelError, convert_forests, load_model

    _rf_store(store, read_formulas)
    loaded = load_model(store, "rf-fe")
    batch = CompositionBatch.from_formulas(read_formulas("mp/e_form.csv")["formula"].head(200).to_list())
    want = loaded.predict(batch)
    buf = io.BytesIO()
    joblib.dump(loaded.module.estimator, buf, compress=3)  # exactly the old serialize()
    _set_weights(store, buf.getvalue())
    with pytest.raises(ModelError, match=r"convert it with `matstore models convert rf-fe@1 --trust`"):
        load_model(store, "rf-fe")
    with pytest.raises(ModelError, match="trust"):
        convert_forests(store)
    from click.testing import CliRunner

    from matstore.cli import main

    res = CliRunner().invoke(main, ["models", "convert", "rf-fe", "--db", store.path])
    assert res.exit_code == 1 and "trust" in res.output and "Traceback" not in res.output, res.output
    res = CliRunner().invoke(main, ["models", "convert", "rf-fe", "--trust", "--db", store.path])
    assert res.exit_code == 0 and "converted rf-fe@1" in res.output, res.output
    assert convert_forests(store, trust=True) == []  # nothing pickled is left
    assert np.array_equal(load_model(store, "rf-fe").predict(batch), want)
    # even with trust, the restricted unpickler refuses a pickle that names os.system
    marker = tmp_path / "PWNED"
    _set_weights(store, __import__("zlib").compress(pickle.dumps(_Evil(marker))))
    with pytest.raises(ModelError, match=r"posix.system is not allowed"):
        convert_forests(store, trust=True)
    assert not marker.exists()


def test_package_never_deserialises_unsafely():
    """torch.load only with weights_only=True; no pickle/joblib loads; np.load without pickles."""
    bad = []
    for p in (REPO / "matstore").rglob("*.py"):
        for i, line in enumerate(p.read_text().splitlines(), 1):
            code = line.split("#")[0]
            if "torch.load(" in code and "weights_only=True" not in code:
                bad.append(f"{p.name}:{i}: {line.strip()}")
            if any(s in code for s in ("pickle.load(", "pickle.loads(", "joblib.load(", "dill.", "marshal.load")):
                bad.append(f"{p.name}:{i}: {line.strip()}")
            if "np.load(" in code and "allow_pickle=False" not in code:
                bad.append(f"{p.name}:{i}: {line.strip()}")
    assert not bad, bad


# --- finding 11: leftovers and a full disk -------------------------------------------------------

def test_killed_merge_copy_is_removed_by_the_next_merge(stores, tmp_path):
    a0, b0 = stores
    a = _copy(a0, tmp_path / "a.duckdb")
    script = textwrap.dedent(f"""
        import shutil, time
        import matstore.merge as m
        real = shutil.copyfile
        def slow(src, dst, *a, **k):
            out = real(src, dst, *a, **k)
            print("copied", flush=True)
            time.sleep(60)
            return out
        m.shutil.copyfile = slow
        m.merge(m.Store({a.path!r}), {b0.path!r})
    """)
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout.readline().strip() == "copied"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    left = list(tmp_path.glob(COPY_PREFIX + "*"))
    assert len(left) == 1 and (left[0] / "other.duckdb").exists()
    # a copy held by a live merge (this process) is kept; an ownerless one counts as dead after an hour
    live = tmp_path / f"{COPY_PREFIX}live"
    live.mkdir()
    from matstore.recovery import this_process_start

    (live / "owner.json").write_text(__import__("json").dumps(
        {"pid": os.getpid(), "started": this_process_start(), "host": __import__("socket").gethostname()}))
    old = tmp_path / f"{COPY_PREFIX}old"
    old.mkdir()
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    r = merge(a, b0.path)
    assert r.total_added > 0
    assert sorted(p.name for p in tmp_path.glob(COPY_PREFIX + "*")) == [live.name]
    assert remove_stale_copies(tmp_path) == []


def test_disk_full_during_the_copy_is_a_clear_error(stores, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from matstore.cli import main

    a0, b0 = stores
    a = _copy(a0, tmp_path / "a.duckdb")
    before = _state(a)

    def full(src, dst, *args, **kw):
        Path(dst).write_bytes(b"partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))

    monkeypatch.setattr("matstore.merge.shutil.copyfile", full)
    with pytest.raises(MergeError, match=r"cannot copy .* the disk is full; nothing was changed"):
        merge(a, b0.path)
    res = CliRunner().invoke(main, ["merge", b0.path, "--db", a.path])
    out = " ".join(res.output.split())  # the console wraps long lines
    assert res.exit_code == 1 and "the disk is full" in out and "Traceback" not in out, out
    assert not list(tmp_path.glob(COPY_PREFIX + "*"))
    assert _state(a) == before


def test_torch_weights_with_a_code_running_pickle_run_nothing(store, tmp_path):
    """torch.save wraps a pickle too: weights_only=True refuses any global that is not a tensor."""
    import torch

    from matstore import models
    from matstore.registry import ModelError, load_model, save_model

    m = models.build("elemnet", {"n_inputs": 86})
    save_model(store, "fe", "elemnet", m, m.config, {"property": "formation_energy_per_atom",
               "featurizer": "fractions"}, "SELECT 1", 1, "h", {}, {}, "cpu", 0)
    marker = tmp_path / "PWNED"
    buf = io.BytesIO()
    torch.save({"layers.0.weight": _Evil(marker)}, buf)
    _set_weights(store, buf.getvalue(), "name = 'fe'")
    with pytest.raises(ModelError, match=r"fe@1 .*not a readable torch state_dict"):
        load_model(store, "fe")
    assert not marker.exists()
