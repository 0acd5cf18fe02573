"""Figures 2-4, Table 2 and the claim figure, drawn from the tables in
:mod:`autoopt_lab.experiments.analysis`. Each function returns a matplotlib Figure; the
notebooks save them as PNG. Titles are the caller's: they name the data set, its size, the
epochs and the seeds. Error bars and bands are the seeds' std; the paper's values appear
only as reference marks on the data set they come from.
"""

from __future__ import annotations

import math
import textwrap

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from autoopt_lab.optim import registry

from .analysis import role_rows
from .claims import match_tolerance
from .variants import BASES, ROLE_TITLES, ROLES, variants_for

_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]
ROLE_STYLE: dict[str, dict[str, str]] = {
    "tuned": {"color": "tab:gray", "marker": "o"},
    "paper": {"color": "black", "marker": "o"},
    "authors": {"color": "tab:purple", "marker": "s"},
    "default": {"color": "tab:red", "marker": "D"},
    "peer": {"color": "tab:green", "marker": "^"},
}


def plot_hparams(traces: pd.DataFrame, title: str = "") -> Figure:
    """Figure 2: learning rate and momentum against step, one curve per batch size (mean
    over seeds, band = seeds' std), one row per Auto optimizer."""
    opts = list(dict.fromkeys(traces["optimizer"])) or ["-"]
    fig, axes = plt.subplots(len(opts), 2, figsize=(11, 3.6 * len(opts)), squeeze=False,
                             constrained_layout=True)
    data = traces.copy()
    data["N"] = data["batch_size"].astype(int).astype(str)
    order = [str(n) for n in sorted(data["batch_size"].unique())]
    for i, opt in enumerate(opts):
        sub = data[data["optimizer"] == opt]
        name = registry.get(opt).display if opt in registry.names() else opt
        for ax, col in zip(axes[i], ("lr", "momentum"), strict=True):
            sns.lineplot(data=sub, x="step", y=col, hue="N", hue_order=order, palette="viridis",
                         errorbar="sd", ax=ax, linewidth=1.2)
            ax.set_title(f"{name}: {'learning rate' if col == 'lr' else 'momentum'}")
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


def _std(v: object) -> float:
    return 0.0 if v is None or pd.isna(v) else float(v)


def _scatter_panel(ax: plt.Axes, grid: pd.DataFrame, others: list[tuple[str, pd.Series]],
                   title: str) -> None:
    """Test against train error: grid settings (mean over seeds, bars = std) coloured by
    log10(lr), marker by momentum; every other variant as a labelled point with its bars."""
    norm = matplotlib.colors.Normalize(vmin=-4, vmax=0)
    cmap = matplotlib.colormaps["viridis"]
    momenta = sorted(grid["momentum"].dropna().unique()) if "momentum" in grid else []
    for i, m in enumerate(momenta or [None]):
        sub = grid if m is None else grid[grid["momentum"] == m]
        ax.errorbar(sub["train_mean"], sub["test_mean"], xerr=sub["train_std"].fillna(0),
                    yerr=sub["test_std"].fillna(0), fmt="none", ecolor="0.75", lw=0.8, zorder=1)
        ax.scatter(sub["train_mean"], sub["test_mean"], c=np.log10(sub["lr"].astype(float)),
                   cmap=cmap, norm=norm, marker=_MARKERS[i % len(_MARKERS)], s=36, alpha=0.9,
                   edgecolors="none", zorder=2, label=None if m is None else f"momentum {m:g}")
    xs = [*grid["train_mean"].astype(float)]
    ys = [*grid["test_mean"].astype(float)]
    for role, r in others:
        style = ROLE_STYLE[role]
        flag = f" (! {r['flags']})" if r.get("flags") else ""
        ax.errorbar(r["train_mean"], r["test_mean"], xerr=_std(r["train_std"]),
                    yerr=_std(r["test_std"]), fmt=style["marker"], color=style["color"],
                    ms=7, capsize=2, zorder=5, mfc="none" if flag else style["color"],
                    label=f"{registry.get(r['optimizer']).display}{flag}")
        xs.append(float(r["train_mean"]))
        ys.append(float(r["test_mean"]))
    must = np.array([float(r["test_mean"]) for _, r in others] or [np.nan])
    mustx = np.array([float(r["train_mean"]) for _, r in others] or [np.nan])
    xlim, ylim = _limits(np.array(xs), mustx), _limits(np.array(ys), must)
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    hidden = int(((np.array(xs) > xlim[1]) | (np.array(ys) > ylim[1])).sum())
    if hidden:
        ax.text(0.98, 0.02, f"{hidden} settings beyond the axes", transform=ax.transAxes,
                ha="right", va="bottom", fontsize=7, color="0.4")
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("train error (%)")
    ax.set_ylabel("test error (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")


def _others(summary: pd.DataFrame, dataset: str, base: str, n: int) -> list[tuple[str, pd.Series]]:
    rows = role_rows(summary, dataset, base, n)
    seen, out = set(), []
    for role in ROLES[1:]:
        if role in rows and rows[role]["variant"] not in seen:
            seen.add(rows[role]["variant"])
            out.append((role, rows[role]))
    return out


def _grid(summary: pd.DataFrame, dataset: str, base: str, n: int) -> pd.DataFrame:
    tuned = variants_for(base)[0].optimizer
    return summary[(summary["dataset"] == dataset) & (summary["variant"] == tuned)
                   & (summary["batch_size"] == n)]


def _colorbar(fig: Figure | matplotlib.figure.SubFigure, axes: np.ndarray) -> None:
    sm = matplotlib.cm.ScalarMappable(norm=matplotlib.colors.Normalize(-4, 0), cmap="viridis")
    fig.colorbar(sm, ax=list(np.ravel(axes)), label="log10(learning rate)", shrink=0.8)


def plot_errors_by_batch_size(summary: pd.DataFrame, dataset: str, base: str = "sgd",
                              title: str = "") -> Figure:
    """Figure 3: one panel per batch size: every grid setting of the tuned optimizer on
    ``base`` and each Auto variant run there."""
    tuned = variants_for(base)[0].optimizer
    sizes = sorted(summary[(summary["dataset"] == dataset) & (summary["variant"] == tuned)][
        "batch_size"].unique())
    if not sizes:
        raise ValueError(f"no {tuned} runs for {dataset} in the summary")
    cols = min(3, len(sizes))
    rows = math.ceil(len(sizes) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.8 * cols, 4.2 * rows), squeeze=False,
                             constrained_layout=True)
    for ax, n in zip(axes.flat, sizes, strict=False):
        _scatter_panel(ax, _grid(summary, dataset, base, int(n)),
                       _others(summary, dataset, base, int(n)), f"N = {n}")
    for ax in list(axes.flat)[len(sizes):]:
        ax.set_visible(False)
    _colorbar(fig, axes)
    fig.suptitle(title or dataset)
    return fig


def plot_errors_by_optimizer(summary: pd.DataFrame, batch_size: int = 128,
                             titles: dict[str, str] | None = None,
                             datasets: list[str] | None = None) -> Figure:
    """Figure 4: one row per data set (titled by ``titles``), one column per preconditioner
    family, at one batch size."""
    present = set(summary["dataset"])
    datasets = [d for d in (datasets or sorted(present)) if d in present]
    bases = [b for b in BASES if not _grid(summary, datasets[0], b, batch_size).empty] if (
        datasets) else []
    if not datasets or not bases:
        raise ValueError("no grid runs in the summary")
    fig = plt.figure(figsize=(4.8 * len(bases), 4.4 * len(datasets)), layout="constrained")
    rows = np.atleast_1d(fig.subfigures(len(datasets), 1))
    for sub, ds in zip(rows, datasets, strict=True):
        axes = sub.subplots(1, len(bases), squeeze=False)
        for j, base in enumerate(bases):
            name = registry.get(variants_for(base)[0].optimizer).display
            _scatter_panel(axes[0, j], _grid(summary, ds, base, batch_size),
                           _others(summary, ds, base, batch_size), f"{name} grid, N = {batch_size}")
        sub.suptitle((titles or {}).get(ds, ds), fontsize=10)
        _colorbar(sub, axes)
    return fig


def plot_table2(table: pd.DataFrame, titles: dict[str, str] | None = None) -> Figure:
    """Table 2 as bars: per data set, the test error of every role per preconditioner
    family (bars = seeds' std, hatched when a run was flagged); the paper's values as black
    marks only on the data set they come from."""
    datasets = list(dict.fromkeys(table["dataset"]))
    roles = [r for r in ROLES if r in set(table["role"])]
    fig, axes = plt.subplots(len(datasets), 1, figsize=(11, 3.8 * len(datasets)),
                             squeeze=False, constrained_layout=True)
    width = 0.8 / max(len(roles), 1)
    for ax, ds in zip(axes[:, 0], datasets, strict=True):
        t = table[table["dataset"] == ds]
        for k, role in enumerate(roles):
            for j, base in enumerate(BASES):
                c = t[(t["base"] == base) & (t["role"] == role)]
                if c.empty:
                    continue
                c = c.iloc[0]
                x = j - 0.4 + width * (k + 0.5)
                ax.bar(x, c["test_mean"], width, yerr=_std(c["test_std"]), capsize=2,
                       color=ROLE_STYLE[role]["color"], alpha=0.85,
                       hatch="//" if c.get("flags") else None)
                if pd.notna(c.get("paper_test_mean")):
                    ax.plot(x, c["paper_test_mean"], marker="_", color="black", ms=14, mew=2,
                            label="paper's value (its full data set)")
        ax.set_xticks(range(len(BASES)), [registry.get(variants_for(b)[0].optimizer).display
                                          for b in BASES])
        ax.set_ylabel("test error (%)")
        ax.set_title((titles or {}).get(ds, ds), fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        patches = [Patch(color=ROLE_STYLE[r]["color"], label=ROLE_TITLES[r]) for r in roles]
        patches.append(Patch(facecolor="white", edgecolor="black", hatch="//",
                             label="flagged: diverged / at chance / skipped steps"))
        _legend(ax, fontsize=7, ncol=3, extra=patches)
    return fig


def _legend(ax: plt.Axes, extra: list | None = None, **kw: object) -> None:
    handles, labels = ax.get_legend_handles_labels()
    handles += extra or []
    labels += [h.get_label() for h in extra or []]
    uniq = dict(zip(labels, handles, strict=True))
    ax.legend(uniq.values(), uniq.keys(), **kw)


def plot_claims(table: pd.DataFrame, titles: dict[str, str] | None = None,
                paper_gaps: dict[tuple[str, str], float] | None = None) -> Figure:
    """The README figure: per data set, one row per (family, variant): the gap Auto - tuned
    in test error (points, symlog axis; bars = pooled seed std), the matches tolerance as a
    grey bar, and the paper's gap as a star on the paper's-method row, only on the data set
    it comes from. Hollow markers: flagged runs (diverged, at chance, skipped steps)."""
    datasets = list(dict.fromkeys(table["dataset"]))
    cells = table[table["role"].isin(ROLES[1:]) & table["gap_test"].notna()]
    n_rows = max((len(cells[cells["dataset"] == d]) for d in datasets), default=1)
    fig, axes = plt.subplots(1, len(datasets), figsize=(4.6 * len(datasets), 0.9 + 0.32 * n_rows),
                             squeeze=False, layout="constrained")
    for ax, ds in zip(axes[0], datasets, strict=True):
        labels = []
        here = cells[cells["dataset"] == ds]
        for y, (_, c) in enumerate(here.iterrows()):
            style = ROLE_STYLE[c["role"]]
            pooled = _std(c.get("pooled_std"))
            tol = match_tolerance(pooled)
            ax.barh(-y, 2 * tol, left=-tol, height=0.7, color="0.88", zorder=0)
            ax.errorbar(c["gap_test"], -y, xerr=pooled, fmt=style["marker"], color=style["color"],
                        mfc="none" if c.get("flags") else style["color"], capsize=2, ms=6,
                        label=ROLE_TITLES[c["role"]])
            if c["role"] == "paper" and (ds, c["base"]) in (paper_gaps or {}):
                ax.plot(paper_gaps[ds, c["base"]], -y, "*", color="gold", mec="black", ms=11,
                        zorder=6, label="paper's gap (its full data set)")
            labels.append(registry.get(c["optimizer"]).display)
        ax.axvline(0, color="0.5", lw=0.8)
        ax.set_xscale("symlog", linthresh=2.0)  # gaps from 0.1 to 90 points on one axis
        lo = min(-5.0, float((here["gap_test"] - here["pooled_std"].fillna(0)).min()) * 1.3)
        hi = max(5.0, float((here["gap_test"] + here["pooled_std"].fillna(0)).max()) * 1.3)
        ax.set_xlim(lo, hi)
        ticks = [t for t in (-100, -10, -1, 0, 1, 10, 100) if lo <= t <= hi]
        ax.set_xticks(ticks, [f"{t:+d}" if t else "0" for t in ticks], fontsize=7)
        ax.set_yticks([-y for y in range(len(labels))], labels, fontsize=7)
        ax.set_xlabel("Auto - tuned test error (points)", fontsize=8)
        ax.set_title(textwrap.fill((titles or {}).get(ds, ds), 60), fontsize=7)
        ax.grid(axis="x", alpha=0.3)
    handles, names = [], []
    for ax in axes[0]:
        for h, n in zip(*ax.get_legend_handles_labels(), strict=True):
            if n not in names:
                handles.append(h)
                names.append(n)
    fig.legend(handles, names, loc="outside lower center", ncol=3, fontsize=7)
    return fig
