"""Generation runs: sample a generator in batches, decode, key, and append each batch to the store.

Each batch is a pure function of (model version, seed, batch number, batch size): its latent
vectors come from a torch.Generator seeded with ``batch_seed(seed, batch_no)``, so a resumed run
redraws exactly the batches that were never committed and ends with the same content as an
uninterrupted one. The store is touched only between batches, in one short transaction per batch
(raw samples, new compositions, the run_batches row, the runs counters), so another process can
query while a run goes on and a killed run loses at most the batch in flight.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa

from . import compositions
from .store import Store, StoreError, append, append_new, frame

DEFAULT_BATCH_SIZE = 8192
_MASK63 = (1 << 63) - 1


class RunError(RuntimeError):
    """A run that cannot be started or resumed; the message names it and says why."""


def batch_seed(seed: int, batch_no: int) -> int:
    """Seed of one batch's torch.Generator: a splitmix64 mix of (seed, batch_no)."""
    x = ((int(seed) & 0xFFFFFFFFFFFFFFFF) * 0x9E3779B97F4A7C15 + int(batch_no)) & 0xFFFFFFFFFFFFFFFF
    return compositions._mix64_int(x) & _MASK63


def default_device() -> str:
    import torch  # noqa: PLC0415

    return "cuda" if torch.cuda.is_available() else "cpu"


@dataclass
class RunResult:
    run_id: int
    status: str
    n_samples: int            # drawn in this call (resume: only the missing batches)
    n_decodable: int
    n_new_compositions: int
    seconds: float

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


def decode_batch(maps, tolerance: float | None, batch_no: int, first_sample: int) -> DecodedBatch:
    """(m, 8, 85) generator output (numpy or torch, any device) -> keys of decodable samples."""
    from .features import onehot  # noqa: PLC0415

    kw = {} if tolerance is None else {"tolerance": tolerance}
    z, counts, ok = onehot.decode(maps, **kw)
    z, counts, ok = (_numpy(a) for a in (z, counts, ok))
    idx = np.flatnonzero(ok)
    z, counts = z[idx], counts[idx]
    keys = compositions.keys_from_arrays(z, counts)
    return DecodedBatch(batch_no, len(ok), idx.astype(np.int64) + first_sample, keys, z, counts)


def _numpy(a) -> np.ndarray:
    return a.detach().cpu().numpy() if hasattr(a, "detach") else np.asarray(a)


def new_composition_rows(keys: np.ndarray, z: np.ndarray, counts: np.ndarray,
                         known: set[int]) -> pl.DataFrame:
    """compositions rows for the distinct keys not in `known` (formula etc. per new key only)."""
    uniq, first = np.unique(keys, return_index=True)
    rows = [(k, i) for k, i in zip(uniq.tolist(), first.tolist()) if k not in known]
    ids, formulas, elements, cnts, n_el, n_at = [], [], [], [], [], []
    for k, i in rows:
        c = compositions.from_arrays(z[i], counts[i])
        if c.composition_id != k:  # keys_from_arrays and composition_key must agree
            raise RunError(f"composition key mismatch for {c.formula}: {k} != {c.composition_id}")
        ids.append(k)
        formulas.append(c.formula)
        elements.append(list(c.elements))
        cnts.append(list(c.counts))
        n_el.append(c.n_elements)
        n_at.append(c.n_atoms)
    return pl.DataFrame({"composition_id": pl.Series(ids, dtype=pl.Int64),
                         "formula": pl.Series(formulas, dtype=pl.Utf8),
                         "elements": pl.Series(elements, dtype=pl.List(pl.Utf8)),
                         "counts": pl.Series(cnts, dtype=pl.List(pl.Int32)),
                         "n_elements": pl.Series(n_el, dtype=pl.Int32),
                         "n_atoms": pl.Series(n_at, dtype=pl.Int64)})


def write_batch(con, run_id: int, batch: DecodedBatch, new_rows: pl.DataFrame,
                seconds: float) -> int:
    """Append one decoded batch inside the caller's transaction; returns new compositions."""
    gen = pa.table({"run_id": pa.array(np.full(len(batch.keys), run_id, np.int32)),
                    "batch_no": pa.array(np.full(len(batch.keys), batch.batch_no, np.int32)),
                    "sample_no": pa.array(batch.sample_no),
                    "composition_id": pa.array(batch.keys)})
    append(con, "generated", gen)
    n_new = append_new(con, "compositions", new_rows, key=["composition_id"]) if new_rows.height else 0
    con.execute("INSERT INTO run_batches VALUES (?, ?, ?, ?, ?, now())",
                [run_id, batch.batch_no, batch.n_samples, len(batch.keys), seconds])
    con.execute("""UPDATE runs SET n_written = (SELECT count(*) FROM generated WHERE run_id = ?),
                   rows_per_s = (SELECT sum(n_samples) / nullif(sum(seconds), 0)
                                 FROM run_batches WHERE run_id = ?)
                   WHERE run_id = ?""", [run_id, run_id, run_id])
    return n_new


def _known_keys(store: Store) -> set[int]:
    with store.connect() as con:
        ids = con.sql("SELECT composition_id FROM compositions").fetchnumpy()["composition_id"]
    return set(ids.tolist())


def generate(store: Store, model, n: int, batch_size: int = DEFAULT_BATCH_SIZE, seed: int = 0,
             device: str | None = None, tolerance: float | None = None,
             progress: bool = True) -> RunResult:
    """Draw n samples from a generator model ('name', 'name@N', id or LoadedModel) into a new run."""
    if n <= 0:
        raise RunError(f"generate: the number of samples must be positive, got {n}")
    if batch_size <= 0:
        raise RunError(f"generate: the batch size must be positive, got {batch_size}")
    device = device or default_device()
    loaded = _load(store, model, device)
    params = {"n": int(n), "batch_size": int(batch_size), "tolerance": tolerance,
              "model": loaded.ref}
    with store.transaction() as con:
        run_id = con.execute(
            "INSERT INTO runs (kind, model_id, params, seed, device, status, started_at, "
            "n_requested, pid, host) VALUES ('generate', ?, ?, ?, ?, 'running', now(), ?, ?, ?) "
            "RETURNING run_id",
            [loaded.model_id, json.dumps(params), int(seed), device, int(n), os.getpid(),
             socket.gethostname()]).fetchall()[0][0]
    return _execute(store, run_id, loaded, params, int(seed), device, set(), progress)


def resume(store: Store, run_id: int, device: str | None = None, progress: bool = True,
           model=None) -> RunResult:
    """Continue run_id from its last committed batch: draw only the batches not yet stored.

    model: an already loaded generator for the run's model id (default: loaded from the store)."""
    from .recovery import pid_alive  # noqa: PLC0415

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
            and run["pid"] != os.getpid() and pid_alive(run["pid"])):
        raise RunError(f"resume: run {run_id} is still running (pid {run['pid']})")
    params = json.loads(run["params"])
    # Same device as the original: CPU and CUDA generators draw different numbers from one seed.
    device = device or run["device"] or default_device()
    if device != run["device"]:
        raise RunError(f"resume: run {run_id} was drawn on {run['device']}; resuming on {device} "
                       f"would draw different samples (torch generators differ per device)")
    loaded = _load(store, model if model is not None else run["model_id"], device)
    if loaded.model_id != run["model_id"]:
        raise RunError(f"resume: run {run_id} was drawn from model id {run['model_id']}, "
                       f"not {loaded.model_id}")
    with store.transaction() as con:
        con.execute("UPDATE runs SET status = 'running', pid = ?, host = ?, finished_at = NULL "
                    "WHERE run_id = ?", [os.getpid(), socket.gethostname(), int(run_id)])
    return _execute(store, int(run_id), loaded, params, int(run["seed"]), device, done, progress)


def _load(store: Store, model, device: str):
    from .registry import load_model  # noqa: PLC0415

    loaded = load_model(store, model, device=device) if not hasattr(model, "sample") else model
    if getattr(loaded, "kind", "wgan") not in ("wgan", "autoencoder"):
        raise RunError(f"model {loaded.ref} is a {loaded.kind}, not a generator (wgan/autoencoder)")
    return loaded


def _execute(store: Store, run_id: int, loaded, params: dict, seed: int, device: str,
             done: set[int], progress: bool) -> RunResult:
    import torch  # noqa: PLC0415

    n, bs, tol = params["n"], params["batch_size"], params.get("tolerance")
    todo = [b for b in range(-(-n // bs)) if b not in done]
    known = _known_keys(store)
    t_start = time.perf_counter()
    drawn = decodable = n_new = 0
    status = "failed"
    bar = _progress(progress, run_id, sum(min(bs, n - b * bs) for b in todo))
    try:
        with bar as prog:
            task = prog.add_task(f"run {run_id}", total=sum(min(bs, n - b * bs) for b in todo))
            for b in todo:
                t0 = time.perf_counter()
                m = min(bs, n - b * bs)
                gen = torch.Generator(device=device).manual_seed(batch_seed(seed, b))
                with torch.inference_mode():
                    maps = loaded.sample(m, gen, device)
                    batch = decode_batch(maps, tol, b, b * bs)
                new_rows = new_composition_rows(batch.keys, batch.z, batch.counts, known)
                with store.transaction() as con:
                    n_new += write_batch(con, run_id, batch, new_rows, time.perf_counter() - t0)
                known.update(new_rows["composition_id"].to_list())
                drawn += m
                decodable += len(batch.keys)
                prog.update(task, advance=m)
        status = "done"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        seconds = time.perf_counter() - t_start
        try:
            with store.transaction() as con:
                con.execute("UPDATE runs SET status = ?, finished_at = now() WHERE run_id = ?",
                            [status, run_id])
        except StoreError:
            pass  # the store is gone or locked: the next writer marks this run interrupted
    return RunResult(run_id, status, drawn, decodable, n_new, seconds)


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
