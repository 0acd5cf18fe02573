"""Turn a finished workbench run into a trace, a small results table and saved files.

>>> from autoopt_lab.workbench.sources import StepRecord
>>> recs = [StepRecord(step=i, loss=2.0 - 0.1 * i, accuracy=0.1 * i, rolling_accuracy=0.1 * i,
...                    hparams={"fc.weight": (0.01, 0.0)}) for i in range(10)]
>>> trace_frame({"SGD": recs}).shape
(10, 11)
>>> int(summary_table({"SGD": recs}, planned_steps=20).loc["SGD", "steps"])
10
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from autoopt_lab.workbench.sources import StepRecord

log = logging.getLogger(__name__)


def trace_frame(records: dict[str, Sequence[StepRecord]]) -> pd.DataFrame:
    """One row per lane and step: ``lane, step, loss, accuracy, ..., lr/<t>, momentum/<t>``."""
    rows = [{"lane": lane, **r.row()} for lane, recs in records.items() for r in recs]
    return pd.DataFrame(rows)


def summary_table(
    records: dict[str, Sequence[StepRecord]],
    *,
    planned_steps: int | None = None,
    tail: float = 0.1,
) -> pd.DataFrame:
    """A small table, one row per lane.

    ``final loss`` / ``final acc`` average the last ``tail`` share of the steps (at least one);
    ``mean acc`` is the prequential accuracy over the whole run; ``lr``/``momentum`` are the
    medians over tensors at the last step.
    """
    if not 0 < tail <= 1:
        raise ValueError(f"tail={tail} is invalid; allowed: (0, 1]")
    rows: dict[str, dict[str, Any]] = {}
    for lane, recs in records.items():
        if not recs:
            rows[lane] = {"steps": 0}
            continue
        df = pd.DataFrame([r.row() for r in recs])
        k = max(1, int(round(len(df) * tail)))
        last = recs[-1].hparams
        row: dict[str, Any] = {
            "steps": len(df),
            "final loss": float(df["loss"].tail(k).mean()),
            "final acc": float(df["accuracy"].tail(k).mean()),
            "mean acc": float(df["accuracy"].mean()),
            "lr (median)": float(pd.Series([v[0] for v in last.values()]).median())
            if last
            else float("nan"),
            "momentum (median)": float(pd.Series([v[1] for v in last.values()]).median())
            if last
            else float("nan"),
        }
        if planned_steps is not None:
            row["planned"] = planned_steps
        if df["segment"].nunique() > 1:
            for seg, acc in df.groupby("segment")["accuracy"].mean().items():
                row[f"acc seg {seg}"] = float(acc)
        rows[lane] = row
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "optimizer"
    return table


def save_to_store(
    store_path: str | Path,
    config: dict[str, Any],
    metrics: dict[str, Any],
    trace: pd.DataFrame,
) -> bool:
    """Add the run to the sweeps' results store (``autoopt_lab.experiments.ResultsStore``).

    Returns False, with a log message, when the store module is not available in this
    install; the caller still has the files in its output folder.
    """
    try:
        from autoopt_lab.experiments import ResultsStore
    except ImportError as exc:
        log.warning("results store not available (%s); run kept in the output folder only", exc)
        return False
    ResultsStore(Path(store_path)).add_run(config, metrics, trace, sweep="workbench")
    log.info("run saved to the results store at %s", store_path)
    return True


def write_json(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` as indented JSON (NaN written as null) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_clean(payload), indent=2, sort_keys=True))
    return path


def _clean(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if isinstance(obj, float) and obj != obj:
        return None
    if hasattr(obj, "item") and callable(obj.item):
        return _clean(obj.item())
    return obj
