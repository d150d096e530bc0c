"""A worker's batch is untrusted, like a received file: before the writer sees it, its columns
and types (payloads), bounds, finite values and keys are checked, with the checks merge applies
to a received store (merge.validate: composition_problem for every new composition, FINITE for
the float columns) plus what only a batch has (its sample numbers, its chunk's ids). The first
problem found is an ExecutorError naming the batch; nothing of that batch is written."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from .. import compositions as C
from ..merge.validate import FINITE, MAX_ATOMS, MAX_COUNT
from . import ExecutorError
from .payloads import decode, package_fields

MAX_WIDTH = C.MAX_ELEMENTS * 4   # element slots per decoded row (onehot: 8)


def generated_schema(width: int) -> pa.Schema:
    lst = pa.list_(pa.int64(), width)
    return pa.schema(package_fields("generated", ["sample_no", "composition_id"])
                     + [pa.field("z", lst), pa.field("counts", lst)])


def worker_batch(data, batch_no: int, first_sample: int, n_samples: int, name: str, sp, pipe):
    """A worker's generate result -> (checked DecodedBatch, checked stage rows or None): bytes of
    the batch, or [batch, stage rows] when the workers run the stages (stage_payload.spec sp)."""
    stage_data = None
    if sp:
        if not isinstance(data, (list, tuple)) or len(data) != 2:
            raise ExecutorError(f"executor {name}: batch {batch_no}: the worker returned "
                                f"{type(data).__name__}, not [batch, stage rows]")
        data, stage_data = data
    batch = decoded_batch(data, batch_no, first_sample, n_samples, name)
    if stage_data is None:
        return batch, None
    from ..features import get  # noqa: PLC0415
    from .stage_payload import checked  # noqa: PLC0415

    sent = {int(r["model_id"]) for r in sp["models"]}
    encodable = {lm.model_id: get(lm.featurizer).encodable for lm in pipe.models if lm.model_id in sent}
    return batch, checked(stage_data, sp, batch, encodable, name, batch_no)


def decoded_batch(data, batch_no: int, first_sample: int, n_samples: int, name: str):
    """A worker's generate batch -> samples.DecodedBatch (keys and fingerprints recomputed here)."""
    from ..samples import DecodedBatch  # noqa: PLC0415

    what = f"executor {name}: batch {batch_no}"
    if not isinstance(data, (bytes, bytearray)):
        raise ExecutorError(f"{what}: the worker returned {type(data).__name__}, not Arrow IPC bytes")
    width = _width(data, what)
    t = decode(data, generated_schema(width), what, ExecutorError)
    meta = t.schema.metadata or {}
    if meta.get(b"batch_no") != str(batch_no).encode() or meta.get(b"n_samples") != str(n_samples).encode():
        raise ExecutorError(f"{what}: the worker's batch says batch {meta.get(b'batch_no')!r} of "
                            f"{meta.get(b'n_samples')!r} samples, not batch {batch_no} of {n_samples}")
    if any(col.null_count for col in t.columns):
        raise ExecutorError(f"{what}: the worker's batch holds NULLs")
    sample_no = t["sample_no"].to_numpy()
    sent = t["composition_id"].to_numpy()
    z = t["z"].combine_chunks().flatten().to_numpy().reshape(-1, width)
    counts = t["counts"].combine_chunks().flatten().to_numpy().reshape(-1, width)
    if len(sample_no) and (sample_no[0] < first_sample or sample_no[-1] >= first_sample + n_samples
                           or (np.diff(sample_no) <= 0).any()):
        raise ExecutorError(f"{what}: sample numbers are not increasing within "
                            f"{first_sample}..{first_sample + n_samples - 1}")
    if ((z < 0) | (z > C.MAX_Z)).any():
        raise ExecutorError(f"{what}: an atomic number outside 0..{C.MAX_Z}")
    if ((counts < 0) | (counts > MAX_COUNT)).any():
        bad = int(counts[(counts < 0) | (counts > MAX_COUNT)][0])
        raise ExecutorError(f"{what}: a count ({bad:,}) outside 0..{MAX_COUNT:,}")
    if MAX_ATOMS is not None and (counts.sum(axis=1) > MAX_ATOMS).any():
        raise ExecutorError(f"{what}: a sample with more than {MAX_ATOMS:,} atoms")
    present = (z > 0) & (counts > 0)
    if len(z) and not present.any(axis=1).all():
        raise ExecutorError(f"{what}: a sample with no element")
    zs = np.sort(np.where(present, z, -np.arange(1, width + 1)), axis=1)   # padding never equal
    if (np.diff(zs, axis=1) == 0).any():
        raise ExecutorError(f"{what}: a sample names one element twice")
    keys, fp = C.keys_and_fingerprints(z, counts)
    wrong = np.flatnonzero(keys != sent)
    if len(wrong):
        i = int(wrong[0])
        raise ExecutorError(f"{what}: sample {int(sample_no[i])} carries composition_id {int(sent[i])}, "
                            f"but its elements and counts are {C.from_arrays(z[i], counts[i]).formula} "
                            f"(key {int(keys[i])}): a key naming another composition")
    return DecodedBatch(batch_no, n_samples, sample_no, keys, z, counts, fp)


def new_compositions(rows: pa.Table, name: str, batch_no: int) -> None:
    """merge's check of every composition row new to the store (compositions.composition_rows of
    a checked batch): elements known, counts in bounds, reduced, canonical, formula and key; over
    the whole table in arrays, the first bad row worded by merge's composition_problem."""
    from ..merge.composition_checks import problems  # noqa: PLC0415

    for _, row, why in problems(rows, limit=1):
        raise ExecutorError(f"executor {name}: batch {batch_no}: composition {row['formula']!r}: {why}")


def predictions_schema() -> pa.Schema:
    return pa.schema(package_fields("predictions", ["composition_id", "value", "std", "p_metal"]))


def predictions(data, ids: np.ndarray, nan_ok: np.ndarray | None, name: str, chunk_no: int) -> pa.Table:
    """A worker's predictions of one chunk: the chunk's ids in order; every float finite or NaN
    (FINITE columns of predictions); value NaN only where the featurizer cannot encode (nan_ok);
    std >= 0; p_metal in 0..1."""
    what = f"executor {name}: prediction chunk {chunk_no}"
    t = decode(data, predictions_schema(), what, ExecutorError)
    got = t["composition_id"].to_numpy(zero_copy_only=False)
    if t["composition_id"].null_count or len(got) != len(ids) or (got != ids).any():
        raise ExecutorError(f"{what}: the composition ids differ from the chunk sent ({len(got)} vs {len(ids)} rows)")
    for table, col in FINITE:
        if table != "predictions":
            continue
        v = t[col].to_numpy(zero_copy_only=False)
        if np.isinf(v).any():
            raise ExecutorError(f"{what}: {col} holds an infinite value")
        nan = np.isnan(v)
        if col == "value" and nan_ok is not None and (nan & ~nan_ok).any():
            i = int(np.flatnonzero(nan & ~nan_ok)[0])
            raise ExecutorError(f"{what}: value is NaN for composition_id {int(ids[i])}, which the "
                                f"model's featurizer encodes")
        ok = v[~nan]
        if col == "std" and (ok < 0).any() or col == "p_metal" and ((ok < 0) | (ok > 1)).any():
            raise ExecutorError(f"{what}: {col} out of bounds")
    return t


def _width(data: bytes, what: str) -> int:
    import pyarrow.ipc as ipc  # noqa: PLC0415

    try:
        schema = ipc.open_stream(pa.py_buffer(bytes(data))).schema
        typ = schema.field("z").type
        width = typ.list_size
    except (KeyError, AttributeError, pa.ArrowException, OSError, ValueError):
        raise ExecutorError(f"{what}: not a generate batch (no fixed-size list column z)") from None
    if not 1 <= width <= MAX_WIDTH:
        raise ExecutorError(f"{what}: {width} element slots per sample (at most {MAX_WIDTH})")
    return width


def stability_rows(data, schema: pa.Schema, ids: np.ndarray, name: str, chunk_no: int) -> pa.Table:
    """A worker's stability rows of one chunk: the columns and types stability.rows builds here,
    the chunk's ids in order, no infinite value in merge's FINITE columns of stability (NaN is a
    NULL), e_above_hull >= the hull's own floor of -1e3 eV/atom, coverage in 0..1."""
    what = f"executor {name}: stability chunk {chunk_no}"
    t = decode(data, schema, what, ExecutorError)
    got = t["composition_id"].to_numpy(zero_copy_only=False)
    ids = np.asarray(ids, np.int64)
    if len(got) != len(ids) or (got != ids).any():
        raise ExecutorError(f"{what}: the composition ids differ from the chunk sent")
    for table, col in FINITE:
        if table == "stability" and col in t.column_names:
            v = t[col].to_numpy(zero_copy_only=False).astype(np.float64)
            if np.isinf(v).any() or (col == "e_above_hull" and (v[~np.isnan(v)] < -1e3).any()):
                raise ExecutorError(f"{what}: {col} holds an infinite or out-of-bounds value")
    cov = t["coverage"].to_numpy(zero_copy_only=False).astype(np.float64)
    if ((cov < 0) | (cov > 1)).any():
        raise ExecutorError(f"{what}: coverage outside 0..1")
    return t
