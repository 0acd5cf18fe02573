"""A workbench run's results: the per-step trace and the results table, with each lane's
flags (diverged, skipped steps, at chance level: the streaming harness's health check).

>>> from autoopt_lab.workbench.sources import StepRecord
>>> recs = [StepRecord(step=i, loss=2.0 - 0.1 * i, accuracy=0.1 * i, rolling_accuracy=0.1 * i,
...                    hparams={"fc.weight": (0.01, 0.0)}, segment_name="upright")
...         for i in range(10)]
>>> trace_frame({"SGD": recs}).shape
(10, 12)
>>> table = summary_table({"SGD": recs}, planned_steps=20)
>>> int(table.loc["SGD", "steps"]), table.loc["SGD", "flags"]
(10, '')
>>> summary_table({"SGD": recs}, flags={"SGD": ["diverged at step 3"]}).loc["SGD", "flags"]
'diverged at step 3'
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from autoopt_lab.workbench.sources import StepRecord

#: Share of the steps at the end of a run that the "final" numbers average.
TAIL = 0.1


@dataclass
class WorkbenchOutcome:
    """What a finished, stopped or failed workbench run left behind.

    ``folder`` is the run's own output folder; ``files`` the paths written there;
    ``flags`` per lane (``diverged at step N``, ``N skipped steps``, ``at chance``); ``stored``
    whether its rows reached the results store (``store_ids`` their keys).
    """

    state: str
    steps: int
    planned_steps: int
    table: pd.DataFrame
    trace: pd.DataFrame
    folder: Path
    figure_path: Path
    files: dict[str, Path] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    flags: dict[str, list[str]] = field(default_factory=dict)
    stored: bool = False
    store_ids: list[str] = field(default_factory=list)


def trace_frame(records: dict[str, Sequence[StepRecord]]) -> pd.DataFrame:
    """One row per lane and step: ``lane, step, loss, accuracy, ..., lr/<t>, momentum/<t>``."""
    rows = [{"lane": lane, **r.row()} for lane, recs in records.items() for r in recs]
    return pd.DataFrame(rows)


def _tail(n: int, tail: float) -> int:
    return max(1, int(round(n * tail)))


def _segment_columns(df: pd.DataFrame) -> dict[str, float]:
    """``acc: <segment name>`` per segment (in order; a recurring name gets ``(2)``, ...)."""
    out: dict[str, float] = {}
    seen: dict[str, int] = {}
    for seg, part in df.groupby("segment", sort=True):
        name = str(part["segment_name"].iloc[0]) or f"segment {seg}"
        seen[name] = seen.get(name, 0) + 1
        key = f"acc: {name}" if seen[name] == 1 else f"acc: {name} ({seen[name]})"
        out[key] = float(part["accuracy"].mean())
    return out


def summary_table(
    records: dict[str, Sequence[StepRecord]],
    *,
    planned_steps: int | None = None,
    flags: dict[str, list[str]] | None = None,
    tail: float = TAIL,
) -> pd.DataFrame:
    """A small table, one row per lane (indexed by the lane's label).

    ``final loss`` / ``final acc`` average the last ``tail`` share of the steps (at least one);
    ``prequential acc`` is the accuracy over the whole run; ``lr``/``momentum`` are the
    medians over tensors at the last step; ``flags`` says what went wrong; then the
    prequential accuracy of each segment, by name.
    """
    if not 0 < tail <= 1:
        raise ValueError(f"tail={tail} is invalid; allowed: (0, 1]")
    flags = flags or {}
    rows: dict[str, dict[str, Any]] = {}
    for lane, recs in records.items():
        row: dict[str, Any] = {"steps": len(recs)}
        if planned_steps is not None:
            row["planned"] = planned_steps
        if recs:
            df = pd.DataFrame([r.row() for r in recs])
            k = _tail(len(df), tail)
            last = recs[-1].hparams
            lrs = pd.Series([v[0] for v in last.values()], dtype=float)
            moms = pd.Series([v[1] for v in last.values()], dtype=float)
            row.update(
                {
                    "final loss": float(df["loss"].tail(k).mean()),
                    "final acc": float(df["accuracy"].tail(k).mean()),
                    "prequential acc": float(df["accuracy"].mean()),
                    "lr (median)": float(lrs.median()) if last else float("nan"),
                    "momentum (median)": float(moms.median()) if last else float("nan"),
                }
            )
        row["flags"] = "; ".join(flags.get(lane, []))
        if recs and df["segment"].nunique() > 1:
            row.update(_segment_columns(df))
        rows[lane] = row
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "optimizer"
    return table


def table_html(table: pd.DataFrame) -> str:
    """The table as HTML with ``optimizer`` as its first column (one header row, no blank
    index row) and flags in red."""
    shown = table.reset_index()
    text = shown.to_html(
        index=False, float_format=lambda v: f"{v:.4g}", na_rep="", border=0, escape=True,
        classes="autoopt-results",
    )
    for value in set(shown.get("flags", [])):
        if value:
            esc = html.escape(value)
            text = text.replace(f"<td>{esc}</td>", f"<td style='color:#b00'><b>{esc}</b></td>")
    return text


def run_metrics(runner, table: pd.DataFrame, **extra: Any) -> dict[str, Any]:
    """The key numbers of a run (for the JSON summary): state, steps, timings, lanes."""
    return {
        "state": runner.state,
        "steps": runner.steps_done,
        "planned_steps": runner.total_steps,
        "wall_seconds": runner.wall_seconds,
        "train_seconds": runner.step_seconds,
        "draw_seconds": runner.draw_seconds,
        "draw_fraction": runner.draw_fraction,
        "plot_updates": runner.updates,
        "stop_latency_seconds": runner.stop_latency,
        "error": None if runner.error is None else repr(runner.error),
        "lanes": table.reset_index().to_dict(orient="records"),
        **extra,
    }
