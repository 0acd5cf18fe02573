"""Wire the workbench to the streaming harness (:mod:`autoopt_lab.streams`).

Every workbench run is a :class:`~autoopt_lab.streams.StreamRun`: a catalogue scenario
(rescaled to the requested length, reseeded with the requested seed), or, for shift
``"none"``, a one-segment stationary scenario over the chosen data set. :class:`StreamSource`
adapts a ``StreamRun`` to the workbench's :class:`~autoopt_lab.workbench.sources.StepSource`.

>>> from autoopt_lab.workbench.config import RunConfig
>>> sc = scenario_for(RunConfig(dataset="mnist", steps=40, batch_size=16, seed=3))
>>> sc.dataset, sc.total_steps, sc.segments[0].batch_size, sc.seed, sc.boundaries
('mnist', 40, 16, 3, [])
>>> sc = scenario_for(RunConfig(scenario="fmnist-rotation-incremental", steps=120))
>>> sc.total_steps, sc.boundaries
(120, [40, 90])
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import torch

from autoopt_lab.workbench.config import NO_SHIFT, RunConfig
from autoopt_lab.workbench.optimizers import read_hparams
from autoopt_lab.workbench.sources import StepRecord

log = logging.getLogger(__name__)

#: Rolling-accuracy window (samples) and detector warm-up (steps) of the stationary stream.
STATIONARY_WINDOW = 1000
STATIONARY_WARMUP = 100


def scenario_names() -> list[str]:
    """Names of the catalogue scenarios (the ``streams/*.toml`` file stems)."""
    from autoopt_lab.streams import catalogue_dir

    try:
        folder = catalogue_dir()
    except FileNotFoundError as exc:
        log.warning("no shift scenarios: %s", exc)
        return []
    return sorted(p.stem for p in folder.glob("*.toml"))


def scenario_summary(name: str) -> dict[str, Any]:
    """``dataset``, ``model``, ``batch_size`` (first segment), ``steps``, ``segments`` of a
    catalogue scenario, for the controls."""
    from autoopt_lab.streams import find_scenario

    sc = find_scenario(name)
    return {
        "dataset": sc.dataset,
        "model": sc.model,
        "batch_size": sc.segments[0].batch_size,
        "steps": sc.total_steps,
        "segments": [s.name for s in sc.segments],
        "description": sc.description,
    }


def scenario_for(config: RunConfig):
    """The :class:`~autoopt_lab.streams.Scenario` a run config describes.

    A catalogue scenario keeps its data set, model and batch sizes; its length is rescaled
    to ``config.steps`` and its seed replaced by ``config.seed``. ``"none"`` gives one
    stationary segment of ``config.steps`` batches of ``config.batch_size``.
    """
    from autoopt_lab.models import model_name_for
    from autoopt_lab.streams import Scenario, Segment, find_scenario
    from autoopt_lab.streams.scenario import MetricsConfig

    if config.scenario == NO_SHIFT:
        return Scenario(
            name=f"stationary-{config.dataset}",
            dataset=config.dataset,
            model=config.model or model_name_for(config.dataset),
            seed=config.seed,
            segments=(Segment("stationary", config.steps, config.batch_size),),
            description="no shift: shuffled batches of the training set",
            metrics=MetricsConfig(
                window=STATIONARY_WINDOW, warmup=min(STATIONARY_WARMUP, config.steps)
            ),
            source="workbench",
        )
    sc = find_scenario(config.scenario)
    if sc.total_steps != config.steps:
        sc = sc.scaled(config.steps / sc.total_steps)
    return replace(sc, seed=config.seed)


def optimizer_spec(config: RunConfig) -> tuple[str, dict[str, Any]]:
    """``(name, hparams)`` for :func:`autoopt_lab.streams.make_optimizer`."""
    name = config.optimizer.lower()
    if config.is_auto:
        return name, {}
    if config.family == "SGD":
        return name, {"lr": config.lr, "momentum": config.momentum}
    return name, {"lr": config.lr}


class StreamSource:
    """A :class:`~autoopt_lab.streams.StreamRun` seen as a workbench step source.

    Auto optimizers' lr/momentum are flushed to the host every step (``hparam_every=1``) so
    the live plot and the trace have them per step; the run already syncs once a step for its
    prequential score, so this adds no extra stall on a GPU.
    """

    def __init__(self, run) -> None:
        self.run = run
        self.total_steps: int = run.total_steps
        self.boundaries: list[int] = list(run.scenario.boundaries)
        #: ``(start, end)`` steps of each gradual / incremental transition (width > 0).
        self.transitions: list[tuple[int, int]] = [
            (b, b + seg.transition.width)
            for b, seg in zip(self.boundaries, run.scenario.segments[1:], strict=True)
            if seg.transition.width > 0
        ]
        self._fixed = None if run.is_auto else read_hparams(run.opt, run.model)

    @property
    def done(self) -> bool:
        return self.run.done

    def step(self) -> StepRecord:
        rec = self.run.step()
        if self._fixed is None:
            hp = {n: (v["lr"], v["momentum"]) for n, v in self.run.latest_hparams().items()}
        else:
            hp = self._fixed
        return StepRecord(
            step=int(rec["step"]),
            loss=float(rec["loss"]),
            accuracy=float(rec["accuracy"]),
            rolling_accuracy=float(rec["rolling_accuracy"]),
            hparams=hp,
            segment=int(rec["segment"]),
            shift=bool(rec["shift"]),
            batch_size=int(rec["batch_size"]),
            detected=any(bool(v) for k, v in rec.items() if k.startswith("detect_")),
        )

    def close(self) -> None:
        self.run.close()


def build_stream_sources(
    config: RunConfig, device: torch.device, lanes: dict[str, RunConfig]
) -> dict[str, StreamSource]:
    """One :class:`StreamSource` per lane, all on the same stream (same scenario and seed)."""
    from autoopt_lab.data import load_arrays
    from autoopt_lab.streams import StreamRun

    scenario = scenario_for(config)
    data = load_arrays(scenario.dataset, train=True)
    sources: dict[str, StreamSource] = {}
    for label, cfg in lanes.items():
        name, hparams = optimizer_spec(cfg)
        run = StreamRun(scenario, name, hparams=hparams, device=device, data=data, hparam_every=1)
        sources[label] = StreamSource(run)
    log.info(
        "workbench stream: %s, %d steps, shifts at %s, lanes %s",
        scenario.name,
        scenario.total_steps,
        scenario.boundaries,
        list(sources),
    )
    return sources
