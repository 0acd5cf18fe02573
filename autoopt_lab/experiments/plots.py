"""Figures 2-4 of the paper, drawn from the tables in :mod:`autoopt_lab.experiments.analysis`.

Each function returns a matplotlib Figure; the notebooks save them as PNG.
"""

from __future__ import annotations

import math

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from autoopt_lab.optim import registry

from .variants import BASES, counterpart, tuned_for

_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]


def plot_hparams(traces: pd.DataFrame, title: str = "") -> Figure:
    """Figure 2: learning rate (a) and momentum (b) against step, one curve per batch size."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    data = traces.copy()
    data["N"] = data["batch_size"].astype(int).astype(str)
    order = [str(n) for n in sorted(data["batch_size"].unique())]
    for ax, col, label in zip(
        axes, ("lr", "momentum"), ("(a) learning rate", "(b) momentum"), strict=True
    ):
        sns.lineplot(
            data=data,
            x="step",
            y=col,
            hue="N",
            hue_order=order,
            palette="viridis",
            errorbar=None,
            ax=ax,
            linewidth=1.2,
        )
        ax.set_title(label)
        ax.set_xlabel("step")
        ax.set_ylabel(col)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    return fig


def _limits(values: np.ndarray, must_show: np.ndarray) -> tuple[float, float]:
    values = values[np.isfinite(values)]
    must_show = must_show[np.isfinite(must_show)]
    if values.size == 0:
        return 0.0, 100.0
    lo = float(values.min())
    hi = max(float(np.quantile(values, 0.6)), lo * 1.5 + 0.5)
    if must_show.size:
        hi = max(hi, float(must_show.max()) * 1.1)
    return max(0.0, lo * 0.9 - 0.2), min(100.0, hi)


def _scatter_panel(ax: plt.Axes, grid: pd.DataFrame, auto: pd.DataFrame, title: str) -> None:
    """Test error against train error: grid settings coloured by log10(lr), marker by
    momentum; the Auto setting as black dots (one per seed when ``auto`` has runs)."""
    norm = matplotlib.colors.Normalize(vmin=-4, vmax=0)
    cmap = matplotlib.colormaps["viridis"]
    momenta = sorted(grid["momentum"].dropna().unique()) if "momentum" in grid else []
    if not momenta:
        momenta = [None]
    for i, m in enumerate(momenta):
        sub = grid if m is None else grid[grid["momentum"] == m]
        ax.scatter(
            sub["train_mean"],
            sub["test_mean"],
            c=np.log10(sub["lr"].astype(float)),
            cmap=cmap,
            norm=norm,
            marker=_MARKERS[i % len(_MARKERS)],
            s=36,
            alpha=0.85,
            edgecolors="none",
            label=None if m is None else f"momentum {m:g}",
        )
    ax.scatter(auto["train"], auto["test"], c="black", s=40, marker="o", label="AutoOpt", zorder=5)
    xs = np.concatenate([grid["train_mean"].to_numpy(float), auto["train"].to_numpy(float)])
    ys = np.concatenate([grid["test_mean"].to_numpy(float), auto["test"].to_numpy(float)])
    xlim = _limits(xs, auto["train"].to_numpy(float))
    ylim = _limits(ys, auto["test"].to_numpy(float))
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    hidden = int(((xs > xlim[1]) | (ys > ylim[1])).sum())
    if hidden:
        ax.text(
            0.98,
            0.02,
            f"{hidden} settings beyond the axes",
            transform=ax.transAxes,
            ha="right",
            va="bottom",
            fontsize=7,
            color="0.4",
        )
    ax.set_title(title)
    ax.set_xlabel("train error (%)")
    ax.set_ylabel("test error (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")


def _auto_points(runs: pd.DataFrame, dataset: str, optimizer: str, batch_size: int) -> pd.DataFrame:
    sel = runs[
        (runs["dataset"] == dataset)
        & (runs["optimizer"] == optimizer)
        & (runs["batch_size"] == batch_size)
    ]
    return pd.DataFrame(
        {
            "train": sel["final_train_err_pct"].astype(float),
            "test": sel["final_test_err_pct"].astype(float),
        }
    )


def _colorbar(fig: Figure, axes: np.ndarray) -> None:
    sm = matplotlib.cm.ScalarMappable(norm=matplotlib.colors.Normalize(-4, 0), cmap="viridis")
    fig.colorbar(sm, ax=list(np.ravel(axes)), label="log10(learning rate)", shrink=0.8)


def plot_errors_by_batch_size(
    summary: pd.DataFrame, runs: pd.DataFrame, dataset: str, optimizer: str | None = None
) -> Figure:
    """Figure 3: one panel per batch size, every grid setting (mean over seeds) and the Auto
    runs in black. ``optimizer`` defaults to tuned SGD."""
    optimizer = optimizer or tuned_for("sgd")
    sizes = sorted(
        summary[(summary["dataset"] == dataset) & (summary["optimizer"] == optimizer)][
            "batch_size"
        ].unique()
    )
    if not sizes:
        raise ValueError(f"no {optimizer} runs for {dataset} in the summary")
    cols = min(3, len(sizes))
    rows = math.ceil(len(sizes) / cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(4.6 * cols, 4 * rows), squeeze=False, constrained_layout=True
    )
    for ax, n in zip(axes.flat, sizes, strict=False):
        grid = summary[
            (summary["dataset"] == dataset)
            & (summary["optimizer"] == optimizer)
            & (summary["batch_size"] == n)
        ]
        _scatter_panel(
            ax, grid, _auto_points(runs, dataset, counterpart(optimizer), n), f"N = {n}"
        )
    for ax in list(axes.flat)[len(sizes) :]:
        ax.set_visible(False)
    _colorbar(fig, axes)
    auto = registry.get(counterpart(optimizer)).display
    fig.suptitle(f"{dataset}: {registry.get(optimizer).display} grid vs {auto} (black)")
    return fig


def plot_errors_by_optimizer(
    summary: pd.DataFrame, runs: pd.DataFrame, batch_size: int = 128
) -> Figure:
    """Figure 4: rows = data sets, columns = SGD, Adam, AdaGrad at one batch size."""
    datasets = sorted(summary["dataset"].unique())
    opts = [o for o in map(tuned_for, BASES) if o in set(summary["optimizer"])]
    if not datasets or not opts:
        raise ValueError("no grid runs in the summary")
    fig, axes = plt.subplots(
        len(datasets),
        len(opts),
        figsize=(4.6 * len(opts), 4 * len(datasets)),
        squeeze=False,
        constrained_layout=True,
    )
    for i, ds in enumerate(datasets):
        for j, opt in enumerate(opts):
            grid = summary[
                (summary["dataset"] == ds)
                & (summary["optimizer"] == opt)
                & (summary["batch_size"] == batch_size)
            ]
            auto = _auto_points(runs, ds, counterpart(opt), batch_size)
            _scatter_panel(axes[i, j], grid, auto, f"{ds}: {opt} (N = {batch_size})")
    _colorbar(fig, axes)
    return fig


def plot_table2(table: pd.DataFrame) -> Figure:
    """Table 2 as bars: our mean +- std over seeds beside the paper's, per optimizer,
    train and test, one row per data set."""
    datasets = list(dict.fromkeys(table["dataset"]))
    fig, axes = plt.subplots(
        len(datasets), 2, figsize=(12, 3.6 * len(datasets)), squeeze=False, constrained_layout=True
    )
    for i, ds in enumerate(datasets):
        t = table[table["dataset"] == ds].reset_index(drop=True)
        x = np.arange(len(t))
        for j, split in enumerate(("train", "test")):
            ax = axes[i, j]
            ours = t[f"{split}_mean"].astype(float)
            ours_err = t[f"{split}_std"].astype(float).fillna(0)
            ax.bar(x - 0.2, ours, 0.4, yerr=ours_err, label="ours", color="tab:blue", capsize=3)
            if f"paper_{split}_mean" in t:
                ref = t["paper_reference"].iloc[0]
                ax.bar(
                    x + 0.2,
                    t[f"paper_{split}_mean"].astype(float),
                    0.4,
                    yerr=t[f"paper_{split}_std"].astype(float),
                    label=f"paper ({ref})",
                    color="tab:gray",
                    capsize=3,
                )
            ax.set_xticks(x, t["optimizer"], rotation=20)
            ax.set_ylabel(f"{split} error (%)")
            ax.set_title(f"{ds}: {split}")
            ax.grid(axis="y", alpha=0.3)
            ax.legend(fontsize=8)
    return fig
