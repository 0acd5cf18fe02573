"""Step sources: the one interface the workbench runner drives.

A step source does one prequential step per :meth:`StepSource.step` call (evaluate on the
next batch, then train on it) and returns a :class:`StepRecord`. The runner, the live plot
and the results table only ever see records, so a stationary stream over a data set
(:class:`StationarySource`) and a shift scenario from the streaming harness plug in the same
way.

>>> import torch
>>> from autoopt_lab.workbench.sources import StationarySource
>>> torch.manual_seed(0)  # doctest: +ELLIPSIS
<torch._C.Generator object at ...>
>>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2), torch.nn.LogSoftmax(-1))
>>> x, y = torch.randn(40, 4), torch.randint(0, 2, (40,))
>>> src = StationarySource(net, torch.optim.SGD(net.parameters(), lr=0.1), x, y,
...                        batch_size=8, steps=3)
>>> [src.step().step for _ in range(3)]
[0, 1, 2]
>>> src.done
True
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F

from autoopt_lab.workbench.optimizers import read_hparams

log = logging.getLogger(__name__)


@dataclass
class StepRecord:
    """What one prequential step produced.

    ``loss`` and ``accuracy`` are measured on the batch *before* training on it;
    ``rolling_accuracy`` averages the last few batches. ``hparams`` maps each tensor to
    ``(lr, momentum)`` after the step. ``shift`` is True on the first step of a new segment.
    """

    step: int
    loss: float
    accuracy: float
    rolling_accuracy: float
    hparams: dict[str, tuple[float, float]] = field(default_factory=dict)
    segment: int = 0
    shift: bool = False
    batch_size: int = 0
    detected: bool = False

    def row(self) -> dict[str, float | int | bool]:
        """A flat row: scalars plus ``lr/<tensor>`` and ``momentum/<tensor>`` columns."""
        out: dict[str, float | int | bool] = {
            "step": self.step,
            "loss": self.loss,
            "accuracy": self.accuracy,
            "rolling_accuracy": self.rolling_accuracy,
            "segment": self.segment,
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


class StationarySource:
    """A stationary prequential stream: shuffled batches of ``(x, y)``, epoch after epoch.

    Each step evaluates the model on the batch (eval mode, no grad), then trains on it with
    ``optimizer``. Auto optimizers need per-sample statistics: pass the model already tracked
    (``autoopt_lab.track``) or let ``track=True`` do it here.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        batch_size: int,
        steps: int,
        seed: int = 0,
        device: str | torch.device = "cpu",
        window: int = 20,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.nll_loss,
        track: bool = False,
    ) -> None:
        if len(x) != len(y):
            raise ValueError(f"x and y differ in length: {len(x)} vs {len(y)}")
        if batch_size < 2 or batch_size > len(x):
            raise ValueError(
                f"batch_size={batch_size} is invalid; allowed: 2..{len(x)} (the data size)"
            )
        if steps < 1:
            raise ValueError(f"steps={steps} is invalid; it must be >= 1")
        self.model = model
        self.optimizer = optimizer
        self.x, self.y = x, y
        self.batch_size = batch_size
        self.total_steps = steps
        self.boundaries: list[int] = []
        self.device = torch.device(device)
        self.loss_fn = loss_fn
        self._gen = torch.Generator().manual_seed(seed)
        self._order = torch.empty(0, dtype=torch.long)
        self._pos = 0
        self._t = 0
        self._acc_window: deque[float] = deque(maxlen=window)
        self._handle = None
        if track:
            from autoopt_lab import track as track_model

            self._handle = track_model(model)

    @property
    def done(self) -> bool:
        return self._t >= self.total_steps

    def _next_indices(self) -> torch.Tensor:
        if self._pos + self.batch_size > len(self._order):
            self._order = torch.randperm(len(self.x), generator=self._gen)
            self._pos = 0
        idx = self._order[self._pos : self._pos + self.batch_size]
        self._pos += self.batch_size
        return idx

    def step(self) -> StepRecord:
        if self.done:
            raise RuntimeError(f"the stream is exhausted after {self.total_steps} steps")
        idx = self._next_indices()
        xb = self.x[idx].to(self.device, non_blocking=True)
        yb = self.y[idx].to(self.device, non_blocking=True)
        self.model.eval()
        with torch.no_grad():
            out = self.model(xb)
            loss = self.loss_fn(out, yb)
            correct = (out.argmax(dim=1) == yb).float().mean()
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        self.loss_fn(self.model(xb), yb).backward()
        self.optimizer.step()
        acc = float(correct)
        self._acc_window.append(acc)
        rec = StepRecord(
            step=self._t,
            loss=float(loss),
            accuracy=acc,
            rolling_accuracy=sum(self._acc_window) / len(self._acc_window),
            hparams=read_hparams(self.optimizer, self.model),
            batch_size=len(idx),
        )
        self._t += 1
        return rec

    def close(self) -> None:
        """Remove the statistics hooks this source installed, if any."""
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
