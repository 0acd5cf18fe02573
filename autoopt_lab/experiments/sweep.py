"""Run many configs into a :class:`ResultsStore`, skipping those already finished.

Each outcome is written in its own transaction as soon as it arrives, so a sweep killed at
any moment (even ``kill -9``) restarts where it stopped: finished runs are never redone and
no half-written row exists. Failed runs are recorded with their traceback and retried on
the next start.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from tqdm.auto import tqdm

from .config import RunConfig
from .executors import Executor, executor_engine, make_executor
from .grids import dedupe
from .store import ResultsStore

logger = logging.getLogger(__name__)


@dataclass
class SweepReport:
    """Counts and timing of one sweep invocation."""

    total: int
    skipped: int
    done: int
    failed: int
    wall_time_s: float

    @property
    def runs_per_hour(self) -> float:
        """Finished runs per wall-clock hour in this invocation."""
        return 3600.0 * self.done / self.wall_time_s if self.wall_time_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "skipped": self.skipped,
            "done": self.done,
            "failed": self.failed,
            "wall_time_s": self.wall_time_s,
            "runs_per_hour": self.runs_per_hour,
        }


#: Plans of more runs than this are refused before any is built (``--max-runs`` raises it).
DEFAULT_MAX_RUNS = 100_000


class PlanTooLargeError(ValueError):
    """A plan so large that it is surely a typo; the message gives its size and an estimate."""


def duration_text(seconds: float) -> str:
    """``seconds`` in the largest unit that fits, e.g. ``"3 years"``."""
    for unit, size in (("years", 365 * 86400), ("days", 86400), ("hours", 3600)):
        if seconds >= size:
            return f"{seconds / size:,.0f} {unit}"
    return f"{seconds / 60:,.0f} minutes"


def check_plan_size(n_runs: int, max_runs: int = DEFAULT_MAX_RUNS, *, what: str = "sweep",
                    seconds_per_run: float = 1.0) -> None:
    """Refuse (:class:`PlanTooLargeError`) a plan of more than ``max_runs`` runs.

    >>> try:
    ...     check_plan_size(10**8)
    ... except PlanTooLargeError as exc:
    ...     print(str(exc)[:71])
    the sweep plans 100,000,000 runs, over the limit of 100,000: at 1 s per
    """
    if n_runs > max_runs:
        raise PlanTooLargeError(
            f"the {what} plans {n_runs:,} runs, over the limit of {max_runs:,}: at "
            f"{seconds_per_run:g} s per run (a tiny one) that is about "
            f"{duration_text(n_runs * seconds_per_run)}; nothing was planned or run. Narrow "
            "--seeds, --batch-sizes or the optimizers, or raise --max-runs")


def pending_runs(
    configs: Iterable[RunConfig],
    store: ResultsStore,
    executor: Executor | str = "process",
    **executor_options: Any,
) -> tuple[list[RunConfig], list[RunConfig]]:
    """The configs as ``executor`` runs them (its engine is part of each id), and those of
    them not yet finished in ``store``: what a sweep, or its dry run, would do."""
    engine = executor_engine(executor, **executor_options)
    configs = dedupe(c.with_engine(engine) for c in configs)
    finished = store.done_ids()
    return configs, [c for c in configs if c.run_id() not in finished]


def run_sweep(
    configs: Iterable[RunConfig],
    store: ResultsStore | str,
    *,
    executor: Executor | str = "process",
    workers: int | None = None,
    sweep_name: str | None = None,
    data_root: str | None = None,
    progress: bool = True,
    **executor_options: Any,
) -> SweepReport:
    """Run every config not yet finished in ``store``; return a :class:`SweepReport`.

    The executor decides the engine (:data:`~autoopt_lab.experiments.config.ENGINES`) of
    the configs it can stack, and with it their ids: a sweep resumed with another executor
    reruns those configs instead of mixing the two engines' results.

    >>> import tempfile
    >>> cfgs = [RunConfig("mnist", "sgd", lr=0.05, momentum=0.0, batch_size=64, epochs=1,
    ...                   seed=s, max_train_samples=128, max_test_samples=64, device="cpu")
    ...         for s in (0, 1)]
    >>> store = ResultsStore(tempfile.mkdtemp() + "/r.sqlite")
    >>> run_sweep(cfgs, store, executor="serial", progress=False).done
    2
    >>> run_sweep(cfgs, store, executor="serial", progress=False).skipped
    2
    """
    store = store if isinstance(store, ResultsStore) else ResultsStore(store)
    configs, todo = pending_runs(configs, store, executor, **executor_options)
    report = SweepReport(len(configs), len(configs) - len(todo), 0, 0, 0.0)
    logger.info(
        "sweep %s: %d runs, %d already in %s, %d to do",
        sweep_name or "",
        report.total,
        report.skipped,
        store.path,
        len(todo),
    )
    if not todo:
        return report
    own = isinstance(executor, str)
    ex = (
        make_executor(
            executor,
            workers=workers,
            data_root=data_root,
            progress=False,
            **executor_options,
        )
        if own
        else executor
    )
    t0 = time.perf_counter()
    bar = tqdm(total=len(todo), desc=f"sweep {sweep_name or ''}".strip(), disable=not progress)
    try:
        for outcome in ex.map_unordered(todo):
            if outcome.ok:
                assert outcome.result is not None
                res = outcome.result
                store.add_run(res.config, res.metrics, res.trace, sweep=sweep_name)
                report.done += 1
                bar.set_postfix(last=f"{res.metrics['final_test_err_pct']:.1f}%")
            else:
                store.add_failure(outcome.config, outcome.error or "", sweep=sweep_name)
                report.failed += 1
                logger.warning("run %s failed:\n%s", outcome.config.label(), outcome.error)
            bar.update(1)
    except BaseException:  # Ctrl-C, or a store that cannot take more (a full disk)
        if own:  # what runs now could not be stored: end the workers instead of waiting
            ex.abort()
            own = False
        raise
    finally:
        bar.close()
        report.wall_time_s = time.perf_counter() - t0
        if own:
            ex.close()
    logger.info(
        "sweep %s: %d done, %d failed in %.1fs (%.0f runs/hour)",
        sweep_name or "",
        report.done,
        report.failed,
        report.wall_time_s,
        report.runs_per_hour,
    )
    return report
