"""What a killed process left behind: work marked `running` whose process is gone."""

from __future__ import annotations

import os
import socket

import duckdb


def process_start(pid: int) -> float | None:
    """When process pid started, in epoch seconds (Linux /proc; None where unknown)."""
    try:
        with open(f"/proc/{int(pid)}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()   # after "pid (comm)": state is first
        with open("/proc/stat") as f:
            btime = next(int(line.split()[1]) for line in f if line.startswith("btime "))
        return btime + int(fields[19]) / os.sysconf("SC_CLK_TCK")   # field 22: starttime
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def pid_alive(pid: int | None, started: float | None = None) -> bool:
    """Whether the process that recorded (pid, started) still runs: the pid is alive and, where
    both start times are known, it is the same process (not the pid reused)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    if started is not None:
        now = process_start(pid)
        if now is not None and abs(now - started) > 1.0:
            return False
    return True


def this_process_start() -> float | None:
    return process_start(os.getpid())


def mark_interrupted(con: duckdb.DuckDBPyConnection) -> int:
    """Mark runs and ingests still `running` from a dead process on this host as interrupted."""
    host = socket.gethostname()
    n = 0
    for table, key in (("runs", "run_id"), ("ingests", "ingest_id")):
        rows = con.execute(f"SELECT {key}, pid, host, pid_started FROM {table} "
                           f"WHERE status = 'running'").fetchall()
        dead = [r[0] for r in rows if r[2] == host and not pid_alive(r[1], r[3])]
        if dead:
            con.execute(f"UPDATE {table} SET status = 'interrupted' WHERE {key} IN "
                        f"(SELECT unnest(?::INTEGER[]))", [dead])
            n += len(dead)
    return n


def interrupted_work(store) -> "pl.DataFrame":
    """Runs and ingests left interrupted/failed, with the command that completes each.

    A generate run resumes from its last committed batch; an ingest re-run with the same source,
    file and options resumes from its cursor (its last committed chunk or page).
    """
    import polars as pl  # noqa: PLC0415

    from .store import frame  # noqa: PLC0415 (store imports recovery lazily)

    with store.connect(write=False) as con:
        ingests = frame(con, """
            SELECT 'ingest' AS what, ingest_id AS id, status, source AS kind, cursor,
                   rows_kept AS rows_written, started_at, uri
            FROM ingests WHERE status IN ('interrupted', 'failed') ORDER BY ingest_id""")
        runs = frame(con, """
            SELECT 'run' AS what, run_id AS id, status, kind,
                   (SELECT count(*) FROM run_batches b WHERE b.run_id = r.run_id)::VARCHAR AS cursor,
                   n_written AS rows_written, started_at, NULL::VARCHAR AS uri
            FROM runs r WHERE status IN ('interrupted', 'failed') ORDER BY run_id""")
    out = pl.concat([ingests, runs], how="vertical_relaxed")
    hint = (pl.when(pl.col("what") == "run")
            .then(pl.format("matstore generate --resume {}", pl.col("id")))
            .otherwise(pl.format("matstore ingest {} ... (same file and options; resumes at {})",
                                 pl.col("kind"), pl.col("cursor").fill_null("the start"))))
    return out.with_columns(hint.alias("resume_with"))
