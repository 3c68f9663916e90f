"""Where runs execute: in this process, on a local process pool, or on a Dask cluster.

Every run is a pure function of its task (scenario, seed, replication), so the executor
changes how long a batch takes, never what it computes: the same tasks give the same rows on
one core, on all cores, or on a hundred machines. Results come back as they complete, each
with the key of its task, so callers can save them one by one (a sweep interrupted keeps
everything finished) and show progress.
"""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any

from threadpoolctl import threadpool_limits

__all__ = ["ExecutorError", "make_executor", "one_thread_for_numerics"]

SCHEDULER_VARIABLE = "ECSIM_SCHEDULER"
"""Environment variable naming a Dask scheduler (tcp://host:port) when --scheduler is absent."""


class ExecutorError(RuntimeError):
    """The requested executor cannot be used (Dask missing, scheduler unreachable...)."""


class SerialExecutor:
    name = "serial"

    def map(self, function: Callable, tasks: Iterable[tuple[Any, Any]]) -> Iterator[tuple]:
        for key, task in tasks:
            yield key, _guarded(function, task)

    def close(self) -> None:
        return None

    def terminate(self) -> None:
        return None


def one_thread_for_numerics() -> None:
    """Keep BLAS (numpy's, and scipy's when it is loaded) to one thread in this process. A
    simulation is one thread; BLAS would start a thread per core for the Markov chain's least
    squares and leave them spinning after it, on the cores the other workers of a batch need
    (a sweep of twelve short runs on two workers took up to half as much CPU again). Dask's
    workers get the same from their environment."""
    for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = "1"  # for BLAS libraries loaded from now on (scipy's, lazily)
    threadpool_limits(limits=1)  # for those loaded already (numpy's)


def _start_worker() -> None:
    """In a pool worker: leave Ctrl-C to the parent, which stops the batch and ends the workers
    (a terminal sends SIGINT to the whole process group); and end when the parent is gone
    (SIGKILL leaves it no chance to end them), rather than wait for work forever."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    one_thread_for_numerics()
    parent = os.getppid()

    def watch_parent() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch_parent, name="ecsim-parent-watch", daemon=True).start()


class ProcessExecutor:
    """A local pool of worker processes, at most ``workers`` tasks in flight at once."""

    name = "processes"

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or os.cpu_count() or 1
        self._pool = ProcessPoolExecutor(max_workers=self.workers, initializer=_start_worker)

    def map(self, function: Callable, tasks: Iterable[tuple[Any, Any]]) -> Iterator[tuple]:
        pending: dict[Future, Any] = {}
        queue = iter(tasks)
        for key, task in queue:
            pending[self._pool.submit(_guarded, function, task)] = key
            if len(pending) >= 2 * self.workers:
                break
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                key = pending.pop(future)
                for next_key, next_task in queue:
                    pending[self._pool.submit(_guarded, function, next_task)] = next_key
                    break
                yield key, future.result()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def terminate(self) -> None:
        """Stop now (the batch was interrupted): kill the workers, whatever they were doing;
        a process pool has no other way to abandon a running task."""
        # The pool's own record of its worker processes: concurrent.futures has no public one.
        processes = list(getattr(self._pool, "_processes", {}).values())
        self._pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.terminate()
        for process in processes:
            process.join(timeout=5)


class DaskExecutor:
    """Tasks on an existing Dask distributed cluster, through its scheduler's address."""

    name = "dask"

    ADDRESS = re.compile(
        r"(tcp|tls|ucx|ws|wss|inproc)://(\[[0-9A-Fa-f:.]+\]|[^\s/:\[\]]+)(:(?P<port>[0-9]{1,5}))?/?"
    )
    """Dask's address form: protocol://host[:port], with an IPv6 host in brackets."""

    def __init__(self, address: str) -> None:
        form = self.ADDRESS.fullmatch(address)
        if not form or int(form["port"] or 0) > 65535:
            raise ExecutorError(
                f"{address!r} is not a Dask scheduler address: expected tcp://HOST:PORT"
                " (or tls://, ucx://, ws://, inproc://)"
            )
        try:
            from distributed import Client
        except ImportError:
            raise ExecutorError(
                "running on a Dask cluster needs the 'distributed' package:"
                ' pip install -e ".[dask]"'
            ) from None
        self._futures: dict = {}
        try:
            self._client = Client(address, timeout="5s", set_as_default=False)
        except (OSError, ValueError, TypeError) as error:
            raise ExecutorError(f"cannot reach the Dask scheduler at {address}: {error}") from None

    def map(self, function: Callable, tasks: Iterable[tuple[Any, Any]]) -> Iterator[tuple]:
        from distributed import as_completed

        self._futures = futures = {}
        for key, task in tasks:
            futures[self._client.submit(_guarded, function, task, pure=False)] = key
        for future in as_completed(futures, loop=self._client.loop):
            yield futures[future], future.result()

    def close(self) -> None:
        self._client.close()

    def terminate(self) -> None:
        """Cancel what is still queued or running on the cluster, and disconnect."""
        futures = list(self._futures)
        if futures:
            self._client.cancel(futures)
        self._client.close()


def _guarded(function: Callable, task: Any) -> dict[str, Any]:
    """Run one task; an exception becomes a result that says so, so one failure loses nothing
    else (the caller reports it with its parameters)."""
    try:
        return {"ok": True, "value": function(task)}
    except Exception as error:
        return {"ok": False, "error": f"{type(error).__name__}: {error}"}


def make_executor(workers: int | None = None, scheduler: str | None = None):
    """Dask when a scheduler is named (argument or ECSIM_SCHEDULER), else processes when more
    than one worker is wanted, else serial."""
    scheduler = scheduler or os.environ.get(SCHEDULER_VARIABLE)
    if scheduler:
        return DaskExecutor(scheduler)
    workers = workers if workers is not None else (os.cpu_count() or 1)
    if workers <= 1:
        return SerialExecutor()
    return ProcessExecutor(workers)
