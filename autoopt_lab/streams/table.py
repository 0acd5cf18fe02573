"""One table over several scenarios: recovery time and prequential error per optimizer.

>>> rows = table_rows({"scenario": "s", "optimizers": {"sgd": {"prequential_error": 0.2,
...     "hparams": {"lr": 0.1}, "shifts": [{"name": "b", "transition": "sudden",
...     "condition": "rotation=90", "recovery_steps": 12, "prequential_error": 0.3,
...     "detection_delay": {"ADWIN": 5}, "lr": None, "momentum": None}]}}})
>>> rows[0]["recovery_steps"], rows[0]["segment_error"], rows[0]["hparams"]
(12, 0.3, 'lr=0.1')
"""

from __future__ import annotations

from typing import Any

import pandas as pd

__all__ = ["markdown_table", "table_rows"]


def _fmt(v: Any, spec: str = ".3g") -> str:
    if v is None:
        return "—"
    return format(v, spec) if isinstance(v, float) else str(v)


def table_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (optimizer, shift) of a ``run_scenario`` summary."""
    rows = []
    for opt, s in summary["optimizers"].items():
        for sh in s["shifts"]:
            lr, mom = sh.get("lr") or {}, sh.get("momentum") or {}
            rows.append({
                "scenario": summary["scenario"], "optimizer": opt,
                "hparams": ", ".join(f"{k}={v:g}" if isinstance(v, (int, float)) else f"{k}={v}"
                                     for k, v in (s.get("hparams") or {}).items()),
                "shift": sh["name"], "transition": sh["transition"],
                "condition": sh["condition"], "recovery_steps": sh["recovery_steps"],
                "segment_error": sh["prequential_error"], "stream_error": s["prequential_error"],
                **{f"delay_{k}": v for k, v in sh["detection_delay"].items()},
                "lr_pre": lr.get("pre"), "lr_post_min": lr.get("post_min"),
                "lr_post_max": lr.get("post_max"), "lr_end": lr.get("end"),
                "mom_pre": mom.get("pre"), "mom_post_min": mom.get("post_min"),
                "mom_post_max": mom.get("post_max"), "mom_end": mom.get("end"),
            })
    return rows


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """A compact Markdown table of :func:`table_rows` rows."""
    df = pd.DataFrame(rows)
    lines = ["| scenario | shift | optimizer | recovery (steps) | segment error | stream error "
             "| lr pre → post-shift range → end | momentum pre → range → end |",
             "|---|---|---|---|---|---|---|---|"]
    for _, r in df.iterrows():
        lr = (f"{_fmt(r.lr_pre)} → [{_fmt(r.lr_post_min)}, {_fmt(r.lr_post_max)}] → "
              f"{_fmt(r.lr_end)}" if pd.notna(r.get("lr_pre")) else r.hparams)
        mo = (f"{_fmt(r.mom_pre, '.2f')} → [{_fmt(r.mom_post_min, '.2f')}, "
              f"{_fmt(r.mom_post_max, '.2f')}] → {_fmt(r.mom_end, '.2f')}"
              if pd.notna(r.get("mom_pre")) else "")
        rec = "not recovered" if pd.isna(r.recovery_steps) else str(int(r.recovery_steps))
        cond = r.condition if len(r.condition) <= 48 else r.condition[:45] + "..."
        lines.append(f"| {r.scenario} | {r['shift']} ({r.transition}: {cond}) | "
                     f"{r.optimizer} | {rec} | {r.segment_error:.3f} | {r.stream_error:.3f} | "
                     f"{lr} | {mo} |")
    return "\n".join(lines)
