"""The arena's table: per batch size and contender, mean ± std errors over seeds, the
diverged count, and the range of the learning rate and momentum the optimizer used.

A tuned grid is reported at its best setting per batch size (lowest mean test error over
the seeds), as the paper reports its grids; the other contenders have one setting. Errors
are percentages.

>>> import pandas as pd
>>> runs = pd.DataFrame({"contender": ["a", "a", "b", "b"], "setting": ["", "", "", ""],
...     "batch_size": [128] * 4, "final_test_err_pct": [10.0, 12.0, 20.0, 22.0],
...     "final_train_err_pct": [9.0, 11.0, 19.0, 21.0], "diverged": [False] * 4,
...     "at_chance": [False] * 4, "nonfinite_skips": [0] * 4})
>>> summarise(runs)[["contender", "test_mean", "test_std"]].values.tolist()
[['a', 11.0, 1.4142135623730951], ['b', 21.0, 1.4142135623730951]]
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from autoopt_lab.experiments import ResultsStore, RunConfig
from autoopt_lab.experiments.analysis import seed_stats

from .plan import ArenaPlan


def collect(plan: ArenaPlan, store: ResultsStore) -> pd.DataFrame:
    """One row per finished run of ``plan``, labelled with its contender and setting."""
    done = store.runs()
    by_id = done.set_index("run_id") if len(done) else done
    rows = []
    for planned in plan.runs():
        c, cfg = planned.contender, planned.config
        row = _find(by_id, cfg)
        if row is None:
            continue
        rows.append(
            {
                "contender": c.key,
                "label": c.label,
                "family": c.family,
                "base": c.base,
                "setting": planned.setting,
                "batch_size": cfg.batch_size,
                "seed": cfg.seed,
                "run_id": row["run_id"],
                "final_test_err_pct": float(row["final_test_err_pct"]),
                "final_train_err_pct": float(row["final_train_err_pct"]),
                "diverged": bool(row.get("diverged", False)),
                "at_chance": bool(row.get("at_chance", False)),
                "nonfinite_skips": int(row.get("nonfinite_skips", 0) or 0),
                "wall_time_s": float(row.get("wall_time_s", math.nan)),
                "steps": int(row.get("steps", 0) or 0),
            }
        )
    return pd.DataFrame(rows)


def _find(by_id: pd.DataFrame, cfg: RunConfig) -> dict[str, Any] | None:
    """The stored run of ``cfg`` under either engine (the stacked one for tuned grids)."""
    for engine in ("stacked", "loop"):
        try:
            rid = cfg.with_engine(engine).run_id()
        except ValueError:
            continue
        if len(by_id) and rid in by_id.index:
            rec = by_id.loc[rid].to_dict()
            rec["run_id"] = rid
            return rec
    return None


#: The arena's names for :func:`~autoopt_lab.experiments.analysis.seed_stats`' columns, in
#: the order its table has always had.
_COLUMNS = {"test_mean": "test_mean", "test_std": "test_std", "train_mean": "train_mean",
            "train_std": "train_std", "n_runs": "seeds", "n_diverged": "diverged",
            "n_at_chance": "at_chance", "skipped_steps": "nonfinite_skips"}


def summarise(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over seeds per (batch size, contender, setting) (the reproduction's
    :func:`~autoopt_lab.experiments.analysis.seed_stats`); a grid keeps its best."""
    if runs.empty:
        return pd.DataFrame()
    keys = ["batch_size", "contender", "setting"]
    stats = seed_stats(runs, keys, sort=False)
    agg = stats[keys + list(_COLUMNS)].rename(columns=_COLUMNS)
    for col in ("label", "family", "base"):
        if col in runs:
            agg[col] = agg["contender"].map(runs.drop_duplicates("contender").set_index("contender")[col])
    # a grid's best setting per batch size: the lowest mean test error (ties: first)
    best = agg.loc[agg.groupby(["batch_size", "contender"], sort=False)["test_mean"].idxmin()]
    return best.reset_index(drop=True)


def hparam_ranges(store: ResultsStore, runs: pd.DataFrame) -> pd.DataFrame:
    """Per run: the lr and momentum range over tensors and steps, and whether the lr still
    moves in the second half of training (any tensor's max over it above 1.05x its min,
    a min of 0 included)."""
    out = []
    for rec in runs.itertuples():
        try:
            trace = store.trace(rec.run_id)
        except KeyError:
            continue
        lrs = trace[[c for c in trace.columns if c.startswith("lr/")]]
        moms = trace[[c for c in trace.columns if c.startswith("momentum/")]]
        if lrs.empty:
            continue
        half = lrs.iloc[len(lrs) // 2 :]
        lo, hi = half.min(), half.max()
        # a tensor whose lr goes between 0 (no signal, the decoupled gain) and a value moves
        moving = bool(((hi > 1.05 * lo) & (hi > 0)).any())
        out.append(
            {
                "run_id": rec.run_id,
                "lr_min": float(np.nanmin(lrs.values)),
                "lr_max": float(np.nanmax(lrs.values)),
                "mom_min": float(np.nanmin(moms.values)) if not moms.empty else math.nan,
                "mom_max": float(np.nanmax(moms.values)) if not moms.empty else math.nan,
                "lr_moves": moving,
            }
        )
    return pd.DataFrame(out)


def arena_table(
    plan: ArenaPlan, store: ResultsStore, step_ratios: dict[str, float] | None = None
) -> pd.DataFrame:
    """The arena's table: :func:`summarise` of the plan's runs with lr/momentum ranges of the
    chosen settings and each contender's step-time ratio to plain SGD."""
    runs = collect(plan, store)
    table = summarise(runs)
    if table.empty:
        return table
    chosen = runs.merge(table[["batch_size", "contender", "setting"]])
    ranges = hparam_ranges(store, chosen)
    if not ranges.empty:
        per = chosen.merge(ranges, on="run_id").groupby(["batch_size", "contender"])
        stats = per.agg(
            lr_min=("lr_min", "min"), lr_max=("lr_max", "max"), mom_min=("mom_min", "min"),
            mom_max=("mom_max", "max"), lr_moves=("lr_moves", "all"),
        ).reset_index()
        table = table.merge(stats, on=["batch_size", "contender"], how="left")
    if step_ratios:
        table["step_time_ratio"] = table["contender"].map(step_ratios)
    order = {c.key: i for i, c in enumerate(plan.contenders())}
    table["_order"] = table["contender"].map(order)
    return table.sort_values(["batch_size", "_order"]).drop(columns="_order").reset_index(drop=True)


def gaps(table: pd.DataFrame) -> pd.DataFrame:
    """Per batch size and Auto contender: its test-error gap to the tuned grid of its
    preconditioner family and to the best tuning-free peer (points; negative = better)."""
    rows = []
    for n, block in table.groupby("batch_size"):
        peers = block[block["family"] == "peer"]
        best_peer = peers.loc[peers["test_mean"].idxmin()] if len(peers) else None
        for rec in block[block["family"] == "auto"].itertuples():
            tuned = block[(block["family"] == "tuned") & (block["base"] == rec.base)]
            row = {"batch_size": n, "contender": rec.contender, "test_mean": rec.test_mean}
            if len(tuned):
                row["tuned"] = tuned.iloc[0]["contender"]
                row["gap_to_tuned"] = rec.test_mean - float(tuned.iloc[0]["test_mean"])
            if best_peer is not None:
                row["best_peer"] = best_peer["contender"]
                row["gap_to_best_peer"] = rec.test_mean - float(best_peer["test_mean"])
            rows.append(row)
    return pd.DataFrame(rows)


def to_markdown(table: pd.DataFrame) -> str:
    """The table as GitHub markdown (mean ± std, diverged count, lr and momentum ranges)."""
    lines = [
        "| N | contender | best setting | test error % | train error % | diverged | "
        "lr range | momentum range | lr moves | step time / SGD |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in table.itertuples():
        def rng(lo: float, hi: float, fmt: str = ".2g") -> str:
            if lo is None or (isinstance(lo, float) and math.isnan(lo)):
                return "—"
            return f"{lo:{fmt}}–{hi:{fmt}}"

        flags = []
        if r.diverged:
            flags.append(f"{int(r.diverged)}/{int(r.seeds)}")
        if getattr(r, "at_chance", 0):
            flags.append(f"{int(r.at_chance)} at chance")
        lines.append(
            f"| {r.batch_size} | {r.label} | {r.setting or '—'} | "
            f"{r.test_mean:.2f} ± {0.0 if math.isnan(r.test_std) else r.test_std:.2f} | "
            f"{r.train_mean:.2f} ± {0.0 if math.isnan(r.train_std) else r.train_std:.2f} | "
            f"{', '.join(flags) or '0'} | "
            f"{rng(getattr(r, 'lr_min', None), getattr(r, 'lr_max', None))} | "
            f"{rng(getattr(r, 'mom_min', None), getattr(r, 'mom_max', None), '.2f')} | "
            f"{'yes' if getattr(r, 'lr_moves', False) else 'no'} | "
            f"{getattr(r, 'step_time_ratio', math.nan):.2f} |"
        )
    return "\n".join(lines)
