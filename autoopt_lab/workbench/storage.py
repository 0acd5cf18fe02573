"""Where a workbench run's results go: its own output folder, and rows in the results store.

Each run gets a new folder under the output folder (``<date>-<time>-<optimizers>``, never
reused) and its own store keys, so a later run, stopped or not, never overwrites an earlier
one. Rows go through :class:`autoopt_lab.experiments.ResultsStore` with the run's state: a
finished run is ``done``, a stopped one ``stopped``, a failed one ``failed``; a store that
cannot mark a state gets no row for that run (never a ``done`` one).

>>> import tempfile
>>> root = Path(tempfile.mkdtemp())
>>> a, b = new_run_folder(root, ["AutoSGD", "SGD(lr=0.1)"]), new_run_folder(root, ["AutoSGD"])
>>> a != b, a.parent == root, a.name.endswith("autosgd-vs-sgd-lr-0.1")
(True, True, True)
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from autoopt_lab.health import AT_CHANCE, DIVERGED

log = logging.getLogger(__name__)

#: Store status of each run state.
STORE_STATUS = {"finished": "done", "stopped": "stopped", "failed": "failed"}
#: File names inside a run's folder.
FILES = {
    "figure": "workbench.png",
    "table": "workbench_results.csv",
    "trace": "workbench_trace.csv",
    "json": "workbench_metrics.json",
}


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-")[:40] or "run"


def check_writable(folder: str | Path) -> Path:
    """``folder`` created if needed, or an ``OSError`` naming it (checked before Start)."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".workbench-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise OSError(f"output folder {folder} is not writable ({exc.strerror or exc})") from exc
    return folder


def new_run_folder(output_dir: str | Path, labels: Sequence[str]) -> Path:
    """A new, empty folder for one run: ``<output_dir>/<YYYYmmdd-HHMMSS>-<a>-vs-<b>[-k]``."""
    root = check_writable(output_dir)
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = f"{stamp}-{'-vs-'.join(_slug(lbl) for lbl in labels)}"
    for k in range(1, 10_000):
        path = root / (base if k == 1 else f"{base}-{k}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path
    raise OSError(f"could not make a new run folder in {root}")  # pragma: no cover


def write_json(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` as indented JSON (NaN and infinities written as null)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_clean(payload), indent=2, sort_keys=True))
    return path


def _clean(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, float) and (obj != obj or obj in (float("inf"), float("-inf"))):
        return None
    if hasattr(obj, "item") and callable(obj.item):
        return _clean(obj.item())
    return obj


def write_files(
    folder: Path, png: bytes, table: pd.DataFrame, trace: pd.DataFrame
) -> dict[str, Path]:
    """The static figure, the results table and the per-step trace, in ``folder``."""
    files = {key: folder / name for key, name in FILES.items() if key != "json"}
    files["figure"].write_bytes(png)
    table.to_csv(files["table"])
    trace.to_csv(files["trace"], index=False)
    return files


def store_rows(
    store_path: str | Path,
    *,
    run_name: str,
    state: str,
    lanes: dict[str, dict[str, Any]],
    table: pd.DataFrame,
    trace: pd.DataFrame,
    common: dict[str, Any],
    error: str | None = None,
    health: dict[str, dict[str, Any]] | None = None,
) -> list[str]:
    """One row per lane in the results store; returns the keys (``workbench/<run>/<i>``).

    ``lanes`` maps a lane label to its config (optimizer name and options); ``common`` is
    what every lane shares (data set, model, scenario, seed, ...) and run-level metrics go
    into each row's metrics with the lane's own numbers and flags. ``health`` maps a lane to
    its run health (:func:`autoopt_lab.streams.health.run_health`: ``flags`` by name,
    ``diverged_at``, ``nonfinite_skips``); the row stores it as data (``diverged``,
    ``at_chance``, ``nonfinite_skips``, ``health``) beside the flags in words (``flags``).
    """
    from autoopt_lab.experiments import ResultsStore

    status = STORE_STATUS[state]
    store = ResultsStore(Path(store_path))
    ids = []
    for i, (label, cfg) in enumerate(lanes.items()):
        row = table.loc[label]
        flags = [f for f in str(row.get("flags", "")).split("; ") if f]  # words, for people
        lane_health = health_data((health or {}).get(label))
        config = {
            **common["config"],
            **cfg,
            "lane": label,
            "run": run_name,
            "source": "workbench",
        }
        metrics = {
            **common["metrics"],
            "state": state,
            "steps": int(row["steps"]),
            "final_loss": _num(row.get("final loss")),
            "prequential_err_pct": _pct_err(row.get("prequential acc")),
            "final_err_pct": _pct_err(row.get("final acc")),
            "diverged": DIVERGED in lane_health["flags"],
            "at_chance": AT_CHANCE in lane_health["flags"],
            "nonfinite_skips": lane_health["nonfinite_skips"],
            "health": lane_health,
            "flags": flags,
        }
        if label in common.get("shift_report", {}):
            metrics["shift_report"] = common["shift_report"][label]
        lane_trace = trace[trace["lane"] == label].drop(columns="lane") if len(trace) else None
        run_id = f"workbench/{run_name}/{i}"
        try:
            store.add_run(
                config, metrics, lane_trace, run_id=run_id, status=status, sweep="workbench",
                error=error,
            )
        except ValueError as exc:
            if ids or status == "done" or "status" not in str(exc):
                raise
            # never record a run that did not finish as "done"
            log.warning(
                "the results store %s cannot mark a run %r (%s); run %s is kept in its "
                "folder only", store_path, status, exc, run_name,
            )
            return []
        ids.append(run_id)
    log.info("run %s saved to the results store at %s as %s", run_name, store_path, status)
    return ids


def health_data(health: dict[str, Any] | None) -> dict[str, Any]:
    """The stored form of a lane's run health: flag names, step of divergence, skips.

    >>> health_data({"flags": ["diverged"], "diverged_at": 7, "nonfinite_skips": 0, "x": 1})
    {'flags': ['diverged'], 'diverged_at': 7, 'nonfinite_skips': 0}
    >>> health_data(None)
    {'flags': [], 'diverged_at': None, 'nonfinite_skips': 0}
    """
    h = health or {}
    return {"flags": [str(f) for f in h.get("flags", [])], "diverged_at": h.get("diverged_at"),
            "nonfinite_skips": int(h.get("nonfinite_skips") or 0)}


def _num(v: Any) -> float | None:
    return None if v is None or pd.isna(v) else float(v)


def _pct_err(acc: Any) -> float | None:
    return None if acc is None or pd.isna(acc) else 100.0 * (1.0 - float(acc))
