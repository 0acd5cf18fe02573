"""The stream leaderboard: scenarios x optimizers x seeds, in a results store.

Every cell (scenario, optimizer, seed) is one prequential run of
:func:`~autoopt_lab.streams.experiment.run_one`; tuned baselines are first tuned on that
seed's first segment. Each finished cell is one row of an
:class:`~autoopt_lab.experiments.store.ResultsStore` (SQLite, one transaction per row; its
slim per-step trace beside it), keyed by what the cell is: a killed leaderboard redoes
nothing it had finished, tuning grid points included. Each scenario trains on its own data
set (by default the Fashion-MNIST scenarios, the offline ones). :func:`leaderboard_table` sums the
cells up per scenario and optimizer (mean prequential error, 95% interval, median recovery,
health flags) and :func:`plot_leaderboard` draws them as two heatmaps.

Optimizers come from the registry: by default every available one of the families ``auto``
(AutoOpt variants), ``peer`` (tuning-free optimizers at their defaults) and ``tuned``
(baselines tuned on the first segment). Modes: ``quick`` (every length x 0.15, one seed, the
quick tuning grid; about 10 minutes on a quiet 2-core CPU) and ``full`` (catalogue lengths,
seeds 0-4, the full grid).

>>> plan = plan_leaderboard("quick", scenarios=["fmnist-concept-swap"], optimizers="autosgd,sgd")
>>> plan.steps_scale, plan.seeds, len(plan.cells())
(0.15, (0,), 2)
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from autoopt_lab import sizes
from autoopt_lab.devices import resolve_device
from autoopt_lab.optim import registry

from .aggregate import READABLE, mean_ci, median_recovery, paired_difference
from .baselines import TUNING_SWEEP, StoreCache, tune_baseline, tuning_grid
from .board_data import board_data
from .catalogue import find_scenario, list_catalogue
from .experiment import needs_tuning, run_one
from .identity import data_fingerprint, digest, library_version, scenario_hash
from .modes import parse_seeds
from .scenario import Scenario
from .selection import entry_key, parse_optimizers
from .table import comparison_table

__all__ = ["FAMILIES", "LEADERBOARD_MODES", "TUNING_SWEEP", "LeaderboardPlan", "StoreCache",
           "board_data", "fashion_scenarios", "goal_check", "leaderboard_frame",
           "leaderboard_markdown", "leaderboard_table", "plan_leaderboard", "run_leaderboard",
           "write_outputs"]

logger = logging.getLogger(__name__)

#: Registry families on the leaderboard by default.
FAMILIES = ("auto", "peer", "tuned")
#: Store ``sweep`` label of the cells (tuning grid points: ``baselines.TUNING_SWEEP``).
CELL_SWEEP = "stream-leaderboard"
#: ``mode -> (steps scale, seeds, tuning grid)``: the ``leaderboard`` rows of
#: :data:`autoopt_lab.sizes.SIZES`.
LEADERBOARD_MODES: dict[str, tuple[float, tuple[int, ...], str]] = {
    mode: (row["steps_scale"], row["seeds"], row["grid"])
    for mode, row in sizes.SIZES["leaderboard"].items()
}


def fashion_scenarios() -> list[str]:
    """The catalogue's Fashion-MNIST scenarios (the offline ones), by name."""
    return [name for name, sc in list_catalogue() if sc.dataset == "fashion-mnist"]


@dataclass(frozen=True)
class LeaderboardPlan:
    """Which cells a leaderboard has: scenarios x optimizer keys x seeds, at a scale."""

    mode: str
    scenarios: tuple[str, ...]
    optimizers: tuple[str, ...]
    seeds: tuple[int, ...]
    steps_scale: float
    grid: str

    def cells(self) -> list[tuple[str, str, int]]:
        return [(s, o, seed) for s in self.scenarios for seed in self.seeds
                for o in self.optimizers]

    def scenario(self, name: str, seed: int) -> Scenario:
        sc = find_scenario(name)
        return (sc.scaled(self.steps_scale) if self.steps_scale != 1.0 else sc).reseeded(seed)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def datasets(self) -> dict[str, str]:
        """``{scenario: data set}``."""
        return {name: find_scenario(name).dataset for name in self.scenarios}


def plan_leaderboard(mode: str = "quick", *, scenarios: Sequence[str] | None = None,
                     families: Sequence[str] = FAMILIES, optimizers: str | None = None,
                     seeds: str | Sequence[int] | None = None, steps_scale: float | None = None,
                     grid: str | None = None) -> LeaderboardPlan:
    """The cells of a leaderboard; explicit arguments override the mode's settings."""
    if mode not in LEADERBOARD_MODES:
        raise ValueError(f"unknown mode {mode!r}; allowed: {', '.join(LEADERBOARD_MODES)}")
    scale, mode_seeds, mode_grid = LEADERBOARD_MODES[mode]
    names = list(scenarios) if scenarios else fashion_scenarios()
    for n in names:
        find_scenario(n)  # unknown names fail here, before any work
    if optimizers:
        entries = parse_optimizers(optimizers)
    else:
        bad = sorted(set(families) - set(registry.FAMILIES))
        if bad:
            raise ValueError(f"unknown families {bad}; allowed: {', '.join(registry.FAMILIES)}")
        entries = [(n, {}) for n in registry.names(list(families), available=True)]
    if not entries:
        raise ValueError("no optimizer selected")
    if steps_scale is not None and not steps_scale > 0:
        raise ValueError(f"steps scale must be > 0, got {steps_scale}")
    return LeaderboardPlan(
        mode=mode, scenarios=tuple(names),
        optimizers=tuple(entry_key(n, o) for n, o in entries),
        seeds=tuple(parse_seeds(seeds) if seeds is not None else mode_seeds),
        steps_scale=float(steps_scale or scale), grid=grid or mode_grid)


def cell_id(plan: LeaderboardPlan, scenario: Scenario, key: str, data_fp: str,
            device: torch.device) -> str:
    """What a cell's result depends on (not the plan's other cells)."""
    name = key.split(":")[0]
    tuned_grid = plan.grid if registry.get(name).family == "tuned" else None
    return digest({"scenario": scenario_hash(scenario), "optimizer": key, "grid": tuned_grid,
                   "data": data_fp, "device": device.type, "library": library_version()})


_SLIM = ["step", "segment", "batch_size", "loss", "accuracy", "rolling_accuracy",
         "nonfinite_skips"]


def _slim(trace: pd.DataFrame) -> pd.DataFrame:
    lr = [c for c in trace.columns if c.startswith("lr/")]
    mo = [c for c in trace.columns if c.startswith("momentum/")]
    out = trace[[c for c in _SLIM if c in trace]].copy()
    out["lr_mean"] = trace[lr].mean(axis=1) if lr else float("nan")
    out["momentum_mean"] = trace[mo].mean(axis=1) if mo else float("nan")
    return out


def _cell_metrics(s: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    shifts = s["shifts"]
    times = [sh["recovery_steps"] for sh in shifts if sh["status"] in READABLE]
    return {
        "prequential_error": s["prequential_error"],
        "health": s["health"]["status"], "flags": s["health"]["flags"],
        "diverged_at": s["health"]["diverged_at"],
        "nonfinite_skips": s["health"]["nonfinite_skips"],
        "median_recovery": median_recovery(times),
        "recovery_steps": [sh["recovery_steps"] for sh in shifts],
        "shift_status": [sh["status"] for sh in shifts],
        "detection_delay": {d: [sh["detection_delay"].get(d) for sh in shifts]
                            for d in (shifts[0]["detection_delay"] if shifts else {})},
        "options": {k: v for k, v in options.items()},
        "wall_time_s": sum(s["timing"][k] for k in ("data", "eval", "train", "monitor")),
    }


def run_cell(plan: LeaderboardPlan, scenario_name: str, key: str, seed: int, *, store: Any,
             data: Any, device: torch.device, progress: bool = False) -> dict[str, Any]:
    """Run one cell into ``store`` (tuning first for a tuned baseline); returns its metrics."""
    sc = plan.scenario(scenario_name, seed)
    name, opts = parse_optimizers(key)[0]
    options = dict(opts)
    if needs_tuning(name, options):
        res = tune_baseline(sc, name, grid=tuning_grid(name, plan.grid, options), data=data,
                            device=device, cache=StoreCache(store), progress=progress)
        options.update({**res["best"], **opts})
    trace, s = run_one(sc, name, options, data=data, device=device, progress=progress)
    metrics = _cell_metrics(s, options)
    spec = registry.get(name)
    config = {"scenario": scenario_name, "dataset": sc.dataset, "model": sc.model,
              "optimizer": key, "family": spec.family, "seed": seed, "mode": plan.mode,
              "steps_scale": plan.steps_scale, "grid": plan.grid, "device": device.type,
              "batch_size": sc.segments[0].batch_size, "lr": options.get("lr"),
              "momentum": options.get("momentum")}
    store.add_run(config, metrics, _slim(trace),
                  run_id=cell_id(plan, sc, key, data_fingerprint(data[0], data[1]), device),
                  sweep=CELL_SWEEP)
    return metrics


def _guarded_cell(plan: LeaderboardPlan, cell: tuple[str, str, int], store: Any, data: Any,
                  device: torch.device) -> tuple[bool, Any]:
    """``(True, metrics)``, or ``(False, message)`` with the failure stored (retried later)."""
    scenario_name, key, seed = cell
    try:
        return True, run_cell(plan, scenario_name, key, seed, store=store,
                              data=data[plan.scenario(scenario_name, seed).dataset],
                              device=device)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:  # noqa: BLE001 - one bad cell must not stop the board
        logger.exception("%s %s seed %d failed", scenario_name, key, seed)
        message = f"{type(exc).__name__}: {exc}"
        store.add_failure({"scenario": scenario_name, "optimizer": key, "seed": seed}, message,
                          sweep=CELL_SWEEP)
        return False, message


_WORKER: dict[str, Any] = {}


def _init_worker(store_path: str, device: str, threads: int, plan: LeaderboardPlan,
                 data: Any) -> None:
    from autoopt_lab.experiments.executors import die_with_parent
    from autoopt_lab.experiments.store import ResultsStore

    die_with_parent()  # as the sweep's workers: gone with their parent, Ctrl-C to the parent
    torch.set_num_threads(threads)
    _WORKER.update(store=ResultsStore(store_path), data=board_data(plan, data),
                   device=resolve_device(device))


def _work(cell: tuple[str, str, int], plan: LeaderboardPlan) -> tuple[tuple, bool, Any]:
    ok, result = _guarded_cell(plan, cell, _WORKER["store"], _WORKER["data"], _WORKER["device"])
    return cell, ok, result


def run_leaderboard(plan: LeaderboardPlan, store: Any, *, device: str | torch.device | None = None,
                    data: Any = None, progress: bool = True, workers: int = 1,
                    should_stop: Callable[[], bool] | None = None) -> dict[str, Any]:
    """Run every cell of ``plan`` not yet in ``store`` (a path or ResultsStore); returns counts.

    ``workers`` > 1 runs cells in that many processes (each with one torch thread). A cell
    that raises is stored as failed (a rerun tries it again) and the others go on;
    ``should_stop()`` returning true stops before the next cell.
    """
    import concurrent.futures as cf
    import multiprocessing

    from tqdm.auto import tqdm

    from autoopt_lab.experiments.executors import bounded_unordered
    from autoopt_lab.experiments.store import ResultsStore

    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    given = data
    data = board_data(plan, given)  # a missing data set fails here, before the store exists
    store = ResultsStore(store) if isinstance(store, str | Path) else store
    dev = resolve_device(device)
    fps = {name: data_fingerprint(d[0], d[1]) for name, d in data.items()}
    done = store.done_ids()
    todo = []
    for c in plan.cells():
        sc = plan.scenario(c[0], c[2])
        if cell_id(plan, sc, c[1], fps[sc.dataset], dev) not in done:
            todo.append(c)
    report = {"cells": len(plan.cells()), "done_before": len(plan.cells()) - len(todo),
              "ran": 0, "failed": 0, "stopped": False, "workers": workers}
    t0 = time.perf_counter()
    bar = tqdm(total=len(todo), desc="leaderboard", disable=None if progress else True)

    def record(cell: tuple[str, str, int], ok: bool, result: Any) -> None:
        report["ran" if ok else "failed"] += 1
        if ok:
            logger.info("%s %s seed %d: prequential error %s (%s)", *cell,
                        result["prequential_error"], result["health"])
        bar.update(1)
        bar.set_postfix_str(f"{cell[0]} {cell[1]} seed {cell[2]}")

    def stopping() -> bool:
        if should_stop is not None and should_stop():
            report["stopped"] = True
        return bool(report["stopped"])

    if workers == 1:
        for cell in todo:
            if stopping():
                break
            record(cell, *_guarded_cell(plan, cell, store, data, dev))
    else:
        def until_stopped() -> Iterator[tuple[str, str, int]]:
            for cell in todo:
                if stopping():
                    return
                yield cell

        ctx = multiprocessing.get_context("spawn")
        with cf.ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                                    initargs=(str(store.path), str(dev), 1, plan, given)) as pool:
            # the sweep's scheduler: at most ``workers`` cells in flight, results as they end
            for cell, ok, result in bounded_unordered(pool, _work, until_stopped(), workers, plan):
                record(cell, ok, result)
    bar.close()
    report["wall_time_s"] = time.perf_counter() - t0
    return report


def leaderboard_frame(store: Any, plan: LeaderboardPlan | None = None) -> pd.DataFrame:
    """One row per finished cell (of ``plan`` when given)."""
    from autoopt_lab.experiments.store import ResultsStore

    store = ResultsStore(store) if isinstance(store, str | Path) else store
    runs = store.runs()
    if not len(runs) or "sweep" not in runs:
        return pd.DataFrame()
    df = runs[runs["sweep"] == CELL_SWEEP].copy()
    if df.empty:
        return pd.DataFrame()
    if plan is not None:
        df = df[df["scenario"].isin(plan.scenarios) & df["optimizer"].isin(plan.optimizers)
                & df["seed"].isin(plan.seeds) & (df["steps_scale"] == plan.steps_scale)]
    return df.reset_index(drop=True)


def leaderboard_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per scenario and optimizer: mean prequential error, 95% interval, seeds, median
    recovery over every readable shift of every seed, flagged seeds, rank in the scenario."""
    if frame.empty:
        return pd.DataFrame()
    rows = []
    for (sc, opt), part in frame.groupby(["scenario", "optimizer"], sort=False):
        err = mean_ci(part["prequential_error"])
        times = []
        for rec, st in zip(part["recovery_steps"], part["shift_status"], strict=True):
            times += [t for t, s in zip(rec, st, strict=True) if s in READABLE]
        flags = sorted({f for fl in part["flags"] for f in fl})
        rows.append({"scenario": sc, "optimizer": opt, "family": part["family"].iloc[0],
                     "prequential_error": err["mean"], "ci": err["ci"], "seeds": len(part),
                     "median_recovery": median_recovery(times), "recovery_times": times,
                     "flagged_seeds": int((part["health"] != "ok").sum()),
                     "flags": ", ".join(flags)})
    table = pd.DataFrame(rows)
    if len(table):
        table["rank"] = table.groupby("scenario")["prequential_error"].rank(method="min")
    return table


def goal_check(table: pd.DataFrame) -> dict[str, Any]:
    """The issue's target, as measured: per scenario the best Auto optimizer against the
    best tuning-free peer (and the best tuned baseline), and the two overall-best optimizers'
    median recovery."""
    out: dict[str, Any] = {"scenarios": {}}
    best_of: dict[str, str] = {}
    for fam in FAMILIES:
        part = table[table["family"] == fam]
        if len(part):
            best_of[fam] = part.groupby("optimizer")["prequential_error"].mean().idxmin()
    wins = 0
    for sc, part in table.groupby("scenario", sort=False):
        row: dict[str, Any] = {}
        for fam in FAMILIES:
            p = part[part["family"] == fam].dropna(subset=["prequential_error"])
            if len(p):
                b = p.loc[p["prequential_error"].idxmin()]
                row[fam] = {"optimizer": b["optimizer"], "error": b["prequential_error"],
                            "median_recovery": b["median_recovery"]}
        if "auto" in row and "peer" in row:
            row["auto_beats_peer"] = bool(row["auto"]["error"] < row["peer"]["error"])
            wins += row["auto_beats_peer"]
        out["scenarios"][sc] = row
    out["auto_beats_peer_on"] = wins
    out["of"] = len(out["scenarios"])
    out["best_overall"] = best_of
    for fam, opt in best_of.items():
        times = [t for ts in table.loc[table["optimizer"] == opt, "recovery_times"] for t in ts]
        out[f"{fam}_median_recovery"] = median_recovery(times)
    return out


def leaderboard_markdown(frame: pd.DataFrame, table: pd.DataFrame) -> str:
    """Scenario x optimizer Markdown with intervals and paired separation marks
    (:func:`~autoopt_lab.streams.table.comparison_table`)."""
    rows = []
    for sc, part in table.groupby("scenario", sort=False):
        cells = frame[frame["scenario"] == sc]
        by_seed = {o: dict(zip(f["seed"], f["prequential_error"], strict=True))
                   for o, f in cells.groupby("optimizer")}
        valid = part.dropna(subset=["prequential_error"])
        best = valid.loc[valid["prequential_error"].idxmin(), "optimizer"] if len(valid) else None
        for _, r in part.iterrows():
            d = (paired_difference(by_seed[r["optimizer"]], by_seed[best])
                 if best is not None and r["optimizer"] != best else None)
            rows.append({"scenario": sc, "optimizer": r["optimizer"], "family": r["family"],
                         "prequential_error": r["prequential_error"], "ci": r["ci"],
                         "best": r["optimizer"] == best,
                         "separated_from_best": None if d is None else d["separated"],
                         "flags": r["flags"]})
    return comparison_table(rows)


def write_outputs(plan: LeaderboardPlan, frame: pd.DataFrame, out: str | Path,
                  report: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write ``leaderboard.png`` (the heatmaps), ``leaderboard.md`` (intervals and paired
    marks) and ``leaderboard.json`` (plan, cells, goal check) into ``out``; returns the JSON."""
    from .plot import plot_leaderboard

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    table = leaderboard_table(frame)
    if not len(table):
        failed = (report or {}).get("failed")
        raise ValueError("no finished leaderboard cells to show; "
                         + (f"{failed} failed (their errors are in the store)" if failed
                            else "run them first"))
    plot_leaderboard(table, path=out / "leaderboard.png")
    md = leaderboard_markdown(frame, table)
    (out / "leaderboard.md").write_text(md + "\n")
    record = {"plan": plan.to_dict(), "report": report or {},
              "cells_done": int(len(frame)), "cells_planned": len(plan.cells()),
              "table": table.drop(columns=["recovery_times"]).to_dict("records"),
              "goal": goal_check(table), "png": "leaderboard.png", "markdown": md}
    (out / "leaderboard.json").write_text(json.dumps(record, indent=1, default=str))
    return record
