"""The `runs` row of a long job (predict, stability, ...): opened 'running' with this process's
pid, counted as batches commit, closed with its final status. Generate runs keep their own
bookkeeping (batches, resume) in runner.py."""

from __future__ import annotations

import json
import os
import socket

from .recovery import this_process_start
from .store import Store, StoreError


def open_run(store: Store, kind: str, model_id: int | None, params: dict, device: str | None,
             n_requested: int) -> int:
    """Insert a 'running' runs row of kind in its own transaction; returns its run_id."""
    with store.transaction() as con:
        return con.execute(
            "INSERT INTO runs (kind, model_id, params, device, status, started_at, n_requested, "
            "pid, host, pid_started) VALUES (?, ?, ?, ?, 'running', now(), ?, ?, ?, ?) "
            "RETURNING run_id",
            [kind, model_id, json.dumps(params), device, int(n_requested), os.getpid(),
             socket.gethostname(), this_process_start()]).fetchall()[0][0]


def count(con, run_id: int, n: int, rows_per_s: float) -> None:
    """Add n written rows to run_id inside the caller's transaction (the batch's own)."""
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
