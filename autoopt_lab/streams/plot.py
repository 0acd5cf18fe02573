"""Figures of stream traces: accuracy, lr and momentum; shifts shaded, detections marked,
bands over seeds, and runs that cannot be read (diverged, skipped steps, at chance) flagged.

Uses ``matplotlib.figure.Figure`` directly (no pyplot state), so it works headless and in
notebooks alike. Colours: one per optimizer in every panel; line style by family (Auto
solid, tuned baselines dashed, tuning-free peers dotted).

>>> fig = plot_run(trace, scenario); fig.savefig("run.png")  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from autoopt_lab.health import flag_text
from autoopt_lab.optim import registry

from .aggregate import mean_ci
from .scenario import Scenario

__all__ = ["flag_text", "plot_comparison", "plot_leaderboard", "plot_run"]

_DET_STYLE = {"ADWIN": ("v", "tab:red", 0.97), "PageHinkley": ("^", "tab:purple", 0.92),
              "KSWIN": ("x", "tab:brown", 0.87)}
_FAMILY_STYLE = {"auto": "-", "tuned": "--", "peer": ":"}


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


def _family_style(name: str) -> str:
    base = str(name).split(":")[0]
    try:
        return _FAMILY_STYLE.get(registry.get(base).family, "-")
    except ValueError:
        return "-"


def plot_run(trace: pd.DataFrame, scenario: Scenario, *, title: str | None = None,
             path: str | Path | None = None, hparams: dict[str, float] | None = None,
             health: dict[str, Any] | None = None) -> Figure:
    """Three panels for one run: loss + rolling accuracy, lr per tensor, momentum per tensor.

    ``health`` (a summary's ``health``) puts its flags in red on the figure.
    """
    fig = Figure(figsize=(11, 8.5), constrained_layout=True)
    ax1, ax2, ax3 = fig.subplots(3, 1, sharex=True)
    steps = trace["step"].to_numpy()
    ax1.plot(steps, _smooth(trace["loss"]), color="tab:blue", lw=1, label="loss (10-step mean)")
    ax1.set_ylabel("prequential loss")
    finite = trace["loss"][np.isfinite(trace["loss"])]
    if len(finite) and finite.max() > 50:
        ax1.set_yscale("log")
    axr = ax1.twinx()
    axr.plot(steps, trace["rolling_accuracy"], color="tab:green", lw=1.2, label="rolling accuracy")
    axr.set_ylabel("rolling accuracy")
    axr.set_ylim(0, 1.05)
    for det, (marker, color, y) in _DET_STYLE.items():
        col = f"detect_{det}"
        if col in trace:
            hit = trace[col].to_numpy().astype(bool)
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
        if (trace[lr_cols].to_numpy() > 0).any():
            ax2.set_yscale("log")
        ax2.legend(fontsize=6, ncol=4, loc="best")
    elif hparams:
        ax2.axhline(hparams.get("lr", np.nan), color="k", lw=1, label=f"fixed lr {hparams.get('lr')}")
        ax2.set_yscale("log")
        ax2.legend(fontsize=7)
    ax2.set_ylabel("lr (per tensor)")
    ax3.set_ylabel("momentum (per tensor)")
    ax3.set_xlabel("step")
    _shade(ax1, scenario, label=True)
    for ax in (ax2, ax3):
        _shade(ax, scenario)
    name = trace["optimizer"].iloc[0] if len(trace) else "?"
    fig.suptitle(title or f"{scenario.name}: {name}")
    flags = flag_text(health)
    if flags:
        ax1.text(0.5, 0.5, flags, transform=ax1.transAxes, ha="center", va="center",
                 color="red", fontsize=12, weight="bold", alpha=0.8, zorder=10)
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig


def _band(ax: Any, wide: pd.DataFrame, style: str, color: Any, label: str, *,
          lo: float = -np.inf, hi: float = np.inf, log: bool = False) -> None:
    """Mean over the seed columns of ``wide`` (index step) with its 95% t-band when there are
    >= 2 seeds, clipped to ``[lo, hi]``; ``log`` averages log10 values (geometric mean)."""
    import warnings

    from scipy import stats

    steps = wide.index.to_numpy()
    v = wide.to_numpy(dtype=float)
    if log:
        v = np.log10(np.where(v > 0, v, np.nan))
    v = np.where(np.isfinite(v), v, np.nan)
    n = np.isfinite(v).sum(axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(v, axis=1)
        sd = np.nanstd(v, axis=1, ddof=1) if v.shape[1] >= 2 else np.zeros_like(mean)
    back = (lambda a: 10.0**a) if log else (lambda a: a)
    ax.plot(steps, back(mean), style, color=color, lw=1.1, label=label)
    if v.shape[1] >= 2:
        half = stats.t.ppf(0.975, np.maximum(n - 1, 1)) * sd / np.sqrt(np.maximum(n, 1))
        lower = np.clip(back(mean - half), lo, hi)
        upper = np.clip(back(mean + half), lo, hi)
        ax.fill_between(steps, lower, upper, color=color, alpha=0.15, lw=0)


def _label(key: str, summary: dict[str, Any] | None) -> str:
    if not summary or key not in summary.get("optimizers", {}):
        return key
    s = summary["optimizers"][key]
    err = mean_ci(s.get("prequential_error_by_seed", {}).values())
    text = key if err["mean"] is None else f"{key} ({err['mean']:.3f})"
    h = s.get("health", {})
    if h.get("flags"):
        n = len(s.get("seeds", [])) or 1
        text += f" [{', '.join(h['flags'])}: {h.get('flagged_seeds', n)}/{n} seeds]"
    return text


def plot_comparison(trace: pd.DataFrame, scenario: Scenario, *, path: str | Path | None = None,
                    summary: dict[str, Any] | None = None) -> Figure:
    """All optimizers of a long-format trace (columns ``optimizer``, optionally ``seed``):
    rolling accuracy, tensor-mean lr and momentum; mean over seeds with a 95% band; legend
    labels carry the prequential error and any health flags from ``summary``."""
    fig = Figure(figsize=(11, 8.5), constrained_layout=True)
    ax1, ax2, ax3 = fig.subplots(3, 1, sharex=True)
    if "seed" not in trace:
        trace = trace.assign(seed=0)
    colors = {k: f"C{i % 10}" for i, k in enumerate(dict.fromkeys(trace["optimizer"]))}
    any_lr = False
    for key, df in trace.groupby("optimizer", sort=False):
        style, color = _family_style(key), colors[key]
        label = _label(str(key), summary)
        _band(ax1, df.pivot_table(index="step", columns="seed", values="rolling_accuracy"),
              style, color, label, lo=0.0, hi=1.0)
        lr = [c for c in df.columns if c.startswith("lr/") and df[c].notna().any()]
        mo = [c for c in df.columns if c.startswith("momentum/") and df[c].notna().any()]
        if lr:
            any_lr = True
            d = df.assign(_lr=df[lr].mean(axis=1), _mo=df[mo].mean(axis=1))
            _band(ax2, d.pivot_table(index="step", columns="seed", values="_lr"), style,
                  color, str(key), log=True)
            _band(ax3, d.pivot_table(index="step", columns="seed", values="_mo"), style,
                  color, str(key), lo=0.0, hi=1.0)
    n_seeds = trace["seed"].nunique()
    ax1.set_ylabel("rolling accuracy")
    ax1.set_ylim(0, 1.05)
    ax1.legend(fontsize=7, ncol=2)
    ax2.set_ylabel("lr (tensor mean)")
    if any_lr:
        ax2.set_yscale("log")
    ax3.set_ylabel("momentum (tensor mean)")
    ax3.set_xlabel("step")
    _shade(ax1, scenario, label=True)
    _shade(ax2, scenario)
    _shade(ax3, scenario)
    bands = f"mean of {n_seeds} seeds, 95% bands" if n_seeds > 1 else "one seed"
    fig.suptitle(f"{scenario.name}: {bands} (solid Auto, dashed tuned on the first segment, "
                 "dotted tuning-free peers)")
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig


def plot_leaderboard(table: pd.DataFrame, *, path: str | Path | None = None,
                     title: str = "Stream leaderboard") -> Figure:
    """Scenario x optimizer heatmaps of a leaderboard table (:func:`leaderboard_table`):
    mean prequential error and median recovery (steps), columns grouped by family (Auto,
    tuning-free peers, tuned baselines; dashed lines between them), each row's best boxed in
    blue, flagged cells marked ``!``, cells without a number grey.
    """
    import seaborn as sns

    fam_order = {"auto": 0, "peer": 1, "tuned": 2}
    order = (table.groupby("optimizer")
             .agg(family=("family", "first"), err=("prequential_error", "mean"))
             .assign(f=lambda d: d["family"].map(fam_order).fillna(3))
             .sort_values(["f", "err"]))
    cols = list(order.index)
    rows = list(dict.fromkeys(table["scenario"]))
    err = table.pivot(index="scenario", columns="optimizer", values="prequential_error")
    rec = table.pivot(index="scenario", columns="optimizer", values="median_recovery")
    flag = table.pivot(index="scenario", columns="optimizer", values="flagged_seeds")
    err, rec, flag = (d.reindex(index=rows, columns=cols) for d in (err, rec, flag))
    width = max(10.0, 0.75 * len(cols) + 3)
    fig = Figure(figsize=(width, 2.2 + 0.55 * len(rows) * 2), constrained_layout=True)
    ax1, ax2 = fig.subplots(2, 1)
    flagged = flag.fillna(0).to_numpy() > 0

    def annotate(values: pd.DataFrame, spec: str) -> np.ndarray:
        text = np.full(values.shape, "—", dtype=object)
        v = values.to_numpy(dtype=float)
        ok = np.isfinite(v)
        text[ok] = [format(x, spec) for x in v[ok]]
        text[flagged] = [t + "!" for t in text[flagged]]
        return text

    import warnings

    for ax, values, spec, label in ((ax1, err, ".3f", "prequential error"),
                                    (ax2, rec, ".0f", "median recovery (steps)")):
        ax.set_facecolor("0.85")  # cells without a number
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-empty panel
            sns.heatmap(values.astype(float), ax=ax, cmap="YlOrRd", annot=annotate(values, spec),
                        fmt="", annot_kws={"fontsize": 7}, cbar_kws={"label": label},
                        linewidths=0.5, linecolor="white")
    best = err.to_numpy(dtype=float)
    for i in range(best.shape[0]):
        if np.isfinite(best[i]).any():
            j = int(np.nanargmin(best[i]))
            ax1.add_patch(_rect(j, i))
    for ax, values, spec in ((ax1, err, ".3f"), (ax2, rec, ".0f")):
        text = annotate(values, spec)
        v = values.to_numpy(dtype=float)
        for i, j in zip(*np.nonzero(~np.isfinite(v)), strict=True):
            ax.text(j + 0.5, i + 0.5, text[i, j], ha="center", va="center", fontsize=7)
    fams = order["family"].tolist()
    for ax in (ax1, ax2):
        for j in range(1, len(fams)):
            if fams[j] != fams[j - 1]:
                ax.axvline(j, color="0.3", lw=1.2, ls="--")
        ax.set_xlabel("")
        ax.set_ylabel("")
        ax.tick_params(axis="x", labelrotation=45, labelsize=8)
        ax.tick_params(axis="y", labelsize=8)
    seeds = int(table["seeds"].max()) if "seeds" in table and len(table) else 1
    ax1.set_title(f"{title}: prequential error, mean of {seeds} seed(s) (lower is better; "
                  "blue box = best of the row; ! = some seeds diverged, skipped steps or at chance)",
                  fontsize=9)
    ax2.set_title("median recovery after a shift, over shifts and seeds (steps; — = never "
                  "recovered in more than half, or nothing readable)", fontsize=9)
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig


def _rect(j: int, i: int) -> Any:
    from matplotlib.patches import Rectangle

    return Rectangle((j + 0.04, i + 0.06), 0.92, 0.88, fill=False, edgecolor="tab:blue", lw=2.5)
