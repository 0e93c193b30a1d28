"""Run independent jobs in parallel with joblib: locally (loky) or on a dask.distributed cluster.

`run_jobs(fn, tasks, jobs, backend, scheduler)` yields `fn(task)` for each task, in order.
The dask backend is joblib's own dask backend driven by a `distributed.Client`: connected to
`scheduler` (e.g. `tcp://10.0.0.5:8786`, the way to spread a job over machines, each with
pgkit installed and the inputs at the same paths) or, without one, to a LocalCluster on
127.0.0.1. Jobs must be deterministic so every backend writes the same bytes.

A loky worker watches its parent: when the parent is gone (kill -9, the OOM killer), the
worker exits within PARENT_CHECK_S instead of finishing its chunk, so nothing keeps writing
into WORK after the command died. Stages write every file under a temporary name and rename
it when complete, so a worker stopped mid-record leaves no file that looks complete.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence

from pgprep.errors import PgkitError

BACKENDS = ("loky", "dask")


PARENT_CHECK_S = 0.1
EXIT_PARENT_GONE = 75  # a worker's exit status when its parent died
_watching: int | None = None  # the parent pid this worker process watches


def _watch_parent(parent: int) -> None:
    """In a worker process: a daemon thread that ends the process at once when `parent` is no
    longer its parent (the parent died and the worker was re-parented)."""
    global _watching
    if _watching == parent or os.getpid() == parent:
        return
    _watching = parent

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_S)
        os._exit(EXIT_PARENT_GONE)  # no cleanup: the parent that would use our results is gone

    threading.Thread(target=watch, name="pgkit-parent-watch", daemon=True).start()


class _Watched:
    """fn, run in a worker that stops when the process that started it dies."""

    def __init__(self, fn: Callable, parent: int):
        self.fn, self.parent = fn, parent

    def __call__(self, task):
        _watch_parent(self.parent)
        return self.fn(task)


def default_jobs() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


@contextlib.contextmanager
def dask_client(scheduler: str | None = None, jobs: int | None = None,
                cluster_options: dict | None = None):
    """A `distributed.Client`: to `scheduler` if given, else to a fresh LocalCluster on loopback."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise PgkitError(None, "--backend dask needs dask.distributed: pip install 'pgkit[dask]'") from None
    if scheduler:
        try:
            client = Client(scheduler, timeout="20s")
        except OSError as exc:
            raise PgkitError(None, f"cannot reach dask scheduler {scheduler} ({exc})") from None
        with client:
            yield client
        return
    opts = {"n_workers": jobs or default_jobs(), "threads_per_worker": 1, "processes": True,
            "host": "127.0.0.1", "dashboard_address": None}
    opts.update(cluster_options or {})
    if not opts["processes"]:
        opts.setdefault("protocol", "tcp")  # in-process workers, still a real TCP scheduler
    with LocalCluster(**opts) as cluster, Client(cluster) as client:
        yield client


def run_jobs(fn: Callable, tasks: Sequence, jobs: int | None = None, backend: str = "loky",
             scheduler: str | None = None, cluster_options: dict | None = None) -> Iterator:
    """Yield fn(task) for every task, in task order, on the chosen backend.

    loky with jobs=1 (or a single task) runs in this process, which keeps tests and
    tracebacks simple.
    """
    if backend not in BACKENDS:
        raise PgkitError(None, f"backend must be one of {BACKENDS}, got {backend!r}")
    import joblib

    tasks = list(tasks)
    if backend == "loky":
        n = jobs or default_jobs()
        if n == 1 or len(tasks) <= 1:
            for t in tasks:
                yield fn(t)
            return
        watched = _Watched(fn, os.getpid())
        yield from joblib.Parallel(n_jobs=min(n, len(tasks)), backend="loky",
                                   return_as="generator")(joblib.delayed(watched)(t) for t in tasks)
        return
    with dask_client(scheduler, jobs, cluster_options), joblib.parallel_config(backend="dask"):
        yield from joblib.Parallel(return_as="generator")(joblib.delayed(fn)(t) for t in tasks)
