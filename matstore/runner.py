"""Generation runs: sample a generator in batches, decode, key, and append each batch to the store.

Each batch is a pure function of (model version, seed, batch number, batch size): its latent
vectors come from a torch.Generator seeded with ``batch_seed(seed, batch_no)``, so a resumed run
redraws exactly the batches that were never committed and ends with the same content as an
uninterrupted one. The store is touched only between batches, in one short transaction per batch
(raw samples, new compositions, the run_batches row, the runs counters), so another process can
query while a run goes on and a killed run loses at most the batch in flight. A writer thread
commits batch b while batch b + 1 is sampled and decoded, so the store's writes overlap the
generator instead of adding to it.

The after-generator stage rows (validity, features, predictions; see Stages) are buffered and
appended with the batch that brings them to a DuckDB row group (122,880 rows), after at most
FLUSH_SECONDS, and at the run's end: DuckDB writes a transaction of a full row group straight to
the file, while small ones go through the WAL and each checkpoint rewrites the table's last,
partly filled row group (3x the cost per feature row, measured in benchmarks/generate.py).
A run killed with rows still buffered gets them back on resume (``catch_up``).
"""

from __future__ import annotations

import json
import os
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import repeat

import numpy as np
import polars as pl
import pyarrow as pa

from . import compositions, models
from .store import Store, StoreError, append, append_new, frame
from .devices import resolve_device
from .errors import MatstoreError
from .options import at_least_one, decode_tolerance

# samples per batch (= per transaction) when none is given: on a CPU ~4 s of generator work (a
# kill loses little); on a GPU ~50 ms at 5M samples/s, and each commit fills whole row groups
DEFAULT_BATCH_SIZE = {"cpu": 8192, "cuda": 262_144}
FLUSH_ROWS = 122_880        # DuckDB's row group: a transaction this large skips the WAL
FLUSH_SECONDS = 30.0        # ...but a watching user sees predictions at least this often
_MASK63 = (1 << 63) - 1


class RunError(MatstoreError, RuntimeError):
    """A run that cannot be started or resumed; the message names it and says why."""


def batch_seed(seed: int, batch_no: int) -> int:
    """Seed of one batch's torch.Generator: a splitmix64 mix of (seed, batch_no)."""
    x = ((int(seed) & 0xFFFFFFFFFFFFFFFF) * 0x9E3779B97F4A7C15 + int(batch_no)) & 0xFFFFFFFFFFFFFFFF
    return compositions._mix64_int(x) & _MASK63


def default_device() -> str:
    """cuda when torch sees a GPU, else cpu (devices.resolve_device checks a device asked for)."""
    return resolve_device(None)


@dataclass
class RunResult:
    run_id: int
    status: str
    n_samples: int            # drawn in this call (resume: only the missing batches)
    n_decodable: int
    n_new_compositions: int
    seconds: float
    written: dict | None = None   # after-generator stages: rows appended per table
    n_key_collisions: int = 0     # samples dropped: their key names another map (runner.key_check)


    @property
    def samples_per_s(self) -> float:
        return self.n_samples / self.seconds if self.seconds > 0 else float("nan")


@dataclass
class DecodedBatch:
    """One batch after the device: keys of the decodable samples and what new keys need."""

    batch_no: int
    n_samples: int
    sample_no: np.ndarray      # int64, run-global index of each decodable sample
    keys: np.ndarray           # int64 composition keys, same length
    z: np.ndarray              # decoded rows of the decodable samples (for new formulas)
    counts: np.ndarray
    fingerprint: np.ndarray | None = None   # compositions.fingerprints of the same rows


def decode_batch(maps, tolerance: float | None, batch_no: int, first_sample: int) -> DecodedBatch:
    """(m, 8, 85) generator output (numpy or torch, any device) -> keys of decodable samples.

    On an accelerator the decode runs there (onehot.decode's torch path) and only the small
    (m, 8) integer arrays come back; on the CPU the sparse numpy kernel is used."""
    if hasattr(maps, "detach") and maps.device.type != "cpu":
        from .features import onehot  # noqa: PLC0415

        kw = {} if tolerance is None else {"tolerance": tolerance}
        z, counts, ok = (_numpy(a) for a in onehot.decode(maps, **kw))
    else:
        z, counts, ok = decode_numpy(_numpy(maps), tolerance)
    idx = np.flatnonzero(ok)
    z, counts = z[idx], counts[idx]
    keys, fp = compositions.keys_and_fingerprints(z, counts)
    return DecodedBatch(batch_no, len(ok), idx.astype(np.int64) + first_sample, keys, z, counts, fp)


def _numpy(a) -> np.ndarray:
    return a.detach().cpu().numpy() if hasattr(a, "detach") else np.asarray(a)


def write_batch(con, run_id: int, batch: DecodedBatch, new_rows: pa.Table,
                seconds: float) -> int:
    """Append one decoded batch inside the caller's transaction; returns new compositions."""
    gen = pa.table({"run_id": pa.array(np.full(len(batch.keys), run_id, np.int32)),
                    "batch_no": pa.array(np.full(len(batch.keys), batch.batch_no, np.int32)),
                    "sample_no": pa.array(batch.sample_no),
                    "composition_id": pa.array(batch.keys)})
    append(con, "generated", gen)
    n_new = _insert_new_compositions(con, new_rows) if new_rows.num_rows else 0
    con.execute("INSERT INTO run_batches VALUES (?, ?, ?, ?, ?, now())",
                [run_id, batch.batch_no, batch.n_samples, len(batch.keys), seconds])
    con.execute("""UPDATE runs SET n_written = n_written + ?,
                   rows_per_s = (SELECT sum(n_samples) / nullif(sum(seconds), 0)
                                 FROM run_batches WHERE run_id = ?)
                   WHERE run_id = ?""", [len(batch.keys), run_id, run_id])
    return n_new


@dataclass
class Stages:
    """Per-composition work done for each batch's distinct compositions that lack it: validity
    flags, stored feature vectors, predictions. Features are computed once per composition and
    fed to every predictor that uses them; the rows are buffered and written in row-group-sized
    transactions (see the module docstring)."""

    validate: bool = False
    featurize: tuple = ()       # featurizer names whose vectors are stored
    predict: tuple = ()         # predictor refs ('name@N', id) or LoadedModels
    stability: str | None = None  # reference source: energy above its hull of the FE predictions

    def __bool__(self) -> bool:
        return bool(self.validate or self.featurize or self.predict or self.stability)

    @classmethod
    def from_params(cls, p: dict | None) -> "Stages":
        p = p or {}
        return cls(bool(p.get("validate")), tuple(p.get("featurize") or ()), tuple(p.get("predict") or ()),
                   p.get("stability"))


class _Pipeline:
    """The after-generator stages of one run: predictors loaded, done-sets read once."""

    def __init__(self, store: Store, stages: Stages, device: str):
        from .features import get  # noqa: PLC0415
        from .registry import load_model  # noqa: PLC0415
        from .validity import CHECKER_VERSION  # noqa: PLC0415

        self.validate = stages.validate
        self.stored = {name: get(name) for name in stages.featurize}
        self.models = []
        for m in stages.predict:
            lm = load_model(store, m, device=device) if isinstance(m, (str, int)) else m
            if lm.kind not in models.PREDICTOR_KINDS or not lm.property:
                raise RunError(f"--predict {lm.ref}: a {lm.kind} is not a property predictor")
            self.models.append(lm)
        self.device = device
        # the reference's known phases, read once per run; each batch is placed against them
        self.reference, self.hull_models = None, []
        if stages.stability:
            from .stability import PROPERTY, load_reference  # noqa: PLC0415

            self.hull_models = [lm for lm in self.models if lm.property == PROPERTY]
            if not self.hull_models:
                raise RunError(f"--stability {stages.stability}: needs a --predict model of {PROPERTY}")
            self.reference = load_reference(store, stages.stability)
        self.feats = dict(self.stored)
        for lm in self.models:
            self.feats.setdefault(lm.featurizer, get(lm.featurizer))
        # stage -> keys that already have its rows (read once; kept current as batches commit)
        queries = {}
        if self.validate:
            queries["validity"] = ("SELECT composition_id FROM validity WHERE checker_version = ?",
                                   [CHECKER_VERSION])
        for name, f in self.stored.items():
            queries[("features", name)] = ("SELECT composition_id FROM features WHERE featurizer = ? "
                                           "AND version = ?", [f.name, f.version])
        for lm in self.models:
            queries[("predictions", lm.model_id)] = (
                "SELECT composition_id FROM predictions WHERE model_id = ?", [lm.model_id])
        for lm in self.hull_models:
            queries[("stability", lm.model_id)] = (
                "SELECT composition_id FROM stability WHERE model_id = ? AND reference = ?",
                [lm.model_id, self.reference.source])
        with store.connect() as con:
            self.done = {k: set(con.sql(q, params=a).fetchnumpy()["composition_id"].tolist())
                         for k, (q, a) in queries.items()}
        # keys with every stage done or buffered: one lookup per key once a run is under way
        self.complete = set.intersection(*self.done.values()) if self.done else set()
        self.buffer: list[dict] = []     # rows() results not yet written
        self.buffered = 0                # compositions in the buffer
        self.last_flush = time.monotonic()

    @property
    def refs(self) -> list[str]:
        return [lm.ref for lm in self.models]

    def rows(self, keys: np.ndarray, z: np.ndarray, counts: np.ndarray) -> dict:
        """Rows to append for distinct keys (decoded z, counts rows): {stage: table or
        (model, keys, values)}; the selected keys are under "keys"."""
        from .compositions import CompositionBatch  # noqa: PLC0415
        from .featurize import validity_rows, vectors  # noqa: PLC0415
        from .validity import DEFAULT_SET  # noqa: PLC0415

        if not self.done:
            return {}
        kl = keys.tolist()
        sel = np.flatnonzero(np.fromiter((k not in self.complete for k in kl), bool, len(kl)))
        if len(sel) == 0:
            return {}
        zc, cc, nel = canonical(z[sel], counts[sel])
        # rows sorted by element count, each group trimmed to that many slots: the work scales
        # with the elements present, and dropping trailing padding leaves every value unchanged
        order = np.argsort(nel, kind="stable")
        sel, zc, cc, nel = sel[order], zc[order], cc[order], nel[order]
        ids = keys[sel].astype(np.int64)
        sl = ids.tolist()
        need = {st: np.fromiter((k not in d for k in sl), bool, len(sl)) for st, d in self.done.items()}
        n = len(ids)
        vparts = []                      # validity rows per group (default oxidation-state set)
        vals = {name: np.empty((n, f.size)) for name, f in self.feats.items()}
        ok = {name: np.zeros(n, bool) for name in self.feats}
        bounds = np.concatenate([[0], np.flatnonzero(np.diff(nel)) + 1, [n]])
        for a, e in zip(bounds[:-1], bounds[1:]):
            k = max(int(nel[a]), 1)
            b = CompositionBatch(ids[a:e], zc[a:e, :k].astype(np.int16), cc[a:e, :k])
            if self.validate:
                vparts.append(validity_rows(b, DEFAULT_SET))
            for name, f in self.feats.items():
                vals[name][a:e] = f.transform(b).reshape(e - a, -1)
                ok[name][a:e] = f.encodable(b)
        out = {"keys": ids}
        if self.validate:
            out["validity"] = pa.concat_tables(vparts).filter(pa.array(need["validity"]))
        for name, f in self.stored.items():
            m = need[("features", name)]
            out[("features", name)] = pa.table({
                "composition_id": pa.array(ids[m]),
                "featurizer": pa.array([f.name] * int(m.sum()), pa.string()),
                "version": pa.array([f.version] * int(m.sum()), pa.string()),
                "vector": vectors(_rows_of(vals[name], m), ok[name][m])})
        for lm in self.models:
            m = need[("predictions", lm.model_id)]
            good = ok[lm.featurizer][m]
            v = np.full(int(m.sum()), np.nan)
            if good.any():
                x = _model_input(lm.kind, _rows_of(_rows_of(vals[lm.featurizer], m), good))
                v[good] = np.asarray(lm.predict_features(x, device=self.device), np.float64).reshape(-1)
            out[("predictions", lm.model_id)] = (lm, ids[m], v)
            if lm in self.hull_models:   # keys predicted here (stored ones: `matstore stability`)
                from .stability import rows as stability_rows  # noqa: PLC0415

                vf = np.full(n, np.nan)
                vf[m] = v
                s = need[("stability", lm.model_id)] & m
                out[("stability", lm.model_id)] = stability_rows(
                    self.reference, ids[s], zc[s], cc[s], vf[s], lm.model_id, None)
        return out

    def add(self, rows: dict) -> None:
        """Buffer one batch's rows; their keys count as done for the batches that follow."""
        if rows:
            self.buffer.append(rows)
            self.buffered += len(rows["keys"])
            self.complete.update(rows["keys"].tolist())

    def due(self) -> bool:
        return bool(self.buffer) and (self.buffered >= FLUSH_ROWS
                                      or time.monotonic() - self.last_flush >= FLUSH_SECONDS)

    def catch_up(self, store: Store, run_id: int) -> int:
        """Buffer the stage rows of run_id's stored compositions that lack them (a run killed
        with rows still buffered); returns how many compositions that is."""
        from .featurize import batch_from_arrow  # noqa: PLC0415

        if not self.done:
            return 0
        with store.connect() as con:
            ids = con.sql("SELECT DISTINCT composition_id FROM generated WHERE run_id = ?",
                          params=[int(run_id)]).fetchnumpy()["composition_id"]
            lack = np.array([k for k in ids.tolist() if k not in self.complete], np.int64)
            if len(lack) == 0:
                return 0
            con.register("_matstore_lack", pa.table({"composition_id": pa.array(lack)}))
            rows = con.sql("SELECT c.composition_id, c.elements, c.counts FROM compositions c "
                           "JOIN _matstore_lack USING (composition_id)").to_arrow_table()
        b = batch_from_arrow(rows)
        self.add(self.rows(b.composition_id, b.z, b.counts))
        return len(lack)

    def take(self) -> list[dict]:
        """The buffered rows, handed to write(); the buffer starts empty again."""
        chunk, self.buffer, self.buffered, self.last_flush = self.buffer, [], 0, time.monotonic()
        return chunk

    def write(self, con, run_id: int, chunk: list[dict]) -> dict[str, int]:
        """Append a take()n chunk inside the caller's transaction (anti-join: a concurrent
        writer's rows are not duplicated); returns rows written per table."""
        n = {"validity": 0, "features": 0, "predictions": 0}
        if self.reference is not None:
            n["stability"] = 0
        if not chunk:
            return n
        for st in (st for st in chunk[0] if st != "keys"):
            parts = [r[st] for r in chunk]
            if st == "validity":
                n["validity"] += append_new(con, "validity", pa.concat_tables(parts),
                                             ["composition_id", "checker_version"], distinct=False)
                from .featurize import register_checker  # noqa: PLC0415
                from .validity import DEFAULT_SET  # noqa: PLC0415

                register_checker(con, DEFAULT_SET)
            elif st[0] == "features":
                n["features"] += append_new(con, "features", pa.concat_tables(parts),
                                             ["composition_id", "featurizer", "version"], distinct=False)
            elif st[0] == "stability":
                tab = pa.concat_tables(parts)
                tab = tab.set_column(tab.column_names.index("run_id"), "run_id",
                                     pa.array(np.full(tab.num_rows, run_id, np.int32)))
                n["stability"] += append_new(con, "stability", tab,
                                              ["composition_id", "model_id", "reference"], distinct=False)
            else:                                   # (model, keys, values) per batch
                lm = parts[0][0]
                ids = np.concatenate([p[1] for p in parts])
                v = np.concatenate([p[2] for p in parts])
                ok = np.isfinite(v)
                tab = pa.table({"composition_id": pa.array(ids),
                                "model_id": pa.array(np.full(len(ids), lm.model_id, np.int32)),
                                "run_id": pa.array(np.full(len(ids), run_id, np.int32)),
                                "property": pa.array([lm.property] * len(ids), pa.string()),
                                "value": pa.array(v, mask=~ok)})
                n["predictions"] += append_new(con, "predictions", tab, ["composition_id", "model_id"],
                                                distinct=False)
        return n


def _rows_of(a: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return a if mask.all() else a[mask]   # the usual case (all rows) without a copy


def _model_input(kind: str, x: np.ndarray) -> np.ndarray:
    """Feature values -> a predictor's input array, as models.featurize shapes them."""
    if kind == "cnn":
        from .features import magpie  # noqa: PLC0415

        x = magpie.as_matrix(x)
    return np.ascontiguousarray(x, dtype=np.float32)


def _insert_new_compositions(con, rows: pa.Table) -> int:
    """Distinct rows (by construction) into compositions; keys another writer added meanwhile are
    skipped through the primary-key index, and compared exactly (compositions.insert_unseen)."""
    return compositions.insert_unseen(con, rows)


_BY_FORMULA = -2   # a stored map beyond compositions.FP_EXACT_*: compared by formula


def _known_keys(store: Store) -> tuple[dict[int, int], dict[int, str]]:
    """Stored keys -> fingerprint of their stored map (compositions.fingerprints), or _BY_FORMULA
    for maps where a fingerprint match could be forged; those keys' formulas in the second dict."""
    with store.connect() as con:
        t = con.sql("SELECT composition_id, elements, counts FROM compositions").to_arrow_table()
        big = dict(con.sql(f"SELECT composition_id, formula FROM compositions "
                           f"WHERE n_elements > {compositions.FP_EXACT_ELEMENTS} "
                           f"OR list_max(counts) > {compositions.FP_EXACT_COUNT}").fetchall())
    if t.num_rows == 0:
        return {}, {}
    fp = compositions.fingerprints_from_lists(t["elements"], t["counts"])
    known = dict(zip(t["composition_id"].to_numpy().tolist(), fp.tolist()))
    known.update(dict.fromkeys(big, _BY_FORMULA))
    return known, big


def key_check(batch: DecodedBatch, known: dict[int, int], by_formula: dict[int, str] | None = None):
    """The batch's distinct keys, which of them are new, and the batch without samples whose key
    already names another element/count map (earlier in the batch, in the store, or earlier in
    this run): those are dropped, never recorded under the other map's key. Key and an independent
    63-bit fingerprint are compared, in numpy on the batch only; new keys enter `known`. Stored
    maps beyond compositions.FP_EXACT_ELEMENTS/FP_EXACT_COUNT (marked _BY_FORMULA, formulas in
    by_formula) are compared by formula, once per key. Returns (batch, n_dropped, uniq, first, new)."""
    uniq, first, inv = np.unique(batch.keys, return_index=True, return_inverse=True)
    fp = batch.fingerprint if batch.fingerprint is not None else compositions.fingerprints(batch.z, batch.counts)
    fpf = fp[first]
    ul = uniq.tolist()
    prev = np.fromiter(map(known.get, ul, repeat(-1)), np.int64, len(ul))  # fingerprints are >= 0
    new = prev == -1
    for i in np.flatnonzero(prev == _BY_FORMULA):   # rare: a stored map a fingerprint cannot vouch for
        j = first[i]
        if compositions.from_arrays(batch.z[j], batch.counts[j]).formula == (by_formula or {}).get(ul[i]):
            known[ul[i]] = prev[i] = fpf[i]       # the same map: later batches compare fingerprints
    other = ~new & (prev != fpf)              # the key names another map already
    known.update(zip(uniq[new].tolist(), fpf[new].tolist()))
    clash = (fp != fpf[inv]) | other[inv]
    n = int(clash.sum())
    if n:
        keep = ~clash
        batch = DecodedBatch(batch.batch_no, batch.n_samples, batch.sample_no[keep], batch.keys[keep],
                             batch.z[keep], batch.counts[keep], fp[keep])
        new_keys = uniq[new]
        uniq, first = np.unique(batch.keys, return_index=True)
        new = np.isin(uniq, new_keys)
    return batch, n, uniq, first, new


def default_batch_size(device: str) -> int:
    return DEFAULT_BATCH_SIZE["cuda" if str(device).startswith("cuda") else "cpu"]


def generate(store: Store, model, n: int, batch_size: int | None = None, seed: int = 0,
             device: str | None = None, tolerance: float | None = None,
             progress: bool = True, stages: Stages | None = None) -> RunResult:
    """Draw n samples from a generator model ('name', 'name@N', id or LoadedModel) into a new run.

    stages: also validate / featurize / predict each batch's distinct compositions that lack it
    (the full pipeline in one pass; see Stages for when those rows are written)."""
    n = at_least_one("generate: the number of samples (-n)", n, error=RunError)
    batch_size = at_least_one("generate: the batch size", batch_size, allow_none=True, error=RunError)
    tolerance = decode_tolerance(tolerance, error=RunError)
    device = resolve_device(device)
    batch_size = default_batch_size(device) if batch_size is None else batch_size
    loaded = _load(store, model, device)
    pipe = _Pipeline(store, stages, device) if stages else None
    params = {"n": int(n), "batch_size": int(batch_size), "tolerance": tolerance,
              "model": loaded.ref}
    if pipe is not None:
        params["stages"] = {"validate": pipe.validate, "featurize": list(pipe.stored),
                            "predict": pipe.refs}
        if pipe.reference is not None:
            params["stages"]["stability"] = pipe.reference.source
    from .recovery import this_process_start  # noqa: PLC0415

    with store.transaction() as con:
        run_id = con.execute(
            "INSERT INTO runs (kind, model_id, params, seed, device, status, started_at, "
            "n_requested, pid, host, pid_started) VALUES ('generate', ?, ?, ?, ?, 'running', now(), "
            "?, ?, ?, ?) RETURNING run_id",
            [loaded.model_id, json.dumps(params), int(seed), device, int(n), os.getpid(),
             socket.gethostname(), this_process_start()]).fetchall()[0][0]
    return _execute(store, run_id, loaded, params, int(seed), device, set(), progress, pipe)


def resume(store: Store, run_id: int, device: str | None = None, progress: bool = True,
           model=None) -> RunResult:
    """Continue run_id from its last committed batch: draw only the batches not yet stored.

    model: an already loaded generator for the run's model id (default: loaded from the store)."""
    from .recovery import pid_alive, this_process_start  # noqa: PLC0415

    with store.connect() as con:
        rows = frame(con, "SELECT * FROM runs WHERE run_id = ?", [int(run_id)]).to_dicts()
        done = {r[0] for r in con.execute("SELECT batch_no FROM run_batches WHERE run_id = ?",
                                          [int(run_id)]).fetchall()}
    if not rows:
        raise RunError(f"resume: no run {run_id} in {store.path}")
    run = rows[0]
    if run["kind"] != "generate":
        raise RunError(f"resume: run {run_id} is a {run['kind']} run, not a generate run")
    if (run["status"] == "running" and run["host"] == socket.gethostname()
            and run["pid"] != os.getpid() and pid_alive(run["pid"], run.get("pid_started"))):
        raise RunError(f"resume: run {run_id} is still running (pid {run['pid']})")
    params = json.loads(run["params"])
    # Same device as the original: CPU and CUDA generators draw different numbers from one seed.
    device = resolve_device(device or run["device"])
    if device != run["device"]:
        raise RunError(f"resume: run {run_id} was drawn on {run['device']}; resuming on {device} "
                       f"would draw different samples (torch generators differ per device)")
    loaded = _load(store, model if model is not None else run["model_id"], device)
    if loaded.model_id != run["model_id"]:
        raise RunError(f"resume: run {run_id} was drawn from model id {run['model_id']}, "
                       f"not {loaded.model_id}")
    with store.transaction() as con:
        con.execute("UPDATE runs SET status = 'running', pid = ?, host = ?, pid_started = ?, "
                    "finished_at = NULL WHERE run_id = ?",
                    [os.getpid(), socket.gethostname(), this_process_start(), int(run_id)])
    stages = Stages.from_params(params.get("stages"))
    pipe = _Pipeline(store, stages, device) if stages else None
    if pipe:
        pipe.catch_up(store, int(run_id))   # rows a killed run still had buffered
    return _execute(store, int(run_id), loaded, params, int(run["seed"]), device, done, progress,
                    pipe)


def _load(store: Store, model, device: str):
    from .registry import load_model  # noqa: PLC0415

    loaded = load_model(store, model, device=device) if not hasattr(model, "sample") else model
    if getattr(loaded, "kind", "wgan") not in models.GENERATOR_KINDS:
        raise RunError(f"model {loaded.ref} is a {loaded.kind}, not a generator (wgan/autoencoder)")
    return loaded


def _execute(store: Store, run_id: int, loaded, params: dict, seed: int, device: str,
             done: set[int], progress: bool, pipe: _Pipeline | None = None) -> RunResult:
    """Draw the batches in todo order. Two stages overlap: while a writer thread commits batch b,
    this thread samples, decodes and runs the stages of batch b + 1 (DuckDB and numpy release
    the GIL). Commits stay in batch order, one batch in flight at most."""
    import torch  # noqa: PLC0415

    n, bs, tol = params["n"], params["batch_size"], params.get("tolerance")
    todo = [b for b in range(-(-n // bs)) if b not in done]
    known, by_formula = _known_keys(store)
    t_start = time.perf_counter()
    tally = {"drawn": 0, "decodable": 0, "new": 0, "key_collisions": 0}
    written = {"validity": 0, "features": 0, "predictions": 0}
    if pipe is not None and pipe.reference is not None:
        written["stability"] = 0
    status = "failed"
    bar = _progress(progress, run_id, sum(min(bs, n - b * bs) for b in todo))
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"matstore-run-{run_id}")
    inflight: list = []          # [(future, samples, decodable)] of the batch being committed

    def commit(batch: DecodedBatch | None, new_rows, chunk, seconds: float):
        with store.transaction() as con:
            n_new = write_batch(con, run_id, batch, new_rows, seconds) if batch else 0
            return n_new, pipe.write(con, run_id, chunk) if chunk else {}

    def settle(advance=None) -> None:
        """Wait for the batch in flight to commit (its exception is raised here) and count it."""
        while inflight:
            fut, m, nd = inflight.pop()
            n_new, w = fut.result()
            tally["drawn"] += m
            tally["decodable"] += nd
            tally["new"] += n_new
            _count(written, w)
            if advance:
                advance(m)

    try:
        with bar as prog:
            task = prog.add_task(f"run {run_id}", total=sum(min(bs, n - b * bs) for b in todo))
            advance = lambda m: prog.update(task, advance=m)   # noqa: E731
            for b in todo:
                t0 = time.perf_counter()
                m = min(bs, n - b * bs)
                gen = torch.Generator(device=device).manual_seed(batch_seed(seed, b))
                with torch.inference_mode():
                    maps = loaded.sample(m, gen, device)
                    batch = decode_batch(maps, tol, b, b * bs)
                batch, n_clash, uniq, first, new = key_check(batch, known, by_formula)
                tally["key_collisions"] += n_clash
                new_rows = composition_rows(batch.z[first[new]], batch.counts[first[new]])
                chunk = None
                if pipe:
                    pipe.add(pipe.rows(uniq, batch.z[first], batch.counts[first]))
                    chunk = pipe.take() if pipe.due() else None
                settle(advance)
                inflight.append((pool.submit(commit, batch, new_rows, chunk, time.perf_counter() - t0),
                                 m, len(batch.keys)))
            settle(advance)
        if pipe and pipe.buffer:
            _count(written, commit(None, None, pipe.take(), 0.0)[1])
        status = "done"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        try:
            settle()      # the batch in flight commits whole (or not) before the status is set
        except Exception:  # noqa: BLE001 (its error is the one already raised, or resume redoes it)
            pass
        pool.shutdown(wait=True)
        seconds = time.perf_counter() - t_start
        if pipe and pipe.buffer:   # interrupted or failed: keep what was computed
            try:
                _count(written, commit(None, None, pipe.take(), 0.0)[1])
            except Exception:  # noqa: BLE001 (resume's catch_up redoes these rows)
                pass
        try:
            with store.transaction() as con:
                con.execute("UPDATE runs SET status = ?, finished_at = now() WHERE run_id = ?",
                            [status, run_id])
        except StoreError:
            pass  # the store is gone or locked: the next writer marks this run interrupted
    if tally["key_collisions"]:
        import warnings  # noqa: PLC0415

        warnings.warn(f"run {run_id}: {tally['key_collisions']} sample(s) dropped: their composition key "
                      f"names another element/count map (compositions.insert_new)", RuntimeWarning)
    return RunResult(run_id, status, tally["drawn"], tally["decodable"], tally["new"], seconds,
                     written if pipe else None, tally["key_collisions"])


def _count(total: dict[str, int], more: dict[str, int]) -> None:
    for k, v in more.items():
        total[k] += v


def _progress(enabled: bool, run_id: int, total: int):
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,  # noqa: PLC0415
                               TimeElapsedColumn, TimeRemainingColumn)

    class _Rate(TextColumn):
        def render(self, task):
            speed = task.finished_speed or task.speed
            from rich.text import Text  # noqa: PLC0415

            return Text(f"{speed:,.0f} samples/s" if speed else "- samples/s")

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    _Rate(""), TimeElapsedColumn(), TimeRemainingColumn(),
                    disable=not enabled, transient=False)


def run_status(store: Store, run_id: int) -> dict:
    """The runs row of run_id as a dict (status, counts, throughput)."""
    with store.connect() as con:
        rows = frame(con, "SELECT * FROM runs WHERE run_id = ?", [int(run_id)]).to_dicts()
    if not rows:
        raise RunError(f"no run {run_id} in {store.path}")
    return rows[0]


# --- array kernels (CPU): equal to onehot.decode / compositions.from_arrays, tests prove it ------
_DECODE_ROWS = 4096


def decode_numpy(maps, tolerance: float | None = None):
    """onehot.decode's answer for numpy maps, scanning only the set cells (~4x faster on CPU)."""
    from .features import onehot  # noqa: PLC0415

    tol = onehot.DEFAULT_TOLERANCE if tolerance is None else tolerance
    cells = onehot.N_COUNTS * onehot.N_ELEMENTS
    v = np.asarray(maps).reshape(-1, cells)
    n = len(v)
    cnt = np.zeros((n, onehot.N_ELEMENTS), np.int8)
    flat = v.reshape(-1)
    thr = np.asarray(1 - tol, v.dtype) if v.dtype.kind == "f" else 1 - tol
    # the set cells, scanned in cache-sized blocks of rows (generator maps are sparse)
    step = _DECODE_ROWS * cells
    idx = np.concatenate([np.flatnonzero(flat[s:s + step] >= thr) + s
                          for s in range(0, len(flat), step)] or [np.zeros(0, np.int64)])
    if len(idx) <= 16 * n:
        idx = idx[flat[idx] <= 1]
        row, cell = np.divmod(idx, cells)
        j, e = np.divmod(cell, onehot.N_ELEMENTS)
        np.maximum.at(cnt, (row, e), (j + 1).astype(np.int8))   # the largest set count
    else:                                  # dense maps (e.g. an untrained generator)
        hit = ((flat >= thr) & (flat <= 1)).reshape(n, onehot.N_COUNTS, onehot.N_ELEMENTS)
        for j in range(onehot.N_COUNTS):   # the largest set count of each element column
            np.maximum(cnt, hit[:, j].view(np.int8) * np.int8(j + 1), out=cnt)
    nel = np.count_nonzero(cnt, axis=1)
    ok = (nel >= 1) & (nel <= onehot.MAX_ELEMENTS)
    cnt[nel > onehot.MAX_ELEMENTS] = 0     # undecodable: too many elements
    r, e = np.nonzero(cnt)                 # row-major: each row's columns in table order
    start = np.zeros(n + 1, np.int64)
    np.cumsum(np.where(ok, nel, 0), out=start[1:])
    pos = np.arange(len(r)) - start[r]
    z = np.zeros((n, onehot.MAX_ELEMENTS), np.int64)
    c = np.zeros((n, onehot.MAX_ELEMENTS), np.int64)
    z[r, pos] = onehot.Z_85[e]
    c[r, pos] = cnt[r, e]
    return z, c, ok


_MAXC = 64                                  # counts above this take the Python path
_RANK = np.full(compositions.MAX_Z + 2, np.iinfo(np.int32).max, np.int64)
_order = sorted((s for s in compositions.SYMBOLS if s),
                key=lambda s: (compositions._SORT_X[compositions.Z_OF[s]], s))
_RANK[[compositions.Z_OF[s] for s in _order]] = np.arange(len(_order))
_BASE = [""] + [s + ("" if c == 1 else str(c)) for s in compositions.SYMBOLS[1:]
                 for c in range(1, _MAXC + 1)]
_OPEN = len(_BASE)                         # "(" + token: the first element of a polyanion
_TOKENS = pa.array(_BASE + ["(" + t for t in _BASE], pa.string())
_SUFFIX = pa.array([""] + [f"){p}" for p in range(1, _MAXC + 1)], pa.string())
_SYMBOLS = pa.array(compositions.SYMBOLS, pa.string())
del _order


def canonical(z: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decoded rows -> (z, reduced counts, n_elements) in the store's element order (padding last):
    the rows batch_from_arrow rebuilds from the stored compositions."""
    z = np.asarray(z, np.int64)
    c = np.asarray(counts, np.int64)
    present = (z > 0) & (c > 0)
    g = np.gcd.reduce(np.where(present, c, 0), axis=1)
    g[g == 0] = 1
    c = np.where(present, c // g[:, None], 0)
    order = np.argsort(np.where(present, _RANK[z], np.iinfo(np.int64).max), axis=1, kind="stable")
    z = np.take_along_axis(np.where(present, z, 0), order, 1)
    c = np.take_along_axis(c, order, 1)
    return z, c, (c > 0).sum(axis=1)


def composition_rows(z: np.ndarray, counts: np.ndarray) -> pa.Table:
    """compositions-table rows for decoded (z, counts) rows, vectorized; equal to from_arrays."""
    z, c, n_el = canonical(z, counts)
    m, k = z.shape
    rows = np.arange(m)
    # pymatgen's polyanion grouping: >= 3 elements, the last two close in electronegativity
    # and sharing a factor p -> "...(AxBy)p" with the last two counts divided by p.
    i_last, i_second = np.maximum(n_el - 1, 0), np.maximum(n_el - 2, 0)
    last, second = z[rows, i_last], z[rows, i_second]
    pf = np.gcd(c[rows, i_last], c[rows, i_second])
    with np.errstate(invalid="ignore"):
        close = compositions.PAULING_X[last] - compositions.PAULING_X[second] < 1.65
    poly = (n_el >= 3) & close & (pf != 1)
    slow = (c > _MAXC).any(axis=1)          # beyond the token table: the scalar path
    cd = c.copy()
    pr = np.flatnonzero(poly)
    cd[pr, i_last[pr]] //= pf[pr]
    cd[pr, i_second[pr]] //= pf[pr]
    tok = np.where(c > 0, (z - 1) * _MAXC + np.minimum(cd, _MAXC), 0).astype(np.int32)
    tok[pr, i_second[pr]] += _OPEN
    cols = [pa.DictionaryArray.from_arrays(pa.array(tok[:, j]), _TOKENS).dictionary_decode()
            for j in range(k)]
    cols.append(pa.DictionaryArray.from_arrays(
        pa.array(np.where(poly, np.minimum(pf, _MAXC), 0).astype(np.int32)), _SUFFIX).dictionary_decode())
    formula = pl.DataFrame({f"t{j}": col for j, col in enumerate(cols)}).select(
        pl.concat_str([pl.col(f"t{j}") for j in range(len(cols))]).alias("f"))["f"]
    formula = formula.replace(compositions._SPECIAL)
    if slow.any():
        fixed = formula.to_list()
        for i in np.flatnonzero(slow):
            fixed[i] = compositions.from_arrays(z[i], c[i]).formula
        formula = pl.Series("f", fixed, pl.Utf8)
    mask = c > 0
    offsets = pa.array(np.concatenate([[0], np.cumsum(n_el)]).astype(np.int32))
    elements = pa.ListArray.from_arrays(offsets, _SYMBOLS.take(pa.array(z[mask])))
    cnts = pa.ListArray.from_arrays(offsets, pa.array(c[mask].astype(np.int32)))
    return pa.table({"composition_id": pa.array(compositions.keys_from_arrays(z, c)),
                     "formula": formula.to_arrow(),
                     "elements": elements, "counts": cnts,
                     "n_elements": pa.array(n_el.astype(np.int32)),
                     "n_atoms": pa.array(c.sum(axis=1))})
