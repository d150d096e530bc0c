"""Generation runs: sample a generator in batches, decode, key, and append each batch to the store.

Each batch is a pure function of (model version, seed, batch number, batch size): its latent
vectors come from a torch.Generator seeded with ``batch_seed(seed, batch_no)``, so a resumed run
redraws exactly the batches that were never committed and ends with the same content as an
uninterrupted one. The store is touched only between batches, in one short transaction per batch
(raw samples, new compositions, the run_batches row, the runs counters), so another process can
query while a run goes on and a killed run loses at most the batch in flight. A writer thread
commits batch b while batch b + 1 is sampled and decoded, so the store's writes overlap the
generator instead of adding to it.

Modules: samples (decode, key, key check of one batch), stages (the after-generator stages and
when their rows are written), runs (the `runs` row), progress (the bar).
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from . import compositions, models, progress as progress_bars
from .bounds import BoundsError, check_samples
from .compositions import composition_rows
from .devices import resolve_device
from .executor import LocalExecutor, open_executor, payload_params, ship_models
from .executor.batch_checks import new_compositions, worker_batch
from .executor.worker_tasks import generate_batch
from .option_checks import at_least_one, chemical_system, decode_tolerance, sampling_overrides
from .runs import RunError, count, get_run, open_run, reopen_run, still_running, tracked
from .samples import DecodedBatch, decode_batch, key_check, known_keys
from .stages import Pipeline, Stages
from .store import Store, append

__all__ = ["DEFAULT_BATCH_SIZE", "DecodedBatch", "RunError", "RunResult", "Stages", "batch_seed",
           "composition_rows", "decode_batch", "default_batch_size", "default_device", "generate",
           "key_check", "known_keys", "resume", "run_status", "write_batch"]

# samples per batch (= per transaction) when none is given: on a CPU ~4 s of generator work (a
# kill loses little); on a GPU ~50 ms at 5M samples/s, and each commit fills whole row groups
DEFAULT_BATCH_SIZE = {"cpu": 8192, "cuda": 262_144}
# A run stops (RunError, status 'failed', committed batches kept) once its first batches decode
# nothing: 1,000 samples, or 2 batches of at least 200 samples in all. A generator decoding 1% of
# its samples passes (0.99^1000 = 4e-5); one decoding none would fill the store with nothing.
REFUSE_AFTER_SAMPLES = 1000
REFUSE_AFTER_BATCHES = (2, 200)
_MASK63 = (1 << 63) - 1


def batch_seed(seed: int, batch_no: int) -> int:
    """Seed of one batch's torch.Generator: a splitmix64 mix of (seed, batch_no)."""
    x = ((int(seed) & 0xFFFFFFFFFFFFFFFF) * 0x9E3779B97F4A7C15 + int(batch_no)) & 0xFFFFFFFFFFFFFFFF
    return compositions.mix64_int(x) & _MASK63


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
    n_key_collisions: int = 0     # samples dropped: their key names another map (samples.key_check)


    @property
    def samples_per_s(self) -> float:
        return self.n_samples / self.seconds if self.seconds > 0 else float("nan")


def write_batch(con, run_id: int, batch: DecodedBatch, new_rows: pa.Table,
                seconds: float) -> int:
    """Append one decoded batch inside the caller's transaction; returns new compositions."""
    gen = pa.table({"run_id": pa.array(np.full(len(batch.keys), run_id, np.int32)),
                    "batch_no": pa.array(np.full(len(batch.keys), batch.batch_no, np.int32)),
                    "sample_no": pa.array(batch.sample_no),
                    "composition_id": pa.array(batch.keys)})
    append(con, "generated", gen)
    # keys another writer added meanwhile are skipped and compared exactly (insert_unseen)
    n_new = compositions.insert_unseen(con, new_rows) if new_rows.num_rows else 0
    con.execute("INSERT INTO run_batches VALUES (?, ?, ?, ?, ?, now())",
                [run_id, batch.batch_no, batch.n_samples, len(batch.keys), seconds])
    count(con, run_id, len(batch.keys))   # rows_per_s: over the run's batches
    return n_new


def default_batch_size(device: str) -> int:
    return DEFAULT_BATCH_SIZE["cuda" if str(device).startswith("cuda") else "cpu"]


def generate(store: Store, model, n: int, batch_size: int | None = None, seed: int = 0,
             device: str | None = None, tolerance: float | None = None,
             progress: bool = True, stages: Stages | None = None,
             temperature: float | None = None, top_p: float | None = None,
             elements=None, all_elements: bool = False, executor=None,
             insecure: bool = False) -> RunResult:
    """Draw n samples from a generator model ('name', 'name@N', id or LoadedModel) into a new run.

    stages: also validate / featurize / predict each batch's distinct compositions that lack it
    (the full pipeline in one pass; see Stages for when those rows are written).
    temperature, top_p: a transformer's sampling settings for this run (default: the version's),
    recorded in the run's params (a resume draws with them).
    elements: a chemical system ('Mg,Mn,O') a transformer samples within by masking the other
    elements (all_elements: every sample holds all of them); recorded in the params likewise.
    executor: where batches are sampled and decoded ('local', 'processes:N', 'dask://HOST:PORT',
    a distributed.Client; matstore.executor); this process stays the one writer, same content."""
    n = at_least_one("generate: the number of samples (-n)", n, error=RunError)
    try:
        n = check_samples(n)   # before any batch list is built or a run is recorded
    except BoundsError as e:
        raise RunError(f"generate: {e}") from None
    batch_size = at_least_one("generate: the batch size", batch_size, allow_none=True, error=RunError)
    tolerance = decode_tolerance(tolerance, error=RunError)
    device = resolve_device(device)
    batch_size = default_batch_size(device) if batch_size is None else batch_size
    sampling = sampling_overrides(temperature, top_p, error=RunError)
    sampling.update(_system(elements, all_elements))
    loaded = _load(store, model, device)
    if sampling and not set(sampling) <= set(models.get(loaded.kind).sampling_options):
        raise RunError(f"generate: --temperature / --top-p / --elements apply to transformer "
                       f"generators; {loaded.ref} is a {loaded.kind}")
    pipe = Pipeline(store, stages, device) if stages else None
    params = {"n": int(n), "batch_size": int(batch_size), "tolerance": tolerance,
              "model": loaded.ref}
    if sampling:
        params["sampling"] = sampling
    if pipe is not None:
        params["stages"] = {"validate": pipe.validate, "featurize": list(pipe.stored),
                            "predict": pipe.refs}
        if pipe.reference is not None:
            params["stages"]["stability"] = pipe.reference.source
    with open_executor(executor, insecure=insecure, announce=progress) as ex:
        record = _ship(ex, store, loaded, pipe)   # versions checked before any batch
        run_id = open_run(store, "generate", loaded.model_id, params, device, n, seed=int(seed),
                          executor=ex.name, workers=ex.workers)
        return _execute(store, run_id, loaded, params, int(seed), device, set(), progress, pipe,
                        ex, record)


def resume(store: Store, run_id: int, device: str | None = None, progress: bool = True,
           model=None, executor=None, insecure: bool = False) -> RunResult:
    """Continue run_id from its last committed batch: draw only the batches not yet stored.

    model: an already loaded generator for the run's model id (default: loaded from the store)."""
    run = get_run(store, run_id)
    if run is None:
        raise RunError(f"resume: no run {run_id} in {store.path}")
    if run["kind"] != "generate":
        raise RunError(f"resume: run {run_id} is a {run['kind']} run, not a generate run")
    if still_running(run):
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
    with open_executor(executor, insecure=insecure, announce=progress) as ex:
        with store.connect() as con:
            done = {r[0] for r in con.execute("SELECT batch_no FROM run_batches WHERE run_id = ?",
                                              [int(run_id)]).fetchall()}
        stages = Stages.from_params(params.get("stages"))
        pipe = Pipeline(store, stages, device) if stages else None
        record = _ship(ex, store, loaded, pipe)
        reopen_run(store, run_id, ex.name, ex.workers)
        if pipe:
            pipe.catch_up(store, int(run_id))   # rows a killed run still had buffered
        return _execute(store, int(run_id), loaded, params, int(run["seed"]), device, done, progress,
                        pipe, ex, record)


def _ship(ex, store: Store, loaded, pipe: Pipeline | None) -> dict | None:
    """The generator's record for the workers, with the stage spec of the predictors stored in
    the store (stage_payload.spec) under "stages"; every record checked on every worker first."""
    from .executor.stage_payload import spec  # noqa: PLC0415

    preds = [lm.model_id for lm in (pipe.models if pipe else ()) if _stored_id(lm) is not None]
    recs = ship_models(ex, store, [_stored_id(loaded), *preds])
    if recs is None:
        return None
    return {**recs[0], "stages": spec(pipe, recs[1:])}


def _stored_id(loaded) -> int | None:
    """The model id workers can rebuild from the store's record (None: an object given in Python)."""
    return loaded.model_id if getattr(loaded, "record", None) is not None else None


def _load(store: Store, model, device: str):
    from .registry import resolve  # noqa: PLC0415

    loaded = resolve(store, model, device=device)   # a shipped model the store lacks: imported
    if loaded.kind not in models.GENERATOR_KINDS:
        raise RunError(f"model {loaded.ref} is a {loaded.kind}, not a generator "
                       f"({'/'.join(sorted(models.GENERATOR_KINDS))})")
    return loaded


def _execute(store: Store, run_id: int, loaded, params: dict, seed: int, device: str,
             done: set[int], progress: bool, pipe: Pipeline | None = None, ex=None,
             record: dict | None = None) -> RunResult:
    """Draw the batches in todo order. Two stages overlap: while a writer thread commits batch b,
    this thread samples, decodes and runs the stages of batch b + 1 (DuckDB and numpy release
    the GIL). Commits stay in batch order, one batch in flight at most. With a Dask executor
    the workers sample and decode (several batches ahead); each batch is checked here
    (executor.batch_checks) before its keys are compared and it is committed."""
    import torch  # noqa: PLC0415

    n, bs, tol = params["n"], params["batch_size"], params.get("tolerance")
    stored = params.get("sampling") or {}   # a received store's params are checked like options
    if not isinstance(stored, dict) or set(stored) - {"temperature", "top_p", "elements", "all_elements"}:
        raise RunError(f"run {run_id}: its sampling settings {stored!r} are not temperature / top_p "
                       f"/ elements / all_elements")
    sampling = sampling_overrides(stored.get("temperature"), stored.get("top_p"), error=RunError)
    sampling.update(_system(stored.get("elements"), stored.get("all_elements", False)))
    todo = [b for b in range(-(-n // bs)) if b not in done]
    known, by_formula = known_keys(store)
    t_start = time.perf_counter()
    tally = {"drawn": 0, "decodable": 0, "new": 0, "key_collisions": 0}
    written = pipe.no_rows() if pipe else {}
    bar = progress_bars.bar(progress, "samples")
    ex = ex if ex is not None else LocalExecutor()

    def draw(b: int) -> DecodedBatch:   # in process (the local executor)
        gen = torch.Generator(device=device).manual_seed(batch_seed(seed, b))
        with torch.inference_mode():   # the kind decodes its own samples
            return decode(loaded, loaded.sample(bs_of(b), gen, device, **sampling), tol, b, b * bs)

    bs_of = lambda b: min(bs, n - b * bs)   # noqa: E731
    task_params = payload_params(n=n, batch_size=bs, seed=seed, tolerance=tol, sampling=sampling,
                                 device=device)
    sp = (record or {}).get("stages")
    record = {k: v for k, v in record.items() if k != "stages"} if record else None
    shared = (record, task_params) + ((sp,) if sp else ())
    drawn = ex.map(todo, lambda b: (draw(b), None), generate_batch, shared,
                   lambda b, data: worker_batch(data, b, b * bs, bs_of(b), ex.name, sp, pipe))
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"matstore-run-{run_id}")
    inflight: list = []          # [(future, samples, decodable)] of the batch being committed
    seen = {"batches": 0, "samples": 0, "decodable": 0}   # this call's batches so far, uncommitted too

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

    with tracked(store, run_id):   # the status is set after the batch in flight settles
        try:
            with bar as prog:
                where = "" if ex.name == "local" else f" ({ex.name}, {ex.workers} workers)"
                task = prog.add_task(f"run {run_id}{where}", total=sum(bs_of(b) for b in todo))
                advance = lambda m: prog.update(task, advance=m)   # noqa: E731
                for b in todo:
                    t0 = time.perf_counter()
                    m = bs_of(b)
                    batch, given = next(drawn)   # given: a worker's stage rows of the batch
                    batch, n_clash, uniq, first, new = key_check(batch, known, by_formula)
                    tally["key_collisions"] += n_clash
                    new_rows = composition_rows(batch.z[first[new]], batch.counts[first[new]])
                    if ex.name != "local":   # a worker's batch: merge's composition checks
                        new_compositions(new_rows, ex.name, b)
                    chunk = None
                    if pipe:
                        pipe.add(pipe.rows(uniq, batch.z[first], batch.counts[first], given))
                        chunk = pipe.take() if pipe.due() else None
                    settle(advance)
                    inflight.append((pool.submit(commit, batch, new_rows, chunk, time.perf_counter() - t0),
                                     m, len(batch.keys)))
                    _refuse_if_nothing_decodes(loaded.ref, seen, b, m, len(batch.keys), tol)
                settle(advance)
            if pipe and pipe.buffer:
                _count(written, commit(None, None, pipe.take(), 0.0)[1])
        finally:
            try:
                settle()      # the batch in flight commits whole (or not) before the status is set
            except Exception:  # noqa: BLE001 (its error is the one already raised, or resume redoes it)
                pass
            pool.shutdown(wait=True)
            drawn.close()   # a Dask executor cancels the batches still computing
            seconds = time.perf_counter() - t_start
            if pipe and pipe.buffer:   # interrupted or failed: keep what was computed
                try:
                    _count(written, commit(None, None, pipe.take(), 0.0)[1])
                except Exception:  # noqa: BLE001 (resume's catch_up redoes these rows)
                    pass
    if tally["key_collisions"]:
        import warnings  # noqa: PLC0415

        warnings.warn(f"run {run_id}: {tally['key_collisions']} sample(s) dropped: their composition key "
                      f"names another element/count map (compositions.insert_new)", RuntimeWarning)
    return RunResult(run_id, "done", tally["drawn"], tally["decodable"], tally["new"], seconds,
                     written if pipe else None, tally["key_collisions"])


def _system(elements, all_elements) -> dict:
    """The sampling settings of a chemical system (checked; {} for none)."""
    syms = chemical_system(elements, error=RunError)
    if syms is None:
        if all_elements:
            raise RunError("generate: --all-elements needs --elements")
        return {}
    if not isinstance(all_elements, bool):
        raise RunError(f"all_elements must be true or false, got {all_elements!r}")
    return {"elements": syms, "all_elements": all_elements}


def _refuse_if_nothing_decodes(ref: str, seen: dict, batch_no: int, m: int, n_decodable: int,
                               tol: float | None) -> None:
    """Raise RunError when this call's first batches (REFUSE_AFTER_*) decoded no sample at all."""
    seen["batches"] += 1
    seen["samples"] += m
    seen["decodable"] += n_decodable
    n_batches, min_samples = REFUSE_AFTER_BATCHES
    enough = (seen["samples"] >= REFUSE_AFTER_SAMPLES
              or (seen["batches"] >= n_batches and seen["samples"] >= min_samples))
    if seen["decodable"] or not enough:
        return
    raise RunError(f"generate: the first {seen['samples']:,} samples of {ref} (batches up to "
                   f"{batch_no}) decode to no composition; stopped (the batches drawn are kept): "
                   f"the generator's output never reaches the decoding threshold"
                   f"{'' if tol is None else f' (tolerance {tol})'}: train longer, use a preset such "
                   f"as gan-mp-small, or check --tolerance")


def decode(loaded, samples, tolerance: float | None, batch_no: int, first_sample: int) -> DecodedBatch:
    """A generator's samples -> DecodedBatch through its kind (LoadedModel.decode); an object
    with only ``sample`` yields one-hot maps."""
    if hasattr(loaded, "decode"):
        return loaded.decode(samples, tolerance, batch_no, first_sample)
    return decode_batch(samples, tolerance, batch_no, first_sample)


def _count(total: dict[str, int], more: dict[str, int]) -> None:
    for k, v in more.items():
        total[k] += v


def run_status(store: Store, run_id: int) -> dict:
    """The runs row of run_id as a dict (status, counts, throughput)."""
    run = get_run(store, run_id)
    if run is None:
        raise RunError(f"no run {run_id} in {store.path}")
    return run
