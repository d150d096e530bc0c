"""A fair turn between matstore processes sharing one store file.

DuckDB's own file lock says only "busy": a process that fails to open retries, and a reader
that queries in a loop can keep a writer out for seconds (and the other way round). So matstore
processes also take an flock on a side file `<store>.lock` first:

- a writer holds it exclusively from before it opens the store until after it closes it
  (the checkpoint included), so readers wake the moment a batch is committed;
- a reader takes it shared only for the instant before it opens the store, so a waiting writer
  gets in as soon as the queries already running end, and new readers queue behind it;
- a reader that finds the store busy holds `<store>.queue` shared while it waits, and a writer
  about to take its next turn first waits (up to a second) for that queue to empty, so a writer
  committing batch after batch (the runner's writer thread does, back to back) still lets the
  waiting readers in between two batches.

The gate is advisory (a plain `duckdb` process ignores it; DuckDB's lock and the retry loop in
store.py still keep that safe), re-entrant within a process, and skipped where the side file
cannot be made (read-only folder, or a read-only store whose side file does not exist yet).
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from contextlib import contextmanager
from typing import Iterator

from .errors import MatstoreError

_HELD: dict[str, int] = {}  # side-file path -> depth held by this process
_HELD_LOCK = threading.Lock()


class GateTimeout(MatstoreError, TimeoutError):
    """Another process kept the store busy longer than the lock timeout."""


QUEUE_WAIT = 1.0   # longest a writer defers to queued readers (a stopped reader cannot block it)


def gate_path(store_path: str) -> str:
    return store_path + ".lock"


def queue_path(store_path: str) -> str:
    return store_path + ".queue"


def _open_side_file(path: str, create: bool) -> int | None:
    try:
        if create:
            return os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        return os.open(path, os.O_RDONLY)
    except OSError:
        return None


def _acquire(fd: int, op: int, deadline: float, what: str) -> None:
    delay = 0.002
    while True:
        try:
            fcntl.flock(fd, op | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise GateTimeout(what) from None
            time.sleep(delay)
            delay = min(delay * 1.5, 0.02)


def _held(side: str) -> bool:
    with _HELD_LOCK:
        return bool(_HELD.get(side))


def wait_turn(store_path: str, deadline: float) -> None:
    """A reader passes the turnstile: returns once no writer holds or waits for the store."""
    side = gate_path(os.path.abspath(store_path))
    if _held(side):
        return
    fd = _open_side_file(side, create=False)
    if fd is None:
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)   # no writer: pass at once
        except BlockingIOError:
            _queue_for_turn(fd, store_path, deadline)
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _queue_for_turn(fd: int, store_path: str, deadline: float) -> None:
    """Wait for the gate while holding the queue shared: the writer's next turn waits for us."""
    q = _open_side_file(queue_path(os.path.abspath(store_path)), create=False)
    try:
        if q is not None:
            _acquire(q, fcntl.LOCK_SH, deadline, f"store {store_path} stayed busy with a writer")
        _acquire(fd, fcntl.LOCK_SH, deadline, f"store {store_path} stayed busy with a writer")
    finally:
        if q is not None:
            os.close(q)   # closing drops the shared queue lock


def _let_queued_readers_pass(queue: str) -> None:
    """Before a writer's turn: wait until no reader queues (at most QUEUE_WAIT seconds)."""
    q = _open_side_file(queue, create=True)
    if q is None:
        return
    try:
        _acquire(q, fcntl.LOCK_EX, time.monotonic() + QUEUE_WAIT, "")
    except GateTimeout:
        pass   # a reader stuck in the queue (stopped?) must not block writers
    finally:
        os.close(q)


@contextmanager
def writer_turn(store_path: str, deadline: float, create: bool = True) -> Iterator[None]:
    """Hold the store's side file exclusively for the block (re-entrant within a process)."""
    side = gate_path(os.path.abspath(store_path))
    with _HELD_LOCK:
        depth = _HELD.get(side, 0)
        if depth:
            _HELD[side] = depth + 1
    if depth:
        try:
            yield
        finally:
            with _HELD_LOCK:
                _HELD[side] -= 1
        return
    fd = _open_side_file(side, create)
    if fd is None:
        yield
        return
    try:
        _let_queued_readers_pass(queue_path(os.path.abspath(store_path)))
        _acquire(fd, fcntl.LOCK_EX, deadline,
                 f"store {store_path} stayed busy (another matstore process writing)")
        with _HELD_LOCK:
            _HELD[side] = 1
        try:
            yield
        finally:
            with _HELD_LOCK:
                _HELD.pop(side, None)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
