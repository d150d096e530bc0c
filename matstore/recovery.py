"""What a killed process left behind: work marked `running` whose process is gone."""

from __future__ import annotations

import os
import socket

import duckdb


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def mark_interrupted(con: duckdb.DuckDBPyConnection) -> int:
    """Mark runs and ingests still `running` from a dead process on this host as interrupted."""
    host = socket.gethostname()
    n = 0
    for table, key in (("runs", "run_id"), ("ingests", "ingest_id")):
        rows = con.execute(f"SELECT {key}, pid, host FROM {table} WHERE status = 'running'").fetchall()
        dead = [r[0] for r in rows if r[2] == host and not pid_alive(r[1])]
        if dead:
            con.execute(f"UPDATE {table} SET status = 'interrupted' WHERE {key} IN "
                        f"(SELECT unnest(?::INTEGER[]))", [dead])
            n += len(dead)
    return n
