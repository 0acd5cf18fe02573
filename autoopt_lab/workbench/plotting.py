"""Draw a workbench run: loss, accuracy, and per-tensor lr and momentum, shifts marked.

:class:`RunPlot` keeps one figure and updates its lines in place (no re-layout, no new
artists per frame), which keeps each live frame cheap. It uses matplotlib's object API with
the Agg canvas (no pyplot state), so it is safe to drive from the training thread.
:meth:`RunPlot.png` gives PNG bytes for an ``ipywidgets.Image`` and for the static PNG file
that survives in any notebook viewer.

>>> from autoopt_lab.workbench.sources import StepRecord
>>> recs = [StepRecord(step=i, loss=1.0 / (i + 1), accuracy=0.5, rolling_accuracy=0.5,
...                    hparams={"fc.weight": (0.01, 0.9)}) for i in range(10)]
>>> plot = RunPlot(title="demo")
>>> plot.update({"SGD": recs}, boundaries=[5], total_steps=20)
>>> [ax.get_title() for ax in plot.fig.axes]
['loss (prequential)', 'accuracy (prequential)', 'learning rate per tensor', 'momentum per tensor']
>>> plot.png()[:4]
b'\\x89PNG'
"""

from __future__ import annotations

from collections.abc import Sequence
from io import BytesIO
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from autoopt_lab.workbench.sources import StepRecord

#: Most points drawn per line; longer runs are thinned (every k-th step).
MAX_POINTS = 1500
_LANE_STYLES = ("-", "--", ":", "-.")
_PALETTE = tuple(f"C{i}" for i in range(10))


def ema(values: np.ndarray, alpha: float = 0.1) -> np.ndarray:
    """Exponential moving average, seeded with the first value.

    >>> ema(np.array([1.0, 3.0]), alpha=0.5).tolist()
    [1.0, 2.0]
    """
    out = np.empty(len(values), dtype=float)
    acc = float(values[0]) if len(values) else 0.0
    for i, v in enumerate(values):
        acc = alpha * float(v) + (1 - alpha) * acc
        out[i] = acc
    return out


class RunPlot:
    """A 2x2 live figure: loss, accuracy, lr and momentum. One line style per lane (optimizer),
    one colour per tensor; dashed vertical lines at shift boundaries, gradual transitions shaded."""

    def __init__(self, title: str = "", *, max_points: int = MAX_POINTS, dpi: float = 80) -> None:
        if max_points < 2:
            raise ValueError(f"max_points={max_points} is invalid; it must be >= 2")
        self.max_points = max_points
        self.fig = Figure(figsize=(11.5, 6.5), dpi=dpi)
        FigureCanvasAgg(self.fig)
        axes = self.fig.subplots(2, 2, sharex=True)
        self.fig.subplots_adjust(
            left=0.06, right=0.83, top=0.90, bottom=0.09, hspace=0.25, wspace=0.2
        )
        self.ax_loss, self.ax_acc, self.ax_lr, self.ax_mom = axes.ravel()
        self.ax_loss.set_title("loss (prequential)")
        self.ax_acc.set_title("accuracy (prequential)")
        self.ax_lr.set_title("learning rate per tensor")
        self.ax_mom.set_title("momentum per tensor")
        self.ax_acc.set_ylim(0, 1)
        self.ax_mom.set_ylim(-0.02, 1.02)
        for ax in (self.ax_lr, self.ax_mom):
            ax.set_xlabel("step")
        for ax in axes.ravel():
            ax.grid(alpha=0.3)
        if title:
            self.fig.suptitle(title)
        self._lines: dict[tuple[str, str], Line2D] = {}
        self._tensor_colors: dict[str, str] = {}
        self._lanes: list[str] = []
        self._boundaries: set[int] = set()
        self._spans: set[tuple[int, int]] = set()
        self._legend_key: tuple[int, ...] = (0, 0, 0, 0)

    def _line(self, ax, key: tuple[str, str], **style) -> Line2D:
        line = self._lines.get(key)
        if line is None:
            (line,) = ax.plot([], [], **style)
            self._lines[key] = line
        return line

    def update(
        self,
        records: dict[str, Sequence[StepRecord]],
        *,
        boundaries: Sequence[int] = (),
        transitions: Sequence[tuple[int, int]] = (),
        total_steps: int | None = None,
    ) -> None:
        """Redraw the lines from ``records`` (``{lane: [StepRecord, ...]}``); dashed lines at
        ``boundaries``, shaded ``transitions`` (``(start, end)`` of gradual shifts)."""
        for lane, recs in records.items():
            if lane not in self._lanes:
                self._lanes.append(lane)
            if not recs:
                continue
            n = len(recs)
            stride = max(1, -(-n // self.max_points))
            recs = recs[::stride]
            lane_i = self._lanes.index(lane)
            ls = _LANE_STYLES[lane_i % len(_LANE_STYLES)]
            color = _PALETTE[lane_i % len(_PALETTE)]
            steps = np.fromiter((r.step for r in recs), float, len(recs))
            loss = np.fromiter((r.loss for r in recs), float, len(recs))
            acc = np.fromiter((r.rolling_accuracy for r in recs), float, len(recs))
            self._line(self.ax_loss, (lane, "loss raw"), color=color, alpha=0.25, lw=0.8).set_data(
                steps, loss
            )
            self._line(
                self.ax_loss, (lane, "loss"), color=color, ls=ls, lw=1.6, label=lane
            ).set_data(steps, ema(loss))
            self._line(self.ax_acc, (lane, "acc"), color=color, ls=ls, lw=1.6, label=lane).set_data(
                steps, acc
            )
            for name in recs[-1].hparams:
                tcolor = self._tensor_colors.setdefault(
                    name, _PALETTE[len(self._tensor_colors) % len(_PALETTE)]
                )
                hp = np.array(
                    [r.hparams.get(name, (np.nan, np.nan)) for r in recs], dtype=float
                ).reshape(-1, 2)
                self._line(self.ax_lr, (lane, "lr/" + name), color=tcolor, ls=ls, lw=1.2).set_data(
                    steps, hp[:, 0]
                )
                self._line(
                    self.ax_mom, (lane, "mom/" + name), color=tcolor, ls=ls, lw=1.2
                ).set_data(steps, hp[:, 1])
        for b in boundaries:
            if b not in self._boundaries:
                self._boundaries.add(b)
                for ax in (self.ax_loss, self.ax_acc, self.ax_lr, self.ax_mom):
                    ax.axvline(b, color="k", ls="--", lw=0.9, alpha=0.6)
        for span in transitions:
            if span not in self._spans:
                self._spans.add(span)
                for ax in (self.ax_loss, self.ax_acc, self.ax_lr, self.ax_mom):
                    ax.axvspan(*span, color="0.5", alpha=0.12, lw=0)
        for ax in (self.ax_loss, self.ax_lr):
            ax.relim()
            ax.autoscale_view()
        lr = [line.get_ydata() for (_, k), line in self._lines.items() if k.startswith("lr/")]
        positive = np.concatenate([np.asarray(v, float) for v in lr]) if lr else np.empty(0)
        positive = positive[np.isfinite(positive) & (positive > 0)]
        if positive.size:
            self.ax_lr.set_yscale("log")
            lo, hi = positive.min(), positive.max()
            self.ax_lr.set_ylim(lo / 1.5, hi * 1.5)
        if total_steps:
            self.ax_loss.set_xlim(0, total_steps)
        self._refresh_legends()

    def _refresh_legends(self) -> None:
        key = (len(self._lanes), len(self._tensor_colors), len(self._boundaries), len(self._spans))
        if key == self._legend_key or not self._tensor_colors:
            return
        self._legend_key = key
        self.ax_loss.legend(loc="upper right", fontsize=8)
        self.ax_acc.legend(loc="lower right", fontsize=8)
        for legend in list(self.fig.legends):
            legend.remove()
        handles = [Line2D([], [], color=c, lw=1.5, label=n) for n, c in self._tensor_colors.items()]
        if len(self._lanes) > 1:
            handles += [
                Line2D([], [], color="0.3", ls=_LANE_STYLES[i % len(_LANE_STYLES)], label=lane)
                for i, lane in enumerate(self._lanes)
            ]
        if self._boundaries:
            handles.append(Line2D([], [], color="k", ls="--", lw=0.9, label="shift"))
        if self._spans:
            handles.append(Patch(color="0.5", alpha=0.25, label="transition"))
        self.fig.legend(
            handles=handles,
            loc="center left",
            bbox_to_anchor=(0.835, 0.5),
            fontsize=8,
            title="tensors / lanes" if len(self._lanes) > 1 else "tensors",
            title_fontsize=8,
        )

    def png(self, dpi: float | None = None) -> bytes:
        """The figure as PNG bytes (for ``ipywidgets.Image.value``)."""
        buf = BytesIO()
        self.fig.savefig(buf, format="png", dpi=dpi)
        return buf.getvalue()

    def save(self, path: str | Path, dpi: float = 100) -> Path:
        """Write the figure as a PNG file (parents created) and return its path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.png(dpi=dpi))
        return path
