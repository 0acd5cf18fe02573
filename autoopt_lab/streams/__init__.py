"""Streaming harness: replay a data set with injected distribution shifts, prequentially.

Scenarios are TOML files (catalogue ``streams/`` at the repository root, format in
``streams/README.md``; background in ``docs/streams.md``). Every optimizer of
:mod:`autoopt_lab.optim.registry` runs in every stream. The pieces, one concept per module:

* :mod:`.scenario` — schema, loading, validation (:class:`ScenarioError`);
* :mod:`.checks` — size limits, the model against the data, time estimates;
* :mod:`.shifts` — :class:`Condition` and batch-wise shift transforms;
* :mod:`.sampler` — the lazy per-step plan (transitions) and batches built as device tensors;
* :mod:`.monitor` — river rolling accuracy and drift detectors on the normalised loss;
* :mod:`.run` — :class:`StreamRun`, one optimizer step by step; :mod:`.checkpoint` and
  :mod:`.identity`: resume, and refuse a checkpoint of another configuration;
* :mod:`.health` — diverged, skipped-step and chance-level runs;
* :mod:`.report` — per-shift detection delay, recovery time, prequential error;
* :mod:`.aggregate` — means, 95% intervals and paired comparisons over seeds;
* :mod:`.baselines` — the registry's tuned optimizers, tuned on the first segment;
* :mod:`.selection` — optimizer spec strings and per-optimizer options;
* :mod:`.modes` — quick/full sizes and seed lists; :mod:`.outdir` — output folders;
* :mod:`.experiment` — several optimizers and seeds on one scenario, writing results;
* :mod:`.leaderboard` — the Fashion-MNIST scenarios x optimizers x seeds, in a results store;
* :mod:`.table`, :mod:`.plot` — tables and figures.

Step-by-step use (what a widget or a background thread drives):

>>> from autoopt_lab.streams import StreamRun, find_scenario  # doctest: +SKIP
>>> run = StreamRun(find_scenario("fmnist-rotation-incremental"), "autosgd")  # doctest: +SKIP
>>> rec = run.step(); rec["loss"], rec["rolling_accuracy"], rec["shift"]  # doctest: +SKIP
>>> run.run(100, should_stop=stop_event.is_set)  # doctest: +SKIP
>>> run.latest_hparams()["conv1.weight"]  # {"lr": ..., "momentum": ...}  # doctest: +SKIP
>>> df = run.trace(); report = run.summary()  # doctest: +SKIP
"""

from .aggregate import aggregate_seeds, mean_ci, median_recovery, paired_difference
from .baselines import LR_GRIDS, first_segment, grid_for, tune_baseline
from .catalogue import catalogue_dir, find_scenario, list_catalogue
from .checkpoint import CheckpointError, CheckpointMismatchError
from .checks import DEFAULT_MAX_STEPS, ScenarioTooLargeError, check_model, check_size
from .experiment import run_scenario
from .health import run_health
from .modes import MODES, parse_seeds, resolve_mode
from .monitor import DETECTORS, LossNormalizer, Monitor
from .outdir import OutputExistsError
from .plot import plot_comparison, plot_run
from .report import shift_report
from .run import StreamRun
from .sampler import StreamPlan, StreamSampler, build_plan, sigmoid_fraction
from .scenario import (
    SHIFT_KINDS,
    SHIFT_KINDS_ALL,
    TRANSITION_KINDS,
    Scenario,
    ScenarioError,
    Segment,
    Shift,
    Transition,
    load_scenario,
    parse_scenario,
)
from .selection import apply_shared_options, parse_optimizers
from .shifts import Condition, condition_from_shifts, interpolate

__all__ = [
    "DEFAULT_MAX_STEPS", "DETECTORS", "LR_GRIDS", "MODES", "SHIFT_KINDS", "SHIFT_KINDS_ALL",
    "TRANSITION_KINDS", "CheckpointError", "CheckpointMismatchError", "Condition",
    "LossNormalizer", "Monitor", "OutputExistsError", "Scenario", "ScenarioError",
    "ScenarioTooLargeError", "Segment", "Shift", "StreamPlan", "StreamRun", "StreamSampler",
    "Transition", "aggregate_seeds", "apply_shared_options", "build_plan", "catalogue_dir",
    "check_model", "check_size", "condition_from_shifts", "find_scenario", "first_segment",
    "grid_for", "interpolate", "list_catalogue", "load_scenario", "mean_ci", "median_recovery",
    "paired_difference", "parse_optimizers", "parse_scenario", "parse_seeds", "plot_comparison",
    "plot_run", "resolve_mode", "run_health", "run_scenario", "shift_report", "sigmoid_fraction",
    "tune_baseline",
]
