"""Issue 28: a generate batch's stage rows (validity, predictions) computed on the worker that drew
it (executor.stage_payload) are the rows the writer computes in process; a worker that sends only
part of them (it remembers what it sent during the run) is completed in process; forged stage
rows are refused in one line. No cluster here: the worker functions are called directly (the
equality on a real LocalCluster is test_executor.py's)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from matstore import runner
from matstore.executor import ExecutorError, batch_checks, stage_payload, worker_tasks
from matstore.features import get as featurizer
from matstore.registry.records import get_record
from matstore.samples import decode_rows
from matstore.stages import Pipeline
from matstore.store import Store
from _runner_helpers import forge_ipc, load_compositions, mp_formulas


@pytest.fixture(scope="module")
def setup(tmp_path_factory, read_formulas):
    """A store of 1,000 real MP compositions and a 10-tree forest; a batch of 1,500 real OQMD
    compositions (most new to the store, some repeated) as a worker decodes them."""
    from matstore import compositions as C
    from matstore.training import train

    store = Store.init(tmp_path_factory.mktemp("stages") / "s.duckdb")
    formulas, values = mp_formulas(read_formulas, 1000)
    load_compositions(store, formulas, "mp", values)
    rf = train(store, "rf-fe", max_rows=800, config={"n_estimators": 10, "n_jobs": 1}, progress=False)
    oqmd = read_formulas("oqmd/bandgap_train.csv")["formula"].to_list()[:1200] + formulas[:300]
    comps = [c for c in map(C.try_parse, oqmd) if isinstance(c, C.Composition)]
    b = C.CompositionBatch.from_compositions(comps)
    batch = decode_rows(b.z, b.counts, 0, 0)
    rec = get_record(store, rf.model_id)
    pipe_of = lambda: Pipeline(store, runner.Stages(True, (), (rf.ref,)), "cpu")   # noqa: E731
    return {"store": store, "rf": rf, "rec": rec, "batch": batch, "pipe": pipe_of,
            "featurizer": pipe_of().models[0].featurizer}


def _spec(setup, token="t"):
    return {"validate": True, "models": [setup["rec"]], "token": token}


def _given(setup, batch, sp, data=None):
    data = data if data is not None else stage_payload.build(
        batch, sp, lambda r: worker_tasks.model(r, "cpu"), "cpu")
    enc = {setup["rec"]["model_id"]: featurizer(setup["featurizer"]).encodable}
    return stage_payload.checked(data, sp, batch, enc, "test", 0), data


def _rows(pipe, batch, given=None):
    uniq, first = np.unique(batch.keys, return_index=True)
    out = pipe.rows(uniq, batch.z[first], batch.counts[first], given)
    val = out["validity"].sort_by("composition_id")
    (lm, ids, v, std, p), = [out[k] for k in out if k[0] == "predictions"]
    o = np.argsort(ids)
    return val, ids[o], v[o], std[o], p[o]


def _same(got, want):
    assert got[0].equals(want[0])
    for g, w in zip(got[1:], want[1:]):
        assert np.array_equal(g, w, equal_nan=True)


def test_worker_stage_rows_equal_in_process_rows_and_missing_ones_are_computed_here(setup):
    batch = setup["batch"]
    want = _rows(setup["pipe"](), batch)
    assert want[0].num_rows > 1000 and np.isfinite(want[2]).all()
    given, data = _given(setup, batch, _spec(setup, "a"))
    assert len(given.sorted_ids) == len(np.unique(batch.keys))
    _same(_rows(setup["pipe"](), batch, given), want)
    # the same worker, the same run: keys it sent are not sent again
    again, _ = _given(setup, batch, _spec(setup, "a"))
    assert len(again.sorted_ids) == 0
    # a worker that sent half of them in an earlier batch: the rest completed in process
    half = decode_rows(batch.z[::2], batch.counts[::2], 0, 0)
    _given(setup, half, _spec(setup, "b"))
    partial, _ = _given(setup, batch, _spec(setup, "b"))
    assert 0 < len(partial.sorted_ids) < len(np.unique(batch.keys))
    _same(_rows(setup["pipe"](), batch, partial), want)


def test_forged_stage_rows_are_refused_in_one_line(setup):
    batch = setup["batch"]
    sp = _spec(setup, "forge")
    _, data = _given(setup, batch, sp)
    t = pa.ipc.open_stream(pa.py_buffer(data)).read_all()
    mid = setup["rec"]["model_id"]
    ids = t["composition_id"].to_numpy().copy()
    v = t[f"{mid}.value"].to_numpy().copy()

    def refused(match, **cols):
        with pytest.raises(ExecutorError, match=match) as e:
            _given(setup, batch, sp, forge_ipc(data, **cols))
        assert "\n" not in str(e.value)

    other = ids.copy()
    other[0] = np.int64(12345)                         # a key the batch does not hold
    refused("not among the batch's keys", composition_id=pa.array(other))
    dup = ids.copy()
    dup[1] = dup[0]
    refused("a composition_id twice", composition_id=pa.array(dup))
    refused("another checker", **{"validity.checker_version": pa.array(["0-smact0-other"] * len(ids))})
    bad = v.copy()
    bad[2] = np.nan                                    # the forest's featurizer encodes every row
    refused("NaN for a composition its featurizer encodes", **{f"{mid}.value": pa.array(bad)})
    bad[2] = np.inf
    refused("an infinite value", **{f"{mid}.value": pa.array(bad)})
    refused("std or p_metal out of bounds", **{f"{mid}.p_metal": pa.array(np.full(len(ids), 1.5))})
    refused("columns", **{f"{mid}.value": pa.array(v.astype(np.float32))})
    # a worker asked for [batch, stage rows] that sends only the batch
    with pytest.raises(ExecutorError, match="not \\[batch, stage rows\\]"):
        batch_checks.worker_batch(b"x", 0, 0, 10, "test", sp, setup["pipe"]())
