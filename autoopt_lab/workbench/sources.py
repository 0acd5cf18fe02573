"""Step records and step sources: the one interface the workbench runner drives.

A step source does one prequential step per :meth:`StepSource.step` call (score the model on
the next batch, then train on it) and returns a :class:`StepRecord`. The runner, the live plot
and the results table only ever see records; the workbench's sources are
:class:`~autoopt_lab.workbench.streaming.StreamSource` (a ``StreamRun`` of the streaming
harness), and tests plug in small fakes the same way.

>>> rec = StepRecord(step=0, loss=2.3, accuracy=0.1, rolling_accuracy=0.1,
...                  hparams={"fc.weight": (0.01, 0.9)}, segment_name="upright")
>>> sorted(rec.row())[:4]
['accuracy', 'batch_size', 'detected', 'loss']
>>> rec.row()["lr/fc.weight"]
0.01
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


@dataclass
class StepRecord:
    """What one prequential step produced.

    ``loss`` and ``accuracy`` are measured on the batch *before* training on it;
    ``rolling_accuracy`` averages the last few batches. ``hparams`` maps each tensor to
    ``(lr, momentum)`` after the step. ``shift`` is True on the first step of a new segment;
    ``segment_name`` names the segment (the scenario's name for it).
    """

    step: int
    loss: float
    accuracy: float
    rolling_accuracy: float
    hparams: dict[str, tuple[float, float]] = field(default_factory=dict)
    segment: int = 0
    segment_name: str = ""
    shift: bool = False
    batch_size: int = 0
    detected: bool = False

    def row(self) -> dict[str, float | int | bool | str]:
        """A flat row: scalars plus ``lr/<tensor>`` and ``momentum/<tensor>`` columns."""
        out: dict[str, float | int | bool | str] = {
            "step": self.step,
            "loss": self.loss,
            "accuracy": self.accuracy,
            "rolling_accuracy": self.rolling_accuracy,
            "segment": self.segment,
            "segment_name": self.segment_name,
            "shift": self.shift,
            "detected": self.detected,
            "batch_size": self.batch_size,
        }
        for name, (lr, mom) in self.hparams.items():
            out[f"lr/{name}"] = lr
            out[f"momentum/{name}"] = mom
        return out


@runtime_checkable
class StepSource(Protocol):
    """Anything the runner can drive: ``total_steps``, ``boundaries``, ``done``, ``step()``,
    ``close()``. ``boundaries`` lists the steps where an injected shift starts."""

    total_steps: int
    boundaries: list[int]

    @property
    def done(self) -> bool: ...

    def step(self) -> StepRecord: ...

    def close(self) -> None: ...
