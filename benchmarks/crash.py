"""Crash safety: kill -9 a writer (generate / ingest / featurize+validate) at a random moment,
check what it left, resume it, and compare the store with an uninterrupted run.

Per trial: the killed store must hold only whole batches (no partial batch visible), every batch
it committed must equal the clean run's batch (rows lost = 0), the killed run/ingest must read
`interrupted` on the next open, and after resume every content table's checksum must equal the
clean run's. Prints trials run, batches committed at the kill, rows lost, resume time.

    python benchmarks/crash.py [--trials 24] [--seed 0] [--kinds generate,ingest,featurize]

tests/test_crash.py runs a few of these trials in CI with the same code.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from matstore.export import checksum
from matstore.store import Store

DATA = Path(os.environ.get("MATSTORE_TEST_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))

# The writer process. Small batches so a run has many commits; a deterministic replay generator
# (maps of real compositions, some with an extra element, some blank) stands in for a trained GAN.
WORKER = r"""
import json, sys, time
kind, db, csv, phase = sys.argv[1:5]
cfg = json.loads(sys.argv[5])
from matstore.store import Store
store = Store(db)

if kind == "ingest":
    import matstore.ingest as ingest
    ingest.CHUNK_ROWS = cfg["chunk"]
    finished = phase == "resume" and store.query(
        "SELECT count(*) AS n FROM ingests WHERE status = 'done'")["n"][0] > 0
    if not finished:  # killed after it finished: re-running would record a second ingest
        ingest.run(store, "csv", file=csv, props=["band_gap=target:eV"])
elif kind == "featurize":
    from matstore.featurize import featurize_store, validate_store
    featurize_store(store, "fractions", batch_size=cfg["chunk"], progress=False)
    validate_store(store, batch_size=cfg["chunk"], progress=False)
elif kind == "generate":
    import polars as pl
    from matstore import runner
    from matstore.testing import ReplayGenerator

    gen = ReplayGenerator(pl.read_csv(csv)["formula"].to_list()[:3000])
    existing = store.query("SELECT run_id FROM runs")["run_id"].to_list() if phase == "resume" else []
    if existing:
        runner.resume(store, existing[0], model=gen, progress=False)
    else:
        runner.generate(store, gen, cfg["n"], batch_size=cfg["chunk"], seed=7, device="cpu", progress=False)
print("done", flush=True)
"""

# Content compared with the clean run, per kind: table -> columns (None: all columns).
CONTENT = {
    "ingest": {"compositions": None, "materials": None, "properties": None, "rejects": None,
               "ingests": ["ingest_id", "source", "uri", "status", "cursor", "rows_seen", "rows_kept",
                           "rows_rejected", "rows_curated", "rows_duplicate"]},
    "generate": {"generated": None, "compositions": None,
                 "run_batches": ["run_id", "batch_no", "n_samples", "n_decodable"],
                 "runs": ["run_id", "kind", "model_id", "seed", "device", "status", "n_requested", "n_written"]},
    "featurize": {"features": None, "validity": None},
}
SIZES = {  # rows of real data, rows per transaction, samples to generate
    "ingest": {"rows": 20000, "chunk": 1000},
    "generate": {"rows": 3000, "chunk": 400, "n": 8000},
    "featurize": {"rows": 20000, "chunk": 1000},
}


@dataclass
class Trial:
    kind: str
    kill_after_s: float
    batches_committed: int = 0          # batches/chunks durably in the store when killed
    partial_rows: int = 0               # rows outside any committed batch (must be 0)
    rows_lost: int = 0                  # committed rows missing or different (must be 0)
    marked_interrupted: bool | None = None  # None: killed before its run/ingest row existed
    resume_s: float = 0.0
    identical: bool = False
    problems: list[str] = field(default_factory=list)


def _worker(kind: str, db: Path, csv: Path, phase: str, sizes: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WORKER, kind, str(db), str(csv), phase,
                             json.dumps(sizes[kind])], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _run_to_end(kind, db, csv, phase, sizes) -> float:
    t = time.perf_counter()
    p = _worker(kind, db, csv, phase, sizes)
    out, err = p.communicate(timeout=600)
    if p.returncode != 0 or "done" not in out:
        raise RuntimeError(f"{kind} {phase} failed (rc {p.returncode}): {err[-2000:]}")
    return time.perf_counter() - t


def _sums(store: Store, kind: str) -> dict:
    with store.connect() as con:
        return {t: checksum(con, t, cols) for t, cols in CONTENT[kind].items()}


class Bench:
    """Prepared base stores and clean results for each kind, in one scratch folder."""

    def __init__(self, workdir: Path, kinds: list[str], sizes: dict | None = None):
        self.dir = workdir
        self.sizes = {**SIZES, **(sizes or {})}
        self.csv = workdir / "oqmd_bandgap.csv"
        rows = max(self.sizes[k]["rows"] for k in kinds)
        pl.read_csv(DATA / "oqmd" / "bandgap_train.csv").head(rows).write_csv(self.csv)
        self.base, self.clean, self.clean_s, self.clean_batches = {}, {}, {}, {}
        for kind in kinds:
            base = workdir / f"base_{kind}.duckdb"
            Store.init(base)
            if kind == "featurize":  # featurize works on what an ingest stored
                _run_to_end("ingest", base, self.csv, "run", self.sizes)
            self.base[kind] = base
            clean = workdir / f"clean_{kind}.duckdb"
            shutil.copyfile(base, clean)
            self.clean_s[kind] = _run_to_end(kind, clean, self.csv, "run", self.sizes)
            self.clean[kind] = _sums(Store(clean), kind)
            self.clean_batches[kind] = Store(clean)
            assert self.clean[kind][next(iter(CONTENT[kind]))][0] > 0, f"clean {kind} wrote nothing"

    def trial(self, kind: str, rng: random.Random, n: int, kill_when: str | None = None) -> Trial:
        """Kill at a random moment of the clean run's duration, or as soon as the SQL condition
        kill_when holds (polled read-only, as a user's query would)."""
        db = self.dir / f"trial_{kind}_{n}.duckdb"
        for p in (db, Path(f"{db}.wal"), Path(f"{db}.lock"), Path(f"{db}.queue")):
            p.unlink(missing_ok=True)
        shutil.copyfile(self.base[kind], db)
        t = Trial(kind, rng.uniform(0.3, self.clean_s[kind]))
        t0 = time.perf_counter()
        p = _worker(kind, db, self.csv, "run", self.sizes)
        if kill_when:
            while p.poll() is None and not Store(db).query(f"SELECT ({kill_when}) AS ok")["ok"][0]:
                time.sleep(0.05)
            t.kill_after_s = time.perf_counter() - t0
        else:
            time.sleep(t.kill_after_s)
        p.send_signal(signal.SIGKILL)
        p.communicate()
        self._inspect_killed(Store(db), t)
        t0 = time.perf_counter()
        _run_to_end(kind, db, self.csv, "resume", self.sizes)
        t.resume_s = time.perf_counter() - t0
        got = _sums(Store(db), kind)
        t.identical = got == self.clean[kind]
        if not t.identical:
            t.problems += [f"{k}: {got[k]} != clean {self.clean[kind][k]}" for k in got if got[k] != self.clean[kind][k]]
        for p in (db, Path(f"{db}.wal"), Path(f"{db}.lock"), Path(f"{db}.queue")):
            p.unlink(missing_ok=True)
        return t

    def _inspect_killed(self, store: Store, t: Trial) -> None:
        """What the kill left: whole batches only, each equal to the clean run's."""
        clean = self.clean_batches[t.kind].path
        # the first write-open marks dead work interrupted; the clean store is the one file it may attach
        with store.connect(write=True, write_paths=[str(clean), f"{clean}.wal"]) as con:
            con.execute(f"ATTACH '{clean}' AS clean (READ_ONLY)")
            try:
                if t.kind == "generate":
                    t.batches_committed = con.execute("SELECT count(*) FROM run_batches").fetchall()[0][0]
                    t.partial_rows = con.execute(
                        "SELECT count(*) FROM generated g WHERE NOT EXISTS (SELECT 1 FROM run_batches b "
                        "WHERE b.run_id = g.run_id AND b.batch_no = g.batch_no)").fetchall()[0][0]
                    t.rows_lost = con.execute("""
                        SELECT count(*) FROM clean.generated c JOIN run_batches b USING (run_id, batch_no)
                        WHERE NOT EXISTS (SELECT 1 FROM generated g WHERE g.run_id = c.run_id AND
                              g.batch_no = c.batch_no AND g.sample_no = c.sample_no
                              AND g.composition_id = c.composition_id)""").fetchall()[0][0]
                    status = con.execute("SELECT status FROM runs").fetchall()
                elif t.kind == "ingest":
                    row = con.execute("SELECT cursor, rows_kept, status FROM ingests").fetchall()
                    status = [(r[2],) for r in row]
                    cursor = row[0][0] if row else None
                    chunk = self.sizes["ingest"]["chunk"]
                    every = -(-self.sizes["ingest"]["rows"] // chunk)
                    t.batches_committed = (every if cursor == "end" or (row and row[0][2] == "done")
                                           else 0 if cursor is None else int(cursor) // chunk)
                    n_mat = con.execute("SELECT count(*) FROM materials").fetchall()[0][0]
                    # the ingests row's count was committed with the chunks: they must agree
                    t.partial_rows = abs(n_mat - (row[0][1] if row else 0))
                    t.rows_lost = con.execute(
                        "SELECT count(*) FROM materials m WHERE NOT EXISTS (SELECT 1 FROM clean.materials c "
                        "WHERE c.material_id = m.material_id AND c.composition_id = m.composition_id)"
                    ).fetchall()[0][0]
                else:
                    status = []
                    chunk = self.sizes["featurize"]["chunk"]
                    n_feat = con.execute("SELECT count(*) FROM features").fetchall()[0][0]
                    n_val = con.execute("SELECT count(*) FROM validity").fetchall()[0][0]
                    total = self.clean[t.kind]["features"][0]
                    t.batches_committed = -(-n_feat // chunk) + -(-n_val // chunk)
                    # a batch is whole: counts are multiples of the batch size, except the last one
                    t.partial_rows = sum(n % chunk for n in (n_feat, n_val) if n not in (0, total))
                    t.rows_lost = con.execute("""
                        SELECT (SELECT count(*) FROM features f WHERE NOT EXISTS (SELECT 1 FROM clean.features c
                                WHERE c.composition_id = f.composition_id AND c.vector = f.vector))
                             + (SELECT count(*) FROM validity v WHERE NOT EXISTS (SELECT 1 FROM clean.validity c
                                WHERE c.composition_id = v.composition_id
                                AND c.charge_neutral IS NOT DISTINCT FROM v.charge_neutral
                                AND c.electronegativity_balanced IS NOT DISTINCT FROM v.electronegativity_balanced
                                AND c.smact_valid IS NOT DISTINCT FROM v.smact_valid))""").fetchall()[0][0]
            finally:
                con.execute("DETACH clean")
        if status:
            t.marked_interrupted = status[0][0] in ("interrupted", "done")
            if status[0][0] not in ("interrupted", "done"):
                t.problems.append(f"status after kill: {status[0][0]}")
        if t.partial_rows:
            t.problems.append(f"{t.partial_rows} rows of a partial batch visible")
        if t.rows_lost:
            t.problems.append(f"{t.rows_lost} committed rows lost or different")


def run_trials(kinds: list[str], trials: int, seed: int = 0, workdir: Path | None = None,
               sizes: dict | None = None) -> tuple[list[Trial], Bench]:
    own = workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="matstore-crash-")) if own else workdir
    try:
        bench = Bench(workdir, kinds, sizes)
        rng = random.Random(seed)
        out = [bench.trial(kinds[i % len(kinds)], rng, i) for i in range(trials)]
        return out, bench
    finally:
        if own:
            shutil.rmtree(workdir, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=24)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--kinds", default="generate,ingest,featurize")
    a = ap.parse_args()
    kinds = a.kinds.split(",")
    t0 = time.perf_counter()
    trials, bench = run_trials(kinds, a.trials, a.seed)
    print(f"clean runs: " + ", ".join(f"{k} {bench.clean_s[k]:.1f} s" for k in kinds))
    print(f"{'kind':10} {'kill@s':>7} {'batches':>8} {'partial':>8} {'lost':>5} {'interrupted':>12} "
          f"{'resume_s':>9}  identical")
    for t in trials:
        print(f"{t.kind:10} {t.kill_after_s:7.2f} {t.batches_committed:8d} {t.partial_rows:8d} {t.rows_lost:5d} "
              f"{str(t.marked_interrupted):>12} {t.resume_s:9.2f}  {t.identical}"
              + (f"  {'; '.join(t.problems)}" if t.problems else ""))
    lost = sum(t.rows_lost + t.partial_rows for t in trials)
    bad = [t for t in trials if not t.identical or t.problems]
    print(f"\ntrials run: {len(trials)}   batches committed at kill: {sum(t.batches_committed for t in trials)}"
          f"   rows lost: {lost}   identical after resume: {len(trials) - len(bad)}/{len(trials)}")
    for k in kinds:
        rs = [t.resume_s for t in trials if t.kind == k]
        if rs:
            print(f"resume time {k}: mean {sum(rs) / len(rs):.2f} s, max {max(rs):.2f} s "
                  f"(clean run {bench.clean_s[k]:.2f} s)")
    print(f"total {time.perf_counter() - t0:.0f} s")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
