"""Checks made before a stream runs: size limits, the model against the data, a time estimate.

A scenario file can ask for anything the schema allows, 10^12 steps or batches larger than
the data set. :func:`check_size` refuses what is over a limit the caller can raise
(``--max-steps``, ``--max-batch``) and says how long it would take; :func:`check_model`
builds the scenario's model and runs it on a batch shaped like the data, so an unknown model,
a model that does not fit the images, or one that returns logits instead of
log-probabilities is one clear error before any work; :func:`measure_step_seconds` times a
few training steps so validation can say how long a run will take.

>>> from autoopt_lab.streams.scenario import parse_scenario
>>> sc = parse_scenario('name="t"\\ndataset="mnist"\\nmodel="mnist_cnn"\\nseed=0\\n'
...                     'batch_size=4\\n[[segments]]\\nname="a"\\nsteps=1000000000000\\n')
>>> check_size(sc)
Traceback (most recent call last):
...
autoopt_lab.streams.checks.ScenarioTooLargeError: <string>: 1,000,000,000,000 steps ...
>>> format_duration(5400.0)
'1.5 h'
"""

from __future__ import annotations

import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .scenario import Scenario

__all__ = [
    "DATASET_SHAPES",
    "DATASET_SIZES",
    "DEFAULT_MAX_STEPS",
    "ScenarioTooLargeError",
    "check_model",
    "check_size",
    "estimate_seconds",
    "format_duration",
    "measure_step_seconds",
]

#: Image shape ``(C, H, W)`` of each base data set (used when the data is not loaded).
DATASET_SHAPES: dict[str, tuple[int, int, int]] = {
    "mnist": (1, 28, 28), "fashion-mnist": (1, 28, 28), "cifar10": (3, 32, 32),
}
#: Size of each base data set's train split (validation checks batches against it before the
#: data is loaded; a run checks against the data it has).
DATASET_SIZES: dict[str, int] = {"mnist": 60_000, "fashion-mnist": 60_000, "cifar10": 50_000}
#: Default limit on a scenario's total steps (hours on a CPU); raise it with ``max_steps``.
DEFAULT_MAX_STEPS = 1_000_000
#: Rough seconds per sample (forward, backward, step, scoring) when nothing was measured.
_ASSUMED_SECONDS_PER_SAMPLE = 3e-4


class ScenarioTooLargeError(ValueError):
    """A scenario over a size limit; the message says how long it would take."""


def format_duration(seconds: float) -> str:
    """``seconds`` in the largest sensible unit.

    >>> format_duration(42.0), format_duration(3.2e9)
    ('42 s', '101 years')
    """
    for unit, size in (("years", 365.25 * 86400), ("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= 1.5 * size if unit != "min" else seconds >= 120:
            value = seconds / size
            return f"{value:,.0f} {unit}" if value >= 10 else f"{value:.1f} {unit}"
    return f"{seconds:.0f} s"


def estimate_seconds(scenario: Scenario, seconds_per_sample: float | None = None) -> float:
    """Estimated wall time of one optimizer on ``scenario`` (samples x seconds per sample)."""
    rate = _ASSUMED_SECONDS_PER_SAMPLE if seconds_per_sample is None else seconds_per_sample
    return float(sum(s.steps * s.batch_size for s in scenario.segments)) * rate


def check_size(scenario: Scenario, *, max_steps: int = DEFAULT_MAX_STEPS,
               data_size: int | None = None, max_batch: int | None = None,
               seconds_per_sample: float | None = None) -> None:
    """Refuse a scenario longer than ``max_steps`` or with a batch over ``max_batch``
    (default: the data set's ``data_size``); the message gives the estimated time."""
    if max_steps < 1:
        raise ValueError(f"max_steps must be >= 1, got {max_steps}")
    total = scenario.total_steps
    if total > max_steps:
        took = format_duration(estimate_seconds(scenario, seconds_per_sample))
        raise ScenarioTooLargeError(
            f"{scenario.source}: {total:,} steps is over the limit of {max_steps:,} steps "
            f"(it would take about {took} per optimizer); raise the limit with --max-steps "
            "(max_steps=) if you mean it, or scale it down with --steps-scale")
    limit = max_batch if max_batch is not None else data_size
    if limit is not None:
        seg = max(scenario.segments, key=lambda s: s.batch_size)
        if seg.batch_size > limit:
            what = (f"the {data_size:,} samples of {scenario.dataset}"
                    if max_batch is None else f"the limit of {max_batch:,}")
            raise ScenarioTooLargeError(
                f"{scenario.source}: segment '{seg.name}' draws batches of {seg.batch_size:,} "
                f"samples, more than {what}; lower its batch_size, or raise the limit with "
                "--max-batch (max_batch=) to sample with replacement anyway")


def _input_shape(scenario: Scenario, data: Any = None) -> tuple[int, int, int]:
    if data is not None:
        return tuple(int(v) for v in data[0].shape[1:])  # type: ignore[return-value]
    return DATASET_SHAPES[scenario.dataset]


def check_model(scenario: Scenario, *, model: nn.Module | None = None, data: Any = None,
                device: torch.device | str = "cpu") -> nn.Module:
    """Build (or take) the scenario's model and run it on a batch shaped like the data.

    Returns the model (in train mode, on ``device``). Raises ``ValueError`` naming the
    scenario file for an unknown model, a model that does not fit the images, or a model
    that does not return log-probabilities. The probe draws no random numbers.
    """
    from autoopt_lab.models import build_model, check_log_probabilities

    c, h, w = _input_shape(scenario, data)
    if model is None:
        try:
            model = build_model(scenario.model, in_channels=c, num_classes=scenario.num_classes)
        except ValueError as exc:
            raise ValueError(f"{scenario.source}: field 'model': {exc}") from None
    model = model.to(device)
    was_training = model.training
    model.eval()
    x = torch.zeros(2, c, h, w, device=device)
    if data is not None:
        x = data[0][:2].to(device=device, dtype=torch.float32).div(255.0)
    try:
        with torch.no_grad():
            out = model(x)
    except (RuntimeError, ValueError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(
            f"{scenario.source}: model {scenario.model!r} does not fit {scenario.dataset} "
            f"images of shape {c}x{h}x{w}: {first}") from None
    finally:
        model.train(was_training)
    if out.dim() != 2 or out.shape[1] != scenario.num_classes:
        raise ValueError(
            f"{scenario.source}: model {scenario.model!r} returns shape {tuple(out.shape)}; "
            f"{scenario.dataset} needs (batch, {scenario.num_classes}) log-probabilities")
    check_log_probabilities(out, where=f"{scenario.source}: model {scenario.model!r}")
    return model


def measure_step_seconds(scenario: Scenario, *, device: torch.device | str = "cpu",
                         steps: int = 4) -> float:
    """Seconds per sample of scoring plus one plain SGD step, timed on synthetic batches of
    the first segment's size (at most 256). Uses its own RNG; leaves the global one alone."""
    c, h, w = _input_shape(scenario)
    n = min(scenario.segments[0].batch_size, 256)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = check_model(scenario, device=device)
        opt = torch.optim.SGD(net.parameters(), lr=1e-3)
        x = torch.randn(n, c, h, w, device=device)
        y = torch.randint(0, scenario.num_classes, (n,), device=device)
        times = []
        for _ in range(steps + 1):
            t0 = time.perf_counter()
            with torch.no_grad():
                net.eval()
                net(x).argmax(1).cpu()
            net.train()
            opt.zero_grad()
            F.nll_loss(net(x), y).backward()
            opt.step()
            if torch.device(device).type == "cuda":
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - t0)
    return min(times[1:]) / n
