"""Streaming harness: replay a data set with injected distribution shifts, prequentially.

Scenarios are TOML files (catalogue ``streams/`` at the repository root, format in
``streams/README.md``). The pieces, one concept per module:

* :mod:`.scenario` — schema, loading, validation (:class:`ScenarioError`);
* :mod:`.shifts` — :class:`Condition` and batch-wise shift transforms;
* :mod:`.sampler` — per-step plan (transitions) and batches built as device tensors;
* :mod:`.monitor` — river rolling accuracy and drift detectors on the normalised loss;
* :mod:`.run` — :class:`StreamRun`, one optimizer step by step, checkpoint and resume;
* :mod:`.report` — per-shift detection delay, recovery time, prequential error;
* :mod:`.baselines` — SGD/Adam/AdaGrad tuned on the first segment;
* :mod:`.experiment` — several optimizers on one scenario, writing trace/summary/PNGs;
* :mod:`.plot` — the figures.

Step-by-step use (what a widget or a background thread drives):

>>> from autoopt_lab.streams import StreamRun, find_scenario  # doctest: +SKIP
>>> run = StreamRun(find_scenario("fmnist-rotation-incremental"), "autosgd")  # doctest: +SKIP
>>> rec = run.step(); rec["loss"], rec["rolling_accuracy"], rec["shift"]  # doctest: +SKIP
>>> run.run(100, should_stop=stop_event.is_set)  # doctest: +SKIP
>>> run.latest_hparams()["conv1.weight"]  # {"lr": ..., "momentum": ...}  # doctest: +SKIP
>>> df = run.trace(); report = run.summary()  # doctest: +SKIP
"""

from .baselines import GRIDS, tune_baseline
from .catalogue import catalogue_dir, find_scenario, list_catalogue
from .experiment import parse_optimizers, run_scenario
from .monitor import DETECTORS, LossNormalizer, Monitor
from .optimizers import AUTO_OPTIMIZERS, BASELINES, OPTIMIZERS, make_optimizer
from .plot import plot_comparison, plot_run
from .report import shift_report
from .run import StreamRun
from .sampler import StreamSampler, build_plan, sigmoid_fraction
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
from .shifts import Condition, condition_from_shifts, interpolate

__all__ = [
    "AUTO_OPTIMIZERS", "BASELINES", "DETECTORS", "GRIDS", "OPTIMIZERS", "SHIFT_KINDS", "SHIFT_KINDS_ALL",
    "TRANSITION_KINDS", "Condition",
    "LossNormalizer", "Monitor", "Scenario", "ScenarioError", "Segment", "Shift",
    "StreamRun", "StreamSampler", "Transition", "build_plan", "catalogue_dir",
    "condition_from_shifts", "find_scenario", "interpolate", "list_catalogue", "load_scenario",
    "make_optimizer", "parse_optimizers", "parse_scenario", "plot_comparison", "plot_run",
    "run_scenario", "shift_report", "sigmoid_fraction", "tune_baseline",
]
