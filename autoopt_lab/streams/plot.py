"""Figures of a stream trace: loss and accuracy, lr, momentum; shifts shaded, detections marked.

Uses ``matplotlib.figure.Figure`` directly (no pyplot state), so it works headless and in
notebooks alike.

>>> import pandas as pd  # doctest: +SKIP
>>> fig = plot_run(trace, scenario); fig.savefig("run.png")  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .scenario import Scenario

__all__ = ["plot_comparison", "plot_run"]

_DET_STYLE = {"ADWIN": ("v", "tab:red"), "PageHinkley": ("^", "tab:purple"),
              "KSWIN": ("x", "tab:brown")}


def _shade(ax: Any, scenario: Scenario, label: bool = False) -> None:
    start = 0
    for i, seg in enumerate(scenario.segments):
        end = start + seg.steps
        if i % 2 == 1:
            ax.axvspan(start, end, color="0.92", zorder=0)
        w = seg.transition.width
        if i > 0:
            ax.axvline(start, color="0.35", lw=0.8, ls="--", zorder=1)
            if w:
                ax.axvspan(start, start + w, color="gold", alpha=0.18, zorder=0)
        if label:
            ax.text(start + 0.01 * scenario.total_steps, 1.02, seg.name, fontsize=7,
                    transform=ax.get_xaxis_transform(), va="bottom")
        start = end


def _smooth(v: pd.Series, n: int = 10) -> pd.Series:
    return v.rolling(n, min_periods=1).mean()


def plot_run(trace: pd.DataFrame, scenario: Scenario, *, title: str | None = None,
             path: str | Path | None = None, hparams: dict[str, float] | None = None) -> Figure:
    """Three panels for one optimizer: loss + rolling accuracy, lr per tensor, momentum per tensor.

    For a baseline (no per-tensor columns) the fixed ``hparams`` are drawn as flat lines.
    """
    fig = Figure(figsize=(11, 8.5), constrained_layout=True)
    ax1, ax2, ax3 = fig.subplots(3, 1, sharex=True)
    steps = trace["step"].to_numpy()
    ax1.plot(steps, _smooth(trace["loss"]), color="tab:blue", lw=1, label="loss (10-step mean)")
    ax1.set_ylabel("prequential loss")
    axr = ax1.twinx()
    axr.plot(steps, trace["rolling_accuracy"], color="tab:green", lw=1.2, label="rolling accuracy")
    axr.set_ylabel("rolling accuracy")
    axr.set_ylim(0, 1.05)
    for det, (marker, color) in _DET_STYLE.items():
        col = f"detect_{det}"
        if col in trace:
            hit = trace[col].to_numpy().astype(bool)
            y = {"ADWIN": 0.97, "PageHinkley": 0.92, "KSWIN": 0.87}[det]
            axr.scatter(steps[hit], np.full(hit.sum(), y), marker=marker, color=color, s=22,
                        label=f"{det} detection", zorder=5)
    h1, l1 = ax1.get_legend_handles_labels()
    h2, l2 = axr.get_legend_handles_labels()
    ax1.legend(h1 + h2, l1 + l2, fontsize=7, loc="lower left", ncol=3)
    lr_cols = [c for c in trace.columns if c.startswith("lr/")]
    mom_cols = [c for c in trace.columns if c.startswith("momentum/")]
    if lr_cols:
        for c in lr_cols:
            ax2.plot(steps, trace[c], lw=0.9, label=c.removeprefix("lr/"))
        for c in mom_cols:
            ax3.plot(steps, trace[c], lw=0.9, label=c.removeprefix("momentum/"))
        ax2.set_yscale("log")
        ax2.legend(fontsize=6, ncol=4, loc="best")
    elif hparams:
        ax2.axhline(hparams.get("lr", np.nan), color="k", lw=1, label=f"fixed lr {hparams.get('lr')}")
        ax2.set_yscale("log")
        ax2.legend(fontsize=7)
        if "momentum" in hparams:
            ax3.axhline(hparams["momentum"], color="k", lw=1,
                        label=f"fixed momentum {hparams['momentum']}")
            ax3.legend(fontsize=7)
    ax2.set_ylabel("lr (per tensor)")
    ax3.set_ylabel("momentum (per tensor)")
    ax3.set_xlabel("step")
    _shade(ax1, scenario, label=True)
    for ax in (ax2, ax3):
        _shade(ax, scenario)
    fig.suptitle(title or f"{scenario.name}: {trace['optimizer'].iloc[0]}")
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig


def plot_comparison(trace: pd.DataFrame, scenario: Scenario, *,
                    path: str | Path | None = None) -> Figure:
    """All optimizers of a (long-format) trace: rolling accuracy, then tensor-mean lr and momentum."""
    fig = Figure(figsize=(11, 8), constrained_layout=True)
    ax1, ax2, ax3 = fig.subplots(3, 1, sharex=True)
    for name, df in trace.groupby("optimizer", sort=False):
        style = "-" if str(name).startswith("auto") else "--"
        ax1.plot(df["step"], df["rolling_accuracy"], style, lw=1.1, label=name)
        lr = [c for c in df.columns if c.startswith("lr/") and df[c].notna().any()]
        mo = [c for c in df.columns if c.startswith("momentum/") and df[c].notna().any()]
        if lr:
            ax2.plot(df["step"], df[lr].mean(axis=1), style, lw=1.1, label=f"{name} (tensor mean)")
            ax3.plot(df["step"], df[mo].mean(axis=1), style, lw=1.1, label=f"{name} (tensor mean)")
        elif "hp_lr" in df:
            ax2.plot(df["step"], df["hp_lr"], style, lw=1.1, label=f"{name} (tuned, fixed)")
            if "hp_momentum" in df and df["hp_momentum"].notna().any():
                ax3.plot(df["step"], df["hp_momentum"], style, lw=1.1, label=f"{name} (fixed)")
    ax1.set_ylabel("rolling accuracy")
    ax1.legend(fontsize=7, ncol=3)
    ax2.set_ylabel("lr")
    ax2.set_yscale("log")
    ax2.legend(fontsize=7, ncol=2)
    ax3.set_ylabel("momentum")
    ax3.legend(fontsize=7, ncol=2)
    ax3.set_xlabel("step")
    _shade(ax1, scenario, label=True)
    _shade(ax2, scenario)
    _shade(ax3, scenario)
    fig.suptitle(f"{scenario.name}: Auto optimizers vs baselines tuned on the first segment")
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig
