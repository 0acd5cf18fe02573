"""Sweeps on a Ray cluster: executor name ``"ray"``.

The driver (the machine that runs ``autoopt-lab sweep``) plans the same tasks as the
vectorised executor (:func:`~autoopt_lab.experiments.vectorized.plan_tasks`: groups of
fixed-hyper-parameter settings trained at once, single runs otherwise), ships each task to
the cluster as a Ray task, and writes every outcome into the driver's results store as soon
as it returns. So results land in the same store as a local sweep, and an interrupted sweep
resumes the same way: run the command again and only unfinished runs are sent.

Where the cluster is: ``address`` (e.g. ``"ray://head:10001"`` for Ray Client, ``"auto"`` on a
cluster node), else the ``RAY_ADDRESS`` environment variable, else a local Ray instance on
this machine. Worker nodes need the data set (``data_root`` or ``$AUTOOPT_DATA`` on each node)
and the package: installed there, or shipped with ``ship_code=True`` (Ray ``py_modules``).

>>> from autoopt_lab.experiments import executor_names
>>> "ray" in executor_names()
True
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from typing import Any

from .config import RunConfig
from .executors import Executor, register_executor
from .result import RunOutcome
from .vectorized import execute_task, plan_tasks

logger = logging.getLogger(__name__)

__all__ = ["RayExecutor"]


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise ImportError(
            "the 'ray' executor needs Ray: pip install 'autoopt-lab[ray]' (or pip install ray)"
        ) from exc
    return ray


def _run_task(
    task: list[RunConfig], data_root: str | None, threads: int
) -> list[RunOutcome]:  # runs on a Ray worker
    import torch

    torch.set_num_threads(threads)
    if data_root:
        os.environ["AUTOOPT_DATA"] = data_root
    return execute_task(task, data_root)


class RayExecutor(Executor):
    """Run a sweep's tasks as Ray tasks; ``cpus_per_task`` CPUs (and torch threads) each,
    ``gpus_per_task`` GPUs each (fractions share a GPU). At most ``max_in_flight`` tasks are
    queued at once (default: twice the cluster's CPUs / ``cpus_per_task``), so an interrupted
    sweep loses little work. ``vectorize=False`` sends one run per task (the loop engine).

    >>> RayExecutor.__name__
    'RayExecutor'
    """

    @classmethod
    def engine_for(cls, vectorize: bool = True, **_: Any) -> str:
        return "stacked" if vectorize else "loop"

    def __init__(
        self,
        workers: int | None = None,
        *,
        address: str | None = None,
        data_root: str | None = None,
        cpus_per_task: int = 1,
        gpus_per_task: float = 0.0,
        max_in_flight: int | None = None,
        vectorize: bool = True,
        max_group: int = 64,
        ship_code: bool = False,
        init_options: dict[str, Any] | None = None,
        **_: Any,
    ) -> None:
        ray = _import_ray()
        if cpus_per_task < 1:
            raise ValueError(f"cpus_per_task must be >= 1, got {cpus_per_task}")
        self.ray = ray
        self.data_root = data_root
        self.cpus_per_task = int(cpus_per_task)
        self.vectorize = vectorize
        self.engine = self.engine_for(vectorize)
        self.max_group = max_group
        self._owns_ray = False
        address = address or os.environ.get("RAY_ADDRESS") or None
        if not ray.is_initialized():
            options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if address is None and workers:
                options["num_cpus"] = int(workers) * self.cpus_per_task
            if ship_code:
                import autoopt_lab

                options["runtime_env"] = {"py_modules": [os.path.dirname(autoopt_lab.__file__)]}
            options.update(init_options or {})
            ray.init(address=address, **options)
            self._owns_ray = True
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.max_in_flight = max_in_flight or max(1, 2 * cpus // self.cpus_per_task)
        self._remote = ray.remote(num_cpus=self.cpus_per_task, num_gpus=gpus_per_task)(_run_task)
        logger.info(
            "ray executor: %d CPUs in the cluster, up to %d tasks in flight",
            cpus,
            self.max_in_flight,
        )

    def map_unordered(self, configs: Iterable[RunConfig]) -> Iterator[RunOutcome]:
        configs = list(configs)
        tasks = (
            plan_tasks(configs, max_group=self.max_group)
            if self.vectorize
            else [[c] for c in configs]
        )
        pending: dict[Any, list[RunConfig]] = {}
        it = iter(tasks)
        exhausted = False
        try:
            while True:
                while not exhausted and len(pending) < self.max_in_flight:
                    try:
                        task = next(it)
                    except StopIteration:
                        exhausted = True
                        break
                    ref = self._remote.remote(task, self.data_root, self.cpus_per_task)
                    pending[ref] = task
                if not pending:
                    return
                done, _ = self.ray.wait(list(pending), num_returns=1)
                for ref in done:
                    task = pending.pop(ref)
                    try:
                        outcomes = self.ray.get(ref)
                    except Exception as exc:  # noqa: BLE001 - a lost worker fails its runs
                        err = f"ray task failed: {type(exc).__name__}: {exc}"
                        outcomes = [RunOutcome(c, error=err) for c in task]
                    yield from outcomes
        finally:
            for ref in pending:  # interrupted: stop what is still queued or running
                self.ray.cancel(ref, force=True)

    def close(self) -> None:
        if self._owns_ray and self.ray.is_initialized():
            self.ray.shutdown()


register_executor("ray", RayExecutor)
