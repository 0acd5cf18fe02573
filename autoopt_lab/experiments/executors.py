"""Where runs execute. A sweep hands configs to an :class:`Executor` and receives
:class:`RunOutcome` objects as runs finish, in any order.

Executors plug in by name through :func:`register_executor`; ``serial`` (in this process)
and ``process`` (a pool of worker processes on this machine) are built in. They train each
config through the engine registry (:mod:`~autoopt_lab.experiments.engines`), so no executor
imports an engine.

Worker processes die with their parent (a watchdog thread ends a worker whose parent is
gone, even after ``kill -9``) and ignore Ctrl-C, which the parent handles: on
``KeyboardInterrupt`` a sweep calls :meth:`Executor.abort`, which ends its workers at once.

>>> ex = make_executor("serial")
>>> isinstance(ex, Executor)
True
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import multiprocessing
import os
import signal
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from .engines import train_one
from .result import RunOutcome

if TYPE_CHECKING:  # pragma: no cover
    from .config import RunConfig

logger = logging.getLogger(__name__)


def execute_config(config: RunConfig, data_root: str | None, progress: bool = False) -> RunOutcome:
    """Run ``config`` through its engine; a run that raises becomes an outcome holding its
    traceback (the worker-side task of every executor)."""
    return train_one(config, data_root, progress)


class Executor(ABC):
    """Runs configs and yields their outcomes as they finish.

    Subclasses implement :meth:`map_unordered`; it must be lazy (yield each outcome as soon
    as it exists) so that the caller can store it before the next one finishes. ``engine``
    (see :data:`~autoopt_lab.experiments.config.ENGINES`) is the engine a sweep gives the
    configs it hands to this executor; :meth:`engine_for` says it before one is built.
    """

    engine: str = "loop"

    @classmethod
    def engine_for(cls, **options: Any) -> str:
        """The engine an executor built with ``options`` computes stackable configs with."""
        return cls.engine

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @abstractmethod
    def map_unordered(self, configs: Iterable[RunConfig]) -> Iterator[RunOutcome]:
        """Run every config; yield one :class:`RunOutcome` per config, in finishing order."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release workers (no-op by default)."""

    def abort(self) -> None:
        """Stop now (Ctrl-C): cancel queued runs and end running workers without waiting."""
        pool = getattr(self, "_pool", None)
        if isinstance(pool, cf.ProcessPoolExecutor):
            terminate_pool(pool)
        else:
            self.close()


def terminate_pool(pool: cf.ProcessPoolExecutor) -> None:
    """Shut ``pool`` down without waiting for its running tasks: its workers are ended."""
    procs = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in procs:
        proc.terminate()
    for proc in procs:
        proc.join(timeout=5)
    pool.shutdown(wait=True)  # the workers are gone: this only joins the pool's own thread


class SerialExecutor(Executor):
    """One run after another in this process, with a per-run progress bar."""

    def __init__(self, *, data_root: str | None = None, progress: bool = True, **_: Any) -> None:
        self.data_root = data_root
        self.progress = progress

    def map_unordered(self, configs: Iterable[RunConfig]) -> Iterator[RunOutcome]:
        for config in configs:
            yield execute_config(config, self.data_root, self.progress)


def die_with_parent(poll_s: float = 1.0) -> None:
    """End this process (``os._exit``) as soon as its parent is gone (its sentinel closes,
    even after ``kill -9`` and even if that happened before this call), and leave Ctrl-C
    to the parent (the sweep), which ends its workers itself."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from tqdm import tqdm

    # tqdm's default lock is a multiprocessing semaphore, which a worker ended by the
    # parent never unlinks (a "leaked semaphore" warning at exit): one process, one thread lock
    tqdm.set_lock(threading.RLock())
    parent = multiprocessing.parent_process()
    ppid = os.getppid()

    def watch() -> None:
        if parent is not None:
            parent.join()  # returns when the parent's end of the pipe closes
        else:
            while os.getppid() == ppid:
                time.sleep(poll_s)
        os._exit(1)

    threading.Thread(target=watch, name="die-with-parent", daemon=True).start()


def init_worker(threads: int, data_root: str | None) -> None:
    """Set up a spawned worker process: it dies with its parent, ignores Ctrl-C, and has its
    torch threads and the data root."""
    die_with_parent()
    import torch

    torch.set_num_threads(threads)
    if data_root:
        os.environ["AUTOOPT_DATA"] = data_root


class ProcessExecutor(Executor):
    """A pool of ``workers`` processes (spawned, so CUDA and threads are safe), each with
    ``threads_per_worker`` torch threads. At most ``2 * workers`` runs are queued at once,
    so an interrupted sweep loses little queued work."""

    def __init__(
        self,
        workers: int | None = None,
        *,
        threads_per_worker: int = 1,
        data_root: str | None = None,
        **_: Any,
    ) -> None:
        self.workers = max(1, int(workers or os.cpu_count() or 1))
        self.data_root = data_root
        self._pool = cf.ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=init_worker,
            initargs=(max(1, int(threads_per_worker)), data_root),
        )

    def map_unordered(self, configs: Iterable[RunConfig]) -> Iterator[RunOutcome]:
        yield from bounded_unordered(
            self._pool, execute_config, configs, 2 * self.workers, self.data_root
        )

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


_EXECUTORS: dict[str, Callable[..., Executor]] = {
    "serial": SerialExecutor,
    "process": ProcessExecutor,
}


def register_executor(name: str, factory: Callable[..., Executor]) -> None:
    """Make ``factory(workers=..., data_root=..., **options)`` available as ``name``."""
    _EXECUTORS[name] = factory


def executor_names() -> list[str]:
    """Names accepted by :func:`make_executor`."""
    return sorted(_EXECUTORS)


def make_executor(name: str, **options: Any) -> Executor:
    """Build a registered executor by name."""
    return _factory(name)(**options)


def executor_engine(executor: Executor | str, **options: Any) -> str:
    """The engine of an executor, or of the one ``name`` would build with ``options``.

    >>> executor_engine("process"), executor_engine("vectorized")
    ('loop', 'stacked')
    """
    if isinstance(executor, Executor):
        return executor.engine
    fn = getattr(_factory(executor), "engine_for", None)
    return fn(**options) if fn is not None else "loop"


def _factory(name: str) -> Callable[..., Executor]:
    if name not in _EXECUTORS:
        raise ValueError(f"unknown executor {name!r}; allowed: {', '.join(executor_names())}")
    return _EXECUTORS[name]


def bounded_unordered(
    pool: cf.Executor, fn: Any, items: Iterable[Any], limit: int, *args: Any
) -> Iterator[Any]:
    """``fn(item, *args)`` on ``pool`` with at most ``limit`` in flight; results as they finish."""
    pending: set[cf.Future[Any]] = set()
    it = iter(items)
    exhausted = False
    while True:
        while not exhausted and len(pending) < limit:
            try:
                item = next(it)
            except StopIteration:
                exhausted = True
                break
            pending.add(pool.submit(fn, item, *args))
        if not pending:
            return
        done, pending = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
        for fut in done:
            yield fut.result()
