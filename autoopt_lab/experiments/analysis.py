"""Tables the notebooks show: per-setting means over seeds, the best grid setting, Table 2,
and the Figure 2 traces. Pure pandas over :meth:`ResultsStore.runs`; no plotting here.

>>> import pandas as pd
>>> runs = pd.DataFrame({"dataset": ["mnist"] * 4, "optimizer": ["sgd"] * 4,
...     "batch_size": [128] * 4, "lr": [0.1, 0.1, 0.01, 0.01], "momentum": [0.0] * 4,
...     "seed": [0, 1, 0, 1], "final_train_err_pct": [2.0, 3.0, 5.0, 5.0],
...     "final_test_err_pct": [2.5, 3.5, 6.0, 6.0], "diverged": [False] * 4})
>>> s = setting_summary(runs)
>>> best = best_settings(s).iloc[0]
>>> float(best["lr"]), float(best["test_mean"]), int(best["n_seeds"])
(0.1, 3.0, 2)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from .paper import paper_reference
from .store import ResultsStore
from .variants import BASES, auto_for, counterpart, is_grid, tuned_for

SETTING_KEYS = ["dataset", "variant", "optimizer", "batch_size", "lr", "momentum"]
#: Final test error within this many points of chance counts as "at chance" (as in run()).
CHANCE_MARGIN_PCT = 2.0


def variant_name(optimizer: str, options: Any = None) -> str:
    """An optimizer and its options as one spec string (``autoadam:ewma=0.95``).

    >>> variant_name("autoadam", {"ewma": 0.95}), variant_name("sgd", {})
    ('autoadam:ewma=0.95', 'sgd')
    """
    opts = options if isinstance(options, dict) else {}
    return ":".join([optimizer, *(f"{k}={v}" for k, v in sorted(opts.items()))])


def with_health(runs: pd.DataFrame) -> pd.DataFrame:
    """``runs`` with the health flags every run has since they were recorded (older rows
    get them from their errors): ``diverged``, ``at_chance``, ``nonfinite_skips``, and
    the ``variant`` column (optimizer plus options)."""
    df = runs.copy()
    df["diverged"] = df["diverged"].fillna(False).astype(bool) if "diverged" in df else False
    chance = df["chance_err_pct"] if "chance_err_pct" in df else pd.Series(90.0, df.index)
    derived = df["final_test_err_pct"] >= chance.fillna(90.0) - CHANCE_MARGIN_PCT
    df["at_chance"] = df["at_chance"].fillna(derived) if "at_chance" in df else derived
    df["at_chance"] = df["at_chance"].astype(bool)
    skips = df["nonfinite_skips"] if "nonfinite_skips" in df else pd.Series(0, df.index)
    df["nonfinite_skips"] = skips.fillna(0).astype(int)
    opts = df["options"] if "options" in df else pd.Series([{}] * len(df), df.index)
    df["variant"] = [variant_name(o, p) for o, p in zip(df["optimizer"], opts, strict=True)]
    return df


def flag_text(n_runs: int, n_diverged: int, n_at_chance: int, n_skipping: int,
              skipped_steps: int = 0) -> str:
    """``"1/3 diverged, 2/3 at chance, 1/3 skipped 143 steps"``; ``""`` when all is well.

    >>> flag_text(3, 1, 0, 1, 143)
    '1/3 diverged, 1/3 skipped 143 steps'
    """
    parts = []
    if n_diverged:
        parts.append(f"{n_diverged}/{n_runs} diverged")
    if n_at_chance:
        parts.append(f"{n_at_chance}/{n_runs} at chance")
    if n_skipping:
        parts.append(f"{n_skipping}/{n_runs} skipped {skipped_steps} steps")
    return ", ".join(parts)


def setting_summary(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per setting (data set, variant, batch size, lr, momentum): mean and std
    over seeds of the final train and test error (%), the seeds, and the health flags
    (how many runs diverged, ended at chance, or skipped non-finite steps; ``flags`` says it
    in words). Auto settings have ``lr`` and ``momentum`` NaN."""
    if runs.empty:
        cols = SETTING_KEYS + ["train_mean", "train_std", "test_mean", "test_std", "n_seeds",
                               "flags", "is_auto"]
        return pd.DataFrame(columns=cols)
    df = with_health(runs)
    for k in ("lr", "momentum"):
        df[k] = pd.to_numeric(df[k], errors="coerce")
    g = df.groupby(SETTING_KEYS, dropna=False, sort=True)
    out = g.agg(
        train_mean=("final_train_err_pct", "mean"),
        train_std=("final_train_err_pct", "std"),
        test_mean=("final_test_err_pct", "mean"),
        test_std=("final_test_err_pct", "std"),
        n_seeds=("seed", "nunique"),
        n_runs=("seed", "size"),
        seeds=("seed", lambda s: sorted(int(v) for v in s)),
        n_diverged=("diverged", "sum"),
        n_at_chance=("at_chance", "sum"),
        n_skipping=("nonfinite_skips", lambda s: int((s > 0).sum())),
        skipped_steps=("nonfinite_skips", "sum"),
    ).reset_index()
    out["flags"] = [
        flag_text(*map(int, r))
        for r in out[["n_runs", "n_diverged", "n_at_chance", "n_skipping", "skipped_steps"]]
        .itertuples(index=False)
    ]
    out["is_auto"] = ~out["optimizer"].map(is_grid).astype(bool)
    return out


def best_settings(summary: pd.DataFrame, by: str = "test") -> pd.DataFrame:
    """For each (data set, grid optimizer, batch size), the setting with the lowest mean
    ``by`` error (``"test"`` or ``"train"``) over seeds; ties go to the lower other error."""
    if by not in ("test", "train"):
        raise ValueError(f"by must be 'test' or 'train', got {by!r}")
    other = "train" if by == "test" else "test"
    grid = summary[~summary["is_auto"]]
    if grid.empty:
        return grid
    ordered = grid.sort_values([f"{by}_mean", f"{other}_mean"])
    return (
        ordered.groupby(["dataset", "optimizer", "batch_size"], sort=True)
        .head(1)
        .reset_index(drop=True)
    )


def _config_text(row: pd.Series) -> str:
    if not is_grid(row["optimizer"]):
        return "AutoOpt"
    text = f"lr 10^{math.log10(row['lr']):.1f}"
    if pd.notna(row.get("momentum")):
        text += f", momentum {row['momentum']:g}"
    return text


def _cell(row: pd.Series | None, dataset: str, optimizer: str, n_settings: int) -> dict[str, Any]:
    ref_name, ref = paper_reference(dataset)
    paper = ref.get(optimizer) if ref else None
    cell: dict[str, Any] = {
        "dataset": dataset,
        "optimizer": optimizer,
        "n_settings": n_settings,
        "paper_reference": ref_name,
    }
    if row is not None:
        cell.update(
            train_mean=float(row["train_mean"]),
            train_std=float(row["train_std"]) if pd.notna(row["train_std"]) else None,
            test_mean=float(row["test_mean"]),
            test_std=float(row["test_std"]) if pd.notna(row["test_std"]) else None,
            seeds=list(row["seeds"]),
            n_seeds=int(row["n_seeds"]),
            n_diverged=int(row["n_diverged"]),
            n_at_chance=int(row["n_at_chance"]),
            n_skipping=int(row["n_skipping"]),
            flags=row["flags"],
            config=(
                "AutoOpt"
                if not is_grid(optimizer)
                else {
                    "lr": float(row["lr"]),
                    **(
                        {"momentum": float(row["momentum"])}
                        if pd.notna(row.get("momentum"))
                        else {}
                    ),
                }
            ),
            config_text=_config_text(row),
        )
    if paper is not None:
        cell.update(
            paper_train_mean=paper["train"][0],
            paper_train_std=paper["train"][1],
            paper_test_mean=paper["test"][0],
            paper_test_std=paper["test"][1],
            paper_config=paper["config"],
        )
        if row is not None:
            cell["diff_train"] = cell["train_mean"] - paper["train"][0]
            cell["diff_test"] = cell["test_mean"] - paper["test"][0]
    return cell


def table2(runs: pd.DataFrame, batch_size: int = 128, by: str = "test") -> pd.DataFrame:
    """Table 2: for each data set and each of SGD, AutoSGD, Adam, AutoAdam, AdaGrad,
    AutoAdaGrad present in ``runs`` at ``batch_size``: mean and std over seeds of the best
    grid setting (chosen by mean ``by`` error) or of the Auto run, the paper's value beside
    it and the difference (ours minus paper, in percentage points)."""
    sub = runs[runs["batch_size"] == batch_size]
    summary = setting_summary(sub)
    best = best_settings(summary, by=by)
    cells = []
    for dataset in sorted(summary["dataset"].unique()) if not summary.empty else []:
        for base in BASES:
            grid_opt, auto_opt = tuned_for(base), auto_for(base)
            for opt in (grid_opt, auto_opt):
                pool = best if opt == grid_opt else summary[summary["is_auto"]]
                match = pool[(pool["dataset"] == dataset) & (pool["optimizer"] == opt)]
                n_settings = int(
                    ((summary["dataset"] == dataset) & (summary["optimizer"] == opt)).sum()
                )
                if match.empty:
                    continue
                cells.append(_cell(match.iloc[0], dataset, opt, n_settings))
    return pd.DataFrame(cells)


def table2_display(table: pd.DataFrame) -> pd.DataFrame:
    """Table 2 as strings, one row per (data set, optimizer): ours, paper's, difference."""

    def fmt(m: Any, s: Any) -> str:
        if m is None or (isinstance(m, float) and np.isnan(m)):
            return "-"
        return f"{m:.2f}, {s:.2f}" if s is not None and not pd.isna(s) else f"{m:.2f}, -"

    rows = []
    for _, c in table.iterrows():
        for split in ("train", "test"):
            rows.append(
                {
                    "dataset": c["dataset"],
                    "optimizer": c["optimizer"],
                    "split": split,
                    "ours (mean, std %)": fmt(c.get(f"{split}_mean"), c.get(f"{split}_std")),
                    "seeds": c.get("n_seeds"),
                    "config": c.get("config_text"),
                    f"paper [{c.get('paper_reference')}]": fmt(
                        c.get(f"paper_{split}_mean"), c.get(f"paper_{split}_std")
                    ),
                    "diff (pp)": (
                        f"{c[f'diff_{split}']:+.2f}"
                        if f"diff_{split}" in c and pd.notna(c.get(f"diff_{split}"))
                        else "-"
                    ),
                    "flags": c.get("flags") or "",
                }
            )
    return pd.DataFrame(rows)


def auto_vs_grid(summary: pd.DataFrame) -> pd.DataFrame:
    """Per (data set, grid optimizer, batch size): the best grid setting's mean test error,
    the Auto counterpart's, and the Auto run's rank among all grid settings (1 = best)."""
    rows = []
    best = best_settings(summary)
    for _, b in best.iterrows():
        auto = summary[
            (summary["dataset"] == b["dataset"])
            & (summary["optimizer"] == counterpart(b["optimizer"]))
            & (summary["batch_size"] == b["batch_size"])
        ]
        grid = summary[
            (summary["dataset"] == b["dataset"])
            & (summary["optimizer"] == b["optimizer"])
            & (summary["batch_size"] == b["batch_size"])
        ]
        row = {
            "dataset": b["dataset"],
            "optimizer": b["optimizer"],
            "batch_size": int(b["batch_size"]),
            "n_settings": len(grid),
            "best_config": _config_text(b),
            "best_flags": b["flags"],
            "best_train_mean": float(b["train_mean"]),
            "best_test_mean": float(b["test_mean"]),
        }
        if not auto.empty:
            a = auto.iloc[0]
            row.update(
                auto_train_mean=float(a["train_mean"]),
                auto_test_mean=float(a["test_mean"]),
                auto_flags=a["flags"],
                auto_rank=int((grid["test_mean"] < a["test_mean"]).sum()) + 1,
            )
        rows.append(row)
    return pd.DataFrame(rows)


def hparam_traces(
    store: ResultsStore,
    runs: pd.DataFrame,
    tensor: str = "conv1.weight",
    optimizer: str | None = None,
) -> pd.DataFrame:
    """Long frame (run_id, dataset, batch_size, seed, step, epoch, lr, momentum) of one
    tensor's learning rate and momentum in every ``optimizer`` run (default: the library's
    AutoSGD): Figure 2's data."""
    optimizer = optimizer or auto_for("sgd")
    frames = []
    for _, r in runs[runs["optimizer"] == optimizer].iterrows():
        tr = store.trace(r["run_id"])
        if f"lr/{tensor}" not in tr:
            raise KeyError(f"run {r['run_id']} has no trace for tensor {tensor!r}")
        frames.append(
            pd.DataFrame(
                {
                    "run_id": r["run_id"],
                    "dataset": r["dataset"],
                    "batch_size": int(r["batch_size"]),
                    "seed": int(r["seed"]),
                    "step": tr["step"],
                    "epoch": tr["epoch"],
                    "lr": tr[f"lr/{tensor}"],
                    "momentum": tr[f"momentum/{tensor}"],
                }
            )
        )
    if not frames:
        return pd.DataFrame(
            columns=["run_id", "dataset", "batch_size", "seed", "step", "epoch", "lr", "momentum"]
        )
    return pd.concat(frames, ignore_index=True)


def hparam_trace_summary(traces: pd.DataFrame) -> list[dict[str, Any]]:
    """Per batch size: peak lr and its step, and the final lr and momentum (mean over seeds)."""
    out = []
    for n, g in traces.groupby("batch_size", sort=True):
        per_step = g.groupby("step")[["lr", "momentum"]].mean()
        peak_step = int(per_step["lr"].idxmax())
        out.append(
            {
                "batch_size": int(n),
                "steps": int(per_step.index.max()),
                "peak_lr": float(per_step["lr"].max()),
                "peak_lr_step": peak_step,
                "final_lr": float(per_step["lr"].iloc[-1]),
                "final_momentum": float(per_step["momentum"].iloc[-1]),
                "max_momentum": float(per_step["momentum"].max()),
            }
        )
    return out
