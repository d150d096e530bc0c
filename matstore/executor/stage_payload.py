"""A generate batch's stage rows computed where the batch is drawn: a worker that samples a batch
also runs validity and the predictors on its distinct compositions (stage_rows, as in process)
and returns them as a second Arrow stream, so the client only checks and writes them. One table:
composition_id, the validity columns as "validity.<column>", each predictor's outputs as
"<model_id>.value|std|p_metal". The client checks it as untrusted (checked) and takes the rows
of the keys it needs (stages.Pipeline.rows(given=...)); any key or stage a worker did not send is
computed in process, so the content never depends on what a worker remembers.

A worker remembers which keys it sent during one run (per run token, at most MAX_REMEMBERED) and
sends each once: another batch of the run repeating a composition costs it nothing."""

from __future__ import annotations

import uuid

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import ExecutorError
from .payloads import decode, encode

OUTPUTS = ("value", "std", "p_metal")
MAX_REMEMBERED = 2_000_000           # keys per worker process and run (~100 MB of ints)
MAX_RUNS = 4                         # runs remembered per worker process (a long-lived cluster)
_SENT: dict[str, set] = {}           # run token -> keys this worker process sent


def spec(pipe, records: list[dict]) -> dict | None:
    """What workers compute for a Pipeline: validity, and the predictors whose stored records
    (weights included, version-checked) are shipped; None when neither applies."""
    if pipe is None or not (pipe.validate or records):
        return None
    return {"validate": bool(pipe.validate), "models": records, "token": uuid.uuid4().hex}


def schema(sp: dict) -> pa.Schema:
    from ..stage_rows import VALIDITY_SCHEMA  # noqa: PLC0415

    fields = [pa.field("composition_id", pa.int64())]
    if sp["validate"]:
        fields += [pa.field(f"validity.{f.name}", f.type) for f in list(VALIDITY_SCHEMA)[1:]]
    for rec in sp["models"]:
        fields += [pa.field(f"{int(rec['model_id'])}.{c}", pa.float64()) for c in OUTPUTS]
    return pa.schema(fields)


def build(batch, sp: dict, model_of, device: str) -> bytes:
    """On a worker: the stage rows of the batch's distinct keys it has not sent in this run."""
    from ..features import get  # noqa: PLC0415
    from ..stage_rows import compute, predict, prepare  # noqa: PLC0415

    uniq, first = np.unique(batch.keys, return_index=True)
    if sp["token"] not in _SENT and len(_SENT) >= MAX_RUNS:
        del _SENT[next(iter(_SENT))]     # the oldest run's
    sent = _SENT.setdefault(sp["token"], set())
    keep = np.fromiter((k not in sent for k in uniq.tolist()), bool, len(uniq))
    _, ids, zc, cc, nel = prepare(uniq[keep], batch.z[first[keep]], batch.counts[first[keep]])
    loaded = [model_of(rec) for rec in sp["models"]]
    feats = {lm.featurizer: get(lm.featurizer) for lm in loaded}
    validity, vals, ok = compute(ids, zc, cc, nel, sp["validate"], feats)
    cols = {"composition_id": pa.array(ids, pa.int64())}
    if sp["validate"]:
        cols.update({f"validity.{c}": validity[c] for c in validity.column_names[1:]})
    for lm in loaded:
        o = predict(lm, vals[lm.featurizer], ok[lm.featurizer], np.ones(len(ids), bool), device)
        cols.update({f"{lm.model_id}.{c}": pa.array(np.asarray(getattr(o, c), np.float64)) for c in OUTPUTS})
    if len(sent) < MAX_REMEMBERED:
        sent.update(ids.tolist())
    return encode(pa.table(cols, schema=schema(sp)))


class Given:
    """A worker's checked stage rows of one batch, found by composition_id."""

    def __init__(self, table: pa.Table, sp: dict):
        from ..models.ensemble import Outputs  # noqa: PLC0415
        from ..stage_rows import VALIDITY_SCHEMA  # noqa: PLC0415

        self._outputs = Outputs
        ids = table["composition_id"].to_numpy()
        self.order = np.argsort(ids, kind="stable")
        self.sorted_ids = ids[self.order]
        self.validity = None
        if sp["validate"]:
            self.validity = pa.table([table["composition_id"]] + [table[f"validity.{f.name}"]
                                                                  for f in list(VALIDITY_SCHEMA)[1:]],
                                     schema=VALIDITY_SCHEMA)
        self.preds = {int(r["model_id"]): [table[f"{int(r['model_id'])}.{c}"].to_numpy(zero_copy_only=False)
                                           for c in OUTPUTS] for r in sp["models"]}

    def locate(self, ids: np.ndarray) -> np.ndarray:
        """Row of each id in the worker's table, -1 where it sent none."""
        i = np.searchsorted(self.sorted_ids, ids)
        i = np.minimum(i, max(len(self.sorted_ids) - 1, 0))
        hit = (self.sorted_ids[i] == ids) if len(self.sorted_ids) else np.zeros(len(ids), bool)
        return np.where(hit, self.order[i] if len(self.order) else -1, -1)

    def covers(self, stage) -> bool:
        if stage == "validity":
            return self.validity is not None
        return stage[0] == "predictions" and stage[1] in self.preds

    def outputs(self, model_id: int, rows: np.ndarray):
        return self._outputs(*(a[rows] for a in self.preds[model_id]))


def checked(data, sp: dict, batch, encodable: dict, name: str, batch_no: int) -> Given:
    """A worker's stage rows of a checked generate batch, as untrusted as the batch: the columns
    and types of schema(sp); each composition_id once and one of the batch's keys; validity of
    this matstore's checker, one oxidation state per element or none; predictions finite or NaN,
    NaN only where the model's featurizer cannot encode (encodable: featurizer -> function of a
    CompositionBatch), std >= 0, p_metal in 0..1."""
    from ..compositions import CompositionBatch  # noqa: PLC0415
    from ..validity import CHECKER_VERSION  # noqa: PLC0415

    what = f"executor {name}: stage rows of batch {batch_no}"
    t = decode(data, schema(sp), what, ExecutorError)
    ids = t["composition_id"].to_numpy(zero_copy_only=False) if t.num_rows else np.zeros(0, np.int64)
    uniq, first = np.unique(batch.keys, return_index=True)
    if t["composition_id"].null_count or len(np.unique(ids)) != len(ids) or not np.isin(ids, uniq).all():
        raise ExecutorError(f"{what}: a composition_id twice, NULL or not among the batch's keys")
    at = first[np.searchsorted(uniq, ids)]
    present = (batch.z[at] > 0) & (batch.counts[at] > 0)
    if sp["validate"]:
        cv = t["validity.checker_version"]
        if cv.null_count or t.num_rows and not pc.all(pc.equal(cv, CHECKER_VERSION)).as_py():
            raise ExecutorError(f"{what}: validity rows of another checker than {CHECKER_VERSION}")
        n_states = pc.list_value_length(t["validity.oxidation_states"]).to_numpy(zero_copy_only=False)
        n_states = np.nan_to_num(np.asarray(n_states, np.float64), nan=-1)
        if ((n_states != -1) & (n_states != present.sum(axis=1))).any():
            raise ExecutorError(f"{what}: oxidation states that do not pair with the elements")
    for rec in sp["models"]:
        mid = int(rec["model_id"])
        value, std, p_metal = (t[f"{mid}.{c}"].to_numpy(zero_copy_only=False) for c in OUTPUTS)
        enc = encodable.get(mid)
        nan_ok = ~enc(CompositionBatch(ids, batch.z[at], batch.counts[at])) if enc else np.ones(len(ids), bool)
        if (np.isinf(value).any() or np.isinf(std).any() or np.isinf(p_metal).any()
                or (np.isnan(value) & ~nan_ok).any()):
            raise ExecutorError(f"{what}: model {mid}: an infinite value, or NaN for a composition "
                                f"its featurizer encodes")
        if (std[~np.isnan(std)] < 0).any() or ((p_metal < 0) | (p_metal > 1))[~np.isnan(p_metal)].any():
            raise ExecutorError(f"{what}: model {mid}: std or p_metal out of bounds")
    return Given(t, sp)
