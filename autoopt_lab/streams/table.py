"""Tables over one or several scenarios: per shift, and optimizers side by side with intervals.

:func:`table_rows` gives one row per (optimizer, shift) of a ``run_scenario`` summary;
:func:`optimizer_rows` one row per optimizer, with its mean prequential error over seeds,
the 95% interval, and the paired comparison with the scenario's best optimizer (same seeds,
same streams: the interval of the per-seed difference either excludes 0, "separated", or not);
:func:`comparison_table` lays those out as scenario x optimizer in Markdown, the best in
bold, ``>`` where the best is separated from an optimizer, ``~`` where it is not.

>>> rows = table_rows({"scenario": "s", "optimizers": {"sgd": {"prequential_error": 0.2,
...     "hparams": {"lr": 0.1}, "shifts": [{"name": "b", "transition": "sudden",
...     "condition": "rotation=90", "recovery_steps": 12, "prequential_error": 0.3,
...     "detection_delay": {"ADWIN": 5}, "lr": None, "momentum": None}]}}})
>>> rows[0]["recovery_steps"], rows[0]["segment_error"], rows[0]["hparams"]
(12, 0.3, 'lr=0.1')
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pandas as pd

from .aggregate import median_recovery, paired_difference

__all__ = ["comparison_table", "markdown_table", "optimizer_rows", "table_rows"]


def _fmt(v: Any, spec: str = ".3g") -> str:
    if v is None or (isinstance(v, float) and pd.isna(v)):
        return "—"
    return format(v, spec) if isinstance(v, float) else str(v)


def _ci(ci: Any, spec: str = ".3f") -> str:
    return f"[{ci[0]:{spec}}, {ci[1]:{spec}}]" if ci else ""


def _status(sh: dict[str, Any]) -> str:
    statuses = sh.get("status_by_seed") or [sh.get("status") or
                                            ("recovered" if sh.get("recovery_steps") is not None
                                             else "not recovered")]
    counts = Counter(statuses)
    if len(counts) == 1:
        return statuses[0]
    return ", ".join(f"{k} {v}/{len(statuses)}" for k, v in counts.most_common())


def table_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (optimizer, shift) of a ``run_scenario`` summary."""
    rows = []
    for opt, s in summary["optimizers"].items():
        flags = ", ".join((s.get("health") or {}).get("flags", []))
        for sh in s["shifts"]:
            lr, mom = sh.get("lr") or {}, sh.get("momentum") or {}
            rows.append({
                "scenario": summary["scenario"], "optimizer": opt,
                "family": s.get("family"), "flags": flags,
                "hparams": ", ".join(f"{k}={v:g}" if isinstance(v, int | float) else f"{k}={v}"
                                     for k, v in (s.get("hparams") or {}).items()),
                "shift": sh["name"], "transition": sh["transition"],
                "condition": sh["condition"], "recovery_steps": sh["recovery_steps"],
                "recovery_ci": _ci(sh.get("recovery_ci"), ".0f"),
                "recovered": sh.get("recovered"), "status": _status(sh),
                "segment_error": sh["prequential_error"], "stream_error": s["prequential_error"],
                "stream_error_ci": _ci(s.get("prequential_error_ci")),
                **{f"delay_{k}": v for k, v in sh["detection_delay"].items()},
                "lr_pre": lr.get("pre"), "lr_post_min": lr.get("post_min"),
                "lr_post_max": lr.get("post_max"), "lr_end": lr.get("end"),
                "mom_pre": mom.get("pre"), "mom_post_min": mom.get("post_min"),
                "mom_post_max": mom.get("post_max"), "mom_end": mom.get("end"),
            })
    return rows


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """A compact Markdown table of :func:`table_rows` rows (recovery: mean over the seeds
    that recovered, its interval, and the status; a withheld recovery says why)."""
    df = pd.DataFrame(rows)
    lines = ["| scenario | shift | optimizer | recovery (steps) | status | segment error "
             "| stream error | lr pre → post-shift range → end | momentum pre → range → end |",
             "|---|---|---|---|---|---|---|---|---|"]
    for _, r in df.iterrows():
        lr = (f"{_fmt(r.lr_pre)} → [{_fmt(r.lr_post_min)}, {_fmt(r.lr_post_max)}] → "
              f"{_fmt(r.lr_end)}" if pd.notna(r.get("lr_pre")) else r.hparams)
        mo = (f"{_fmt(r.mom_pre, '.2f')} → [{_fmt(r.mom_post_min, '.2f')}, "
              f"{_fmt(r.mom_post_max, '.2f')}] → {_fmt(r.mom_end, '.2f')}"
              if pd.notna(r.get("mom_pre")) else "")
        rec = "—" if pd.isna(r.recovery_steps) else f"{r.recovery_steps:.0f}"
        rec += f" {r.recovery_ci}" if r.get("recovery_ci") else ""
        cond = r.condition if len(r.condition) <= 48 else r.condition[:45] + "..."
        name = r.optimizer + (f" ⚠ {r['flags']}" if r.get("flags") else "")
        seg = _fmt(r.segment_error, ".3f")
        stream = _fmt(r.stream_error, ".3f") + (f" {r.stream_error_ci}"
                                                if r.get("stream_error_ci") else "")
        status = r.get("status") or ("recovered" if rec != "—" else "not recovered")
        lines.append(f"| {r.scenario} | {r['shift']} ({r.transition}: {cond}) | {name} | {rec} "
                     f"| {status} | {seg} | {stream} | {lr} | {mo} |")
    return "\n".join(lines)


def optimizer_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per optimizer: mean error, interval, rank, and the paired test against the
    best (lowest mean error) optimizer of the scenario."""
    opts = summary["optimizers"]
    by_seed = {k: {s: v for s, v in (o.get("prequential_error_by_seed") or {}).items()}
               for k, o in opts.items()}
    ranked = sorted((k for k in opts if opts[k]["prequential_error"] is not None),
                    key=lambda k: opts[k]["prequential_error"])
    best = ranked[0] if ranked else None
    rows = []
    for k, o in opts.items():
        times = [t for sh in o["shifts"] for t, st in
                 zip(sh.get("recovery_by_seed") or [sh["recovery_steps"]],
                     sh.get("status_by_seed") or ["recovered"], strict=False)
                 if st in ("recovered", "no drop", "not recovered")]
        diff = (paired_difference(by_seed[k], by_seed[best])
                if best is not None and k != best else None)
        rows.append({
            "scenario": summary["scenario"], "optimizer": k, "family": o.get("family"),
            "prequential_error": o["prequential_error"],
            "ci": o.get("prequential_error_ci"), "seeds": len(o.get("seeds") or [0]),
            "rank": ranked.index(k) + 1 if k in ranked else None, "best": k == best,
            "diff_vs_best": diff["mean"] if diff else None,
            "diff_ci": diff["ci"] if diff else None,
            "separated_from_best": diff["separated"] if diff else None,
            "median_recovery": median_recovery(times),
            "flags": ", ".join((o.get("health") or {}).get("flags", [])),
        })
    return rows


def comparison_table(rows: list[dict[str, Any]]) -> str:
    """Scenario x optimizer Markdown table of :func:`optimizer_rows` rows (several scenarios).

    A cell is ``mean [95% interval]``; **bold** is the scenario's best, ``>`` marks an
    optimizer the best is separated from (paired interval of the difference excludes 0),
    ``~`` one it is not; ``⚠`` flags diverged, skipped-step or chance-level runs.
    """
    df = pd.DataFrame(rows)
    optimizers = list(dict.fromkeys(df["optimizer"]))
    lines = ["| scenario | " + " | ".join(optimizers) + " |",
             "|---|" + "---|" * len(optimizers)]
    for sc, part in df.groupby("scenario", sort=False):
        cells = []
        for opt in optimizers:
            r = part[part["optimizer"] == opt]
            if r.empty or pd.isna(r.iloc[0]["prequential_error"]):
                cells.append("—")
                continue
            r = r.iloc[0]
            text = f"{r.prequential_error:.3f}"
            if r.best:
                text = f"**{text}**"
            if isinstance(r.ci, list | tuple):
                text += f" {_ci(r.ci)}"
            if not r.best and pd.notna(r["separated_from_best"]):
                text += " >" if r["separated_from_best"] else " ~"
            if r["flags"]:
                text += f" ⚠ {r['flags']}"
            cells.append(text)
        lines.append(f"| {sc} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("Prequential error, mean over seeds [95% t-interval]. **Best** per scenario; "
                 "`>`: the best is better with a paired 95% interval of the per-seed difference "
                 "that excludes 0; `~`: not separated. ⚠: some seeds diverged, skipped steps "
                 "or stayed at chance.")
    return "\n".join(lines)
