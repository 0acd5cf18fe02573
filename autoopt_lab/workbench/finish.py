"""The end of a workbench run: flags, the results table, files in the run's folder, the
per-shift reports, rows in the results store and the JSON summary.

:func:`finish_run` is what the app calls from the training thread when a run finishes, is
stopped or fails; it returns a :class:`~autoopt_lab.workbench.results.WorkbenchOutcome`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from autoopt_lab.workbench.results import (
    WorkbenchOutcome,
    run_metrics,
    summary_table,
    table_html,
    trace_frame,
)
from autoopt_lab.workbench.settings import NO_SHIFT, WorkbenchSettings
from autoopt_lab.workbench.storage import FILES, store_rows, write_files, write_json
from autoopt_lab.workbench.streaming import lane_reports

log = logging.getLogger(__name__)


def finish_run(
    runner,
    settings: WorkbenchSettings,
    folder: Path,
    *,
    store_path: Path | None,
    draw: Callable[[Any, dict[str, str]], bytes],
) -> WorkbenchOutcome:
    """Collect a run that ended (any state) into ``folder`` and, when given, the store.

    ``draw(runner, notes)`` renders the final figure (``notes``: each lane's flags, for the
    legend) and returns PNG bytes.
    """
    reports = lane_reports(runner.sources)
    flags = {label: reports.get(label, {}).get("flags", []) for label in runner.records}
    png = draw(runner, {k: ", ".join(v) for k, v in flags.items() if v})
    table = summary_table(runner.records, planned_steps=runner.total_steps, flags=flags)
    trace = trace_frame(runner.records)
    files = write_files(folder, png, table, trace)
    shift_report = {}
    if settings.scenario != NO_SHIFT:
        shift_report = {
            k: {"shifts": v.get("shifts", []), "segments": v.get("segments", [])}
            for k, v in reports.items()
        }
    metrics = run_metrics(runner, table, run=folder.name, flags=flags)
    if shift_report:
        metrics["shift_report"] = shift_report
    outcome = WorkbenchOutcome(
        state=runner.state, steps=runner.steps_done, planned_steps=runner.total_steps,
        table=table, trace=trace, folder=folder, figure_path=files["figure"], files=files,
        metrics=metrics, flags=flags,
    )
    if store_path is not None and runner.steps_done > 0:
        try:
            health = {k: v["health"] for k, v in reports.items() if "health" in v}
            outcome.store_ids = _store(runner, settings, outcome, store_path, shift_report,
                                       health)
            outcome.stored = bool(outcome.store_ids)
        except Exception:
            log.exception("saving the run to the results store at %s failed", store_path)
    files["json"] = write_json(folder / FILES["json"], outcome_payload(settings, outcome))
    return outcome


def _store(
    runner, settings: WorkbenchSettings, outcome: WorkbenchOutcome, store_path: Path,
    shift_report: dict[str, Any], health: dict[str, dict[str, Any]],
) -> list[str]:
    s = settings
    first = next(iter(runner.sources.values()), None)
    run = getattr(first, "run", None)
    device = str(run.device) if run is not None else s.device
    lanes = {
        label: {
            "optimizer": lane.name,
            "options": lane.options,
            "lr": lane.options.get("lr"),
            "momentum": lane.options.get("momentum"),
        }
        for label, lane in s.lanes().items()
    }
    common = {
        "config": {
            "dataset": s.dataset, "model": run.scenario.model if run is not None else s.model,
            "batch_size": s.batch_size, "steps": s.steps, "scenario": s.scenario,
            "seed": s.seed, "device": device, "lanes": list(lanes),
        },
        "metrics": {
            "planned_steps": runner.total_steps, "wall_time_s": runner.wall_seconds,
            "draw_fraction": runner.draw_fraction,
        },
        "shift_report": shift_report,
    }
    return store_rows(
        store_path, run_name=outcome.folder.name, state=runner.state, lanes=lanes,
        table=outcome.table, trace=outcome.trace, common=common,
        error=None if runner.error is None else repr(runner.error), health=health,
    )


def outcome_payload(settings: WorkbenchSettings | None, res: WorkbenchOutcome) -> dict[str, Any]:
    """The JSON summary of a run: its settings, key numbers, flags, files and store keys."""
    return {
        "settings": settings.to_dict() if settings else {},
        **res.metrics,
        "folder": str(res.folder),
        "files": {k: str(v) for k, v in res.files.items()},
        "stored": res.stored,
        "store_ids": res.store_ids,
    }


def show_outcome(
    settings: WorkbenchSettings | None,
    res: WorkbenchOutcome | None,
    json_path: str | Path | None = None,
) -> dict[str, Any]:
    """Display a run's static figure and results table as ordinary notebook outputs and return
    its JSON summary (also written to ``json_path`` when given); ``{}`` before any run."""
    from IPython.display import HTML, Image, Markdown, display

    if res is None:
        display(Markdown("*No finished run yet: press **Start** above, then run this cell again.*"))
        return {}
    display(Image(filename=str(res.figure_path)))
    display(HTML(table_html(res.table)))
    payload = outcome_payload(settings, res)
    if json_path is not None:
        write_json(json_path, payload)
    return payload
