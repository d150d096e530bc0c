"""The per-composition work of generate's after-generator stages as pure functions of decoded
rows: validity rows, featurizer values, a predictor's outputs. stages.Pipeline calls them in
process; a Dask worker calls the same ones on its batch (executor.stage_payload), so a worker's
rows are the in-process rows."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from . import models
from .compositions import CompositionBatch, canonical
from .featurize import validity_rows
from .models.ensemble import Outputs


# the columns featurize.validity_rows builds (a worker's rows are checked against them)
VALIDITY_SCHEMA = pa.schema([("composition_id", pa.int64()), ("checker_version", pa.string()),
                             ("charge_neutral", pa.bool_()), ("electronegativity_balanced", pa.bool_()),
                             ("smact_valid", pa.bool_()), ("oxidation_states", pa.list_(pa.int32()))])


def prepare(keys: np.ndarray, z: np.ndarray, counts: np.ndarray):
    """Distinct keys' decoded rows -> (order, ids, z, counts, n_elements): canonical rows sorted by
    element count (order: the input position of each), so each group is trimmed to its width."""
    zc, cc, nel = canonical(z, counts)
    order = np.argsort(nel, kind="stable")
    return order, np.asarray(keys, np.int64)[order], zc[order], cc[order], nel[order]


def compute(ids, zc, cc, nel, validate: bool, feats: dict) -> tuple[pa.Table | None, dict, dict]:
    """Validity rows (default oxidation-state set) and each featurizer's (values, encodable) of
    rows sorted by element count (prepare): the work scales with the elements present, and
    dropping trailing padding leaves every value unchanged."""
    from .validity import DEFAULT_SET  # noqa: PLC0415

    n = len(ids)
    vparts = []
    vals = {name: np.empty((n, f.size)) for name, f in feats.items()}
    ok = {name: np.zeros(n, bool) for name in feats}
    bounds = np.concatenate([[0], np.flatnonzero(np.diff(nel)) + 1, [n]]) if n else np.zeros(1, np.int64)
    for a, e in zip(bounds[:-1], bounds[1:]):
        k = max(int(nel[a]), 1)
        b = CompositionBatch(ids[a:e], zc[a:e, :k].astype(np.int16), cc[a:e, :k])
        if validate:
            vparts.append(validity_rows(b, DEFAULT_SET))
        for name, f in feats.items():
            vals[name][a:e] = f.transform(b).reshape(e - a, -1)
            ok[name][a:e] = f.encodable(b)
    validity = pa.concat_tables(vparts) if vparts else VALIDITY_SCHEMA.empty_table() if validate else None
    return validity, vals, ok


def predict(lm, values: np.ndarray, ok: np.ndarray, mask: np.ndarray, device) -> Outputs:
    """A predictor's outputs for the rows in mask (NaN where its featurizer cannot encode)."""
    good = ok[mask]
    o = Outputs.empty(int(mask.sum()))
    if good.any():
        x = models.shape_input(lm.kind, rows_of(rows_of(values, mask), good))
        o.put(good, lm.predict_features_outputs(x, device=device))
    return o


def rows_of(a: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return a if mask.all() else a[mask]   # the usual case (all rows) without a copy
