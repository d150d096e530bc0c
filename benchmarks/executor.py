"""Executor throughput (issue 28): generate with predictions in process vs on 1 and 2 local Dask
worker processes, the executor's per-batch overhead, and the writer's own ceiling.

  python benchmarks/executor.py [--batches 12] [--batch-size 8192] [--ceiling-batches 8]

What each row is (samples/s = generated samples committed per second of the run, cluster start
and the version check excluded; they are printed on their own line):
1. in process, torch 1 thread / torch 2 threads: `--executor local`, today's path.
2. processes:1 / processes:2: a LocalCluster of 1 or 2 worker processes (1 Dask thread and 1 torch
   thread each) samples and decodes the shipped gan-mp-small (the thesis Table 3.2 generator: the
   CPU-bound part) and runs the stages on its batch's compositions (validity + a 10-tree random
   forest's formation energy; executor.stage_payload); this process checks each batch and its
   stage rows, keys it and commits. Beside each: CPU a batch of this process (the writer) and of
   the workers (psutil), and the 2-core bound they imply: with writer CPU c and worker CPU w a
   batch, 2 workers reach at most min(2/(c+w), 1/c) batches/s against 1/max(c, w) for one, so
   1.6x needs c <= w/4.
   Goal: processes:2 >= 1.6x processes:1 on 2 cores.
3. per-batch overhead: many tiny batches (16 samples) on processes:1 minus in process (1 thread),
   per batch: task submission, Arrow IPC both ways, the checks.
4. writer ceiling: workers' results (Arrow IPC bytes of the batch and of its stage rows, computed
   before the clock starts) handed to the runner as fast as it takes them (no generator: real MP
   compositions, 30% with an extra element, 10% blank), through the same client path (Arrow
   read, checks, keys, new compositions, stage rows, commit): the rows/s one store can absorb, so
   the number of workers it can feed is ceiling / (samples/s of one worker). Printed twice: stage
   rows from the workers (the executor's path) and computed by the writer (a predictor the
   workers cannot rebuild). With it, the CPU a batch of the main thread and of the commit thread
   (DuckDB), and the rows/s they allow on 2 free cores.
   Goal: >= 200k generated rows/s with predictions.
5. relax (--relax N, default 24; 0 skips): N real perov_5 structures (../shared/data) relaxed with
   CHGNet (FIRE, fmax 0.05, at most 40 steps, chunks of 4) in process with 1 torch thread and on
   1 and 2 worker processes (each loads the potential from its own install; a 2-structure run
   first warms them): structures/s and the 2-worker ratio.

The load average is printed first: on a shared machine every number shrinks with it.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
DATA = Path(os.environ.get("MATSTORE_TEST_DATA", ROOT.parent / "shared" / "data"))


def _store(d: Path):
    import polars as pl

    from _runner_helpers import load_compositions
    from matstore.registry import resolve
    from matstore.store import Store
    from matstore.training import train

    store = Store.init(d / "bench.duckdb")
    df = pl.read_csv(DATA / "mp" / "e_form.csv").sample(fraction=1.0, shuffle=True, seed=0).slice(0, 2000)
    load_compositions(store, df["formula"].to_list(), "mp", df[df.columns[1]].to_numpy())
    rf = train(store, "rf-fe", max_rows=1500, config={"n_estimators": 10, "n_jobs": 1}, progress=False)
    gan = resolve(store, "gan-mp-small", device="cpu")   # the shipped generator, imported
    return store, gan.ref, rf.ref


def _copy(store, name):
    import shutil

    from matstore.store import Store

    path = Path(store.path).parent / name
    shutil.copy(store.path, path)
    return Store(path)


def _generate(store, gan, rf, n, bs, executor):
    from matstore import runner

    return runner.generate(store, gan, n, batch_size=bs, seed=7, device="cpu", progress=False,
                           stages=runner.Stages(True, (), (rf,)), executor=executor)


def _cpu(pids) -> float:
    """CPU seconds (user + system) used so far by these processes."""
    import psutil

    total = 0.0
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batches", type=int, default=12)
    ap.add_argument("--batch-size", type=int, default=8192)   # the CPU default (runner)
    ap.add_argument("--ceiling-batches", type=int, default=8)
    ap.add_argument("--ceiling-batch-size", type=int, default=65536)
    ap.add_argument("--relax", type=int, default=24, help="structures relaxed (0: skip)")
    a = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    from matstore.executor import open_executor

    print(f"load average {os.getloadavg()[0]:.1f} / {os.getloadavg()[1]:.1f} (1/5 min) on "
          f"{os.cpu_count()} cores; torch {torch.__version__}", flush=True)
    d = Path(tempfile.mkdtemp(prefix="matstore-executor-bench-"))
    t = time.perf_counter()
    store, gan, rf = _store(d)
    print(f"setup (2,000 MP compositions, rf-fe 10 trees, gan-mp-small): {time.perf_counter() - t:.0f} s")
    n = a.batches * a.batch_size
    rows = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        c0 = time.process_time()
        r = _generate(_copy(store, f"local{threads}.duckdb"), gan, rf, n, a.batch_size, "local")
        rows.append((f"in process, torch {threads} thread{'s' * (threads > 1)}", r.samples_per_s,
                     time.process_time() - c0, None))
    torch.set_num_threads(1)
    for k in (1, 2):
        t = time.perf_counter()
        with open_executor(f"processes:{k}") as ex:
            start = time.perf_counter() - t
            pids = list(ex.client.run(os.getpid).values())
            # one small run first: the workers' imports and model loads are not a batch's cost
            _generate(_copy(store, f"warm{k}.duckdb"), gan, rf, 256 * k, 256, ex)
            s = _copy(store, f"proc{k}.duckdb")
            c0, w0 = time.process_time(), _cpu(pids)
            r = _generate(s, gan, rf, n, a.batch_size, ex)
            rows.append((f"processes:{k} (start {start:.1f} s)", r.samples_per_s,
                         time.process_time() - c0, _cpu(pids) - w0))
    print(f"\ngenerate {n:,} samples ({a.batches} batches of {a.batch_size:,}) + validity + rf-fe "
          f"predictions (CPU per batch: this process = the writer, and the workers)")
    for name, v, cc, wc in rows:
        cpu = f"writer {1000 * cc / a.batches:>6.0f} ms" + (
            "" if wc is None else f", workers {1000 * wc / a.batches:>6.0f} ms")
        print(f"  {name:<36} {v:>8,.0f} samples/s   CPU a batch: {cpu}")
    one, two = rows[2][1], rows[3][1]
    print(f"  processes:2 / processes:1            {two / one:>8.2f}x   (goal >= 1.6x)")
    print(f"  processes:2 / in process (1 thread)  {two / rows[0][1]:>8.2f}x")
    c, w = rows[3][2] / a.batches, rows[3][3] / a.batches
    print(f"  2 cores, writer c + workers w CPU a batch: at most min(2/(c+w), 1/c) batches/s on 2 "
          f"workers vs 1/max(c, w) on one: {2 * max(c, w) / (c + w):.2f}x at c/w = {c / w:.2f}")

    small, nb = 16, 60
    t0 = time.perf_counter()
    _generate(_copy(store, "tiny_local.duckdb"), gan, rf, small * nb, small, "local")
    t_local = time.perf_counter() - t0
    with open_executor("processes:1") as ex:
        t0 = time.perf_counter()
        _generate(_copy(store, "tiny_proc.duckdb"), gan, rf, small * nb, small, ex)
        t_dask = time.perf_counter() - t0
    print(f"\nper-batch overhead ({nb} batches of {small}): in process {1000 * t_local / nb:.1f} ms, "
          f"processes:1 {1000 * t_dask / nb:.1f} ms a batch -> executor adds "
          f"{1000 * (t_dask - t_local) / nb:.1f} ms a batch")

    for on_workers in (True, False):
        ceiling(store, rf, a.ceiling_batches, a.ceiling_batch_size, on_workers)
    if a.relax:
        relax_rates(d, a.relax)
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}; stores in {d}")


def ceiling(store, rf, n_batches: int, bs: int, on_workers: bool = True) -> float:
    """Decoded batches served instantly to the runner: what the one writer commits per second.
    on_workers: each batch comes with its stage rows (validity, predictions) as a worker sends
    them (computed before the clock starts); else the writer computes them. Returns rows/s."""
    import polars as pl
    import torch

    from matstore import runner
    from matstore.executor import DaskExecutor, LocalExecutor, stage_payload, worker_tasks
    from matstore.executor.payloads import encode
    from matstore.executor.worker_tasks import decoded_table
    from matstore.registry import resolve
    from matstore.registry.records import get_record
    from matstore.testing import ReplayGenerator

    s = _copy(store, f"ceiling{int(on_workers)}.duckdb")
    rf_id = resolve(s, rf, device="cpu").model_id
    formulas = pl.read_csv(DATA / "mp" / "e_form.csv")["formula"].to_list()[:20000]
    gen = ReplayGenerator(formulas, model_id=1)
    sp = {"validate": True, "models": [get_record(s, rf_id)], "token": "bench"}
    ready = {}
    for b in range(n_batches):   # what a worker returns: Arrow IPC bytes of the decoded batch
        maps = gen.sample(bs, torch.Generator().manual_seed(b), "cpu")
        batch = runner.decode_batch(maps.numpy(), None, b, b * bs)
        ready[b] = encode(decoded_table(batch))
        if on_workers:   # ... and its stage rows, one worker's (each key sent once in the run)
            ready[b] = [ready[b], stage_payload.build(batch, sp, lambda r: worker_tasks.model(r, "cpu"), "cpu")]
    first = []

    class Served(DaskExecutor if on_workers else LocalExecutor):   # workers' results, as fast as asked
        name, workers, dashboard = "served", 1, None

        def __init__(self):
            pass

        def check_versions(self, records=()):
            return None

        def map(self, items, local_fn, task=None, shared=(), accept=None):
            for b in items:
                first.append((time.perf_counter(), time.process_time(), time.thread_time()))
                yield accept(b, ready[b])

        def close(self):
            return None

    gan = resolve(s, "gan-mp-small", device="cpu")
    t = time.perf_counter()
    res = runner.generate(s, gan, n_batches * bs, batch_size=bs, seed=0, device="cpu", progress=False,
                          stages=runner.Stages(True, (), (rf,)), executor=Served())
    end, cpu, main_cpu = time.perf_counter(), time.process_time(), time.thread_time()
    n_pred = s.query("SELECT count(*) AS n FROM predictions")["n"][0]
    rate = res.n_samples / (end - first[0][0])
    main_cpu -= first[0][2]
    other = cpu - first[0][1] - main_cpu
    print(f"\nwriter ceiling, stage rows {'from the workers' if on_workers else 'computed by the writer'} "
          f"({n_batches} batches of {bs:,} decoded samples served instantly): {rate:,.0f} generated rows/s "
          f"committed from the first batch on ({res.n_samples / (end - t):,.0f} with the run's start: "
          f"models, store reads) ({res.n_decodable:,} decodable, {res.n_new_compositions:,} new "
          f"compositions, validity + {n_pred:,} predictions)   (goal >= 200,000)")
    print(f"  CPU a batch: main thread {1000 * main_cpu / n_batches:.0f} ms (Arrow read, checks, keys, "
          f"stage rows), other threads {1000 * other / n_batches:.0f} ms (the commit thread: DuckDB); "
          f"on 2 free cores between {res.n_samples / (main_cpu + other):,.0f} (no overlap) and "
          f"{res.n_samples / max(main_cpu, other):,.0f} rows/s (full overlap)")
    return rate


if __name__ == "__main__":
    main()


def relax_rates(d: Path, n: int) -> None:
    """Structures/s of a CHGNet relax run in process and on 1 and 2 local workers (row 5)."""
    import polars as pl
    import torch
    from pymatgen.core import Structure

    from matstore.executor import open_executor
    from matstore.relax import RelaxSettings
    from matstore.relax.run import relax_structures
    from matstore.store import Store
    from matstore.structures import write_structures

    data = Path(os.environ.get("MATSTORE_TEST_DATA", ROOT.parent / "shared" / "data"))
    df = pl.read_csv(data / "structures/perov_5/val.csv", n_rows=n + 2)
    structures = [Structure.from_str(c, fmt="cif") for c in df["cif"]]
    settings = RelaxSettings(fmax=0.05, max_steps=40)

    def run(name, executor, items):
        store = Store.init(d / f"relax_{name}.duckdb")
        write_structures(store, items, "known", "cif")
        t = time.perf_counter()
        r = relax_structures(store, potential="chgnet", settings=settings, batch=4, executor=executor)
        return len(items) / (time.perf_counter() - t), r

    torch.set_num_threads(1)
    run("warm_local", "local", structures[:2])
    rates = {"in process, torch 1 thread": run("local", "local", structures[2:])[0]}
    for k in (1, 2):
        with open_executor(f"processes:{k}") as ex:
            run(f"warm{k}", ex, structures[:2])
            rates[f"processes:{k}"] = run(f"proc{k}", ex, structures[2:])[0]
    print(f"\nrelax {n} perov_5 structures with CHGNet (FIRE, fmax 0.05, <= 40 steps, chunks of 4)")
    for name, v in rates.items():
        print(f"  {name:<36} {v:>8.2f} structures/s")
    print(f"  processes:2 / processes:1            {rates['processes:2'] / rates['processes:1']:>8.2f}x")
