"""The arena's figure: test error per contender, one panel per batch size, seeds as points.

Contenders are coloured by family (tuned grid, Auto, tuning-free peer); a bar is the mean
over seeds (for a grid, of its best setting), the error bar the seed standard deviation,
and each seed is a dot. Diverged runs and runs at chance are drawn at their error and named
in the title. The title names the data set, its size, epochs and seeds.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg", force=False)

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from .plan import ArenaPlan  # noqa: E402

FAMILY_COLOURS = {"tuned": "#4c72b0", "auto": "#dd8452", "peer": "#55a868"}
FAMILY_NAMES = {"tuned": "tuned grid (best setting)", "auto": "AutoOpt", "peer": "tuning-free peer"}


def plot_arena(runs: pd.DataFrame, table: pd.DataFrame, plan: ArenaPlan, *, clip: float | None = None):
    """A matplotlib figure: one panel per batch size (rows), contenders along y."""
    if table.empty:
        raise ValueError("the arena has no finished runs to plot")
    chosen = runs.merge(table[["batch_size", "contender", "setting"]])
    sizes = sorted(table["batch_size"].unique())
    order = list(dict.fromkeys(table["label"]))
    height = 0.32 * len(order) + 1.2
    fig, axes = plt.subplots(1, len(sizes), figsize=(max(8.0, 4.8 * len(sizes)), height),
                             sharey=True, squeeze=False)
    worst = clip or min(100.0, float(chosen["final_test_err_pct"].quantile(0.9)) * 1.4)
    for ax, n in zip(axes[0], sizes, strict=True):
        block = table[table["batch_size"] == n]
        data = chosen[chosen["batch_size"] == n].copy()
        data["shown"] = data["final_test_err_pct"].clip(upper=worst)
        palette = {lab: FAMILY_COLOURS[f] for lab, f in zip(block["label"], block["family"], strict=True)}
        sns.barplot(data=data, y="label", x="shown", order=order, hue="label", palette=palette,
                    errorbar="sd", ax=ax, legend=False, alpha=0.55, capsize=0.2)
        sns.stripplot(data=data, y="label", x="shown", order=order, color="black", size=3,
                      ax=ax, jitter=0.15)
        for i, lab in enumerate(order):
            rec = block[block["label"] == lab]
            if rec.empty:
                continue
            r = rec.iloc[0]
            note = f"{r.test_mean:.1f}"
            if r.diverged:
                note += f"  ({int(r.diverged)} diverged)"
            elif r.at_chance:
                note += "  (chance)"
            ax.text(worst * 1.02, i, note, va="center", fontsize=7)
        ax.set_title(f"N = {n}")
        ax.set_xlabel(f"test error % (mean ± seed std{'; clipped' if clip or worst < 100 else ''})")
        ax.set_ylabel("")
        ax.set_xlim(0, worst * 1.35)
        ax.axvline(worst, color="0.85", lw=0.8)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c, alpha=0.6) for c in FAMILY_COLOURS.values()]
    fig.legend(handles, FAMILY_NAMES.values(), loc="lower center", ncol=3, frameon=False)
    size = f"{plan.max_train_samples:,} training images" if plan.max_train_samples else "all training images"
    fig.suptitle(
        f"Arena: {plan.dataset}, {size}, {plan.epochs} epochs, seeds {list(plan.seeds)}\n"
        "(the paper's CNN; tuned grids at their best setting; right: mean test error %)",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0.06, 1, 0.93))
    return fig
