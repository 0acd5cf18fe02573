"""Tables the notebooks show: per-setting means over seeds with health flags, the best grid
setting, Table 2 with a column per variant role, Auto against the grid per batch size, and
the Figure 2 traces. Pure pandas over :meth:`ResultsStore.runs`; no plotting here.

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

import pandas as pd

from autoopt_lab.health import CHANCE_MARGIN_PCT, count_text, error_at_chance
from autoopt_lab.optim import registry
from autoopt_lab.optim.spec_strings import choice_text

from .paper import paper_reference
from .store import ResultsStore
from .variants import BASES, ROLES, auto_for, is_grid, variants_for

SETTING_KEYS = ["dataset", "variant", "optimizer", "batch_size", "lr", "momentum"]


def variant_name(optimizer: str, options: Any = None) -> str:
    """An optimizer and its options (by key) as one spec string (``autoadam:ewma=0.95``),
    in the canonical text of :func:`~autoopt_lab.optim.spec_strings.choice_text`.

    >>> variant_name("autoadam", {"ewma": 0.95}), variant_name("sgd", {})
    ('autoadam:ewma=0.95', 'sgd')
    """
    opts = options if isinstance(options, dict) else {}
    return choice_text(optimizer, dict(sorted(opts.items())))


def with_health(runs: pd.DataFrame) -> pd.DataFrame:
    """``runs`` with the health flags every run has since they were recorded (older rows
    get them from their errors): ``diverged``, ``at_chance``, ``nonfinite_skips``, and
    the ``variant`` column (optimizer plus options)."""
    df = runs.copy()
    df["diverged"] = df["diverged"].fillna(False).astype(bool) if "diverged" in df else False
    chance = df["chance_err_pct"] if "chance_err_pct" in df else pd.Series(90.0, df.index)
    derived = error_at_chance(df["final_test_err_pct"], chance.fillna(90.0), CHANCE_MARGIN_PCT)
    df["at_chance"] = df["at_chance"].fillna(derived) if "at_chance" in df else derived
    df["at_chance"] = df["at_chance"].astype(bool)
    skips = df["nonfinite_skips"] if "nonfinite_skips" in df else pd.Series(0, df.index)
    df["nonfinite_skips"] = skips.fillna(0).astype(int)
    opts = df["options"] if "options" in df else pd.Series([{}] * len(df), df.index)
    df["variant"] = [variant_name(o, p) for o, p in zip(df["optimizer"], opts, strict=True)]
    return df


def seed_stats(runs: pd.DataFrame, keys: list[str], *, sort: bool = True) -> pd.DataFrame:
    """Per group of ``keys``: mean and std over seeds of the final train and test error (%),
    the seeds and runs (seeds only where ``runs`` has a ``seed`` column), and the health
    counts (``flags`` in words). ``runs`` has the health columns (:func:`with_health`); the
    arena's table and :func:`setting_summary` use it.

    >>> runs = pd.DataFrame({"k": ["a", "a"], "seed": [0, 1], "final_train_err_pct": [1.0, 3.0],
    ...     "final_test_err_pct": [2.0, 4.0], "diverged": [False, True],
    ...     "at_chance": [False, False], "nonfinite_skips": [0, 0]})
    >>> seed_stats(runs, ["k"])[["test_mean", "n_seeds", "flags"]].values.tolist()
    [[3.0, 2, '1/2 diverged']]
    """
    seeded = "seed" in runs  # without it: runs are counted, seeds are not listed
    g = runs.groupby(keys, dropna=False, sort=sort)
    out = g.agg(
        train_mean=("final_train_err_pct", "mean"),
        train_std=("final_train_err_pct", "std"),
        test_mean=("final_test_err_pct", "mean"),
        test_std=("final_test_err_pct", "std"),
        **({"n_seeds": ("seed", "nunique")} if seeded else {}),
        n_runs=("seed" if seeded else "final_test_err_pct", "size"),
        **({"seeds": ("seed", lambda s: sorted(int(v) for v in s))} if seeded else {}),
        n_diverged=("diverged", "sum"),
        n_at_chance=("at_chance", "sum"),
        n_skipping=("nonfinite_skips", lambda s: int((s > 0).sum())),
        skipped_steps=("nonfinite_skips", "sum"),
    ).reset_index()
    out["flags"] = [
        count_text(*map(int, r))
        for r in out[["n_runs", "n_diverged", "n_at_chance", "n_skipping", "skipped_steps"]]
        .itertuples(index=False)
    ]
    return out


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
    out = seed_stats(df, SETTING_KEYS)
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


def config_text(row: pd.Series) -> str:
    """``"lr 10^-1.5, momentum 0.9"`` for a grid setting, the spec's label otherwise."""
    if not is_grid(row["optimizer"]):
        return str(row.get("variant") or row["optimizer"])
    text = f"lr 10^{math.log10(row['lr']):.1f}"
    if pd.notna(row.get("momentum")):
        text += f", momentum {row['momentum']:g}"
    return text


def gap(a_mean: float, a_std: Any, t_mean: float, t_std: Any) -> tuple[float, float, float]:
    """``(a - t, pooled seed std, (a - t) / pooled std)``; std NaN/None counts as 0.

    >>> [round(v, 2) for v in gap(1.5, 0.3, 1.2, 0.4)]
    [0.3, 0.35, 0.85]
    """
    sa = 0.0 if a_std is None or pd.isna(a_std) else float(a_std)
    st = 0.0 if t_std is None or pd.isna(t_std) else float(t_std)
    pooled = math.sqrt((sa**2 + st**2) / 2)
    diff = float(a_mean) - float(t_mean)
    return diff, pooled, diff / pooled if pooled > 0 else math.copysign(math.inf, diff or 1)


def _stats(row: pd.Series) -> dict[str, Any]:
    std = {k: (float(row[k]) if pd.notna(row[k]) else None) for k in ("train_std", "test_std")}
    return {
        "optimizer": row["optimizer"],
        "display": registry.get(row["optimizer"]).display,
        "variant": row["variant"],
        "train_mean": float(row["train_mean"]),
        "test_mean": float(row["test_mean"]),
        **std,
        "seeds": list(row["seeds"]),
        "n_seeds": int(row["n_seeds"]),
        "n_diverged": int(row["n_diverged"]),
        "n_at_chance": int(row["n_at_chance"]),
        "n_skipping": int(row["n_skipping"]),
        "flags": row["flags"],
        "config_text": config_text(row),
    }


def role_rows(summary: pd.DataFrame, dataset: str, base: str, batch_size: int,
              by: str = "test") -> dict[str, pd.Series]:
    """``{role: setting row}`` for one data set, preconditioner family and batch size: the
    best grid setting (``tuned``, chosen by mean ``by`` error over seeds), each Auto role's
    plain run, and the best tuning-free peer present (``peer``)."""
    here = summary[(summary["dataset"] == dataset) & (summary["batch_size"] == batch_size)]
    out: dict[str, pd.Series] = {}
    peers = []
    for v in variants_for(base, peers="all"):
        rows = here[here["variant"] == v.optimizer]
        if rows.empty:
            continue
        if v.role == "tuned":
            best = best_settings(rows, by=by)
            if not best.empty:
                out["tuned"] = best.iloc[0]
        elif v.role == "peer":
            peers.append(rows.iloc[0])
        else:
            out[v.role] = rows.iloc[0]
    if peers:
        out["peer"] = min(peers, key=lambda r: (r[f"{by}_mean"], r["train_mean"]))
    return out


def table2(runs: pd.DataFrame, batch_size: int = 128, by: str = "test",
           datasets: list[str] | None = None) -> pd.DataFrame:
    """Table 2, one cell per (data set, preconditioner family, role): mean and std over
    seeds of the final train and test error, health flags, the gap to the tuned cell (points
    and seed-std units) and, for the tuned and paper's-method cells on a data set the paper
    has, the paper's value (a reference only: their data differ in size). Data sets come in
    the order of ``datasets`` (default: sorted)."""
    sub = runs[runs["batch_size"] == batch_size]
    summary = setting_summary(sub)
    cells = []
    present = list(summary["dataset"].unique()) if not summary.empty else []
    order = [d for d in (datasets or sorted(present)) if d in present]
    for dataset in order:
        ref = paper_reference(dataset)
        for base in BASES:
            rows = role_rows(summary, dataset, base, batch_size, by=by)
            tuned = rows.get("tuned")
            for role in ROLES:
                if role not in rows:
                    continue
                r = rows[role]
                cell = {"dataset": dataset, "base": base, "role": role, **_stats(r)}
                cell["n_settings"] = int(
                    ((summary["dataset"] == dataset) & (summary["variant"] == r["variant"])).sum()
                )
                if tuned is not None and role != "tuned":
                    d, pooled, d_sd = gap(r["test_mean"], r["test_std"], tuned["test_mean"],
                                          tuned["test_std"])
                    cell.update(gap_test=d, pooled_std=pooled, gap_test_sd=d_sd)
                paper_key = {"tuned": "tuned", "paper": "auto"}.get(role)
                if ref is not None and paper_key is not None:
                    paper = ref[base][paper_key]
                    cell.update(paper_train_mean=paper["train"][0], paper_train_std=paper["train"][1],
                                paper_test_mean=paper["test"][0], paper_test_std=paper["test"][1])
                cells.append(cell)
    return pd.DataFrame(cells)


def table2_display(table: pd.DataFrame) -> pd.DataFrame:
    """Table 2 as text: one row per (data set, family), one column per role, each cell
    ``"test mean ± std (train mean)"`` with the optimizer or setting and any health flag."""
    rows: dict[tuple[str, str], dict[str, str]] = {}
    for _, c in table.iterrows():
        std = f" ± {c['test_std']:.2f}" if pd.notna(c.get("test_std")) else ""
        text = f"{c['test_mean']:.2f}{std} (train {c['train_mean']:.2f}) {c['config_text']}"
        if pd.notna(c.get("gap_test")):
            text += f" [gap {c['gap_test']:+.2f}]"
        if c.get("flags"):
            text += f" !! {c['flags']}"
        rows.setdefault((c["dataset"], c["base"]), {})[c["role"]] = text
    cols = [r for r in ROLES if r in set(table.get("role", []))]
    out = pd.DataFrame.from_dict(rows, orient="index", columns=cols).fillna("-")
    out.index = pd.MultiIndex.from_tuples(out.index, names=["dataset", "family"])
    return out


def auto_vs_grid(summary: pd.DataFrame) -> pd.DataFrame:
    """Per (data set, family, batch size) and each non-grid variant run there: its mean test
    error, the best grid setting's, the gap, the variant's rank among the grid settings
    (1 = better than all) and its health flags."""
    out = []
    for (dataset, n), here in summary.groupby(["dataset", "batch_size"], sort=True):
        for base in BASES:
            rows = role_rows(summary, dataset, base, int(n))
            tuned = rows.get("tuned")
            if tuned is None:
                continue
            grid = here[here["variant"] == tuned["variant"]]
            for v in variants_for(base, peers="all"):
                if v.role == "tuned":
                    continue
                match = here[here["variant"] == v.optimizer]
                if match.empty or any(r["variant"] == v.optimizer for r in out
                                      if (r["dataset"], r["batch_size"]) == (dataset, int(n))):
                    continue
                a = match.iloc[0]
                d, pooled, d_sd = gap(a["test_mean"], a["test_std"], tuned["test_mean"],
                                      tuned["test_std"])
                out.append({
                    "dataset": dataset, "base": base, "batch_size": int(n),
                    "role": v.role, "variant": v.optimizer, "display": v.display,
                    "n_settings": len(grid), "best_config": config_text(tuned),
                    "best_test_mean": float(tuned["test_mean"]),
                    "best_flags": tuned["flags"],
                    "test_mean": float(a["test_mean"]), "test_std": a["test_std"],
                    "gap_test": d, "gap_test_sd": d_sd, "pooled_std": pooled,
                    "rank": int((grid["test_mean"] < a["test_mean"]).sum()) + 1,
                    "flags": a["flags"],
                })
    return pd.DataFrame(out)


def hparam_traces(
    store: ResultsStore,
    runs: pd.DataFrame,
    tensor: str = "conv1.weight",
    optimizers: list[str] | None = None,
) -> pd.DataFrame:
    """Long frame (run_id, optimizer, dataset, batch_size, seed, step, epoch, lr, momentum)
    of one tensor's learning rate and momentum in every run of ``optimizers`` (default: the
    library's AutoSGD): Figure 2's data."""
    optimizers = optimizers or [auto_for("sgd")]
    frames = []
    for _, r in runs[runs["optimizer"].isin(optimizers)].iterrows():
        tr = store.trace(r["run_id"])
        if f"lr/{tensor}" not in tr:
            raise KeyError(f"run {r['run_id']} has no trace for tensor {tensor!r}")
        frames.append(
            pd.DataFrame(
                {
                    "run_id": r["run_id"],
                    "optimizer": r["optimizer"],
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
        return pd.DataFrame(columns=["run_id", "optimizer", "dataset", "batch_size", "seed",
                                     "step", "epoch", "lr", "momentum"])
    return pd.concat(frames, ignore_index=True)


def hparam_trace_summary(traces: pd.DataFrame) -> list[dict[str, Any]]:
    """Per (optimizer, batch size): each run's peak lr, averaged over seeds (with the seeds'
    std), the step of the mean curve's peak, the mean lr, and the final lr and momentum."""
    out = []
    for (opt, n), g in traces.groupby(["optimizer", "batch_size"], sort=True):
        per_run = g.groupby("run_id")["lr"].max()
        per_step = g.groupby("step")[["lr", "momentum"]].mean()
        out.append(
            {
                "optimizer": opt,
                "batch_size": int(n),
                "n_runs": int(per_run.size),
                "steps": int(per_step.index.max()),
                "peak_lr": float(per_run.mean()),
                "peak_lr_std": float(per_run.std()) if per_run.size > 1 else 0.0,
                "peak_lr_step": int(per_step["lr"].idxmax()),
                "mean_lr": float(g["lr"].mean()),
                "final_lr": float(per_step["lr"].iloc[-1]),
                "final_momentum": float(per_step["momentum"].iloc[-1]),
                "max_momentum": float(per_step["momentum"].max()),
            }
        )
    return out
