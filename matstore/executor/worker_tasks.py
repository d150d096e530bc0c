"""What runs on a Dask worker: pure functions of (model record, seed, batch number) or of a chunk
of compositions, returning Arrow IPC bytes (payloads.encode). They never open a store. Each worker
process rebuilds a model once per weights sha256 (the record is checked by registry.rebuild) and
runs torch with one thread per Dask thread, so N workers on N cores do not oversubscribe."""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa

_MODELS: dict[str, object] = {}      # weights sha256 -> LoadedModel, per worker process
_POTENTIALS: dict[str, object] = {}  # potential name:device -> loaded potential, per worker process
_STATE: dict = {"threads": False, "version": None}


def version() -> str:
    """matstore's installed version + sha256 (12 hex) of the package's code, SQL and migrations:
    two installs of one version number with other code still differ (cached per process)."""
    if _STATE["version"] is None:
        import importlib.metadata  # noqa: PLC0415
        from pathlib import Path  # noqa: PLC0415

        try:
            number = importlib.metadata.version("matstore")
        except importlib.metadata.PackageNotFoundError:
            number = "unknown"
        root = Path(__file__).resolve().parents[1]
        h = hashlib.sha256()
        for f in sorted(root.rglob("*")):
            if f.suffix in (".py", ".sql") and "__pycache__" not in f.parts:
                h.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes())
        _STATE["version"] = f"{number}+{h.hexdigest()[:12]}"
    return _STATE["version"]


def identity_of(records=()) -> dict:
    """What a worker must match: matstore's version and the recorded sha256 of each record."""
    out = {"matstore": version()}
    for rec in records:
        if rec.get("potential") is not None:   # an ML potential: loaded from the worker's own wheel
            out[f"potential {rec['potential']}"] = potential_identity(rec)
            continue
        out[f"weights of {rec['name']}@{rec['version']}"] = rec["weights_sha256"]
    return out


def identity(records=()) -> dict:
    """This worker's matstore version and the sha256 of the weights it received; each model is
    rebuilt here too (the first batch then costs what the others do, and weights that do not
    load fail before any batch)."""
    from .. import runner  # noqa: F401, PLC0415 (imported once per worker, before the first batch)

    out = {"matstore": version()}
    for rec in records:
        if rec.get("potential") is not None:
            from ..models.potential import resolve  # noqa: PLC0415

            out[f"potential {rec['potential']}"] = potential_identity(resolve(rec["potential"]).identity())
            potential(rec["potential"], rec.get("device", "cpu"))
            continue
        sha = hashlib.sha256(rec["weights"]).hexdigest()
        out[f"weights of {rec['name']}@{rec['version']}"] = sha
        if sha == rec["weights_sha256"]:
            model(rec, "cpu")
    return out


def _check_version(wanted: str) -> None:
    if wanted != version():   # a worker that joined after the check (a scaled-up cluster)
        raise RuntimeError(f"this worker runs matstore {version()}, the client {wanted}")


def _threads() -> None:
    if not _STATE["threads"]:
        import torch  # noqa: PLC0415

        torch.set_num_threads(1)
        _STATE["threads"] = True


def model(record: dict, device: str):
    """The LoadedModel of a record (weights checked against their sha256), once per process."""
    from ..registry.versions import LoadedModel  # noqa: PLC0415
    from ..registry.weights import rebuild  # noqa: PLC0415

    _threads()
    key = f"{record['weights_sha256']}:{device}"
    if key not in _MODELS:
        _MODELS[key] = LoadedModel(record, rebuild(record)).to(device)
    return _MODELS[key]


def generate_batch(b: int, record: dict, p: dict, stages: dict | None = None):
    """Batch b of a generate run: sampled from torch.Generator(batch_seed(seed, b)) and decoded,
    exactly as runner._execute does in process. Columns: sample_no, composition_id, z, counts.
    stages (stage_payload.spec): also the batch's stage rows, returned as [batch, stage rows]."""
    import torch  # noqa: PLC0415

    from ..runner import batch_seed, decode  # noqa: PLC0415
    from .payloads import encode  # noqa: PLC0415

    _check_version(p["version"])
    loaded = model(record, p["device"])
    n, bs = p["n"], p["batch_size"]
    m = min(bs, n - b * bs)
    gen = torch.Generator(device=p["device"]).manual_seed(batch_seed(p["seed"], b))
    with torch.inference_mode():
        batch = decode(loaded, loaded.sample(m, gen, p["device"], **p["sampling"]), p["tolerance"], b, b * bs)
    data = encode(decoded_table(batch))
    if not stages:
        return data
    from .stage_payload import build  # noqa: PLC0415

    return [data, build(batch, stages, lambda rec: model(rec, p["device"]), p["device"])]


def decoded_table(batch) -> pa.Table:
    """A DecodedBatch as a table (z, counts as fixed-size int64 lists); n_samples in metadata."""
    k = int(batch.z.shape[1]) if batch.z.ndim == 2 and batch.z.shape[1] else 1
    z = np.asarray(batch.z, np.int64).reshape(-1, k)
    c = np.asarray(batch.counts, np.int64).reshape(-1, k)
    t = pa.table({"sample_no": pa.array(np.asarray(batch.sample_no, np.int64)),
                  "composition_id": pa.array(np.asarray(batch.keys, np.int64)),
                  "z": pa.FixedSizeListArray.from_arrays(pa.array(z.reshape(-1)), k),
                  "counts": pa.FixedSizeListArray.from_arrays(pa.array(c.reshape(-1)), k)})
    return t.replace_schema_metadata({"batch_no": str(int(batch.batch_no)),
                                      "n_samples": str(int(batch.n_samples))})


def predict_chunk(item: tuple, record: dict, p: dict) -> bytes:
    """Predictions of one chunk of compositions (item: (chunk number, Arrow IPC of composition_id,
    elements, counts)). Columns: composition_id, value, std, p_metal (NaN where not encodable)."""
    from ..featurize import batch_from_arrow  # noqa: PLC0415
    from .payloads import encode  # noqa: PLC0415

    _check_version(p["version"])
    loaded = model(record, p["device"])
    chunk = pa.ipc.open_stream(pa.py_buffer(item[1])).read_all()
    batch = batch_from_arrow(chunk)
    out = loaded.predict_outputs(batch, device=p["device"])
    return encode(pa.table({"composition_id": pa.array(np.asarray(batch.composition_id, np.int64)),
                            "value": pa.array(np.asarray(out.value, np.float64)),
                            "std": pa.array(np.asarray(out.std, np.float64)),
                            "p_metal": pa.array(np.asarray(out.p_metal, np.float64))}))


def stability_chunk(item: tuple, ref, p: dict) -> bytes:
    """Stability rows of one chunk (item: (chunk number, (ids, z, counts, energy))) against the
    reference's hulls (stability.rows), as the in-process path builds them."""
    from ..stability import rows  # noqa: PLC0415
    from .payloads import encode  # noqa: PLC0415

    _check_version(p["version"])
    return encode(rows(ref, *item[1], p["model_id"], p["run_id"]))


def potential_identity(ident: dict) -> str:
    """What two installs of a potential must share: its package's version and weights sha256."""
    return f"{ident['package']} {ident['package_version']}, weights sha256 {ident['weights_sha256']}"


def potential(name: str, device: str):
    """The ML potential name, loaded once per worker process from this worker's installed wheel."""
    from ..models import potential as potentials  # noqa: PLC0415

    _threads()
    key = f"{name}:{device}"
    if key not in _POTENTIALS:
        _POTENTIALS[key] = potentials.load(name, device)
    return _POTENTIALS[key]


def relax_chunk(item: tuple, p: dict) -> bytes:
    """One chunk of a relax run (item: (chunk number, structure ids, pymatgen Structures)) relaxed
    together with engine.relax_batch; the chunk's table (relax_payload.table) as Arrow IPC."""
    from ..relax.engine import relax_batch  # noqa: PLC0415
    from ..relax.relax_payload import table  # noqa: PLC0415
    from .payloads import encode  # noqa: PLC0415

    _check_version(p["version"])
    pot = potential(p["potential"], p["device"])
    return encode(table(item[1], relax_batch(pot, item[2], p["settings"])))
