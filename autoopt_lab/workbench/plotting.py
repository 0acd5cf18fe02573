"""Draw a workbench run: loss, accuracy, learning rate and momentum, shifts marked.

One colour per optimizer (lane) in every panel. The lr and momentum panels show, per lane,
the median over the model's tensors with a band from the 25th to the 75th percentile; with
``per_tensor=True`` they show one line per tensor instead, in shades of the lane's colour.

:class:`RunPlot` keeps one figure and updates its artists in place, which keeps each live
frame cheap. It uses matplotlib's object API with the Agg canvas (no pyplot state), so it is
safe to drive from the training thread. :meth:`RunPlot.png` gives PNG bytes for an
``ipywidgets.Image`` and for the static PNG file that survives in any notebook viewer.

>>> from autoopt_lab.workbench.sources import StepRecord
>>> recs = [StepRecord(step=i, loss=1.0 / (i + 1), accuracy=0.5, rolling_accuracy=0.5,
...                    hparams={"fc.weight": (0.01, 0.9), "fc.bias": (0.02, 0.8)})
...         for i in range(10)]
>>> plot = RunPlot(title="demo", chance=0.1)
>>> plot.update({"SGD": recs}, boundaries=[5], total_steps=20)
>>> [ax.get_title() for ax in plot.fig.axes]
['loss (prequential)', 'accuracy (prequential)', 'learning rate', 'momentum']
>>> plot.png()[:4]
b'\\x89PNG'
"""

from __future__ import annotations

from collections.abc import Sequence
from io import BytesIO
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from autoopt_lab.workbench.sources import StepRecord

#: Most points drawn per line; longer runs are thinned (every k-th step).
MAX_POINTS = 1500
#: Percentiles of the band around the median over tensors.
BAND = (25.0, 75.0)
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


def shade(color: str, k: int, n: int) -> tuple[float, float, float]:
    """The ``k``-th of ``n`` shades of ``color``, from dark to light.

    >>> shade("C0", 0, 1) == to_rgb("C0")
    True
    """
    rgb = np.array(to_rgb(color))
    if n <= 1:
        return tuple(rgb)
    t = -0.45 + 0.9 * k / (n - 1)  # < 0 darker, > 0 lighter
    out = rgb * (1 + t) if t < 0 else rgb + (1 - rgb) * t
    return tuple(np.clip(out, 0, 1))


class RunPlot:
    """A 2x2 live figure: loss, accuracy, lr and momentum; one colour per lane everywhere.

    Dashed vertical lines mark shift boundaries, shaded spans gradual transitions, a dotted
    line the chance accuracy (``chance``). ``per_tensor`` switches the lr and momentum
    panels from median-and-band to one line per tensor.
    """

    def __init__(
        self,
        title: str = "",
        *,
        max_points: int = MAX_POINTS,
        dpi: float = 80,
        per_tensor: bool = False,
        chance: float | None = None,
    ) -> None:
        if max_points < 2:
            raise ValueError(f"max_points={max_points} is invalid; it must be >= 2")
        self.max_points = max_points
        self.per_tensor = per_tensor
        self.fig = Figure(figsize=(11.5, 6.5), dpi=dpi)
        FigureCanvasAgg(self.fig)
        axes = self.fig.subplots(2, 2, sharex=True)
        self.fig.subplots_adjust(
            left=0.06, right=0.80, top=0.90, bottom=0.09, hspace=0.25, wspace=0.2
        )
        self.ax_loss, self.ax_acc, self.ax_lr, self.ax_mom = axes.ravel()
        self.ax_loss.set_title("loss (prequential)")
        self.ax_acc.set_title("accuracy (prequential)")
        self.ax_lr.set_title("learning rate")
        self.ax_mom.set_title("momentum")
        self.ax_acc.set_ylim(0, 1)
        self.ax_mom.set_ylim(-0.02, 1.02)
        for ax in (self.ax_lr, self.ax_mom):
            ax.set_xlabel("step")
        for ax in axes.ravel():
            ax.grid(alpha=0.3)
        if title:
            self.fig.suptitle(title)
        self.chance = chance
        if chance is not None:
            self.ax_acc.axhline(chance, color="0.4", ls=":", lw=1.0)
        self._lines: dict[tuple[str, str], Line2D] = {}
        self._bands: dict[tuple[str, str], object] = {}
        self._lanes: list[str] = []
        self._tensors: dict[str, list[str]] = {}
        self._notes: dict[str, str] = {}
        self._boundaries: set[int] = set()
        self._spans: set[tuple[int, int]] = set()
        self._legend_key: tuple = ()

    def color(self, lane: str) -> str:
        """The lane's colour (the same in every panel)."""
        if lane not in self._lanes:
            self._lanes.append(lane)
        return _PALETTE[self._lanes.index(lane) % len(_PALETTE)]

    def _line(self, ax, key: tuple[str, str], **style) -> Line2D:
        line = self._lines.get(key)
        if line is None:
            (line,) = ax.plot([], [], **style)
            self._lines[key] = line
        return line

    def set_per_tensor(self, per_tensor: bool) -> None:
        """Switch the lr/momentum view; the next :meth:`update` draws it."""
        if per_tensor == self.per_tensor:
            return
        self.per_tensor = per_tensor
        for key in [k for k in self._lines if k[1].startswith(("lr", "mom"))]:
            self._lines.pop(key).remove()
        for band in self._bands.values():
            band.remove()
        self._bands.clear()
        self._legend_key = ()

    def _band(self, ax, key: tuple[str, str], x, lo, hi, color: str) -> None:
        old = self._bands.pop(key, None)
        if old is not None:
            old.remove()
        self._bands[key] = ax.fill_between(x, lo, hi, color=color, alpha=0.2, lw=0)

    def _draw_hparams(self, lane: str, recs: Sequence[StepRecord], steps: np.ndarray) -> None:
        names = list(recs[-1].hparams)
        if not names:
            return
        self._tensors[lane] = names
        color = self.color(lane)
        nan = (np.nan, np.nan)
        hp = np.array([[r.hparams.get(n, nan) for n in names] for r in recs], dtype=float)
        for j, (ax, what) in enumerate(((self.ax_lr, "lr"), (self.ax_mom, "mom"))):
            values = hp[:, :, j]  # (steps, tensors)
            if self.per_tensor:
                for k, name in enumerate(names):
                    self._line(
                        ax, (lane, f"{what}/{name}"), color=shade(color, k, len(names)), lw=1.0
                    ).set_data(steps, values[:, k])
                continue
            finite = np.where(np.isfinite(values), values, np.nan)
            with np.errstate(all="ignore"):
                if np.isnan(finite).all():
                    med = lo = hi = np.full(len(steps), np.nan)
                else:
                    med = np.nanmedian(finite, axis=1)
                    lo, hi = np.nanpercentile(finite, BAND, axis=1)
            self._line(ax, (lane, what), color=color, lw=1.6).set_data(steps, med)
            if len(names) > 1:
                self._band(ax, (lane, what), steps, lo, hi, color)

    def update(
        self,
        records: dict[str, Sequence[StepRecord]],
        *,
        boundaries: Sequence[int] = (),
        transitions: Sequence[tuple[int, int]] = (),
        total_steps: int | None = None,
        notes: dict[str, str] | None = None,
    ) -> None:
        """Redraw from ``records`` (``{lane: [StepRecord, ...]}``); dashed lines at
        ``boundaries``, shaded ``transitions`` (``(start, end)`` of gradual shifts);
        ``notes`` (e.g. ``{"AutoAdam": "at chance level"}``) go into the legend."""
        self._notes.update(notes or {})
        for lane, recs in records.items():
            color = self.color(lane)
            if not recs:
                continue
            stride = max(1, -(-len(recs) // self.max_points))
            recs = recs[::stride]
            steps = np.fromiter((r.step for r in recs), float, len(recs))
            loss = np.fromiter((r.loss for r in recs), float, len(recs))
            acc = np.fromiter((r.rolling_accuracy for r in recs), float, len(recs))
            shown = np.where(np.isfinite(loss), loss, np.nan)
            self._line(self.ax_loss, (lane, "loss raw"), color=color, alpha=0.25, lw=0.8).set_data(
                steps, shown
            )
            self._line(self.ax_loss, (lane, "loss"), color=color, lw=1.6).set_data(
                steps, ema(np.nan_to_num(shown, nan=np.nanmax(shown, initial=0.0)))
            )
            self._line(self.ax_acc, (lane, "acc"), color=color, lw=1.6).set_data(steps, acc)
            self._draw_hparams(lane, recs, steps)
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
        self._rescale(total_steps)
        self._refresh_legend()

    def _rescale(self, total_steps: int | None) -> None:
        for ax in (self.ax_loss, self.ax_lr):
            ax.relim()
            ax.autoscale_view()
        lr = [line.get_ydata() for (_, k), line in self._lines.items() if k.startswith("lr")]
        lr += [np.asarray(b.get_paths()[0].vertices[:, 1]) for (_, k), b in self._bands.items()
               if k == "lr" and b.get_paths()]
        values = np.concatenate([np.asarray(v, float).ravel() for v in lr]) if lr else np.empty(0)
        values = values[np.isfinite(values) & (values > 0)]
        if values.size:
            self.ax_lr.set_yscale("log")
            self.ax_lr.set_ylim(values.min() / 1.5, values.max() * 1.5)
        if total_steps:
            self.ax_loss.set_xlim(0, total_steps)

    def _refresh_legend(self) -> None:
        key = (
            tuple(self._lanes), tuple(sorted(self._notes.items())), self.per_tensor,
            tuple((k, tuple(v)) for k, v in self._tensors.items()),
            bool(self._boundaries), bool(self._spans),
        )
        if key == self._legend_key or not self._lanes:
            return
        self._legend_key = key
        for legend in list(self.fig.legends):
            legend.remove()
        handles = []
        for lane in self._lanes:
            note = self._notes.get(lane)
            label = f"{lane}: {note}" if note else lane
            handles.append(Line2D([], [], color=self.color(lane), lw=2.0, label=label))
        if self.per_tensor:
            for lane, names in self._tensors.items():
                c = self.color(lane)
                handles += [
                    Line2D([], [], color=shade(c, k, len(names)), lw=1.0, label=f"  {n}")
                    for k, n in enumerate(names)
                ]
        elif any(len(v) > 1 for v in self._tensors.values()):
            handles.append(
                Patch(color="0.5", alpha=0.3, label="lr, momentum: median\nover tensors, band\n"
                      f"{BAND[0]:g}-{BAND[1]:g}th percentile")
            )
        if self.chance is not None:
            handles.append(Line2D([], [], color="0.4", ls=":", label="chance accuracy"))
        if self._boundaries:
            handles.append(Line2D([], [], color="k", ls="--", lw=0.9, label="shift"))
        if self._spans:
            handles.append(Patch(color="0.5", alpha=0.25, label="transition"))
        self.fig.legend(
            handles=handles, loc="center left", bbox_to_anchor=(0.805, 0.5), fontsize=8,
            title="optimizers", title_fontsize=8,
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
