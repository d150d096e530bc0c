"""The `runs` row of a long job (generate, predict, stability, ...): opened 'running' with this
process's pid, counted as batches commit, closed with its final status; a generate run is
reopened by resume (its batches are in run_batches, written by the runner)."""

from __future__ import annotations

import json
import os
import socket
from contextlib import contextmanager

from .errors import MatstoreError
from .recovery import pid_alive, this_process_start
from .store import Store, StoreError, frame


class RunError(MatstoreError, RuntimeError):
    """A run that cannot be started or resumed; the message names it and says why."""


def open_run(store: Store, kind: str, model_id: int | None, params: dict, device: str | None,
             n_requested: int, seed: int | None = None, executor: str = "local", workers: int = 1) -> int:
    """Insert a 'running' runs row of kind in its own transaction; returns its run_id.
    executor, workers: where its batches are computed (matstore.executor)."""
    with store.transaction() as con:
        return con.execute(
            "INSERT INTO runs (kind, model_id, params, seed, device, status, started_at, n_requested, "
            "pid, host, pid_started, executor, workers) VALUES (?, ?, ?, ?, ?, 'running', now(), ?, ?, "
            "?, ?, ?, ?) RETURNING run_id",
            [kind, model_id, json.dumps(params), seed, device, int(n_requested), os.getpid(),
             socket.gethostname(), this_process_start(), executor, int(workers)]).fetchall()[0][0]


def reopen_run(store: Store, run_id: int, executor: str = "local", workers: int = 1) -> None:
    """Mark run_id 'running' again, owned by this process (a resumed run), computed by executor."""
    with store.transaction() as con:
        con.execute("UPDATE runs SET status = 'running', pid = ?, host = ?, pid_started = ?, "
                    "finished_at = NULL, executor = ?, workers = ? WHERE run_id = ?",
                    [os.getpid(), socket.gethostname(), this_process_start(), executor, int(workers),
                     int(run_id)])


def count(con, run_id: int, n: int, rows_per_s: float | None = None) -> None:
    """Add n written rows to run_id inside the caller's transaction (the batch's own);
    rows_per_s None: the rate of the run's batches so far (run_batches)."""
    if rows_per_s is None:
        con.execute("""UPDATE runs SET n_written = n_written + ?,
                       rows_per_s = (SELECT sum(n_samples) / nullif(sum(seconds), 0)
                                     FROM run_batches WHERE run_id = ?)
                       WHERE run_id = ?""", [int(n), int(run_id), int(run_id)])
    else:
        con.execute("UPDATE runs SET n_written = n_written + ?, rows_per_s = ? WHERE run_id = ?",
                    [int(n), float(rows_per_s), int(run_id)])


def close_run(store: Store, run_id: int, status: str) -> None:
    """Set the final status; a store gone or locked is left to the next writer's recovery."""
    try:
        with store.transaction() as con:
            con.execute("UPDATE runs SET status = ?, finished_at = now() WHERE run_id = ?",
                        [status, int(run_id)])
    except StoreError:
        pass


@contextmanager
def tracked(store: Store, run_id: int):
    """Close run_id when the block ends: 'done', 'interrupted' on ^C, 'failed' on an error."""
    status = "failed"
    try:
        yield
        status = "done"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        close_run(store, run_id, status)


def get_run(store: Store, run_id: int) -> dict | None:
    """The runs row of run_id as a dict (status, counts, throughput), None if there is none."""
    with store.connect() as con:
        rows = frame(con, "SELECT * FROM runs WHERE run_id = ?", [int(run_id)]).to_dicts()
    return rows[0] if rows else None


def still_running(run: dict) -> bool:
    """Whether another live process on this host is running this runs row."""
    return (run["status"] == "running" and run["host"] == socket.gethostname()
            and run["pid"] != os.getpid() and pid_alive(run["pid"], run.get("pid_started")))
