"""The claim table: does each claim of the paper hold on our data, for every variant?

One row per claim and data set. Each row gives the paper's own figure for the claim, ours
for every role of :mod:`~autoopt_lab.experiments.variants` (the paper's method as written,
the authors' settings, the library default, the best tuning-free peer), and a verdict: the
paper's method's, as the claim is about it. Like is compared with like: the gap Auto - tuned
(points, and units of the seeds' pooled std) on our data against the paper's gap on theirs.

Verdict rules (:data:`RULES`, also written into every output):

* **matches** (Auto matches tuned, Table 2; Auto reaches the best grid setting, Figures
  3-4): *holds* when the variant's mean test error is at most ``max(2 x pooled seed std,
  0.5 points)`` above the tuned one's (better counts as holding); *fails* otherwise, and
  always when any of its runs diverged or ended at chance (the flag is named).
* **grows** (the adapted lr grows with the batch size, Figure 2): *holds* when the mean
  over seeds of each run's peak lr of ``conv1.weight`` increases strictly with N (flagged
  runs are named beside the verdict).
* **gap** (AutoAdam's CIFAR10 gap): *reproduced* when our AutoAdam is worse than tuned Adam
  by more than the matches tolerance, as the paper found; *not testable offline* without
  CIFAR10.
* *inconclusive*: the tuned baseline itself was flagged (then no comparison means much).
* *not run*: the runs the claim needs are not in the store (its target was not requested).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from autoopt_lab.health import count_text
from autoopt_lab.optim import registry

from . import analysis
from .paper import PAPER_DATA, paper_gap
from .plans import figure_autos, figure_datasets, plan
from .presets import Preset, get_preset
from .provenance import data_label, data_provenance, runs_for
from .store import ResultsStore
from .variants import BASES, ROLE_TITLES, tuned_for

TOLERANCE_POINTS = 0.5
TOLERANCE_STDS = 2.0
RULES: dict[str, str] = {
    "matches": "holds if Auto's mean test error is at most max(2 x pooled seed std, 0.5 "
    "points) above the tuned one's (lower holds too); fails otherwise, and whenever a run "
    "diverged or ended at chance",
    "grows": "holds if the mean over seeds of each run's peak conv1.weight lr increases "
    "strictly with the batch size",
    "gap": "reproduced if AutoAdam is worse than tuned Adam by more than the matches "
    "tolerance; not testable offline without CIFAR10",
}
#: Roles shown as columns, in order (the tuned baseline is what the others are compared to).
COLUMNS: tuple[str, ...] = ("paper", "authors", "default", "peer")


def match_tolerance(pooled: float) -> float:
    """How far above the tuned error an Auto variant may be and still match it (points).

    >>> match_tolerance(0.1), match_tolerance(1.0)
    (0.5, 2.0)
    """
    return max(TOLERANCE_STDS * pooled, TOLERANCE_POINTS)


def match_verdict(d: float, pooled: float, flags: str = "") -> str:
    """The matches rule: ``"holds"`` / ``"fails"`` (with the flag that decided it).

    >>> match_verdict(0.3, 0.2), match_verdict(1.2, 0.2), match_verdict(-5, 1, "1/3 at chance")
    ('holds', 'fails', 'fails (1/3 at chance)')
    """
    if flags:
        return f"fails ({flags})"
    return "holds" if d <= match_tolerance(pooled) else "fails"


def _gap_text(d: float, d_sd: float) -> str:
    sd = f"{d_sd:+.1f} sd" if abs(d_sd) != float("inf") else "std 0"
    return f"{d:+.2f} pts ({sd})"


def _paper_gaps(base: str) -> str:
    parts = []
    for ds in ("mnist", "cifar10"):
        g = paper_gap(ds, base)
        if g is not None:
            parts.append(f"{ds.upper() if ds == 'mnist' else 'CIFAR10'} {_gap_text(*g)}")
    return "; ".join(parts)


def _row(claim: str, kind: str, evidence: str, dataset: str, data: str, paper: str,
         cells: dict[str, dict[str, Any]]) -> dict[str, Any]:
    paper_cell = cells.get("paper")
    verdict = paper_cell["verdict"] if paper_cell else "not run"
    return {"claim": claim, "kind": kind, "evidence": evidence, "dataset": dataset,
            "data": data, "paper": paper, "verdict": verdict, "rule": RULES[kind],
            "variants": cells}


def _cell(role: str, optimizer: str, value: str, verdict: str, **extra: Any) -> dict[str, Any]:
    return {"role": role, "optimizer": optimizer, "display": registry.get(optimizer).display,
            "value": value, "verdict": verdict, **extra}


def _table2_rows(table: pd.DataFrame, dataset: str, data: str) -> list[dict[str, Any]]:
    rows = []
    for base in BASES:
        here = table[(table["dataset"] == dataset) & (table["base"] == base)]
        tuned = here[here["role"] == "tuned"]
        if tuned.empty:
            continue
        t = tuned.iloc[0]
        auto = registry.get(tuned_for(base) or base).display
        cells = {}
        for _, c in here[here["role"].isin(COLUMNS)].iterrows():
            value = f"{_gap_text(c['gap_test'], c['gap_test_sd'])}; {c['test_mean']:.2f}%"
            verdict = match_verdict(c["gap_test"], c["pooled_std"], c["flags"])
            if t["flags"]:
                verdict = f"inconclusive (tuned: {t['flags']})"
            cells[c["role"]] = _cell(c["role"], c["optimizer"], value, verdict,
                                     gap=c["gap_test"], gap_sd=c["gap_test_sd"],
                                     test_mean=c["test_mean"], flags=c["flags"])
        rows.append(_row(
            f"Auto{auto} matches tuned {auto}", "matches",
            f"Table 2, N = 128; tuned {auto}: {t['test_mean']:.2f}% ({t['config_text']})",
            dataset, data, _paper_gaps(base), cells))
    return rows


def _growth_row(traces: pd.DataFrame, runs: pd.DataFrame, dataset: str,
                data: str) -> dict[str, Any]:
    cells = {}
    summary = pd.DataFrame(analysis.hparam_trace_summary(traces))
    health = analysis.with_health(runs) if len(runs) else runs
    for role, name in zip(("paper", "default"), _role_names(), strict=True):
        if name is None or summary.empty or name not in set(summary["optimizer"]):
            continue
        g = summary[summary["optimizer"] == name].sort_values("batch_size")
        peaks = g["peak_lr"].tolist()
        grows = len(peaks) > 1 and all(b > a for a, b in zip(peaks, peaks[1:], strict=False))
        value = ", ".join(f"{p:.2f}" for p in peaks) + " (N = " + "/".join(
            str(n) for n in g["batch_size"]) + ")"
        mine = health[health["optimizer"] == name]
        flags = count_text(len(mine), int(mine["diverged"].sum()),
                           int(mine["at_chance"].sum()),
                           int((mine["nonfinite_skips"] > 0).sum()),
                           int(mine["nonfinite_skips"].sum()))
        verdict = ("holds" if grows else "fails") + (f" ({flags})" if flags else "")
        cells[role] = _cell(role, name, value, verdict, flags=flags,
                            peak_lr=dict(zip(g["batch_size"].astype(int), peaks, strict=True)))
    return _row("The adapted lr grows with the batch size", "grows", "Figure 2, conv1.weight",
                dataset, data, "lr rises with N, peaks, then decays (Fig. 2, qualitative)", cells)


def _role_names() -> tuple[str | None, str | None]:
    autos = figure_autos("sgd")
    return autos[0], autos[-1] if len(autos) > 1 else None


def _reach_row(summary: pd.DataFrame, dataset: str, data: str) -> dict[str, Any]:
    table = analysis.auto_vs_grid(summary)
    cells = {}
    if not table.empty:
        sgd = table[(table["dataset"] == dataset) & (table["base"] == "sgd")]
        for role in COLUMNS:
            mine = sgd[sgd["role"] == role]
            if mine.empty:
                continue
            verdicts = [match_verdict(r["gap_test"], r["pooled_std"], r["flags"])
                        for _, r in mine.iterrows()]
            worst = mine.loc[mine["gap_test"].idxmax()]
            value = ", ".join(f"N={int(r['batch_size'])}: {r['gap_test']:+.2f} (rank "
                              f"{int(r['rank'])}/{int(r['n_settings']) + 1})"
                              for _, r in mine.iterrows())
            bad = [v for v in verdicts if v != "holds"]
            cells[role] = _cell(role, str(worst["variant"]), value,
                                bad[0] if bad else "holds", n_batch_sizes=len(mine))
    return _row("Auto reaches the best grid setting's error at each batch size", "matches",
                "Figures 3-4: AutoSGD vs the SGD grid", dataset, data,
                "AutoSGD close to the best SGD setting at every N (Figs. 3-4, qualitative)",
                cells)


def _cifar_row(table: pd.DataFrame, datasets: Sequence[str]) -> dict[str, Any]:
    g = paper_gap("cifar10", "adam")
    paper = f"CIFAR10 {_gap_text(*g)} (AutoAdam 47.8% vs Adam 36.4%)" if g else ""
    cells = {}
    if "cifar10" in datasets and not table.empty:
        here = table[(table["dataset"] == "cifar10") & (table["base"] == "adam")]
        for _, c in here[here["role"].isin(COLUMNS)].iterrows():
            tol = max(TOLERANCE_STDS * c["pooled_std"], TOLERANCE_POINTS)
            verdict = "reproduced" if c["gap_test"] > tol else "not reproduced"
            cells[c["role"]] = _cell(c["role"], c["optimizer"],
                                     _gap_text(c["gap_test"], c["gap_test_sd"]), verdict)
        row = _row("AutoAdam trails tuned Adam on CIFAR10", "gap", "Table 2, CIFAR10",
                   "cifar10", "CIFAR10", paper, cells)
    else:
        row = _row("AutoAdam trails tuned Adam on CIFAR10", "gap", "Table 2, CIFAR10",
                   "cifar10", "not available offline", paper, cells)
        row["verdict"] = "not testable offline"
    return row


def claim_table(store: ResultsStore, preset: Preset | str, datasets: Sequence[str], *,
                device: str = "auto") -> pd.DataFrame:
    """The claim table from the runs of ``store`` that the mode's plan asks for (claims
    whose runs are missing say ``not run``)."""
    preset = get_preset(preset)
    datasets = list(datasets)
    t2_runs = runs_for(store, plan("table2", preset, datasets, device=device))
    table = analysis.table2(t2_runs, preset.table_batch_size, datasets=datasets) if len(t2_runs) else (
        pd.DataFrame(columns=["dataset", "base", "role"]))
    fig_sets = figure_datasets(preset, datasets)
    f2_runs = runs_for(store, plan("fig2", preset, fig_sets, device=device))
    f3_runs = runs_for(store, plan("fig3", preset, fig_sets, device=device))
    every = pd.concat([t2_runs, f2_runs, f3_runs], ignore_index=True)
    labels = {p["dataset"]: data_label(p, preset) for p in data_provenance(every)} if len(
        every) else {}
    rows: list[dict[str, Any]] = []
    for ds in datasets:
        data = labels.get(ds, ds)
        if ds == "cifar10":
            continue
        rows += _table2_rows(table, ds, data) if not table.empty else []
        if ds in fig_sets:
            f2 = f2_runs[f2_runs["dataset"] == ds] if not f2_runs.empty else f2_runs
            traces = analysis.hparam_traces(store, f2, optimizers=figure_autos("sgd")) if len(
                f2) else pd.DataFrame(columns=["optimizer", "batch_size", "run_id", "lr",
                                               "step", "momentum"])
            rows.append(_growth_row(traces, f2, ds, data))
            f3 = f3_runs[f3_runs["dataset"] == ds] if not f3_runs.empty else f3_runs
            rows.append(_reach_row(analysis.setting_summary(f3), ds, data))
    rows.append(_cifar_row(table, datasets))
    return pd.DataFrame(rows)


def paper_gap_marks(datasets: Sequence[str]) -> dict[tuple[str, str], float]:
    """``{(data set, family): the paper's gap Auto - tuned}`` for the data sets the paper has
    (reference marks go only on the data set they come from).

    >>> paper_gap_marks(["fashion-mnist"]), round(paper_gap_marks(["mnist"])["mnist", "adam"], 2)
    ({}, 0.21)
    """
    out = {}
    for ds in datasets:
        for base in BASES:
            g = paper_gap(ds, base)
            if g is not None:
                out[ds, base] = g[0]
    return out


def claim_display(claims: pd.DataFrame) -> pd.DataFrame:
    """The claim table as text: claim, data, the paper's figure, one column per variant role
    (``value: verdict``), and the paper's method's verdict."""
    out = []
    for _, r in claims.iterrows():
        row = {"claim": r["claim"], "data": r["data"], "paper's figure": r["paper"]}
        for role in COLUMNS:
            c = r["variants"].get(role)
            row[ROLE_TITLES[role]] = f"{c['display']}: {c['value']} -> {c['verdict']}" if c else "-"
        row["verdict (paper's method)"] = r["verdict"]
        out.append(row)
    return pd.DataFrame(out)


def claim_markdown(claims: pd.DataFrame) -> str:
    """The claim table as a Markdown table (for the README and the CLI)."""
    table = claim_display(claims)
    head = "| " + " | ".join(table.columns) + " |"
    sep = "|" + "---|" * len(table.columns)
    body = ["| " + " | ".join(str(v).replace("|", "/") for v in row) + " |"
            for row in table.itertuples(index=False)]
    return "\n".join([head, sep, *body])


__all__ = ["COLUMNS", "PAPER_DATA", "RULES", "claim_display", "claim_markdown", "claim_table",
           "match_verdict", "paper_gap_marks"]
