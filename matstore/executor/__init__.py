"""Where a long job's batches are computed (issue 28): in this process (``local``, the default),
on a Dask LocalCluster of N worker processes listening on 127.0.0.1 only (``processes:N``), or on
an existing Dask scheduler (``dask://HOST:PORT``, ``tls://HOST:PORT``, or a ``distributed.Client``
from Python).

Whatever the executor, the process holding the store is the one writer: workers get a batch's
inputs (model record, seed, batch number, or a chunk of compositions) and return Arrow IPC bytes
(payloads.py); the client reads them with Arrow only (a Client opened here deserializes msgpack,
never pickle), checks them as untrusted (batch_checks.py) and hands them to the caller in batch
order, which commits them in the same short transactions as a local run. Before any batch every
worker reports its matstore version and the sha256 of the weights it was sent (worker_tasks.py).

    with open_executor("processes:2") as ex:
        for out in ex.map(items, local_fn, task, shared, accept): ...
"""

from __future__ import annotations

import ipaddress
import os
import re
import sys
from contextlib import contextmanager

from ..errors import MatstoreError

DEFAULT = "local"
MAX_LOCAL_WORKERS = 256
CONNECT_TIMEOUT = 10.0        # seconds to reach a scheduler before it counts as unreachable
_SPEC = re.compile(r"^(local|processes:(\d+)|(dask|tcp|tls)://(\[[^\]]+\]|[^:/\s]+):(\d{1,5}))$")


class ExecutorError(MatstoreError, RuntimeError):
    """An executor that cannot be used (spec, scheduler, versions) or a worker batch refused."""


def parse(spec) -> tuple[str, int | None, str | None]:
    """'local' | 'processes:N' | 'dask://HOST:PORT' | 'tcp://..' | 'tls://..' -> (kind, n, address)."""
    spec = DEFAULT if spec is None else str(spec).strip()
    m = _SPEC.match(spec)
    if not m:
        raise ExecutorError(f"--executor {spec[:200]!r}: expected local, processes:N or "
                            f"dask://HOST:PORT (tls://HOST:PORT for TLS)")
    if m.group(1) == "local":
        return "local", 1, None
    if m.group(2) is not None:
        n = int(m.group(2))
        if not 1 <= n <= MAX_LOCAL_WORKERS:
            raise ExecutorError(f"--executor {spec}: N must be in 1..{MAX_LOCAL_WORKERS} worker processes")
        return "processes", n, None
    scheme, host, port = m.group(3), m.group(4), int(m.group(5))
    if not 1 <= port <= 65535:
        raise ExecutorError(f"--executor {spec}: port {port} is not in 1..65535")
    return "scheduler", None, f"{'tls' if scheme == 'tls' else 'tcp'}://{host}:{port}"


def is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class LocalExecutor:
    """Today's path: each batch computed in this process when the caller asks for it."""

    name = "local"
    workers = 1
    dashboard = None

    def check_versions(self, records=()) -> None:
        return None

    def map(self, items, local_fn, task=None, shared=(), accept=None):
        for item in items:
            yield local_fn(item)

    def close(self) -> None:
        return None


class DaskExecutor:
    """Batches as Dask tasks, at most `window` in flight, results yielded in item order."""

    def __init__(self, client, name: str, cluster=None, own_client: bool = False):
        self.client, self.name, self.cluster, self.own_client = client, name, cluster, own_client
        self.shared_futures: dict = {}

    @property
    def workers(self) -> int:
        return len(self.client.scheduler_info(n_workers=-1)["workers"])

    @property
    def dashboard(self) -> str | None:
        """The dashboard link when the scheduler serves its pages (they need bokeh)."""
        import importlib.util  # noqa: PLC0415

        if importlib.util.find_spec("bokeh") is None:
            return None
        try:
            if "dashboard" not in self.client.scheduler_info().get("services", {}):
                return None
            return self.client.dashboard_link
        except Exception:  # noqa: BLE001 - a link is a courtesy, never a failure
            return None

    def check_versions(self, records=()) -> None:
        """Every worker's matstore version and the sha256 of each record's weights as it received
        them must equal this process's; raises ExecutorError naming the first worker that differs."""
        from . import worker_tasks  # noqa: PLC0415

        want = worker_tasks.identity_of(records)
        futs = self.share(records)
        addrs = list(self.client.scheduler_info(n_workers=-1)["workers"])
        if not addrs:
            raise ExecutorError(f"executor {self.name}: the scheduler has no workers")
        pending = [(addr, self.client.submit(worker_tasks.identity, futs, workers=[addr],
                                             allow_other_workers=False, pure=False))
                   for addr in addrs]   # every worker at once: each loads the models
        for addr, fut in pending:
            got = self._result(fut, "version check")
            if not isinstance(got, dict):
                raise ExecutorError(f"executor {self.name}: worker {addr} answered the version check "
                                    f"with {type(got).__name__}, not a mapping")
            for key in want:
                if got.get(key) != want[key]:
                    raise ExecutorError(
                        f"executor {self.name}: worker {addr} has {key} {str(got.get(key))[:80]!r}, this "
                        f"process {want[key]!r}; install the same matstore on every worker")

    def share(self, value):
        """value scattered to every worker once (its future); the same object is sent once."""
        key = id(value)
        if key not in self.shared_futures:
            # scattered as one item: scatter would split a dict or list into futures of its parts
            fut = self.client.scatter([value], broadcast=True, hash=False)[0]
            self.shared_futures[key] = (value, fut)
        return self.shared_futures[key][1]

    def map(self, items, local_fn, task, shared=(), accept=None):
        """task(item, *shared) on the workers (shared values scattered once); each result goes
        through accept(item, result) here, in item order. A worker that dies has its tasks
        recomputed elsewhere by Dask (retries); a task that raises is an ExecutorError."""
        items = list(items)
        futs = [self.share(s) for s in shared]
        window = max(2, 2 * max(self.workers, 1) + 1)
        pending: list = []
        nxt = 0
        try:
            for item in items:
                while nxt < len(items) and len(pending) < window:
                    pending.append(self.client.submit(task, items[nxt], *futs, pure=False, retries=2))
                    nxt += 1
                fut = pending.pop(0)
                got = self._result(fut, f"batch {item[0] if isinstance(item, tuple) else item}")
                yield accept(item, got) if accept else got
        finally:
            for f in pending:
                f.cancel()

    def _result(self, fut, what: str):
        from distributed.client import FutureCancelledError  # noqa: PLC0415

        try:
            return fut.result()
        except ExecutorError:
            raise
        except (FutureCancelledError, Exception) as e:  # noqa: BLE001 - a worker's error is data
            msg = " ".join(str(e).split())[:300] or type(e).__name__
            raise ExecutorError(f"executor {self.name}: {what} failed on a worker: "
                                f"{type(e).__name__}: {msg}") from None

    def close(self) -> None:
        for _, fut in self.shared_futures.values():
            try:
                fut.release()
            except Exception:  # noqa: BLE001
                pass
        self.shared_futures.clear()
        if self.own_client:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def _client(address_or_cluster, security=None, timeout: float = CONNECT_TIMEOUT):
    from distributed import Client  # noqa: PLC0415

    # results are Arrow IPC bytes: msgpack carries them; pickle from a worker is never read here
    return Client(address_or_cluster, security=security, timeout=timeout, set_as_default=False,
                  deserializers=["msgpack", "error"])


def _local_cluster(n: int):
    import dask  # noqa: PLC0415
    from distributed import LocalCluster  # noqa: PLC0415

    os.environ.setdefault("OMP_NUM_THREADS", "1")   # inherited by the workers: no oversubscription
    try:
        # Dask's MALLOC_TRIM_THRESHOLD_=65536 turns off glibc's adaptive mmap threshold: every
        # large torch/numpy buffer is then mmapped and faulted in afresh (+40 % CPU a generate
        # batch, measured); a value the user set in the environment is still inherited
        with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
            return LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                                dashboard_address="127.0.0.1:0", protocol="tcp://", silence_logs=40,
                                death_timeout=60)   # workers left by a killed client exit by themselves
    except Exception as e:  # noqa: BLE001
        raise ExecutorError(f"executor processes:{n}: the local cluster did not start: "
                            f"{type(e).__name__}: {' '.join(str(e).split())[:300]}") from None


def _connect(address: str, insecure: bool, security, timeout: float):
    host = address.split("://", 1)[1].rsplit(":", 1)[0]
    if address.startswith("tcp://") and not is_loopback(host) and not insecure:
        raise ExecutorError(f"executor {address}: a remote scheduler over plain TCP is refused (anyone "
                            f"on the network could read the batches or send forged ones); use "
                            f"tls://{address.split('://', 1)[1]} with Dask's TLS settings "
                            f"(docs/cluster.md), or say --executor-insecure")
    if address.startswith("tls://") and security is None:
        from distributed.security import Security  # noqa: PLC0415

        security = Security()   # the distributed.comm.tls.* settings of Dask's config
        if not security.tls_ca_file:
            raise ExecutorError(f"executor {address}: TLS needs a CA file: set "
                                f"DASK_DISTRIBUTED__COMM__TLS__CA_FILE (and the client's cert/key), "
                                f"see docs/cluster.md")
    try:
        return _client(address, security, timeout)
    except Exception as e:  # noqa: BLE001 - OSError, TimeoutError, TLS errors: one line
        raise ExecutorError(f"executor {address}: no Dask scheduler answered within {timeout:g} s "
                            f"({type(e).__name__}: {' '.join(str(e).split())[:200]})") from None


@contextmanager
def open_executor(spec=None, insecure: bool = False, security=None, timeout: float = CONNECT_TIMEOUT, announce: bool = False):
    """The executor a spec names (a distributed.Client is used as it is and left open); a local
    cluster is started here and stopped when the block ends. announce: print the dashboard link
    (when there is one) and the worker count on stderr."""
    if spec is None or isinstance(spec, (str, LocalExecutor, DaskExecutor)):
        if isinstance(spec, (LocalExecutor, DaskExecutor)):
            yield spec
            return
        kind, n, address = parse(spec)
    else:   # a distributed.Client
        if not hasattr(spec, "submit") or not hasattr(spec, "scheduler_info"):
            raise ExecutorError(f"executor: {type(spec).__name__} is not a spec string or a distributed.Client")
        kind, n, address = "client", None, None
    if kind == "local":
        yield LocalExecutor()
        return
    if kind == "client":
        ex = DaskExecutor(spec, spec.scheduler.address)
    elif kind == "processes":
        cluster = _local_cluster(n)
        try:
            client = _client(cluster)
        except Exception:
            cluster.close()
            raise
        ex = DaskExecutor(client, f"processes:{n}", cluster, own_client=True)
    else:
        ex = DaskExecutor(_connect(address, insecure, security, timeout), address, own_client=True)
    try:
        if ex.workers == 0:
            try:
                ex.client.wait_for_workers(1, timeout=timeout)
            except Exception:  # noqa: BLE001
                raise ExecutorError(f"executor {ex.name}: no worker joined within {timeout:g} s") from None
        if announce:
            link = ex.dashboard
            print(f"executor {ex.name}: {ex.workers} worker(s)"
                  + (f", dashboard {link}" if link else ""), file=sys.stderr, flush=True)
        yield ex
    finally:
        ex.close()


def ship_model(ex, store, model_id) -> dict | None:
    """The model_versions record (weights included) workers rebuild model_id from, after every
    worker's version and received weights sha256 are checked; None for the local executor."""
    recs = ship_models(ex, store, [model_id])
    return None if recs is None else recs[0]


def ship_models(ex, store, model_ids) -> list[dict] | None:
    """ship_model of several stored models, checked on every worker in one pass."""
    if isinstance(ex, LocalExecutor):
        return None
    from ..registry.records import get_record  # noqa: PLC0415

    for model_id in model_ids:
        if model_id is None or isinstance(model_id, bool) or not isinstance(model_id, int):
            raise ExecutorError(f"executor {ex.name}: only a model version stored in the store runs "
                                f"on workers (got model id {model_id!r})")
    recs = [get_record(store, int(m)) for m in model_ids]
    ex.check_versions(recs)
    return recs


def payload_params(**params) -> dict:
    """The parameters every worker task gets, with the client's matstore version to compare."""
    from .worker_tasks import version  # noqa: PLC0415

    return {**params, "version": version()}
