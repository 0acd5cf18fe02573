"""Reproducing the paper: single runs, grids, a results store, resumable sweeps, and the
analysis the notebooks call.

>>> from autoopt_lab.experiments import RunConfig, run
>>> cfg = RunConfig("fashion-mnist", "autosgd", batch_size=128, epochs=10, seed=0)
>>> result = run(cfg)  # doctest: +SKIP
"""

from autoopt_lab.identity import library_versions

# Imported for their side effect: they register the "stacked" engine and the "vectorized"
# and "ray" executors (``.run`` below registers the "loop" engine).
from . import ray_executor, vectorized  # noqa: F401
from .config import ENGINES, FrozenOptions, RunConfig, config_key
from .evaluation import evaluate
from .executors import (
    Executor,
    ProcessExecutor,
    SerialExecutor,
    executor_engine,
    executor_names,
    make_executor,
    register_executor,
)
from .grids import dedupe, grid
from .paper import (
    PAPER_BATCH_SIZES,
    PAPER_LRS,
    PAPER_MOMENTA,
    PAPER_SEEDS,
    PAPER_TABLE2,
    TABLE2_BATCH_SIZE,
)
from .result import RunOutcome, RunResult
from .run import run
from .store import ResultsStore
from .sweep import SweepReport, run_sweep

__all__ = [
    "ENGINES",
    "PAPER_BATCH_SIZES",
    "PAPER_LRS",
    "PAPER_MOMENTA",
    "PAPER_SEEDS",
    "PAPER_TABLE2",
    "TABLE2_BATCH_SIZE",
    "Executor",
    "FrozenOptions",
    "ProcessExecutor",
    "ResultsStore",
    "RunConfig",
    "RunOutcome",
    "RunResult",
    "SerialExecutor",
    "SweepReport",
    "config_key",
    "dedupe",
    "evaluate",
    "executor_engine",
    "executor_names",
    "grid",
    "library_versions",
    "make_executor",
    "register_executor",
    "run",
    "run_sweep",
]
