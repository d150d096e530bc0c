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

    A generate run resumes from its last committed batch; predict and stability runs complete by
    running the same command again (it computes only the rows still missing); an ingest re-run
    with the same source, file and options resumes from its cursor (its last committed chunk or
    page).
    """
    import polars as pl  # noqa: PLC0415

    def frame(con, sql: str) -> pl.DataFrame:
        return pl.from_arrow(con.sql(sql).to_arrow_table())

    with store.connect(write=False) as con:
        ingests = frame(con, """
            SELECT 'ingest' AS what, ingest_id AS id, status, source AS kind, cursor,
                   rows_kept AS rows_written, started_at, uri, NULL::VARCHAR AS params
            FROM ingests WHERE status IN ('interrupted', 'failed') ORDER BY ingest_id""")
        runs = frame(con, """
            SELECT 'run' AS what, run_id AS id, status, kind,
                   (SELECT count(*) FROM run_batches b WHERE b.run_id = r.run_id)::VARCHAR AS cursor,
                   n_written AS rows_written, started_at, NULL::VARCHAR AS uri, params::VARCHAR AS params
            FROM runs r WHERE status IN ('interrupted', 'failed') ORDER BY run_id""")
    out = pl.concat([ingests, runs], how="vertical_relaxed")
    hints = [resume_hint(r) for r in out.iter_rows(named=True)]
    return out.drop("params").with_columns(pl.Series("resume_with", hints, pl.String))


def resume_hint(work: dict) -> str:
    """The command that completes one row of interrupted_work (what, id, kind, cursor, params)."""
    import json  # noqa: PLC0415

    if work["what"] == "ingest":
        return f"matstore ingest {work['kind']} ... (same file and options; resumes at " \
               f"{work['cursor'] or 'the start'})"
    if work["kind"] == "generate":
        return f"matstore generate --resume {work['id']}"
    p = json.loads(work["params"] or "{}")
    if work["kind"] == "predict":
        where = f" --where {json.dumps(p['where'])}" if p.get("where") else ""
        binds = "".join(f" -p {k}={v}" for k, v in (p.get("params") or {}).items())
        return f"matstore predict --model {p.get('model')}{where}{binds} (predicts only what is missing)"
    if work["kind"] == "stability":
        model = f" --model {p['model']}" if p.get("model") else ""
        ref = f" --reference {p['reference']}" if p.get("reference") else ""
        return f"matstore stability{model}{ref} (computes only what is missing)"
    return f"matstore {work['kind']} ... (the same command again; it skips what is stored)"
