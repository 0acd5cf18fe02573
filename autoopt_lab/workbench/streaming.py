"""Wire the workbench to the streaming harness (:mod:`autoopt_lab.streams`).

Every workbench run is one :class:`~autoopt_lab.streams.StreamRun` per optimizer (lane), all
on the same stream: a catalogue scenario (rescaled to the requested length, reseeded with the
requested seed), or, for shift ``"none"``, a one-segment stationary scenario over the chosen
data set. :class:`StreamSource` adapts a ``StreamRun`` to the workbench's
:class:`~autoopt_lab.workbench.sources.StepSource`. Any optimizer of the registry works:
``StreamRun`` builds it and handles Schedule-Free's evaluation weights.

>>> from autoopt_lab.workbench.settings import WorkbenchSettings
>>> sc = scenario_for(WorkbenchSettings(dataset="mnist", steps=40, batch_size=16, seed=3))
>>> sc.dataset, sc.total_steps, sc.segments[0].batch_size, sc.seed, sc.boundaries
('mnist', 40, 16, 3, [])
>>> sc = scenario_for(WorkbenchSettings(scenario="fmnist-rotation-incremental", steps=120))
>>> sc.total_steps, sc.boundaries
(120, [40, 90])
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from autoopt_lab.devices import resolve_device
from autoopt_lab.health import AT_CHANCE, flag_words
from autoopt_lab.workbench.choices import data_status, find
from autoopt_lab.workbench.settings import NO_SHIFT, WorkbenchSettings
from autoopt_lab.workbench.sources import StepRecord

log = logging.getLogger(__name__)

#: Rolling-accuracy window (samples) and detector warm-up (steps) of the stationary stream.
STATIONARY_WINDOW = 1000
STATIONARY_WARMUP = 100


def scenario_for(settings: WorkbenchSettings):
    """The :class:`~autoopt_lab.streams.Scenario` the settings describe.

    A catalogue scenario keeps its data set, model and batch sizes; its length is rescaled
    to ``settings.steps`` and its seed replaced by ``settings.seed``. ``"none"`` gives one
    stationary segment of ``settings.steps`` batches of ``settings.batch_size``.
    """
    from autoopt_lab.models import model_name_for
    from autoopt_lab.streams import Scenario, Segment
    from autoopt_lab.streams.scenario import MetricsConfig

    if settings.scenario == NO_SHIFT:
        return Scenario(
            name=f"stationary-{settings.dataset}",
            dataset=settings.dataset,
            model=settings.model or model_name_for(settings.dataset),
            seed=settings.seed,
            segments=(Segment("stationary", settings.steps, settings.batch_size),),
            description="no shift: shuffled batches of the training set",
            metrics=MetricsConfig(
                window=STATIONARY_WINDOW, warmup=min(STATIONARY_WARMUP, settings.steps)
            ),
            source="workbench",
        )
    sc = find(settings.scenario)
    if sc.total_steps != settings.steps:
        sc = sc.scaled(settings.steps / sc.total_steps)
    return replace(sc, seed=settings.seed)


class StreamSource:
    """A :class:`~autoopt_lab.streams.StreamRun` seen as a workbench step source.

    Every step's per-tensor lr and momentum reach the record: the run flushes them each step
    (``hparam_every=1``); the run already syncs once a step for its prequential score, so this
    adds no extra stall on a GPU.
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

    @property
    def done(self) -> bool:
        return self.run.done

    def step(self) -> StepRecord:
        rec = self.run.step()
        hp = {n: (v["lr"], v["momentum"]) for n, v in self.run.latest_hparams().items()}
        return StepRecord(
            step=int(rec["step"]),
            loss=float(rec["loss"]),
            accuracy=float(rec["accuracy"]),
            rolling_accuracy=float(rec["rolling_accuracy"]),
            hparams=hp,
            segment=int(rec["segment"]),
            segment_name=str(rec.get("segment_name", rec["segment"])),
            shift=bool(rec["shift"]),
            batch_size=int(rec["batch_size"]),
            detected=any(bool(v) for k, v in rec.items() if k.startswith("detect_")),
        )

    def close(self) -> None:
        self.run.close()


def load_data(dataset: str):
    """``(x, y, info)`` of the train split, without a download when the files are on disk."""
    from autoopt_lab.data import load_arrays

    local = data_status(dataset).local
    return load_arrays(dataset, train=True, download=False if local else None)


def build_sources(settings: WorkbenchSettings) -> dict[str, StreamSource]:
    """One :class:`StreamSource` per lane, all on the same stream (same scenario and seed).

    Everything that can fail is checked before any training: the device, the optimizers'
    packages and options, the data; ``StreamRun`` itself checks the scenario's size against
    the data and that the model returns log-probabilities.
    """
    from autoopt_lab.streams import StreamRun

    device = resolve_device(settings.device)
    lanes = settings.lanes()
    for lane in lanes.values():
        lane.spec.require_available()
    scenario = scenario_for(settings)
    data = load_data(scenario.dataset)
    sources: dict[str, StreamSource] = {}
    try:
        for label, lane in lanes.items():
            run = StreamRun(
                scenario, lane.name, hparams=dict(lane.options), device=device, data=data,
                hparam_every=1,
            )
            sources[label] = StreamSource(run)
    except BaseException:
        for src in sources.values():
            src.close()
        raise
    log.info(
        "workbench stream: %s, %d steps, shifts at %s, lanes %s, device %s",
        scenario.name, scenario.total_steps, scenario.boundaries, list(sources), device,
    )
    return sources


def health_flags(summary: dict[str, Any]) -> list[str]:
    """A ``StreamRun.summary()``'s health flags, worded for a table
    (:func:`autoopt_lab.health.flag_words`: ``diverged at step N``, ``N skipped steps``,
    ``at chance``), and ``at chance in <segment>`` for segments that never beat guessing in
    a run that otherwise did.

    >>> health_flags({"health": {"flags": ["diverged", "skipped steps"], "diverged_at": 40,
    ...                          "nonfinite_skips": 3},
    ...               "segment_health": [{"name": "rotated", "flags": ["at chance"]}]})
    ['diverged at step 40', '3 skipped steps', 'at chance in rotated']
    """
    health = summary.get("health", {})
    out = flag_words(health)
    if AT_CHANCE not in health.get("flags", []):
        out += [
            f"{AT_CHANCE} in {seg['name']}"
            for seg in summary.get("segment_health", [])
            if AT_CHANCE in seg.get("flags", [])
        ]
    return out


def lane_reports(sources: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per lane with a ``StreamRun``: its summary (per-shift report, health) and ``flags``."""
    out = {}
    for label, src in sources.items():
        run = getattr(src, "run", None)
        if run is not None and getattr(run, "records", None):
            summary = run.summary()
            out[label] = {**summary, "flags": health_flags(summary)}
    return out
