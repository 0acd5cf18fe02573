"""The stream: a per-step schedule of conditions, and batches built as tensors on the device.

:class:`StreamSampler` turns a :class:`~autoopt_lab.streams.scenario.Scenario` and a data set
(uint8 images ``(N, C, H, W)``, int64 labels) into the batch of every step. Indices are drawn
class-first with a seeded ``torch.Generator`` on the training device (class ``~ proportions``,
then a uniform index within that class), the shift transforms are applied to the whole batch,
and the batch is normalised with the data set's mean and std. Sampling is with replacement.
During a gradual (sigmoid) transition an old-condition and a new-condition batch are built and
mixed per sample with ``torch.where`` (no host sync). Same seed, same batches.

>>> import torch
>>> from autoopt_lab.streams.scenario import parse_scenario
>>> sc = parse_scenario('name="t"\\ndataset="mnist"\\nmodel="m"\\nseed=3\\nbatch_size=4\\n'
...     '[[segments]]\\nname="a"\\nsteps=2\\n[[segments]]\\nname="b"\\nsteps=2\\n'
...     'shifts=[{kind="inversion"}]\\n')
>>> x = torch.randint(0, 256, (50, 1, 6, 6), dtype=torch.uint8); y = torch.arange(50) % 10
>>> s = StreamSampler(sc, x, y, mean=(0.5,), std=(0.25,))
>>> xb, yb = s.next_batch(); xb.shape, s.position
(torch.Size([4, 1, 6, 6]), 1)
>>> [p.segment for p in s.plan][:4], s.plan[2].boundary
([0, 0, 1, 1], True)
"""

from __future__ import annotations

import bisect
import math
import operator
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, overload

import torch

from .scenario import Scenario
from .shifts import Condition, condition_from_shifts, interpolate

__all__ = ["StepPlan", "StreamPlan", "StreamSampler", "build_plan", "sigmoid_fraction"]


def sigmoid_fraction(t: int, start: int, width: int) -> float:
    """Probability that a sample at step ``t`` comes from the new segment (gradual drift).

    River's ``ConceptDriftStream`` sigmoid ``1 / (1 + exp(-4 (t - position) / width))``, with
    ``position = start + width / 2`` so the whole transition lies inside the new segment.

    >>> round(sigmoid_fraction(50, 0, 100), 3), round(sigmoid_fraction(0, 0, 100), 3)
    (0.5, 0.119)
    """
    if width <= 0:
        return 1.0 if t >= start else 0.0
    z = -4.0 * (t - start - width / 2.0) / width
    return 1.0 / (1.0 + math.exp(z))


@dataclass(frozen=True)
class StepPlan:
    """What step ``step`` draws: ``new`` with probability ``p_new``, else ``old``."""

    step: int
    segment: int
    batch_size: int
    new: Condition
    old: Condition
    p_new: float
    boundary: bool  # first step of a segment after the first: an injected shift marker
    in_transition: bool


class StreamPlan(Sequence[StepPlan]):
    """The per-step schedule of a scenario, computed on demand (pure bookkeeping, no tensors).

    Indexing is O(log segments) and the plan holds O(segments) memory, so a scenario of
    10^12 steps costs nothing until it runs. ``base_probs`` are the data set's own class
    frequencies, needed only when an incremental transition moves between a prior shift and
    the unshifted data.
    """

    def __init__(self, scenario: Scenario, base_probs: tuple[float, ...] | None = None) -> None:
        self.scenario = scenario
        self.base_probs = base_probs
        k = scenario.num_classes
        conds: dict[str, Condition] = {}
        self._starts: list[int] = []
        self._conds: list[tuple[Condition, Condition]] = []  # (condition, previous condition)
        t = 0
        prev: Condition | None = None
        for seg in scenario.segments:
            tr = seg.transition
            if tr.kind == "recurring":
                cond = conds[tr.to]
            else:
                cond = condition_from_shifts(seg.shifts, k, run_seed=scenario.seed)
            conds[seg.name] = cond
            self._starts.append(t)
            self._conds.append((cond, prev if prev is not None else cond))
            t += seg.steps
            prev = cond
        self._total = t

    def __len__(self) -> int:
        return self._total

    def _at(self, step: int) -> StepPlan:
        i = bisect.bisect_right(self._starts, step) - 1
        seg = self.scenario.segments[i]
        t, j = self._starts[i], step - self._starts[i]
        cond, old = self._conds[i]
        tr = seg.transition
        new, p_new, in_tr = cond, 1.0, False
        if tr.kind in ("gradual", "recurring") and tr.width > 0 and j < tr.width:
            p_new, in_tr = sigmoid_fraction(step, t, tr.width), True
        elif tr.kind == "incremental" and j < tr.width:
            new = interpolate(old, cond, (j + 1) / tr.width, self.base_probs)
            in_tr = True
        return StepPlan(step=step, segment=i, batch_size=seg.batch_size, new=new, old=old,
                        p_new=p_new, boundary=(i > 0 and j == 0), in_transition=in_tr)

    @overload
    def __getitem__(self, index: int) -> StepPlan: ...

    @overload
    def __getitem__(self, index: slice) -> list[StepPlan]: ...

    def __getitem__(self, index: int | slice) -> StepPlan | list[StepPlan]:
        if isinstance(index, slice):
            return [self._at(i) for i in range(*index.indices(self._total))]
        i = operator.index(index)
        if i < 0:
            i += self._total
        if not 0 <= i < self._total:
            raise IndexError(f"step {index} outside the stream's {self._total} steps")
        return self._at(i)

    def __iter__(self) -> Iterator[StepPlan]:
        return (self._at(i) for i in range(self._total))

    def conditions(self) -> set[Condition]:
        """Every segment's condition and the one before it (incremental steps lie between)."""
        return {c for pair in self._conds for c in pair}


def build_plan(scenario: Scenario, base_probs: tuple[float, ...] | None = None) -> StreamPlan:
    """The per-step schedule of a scenario (a lazy :class:`StreamPlan`)."""
    return StreamPlan(scenario, base_probs)


class StreamSampler:
    """Draws the batch of each step of a scenario, deterministically from its seed.

    ``position`` is the next step to draw; :meth:`state_dict` / :meth:`load_state_dict` save
    and restore it with the generator, so a resumed stream draws the same batches.
    """

    def __init__(self, scenario: Scenario, x: torch.Tensor, y: torch.Tensor, *,
                 mean: tuple[float, ...], std: tuple[float, ...],
                 device: torch.device | str = "cpu") -> None:
        if x.dtype != torch.uint8 or x.dim() != 4:
            raise ValueError(f"x must be uint8 images (N, C, H, W), got {x.dtype} {tuple(x.shape)}")
        if y.dim() != 1 or y.shape[0] != x.shape[0]:
            raise ValueError(f"y must be 1-D with {x.shape[0]} labels, got {tuple(y.shape)}")
        k = scenario.num_classes
        if int(y.min()) < 0 or int(y.max()) >= k:
            raise ValueError(f"labels must lie in 0 .. {k - 1} for {scenario.dataset}")
        self.scenario = scenario
        self.device = torch.device(device)
        self.x = x.to(self.device)
        self.y = y.to(self.device, torch.int64)
        counts = torch.bincount(self.y, minlength=k)
        self.counts = counts
        self.offsets = torch.cumsum(counts, 0) - counts
        self.order = torch.argsort(self.y, stable=True)
        self.base_probs = (counts.double() / counts.sum()).float()
        self.mean = torch.tensor(mean, dtype=torch.float32, device=self.device).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32, device=self.device).view(1, -1, 1, 1)
        self.plan = build_plan(scenario, tuple(self.base_probs.tolist()))
        for cond in self.plan.conditions():
            probs = cond.class_probs(self.base_probs)
            missing = ((probs > 0) & (counts == 0)).nonzero().flatten().tolist()
            if missing:
                raise ValueError(f"scenario {scenario.name!r} asks for classes {missing}, "
                                 "which this data set split does not contain")
        self.generator = torch.Generator(device=self.device).manual_seed(scenario.seed)
        self.position = 0

    def __len__(self) -> int:
        return len(self.plan)

    def _draw(self, cond: Condition, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = self.generator
        cls = torch.multinomial(cond.class_probs(self.base_probs), n, replacement=True,
                                generator=g)
        u = torch.rand(n, generator=g, device=self.device)
        within = (u * self.counts[cls]).long().clamp_max_(self.counts[cls] - 1)
        idx = self.order[self.offsets[cls] + within]
        xb = cond.apply_images(self.x[idx].float().div_(255.0), generator=g)
        return xb, cond.map_labels(self.y[idx])

    def batch_at_plan(self, p: StepPlan) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw the batch of one step plan (advances the generator, not ``position``)."""
        if p.p_new >= 1.0:
            xb, yb = self._draw(p.new, p.batch_size)
        else:
            xn, yn = self._draw(p.new, p.batch_size)
            xo, yo = self._draw(p.old, p.batch_size)
            take = torch.rand(p.batch_size, generator=self.generator, device=self.device) < p.p_new
            xb = torch.where(take.view(-1, 1, 1, 1), xn, xo)
            yb = torch.where(take, yn, yo)
        return (xb - self.mean) / self.std, yb

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch ``(x, y)`` of step ``position``; then ``position`` advances by one."""
        if self.position >= len(self.plan):
            raise StopIteration(f"the stream has {len(self.plan)} steps; it is exhausted")
        out = self.batch_at_plan(self.plan[self.position])
        self.position += 1
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"position": self.position, "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.position = int(state["position"])
        self.generator.set_state(state["generator"])
