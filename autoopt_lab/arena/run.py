"""Run the arena: the sweep (resumable, through the results store), the table, the targets,
the step-time ratios, the figure and a JSON summary.

>>> import tempfile
>>> from autoopt_lab.arena.plan import get_preset
>>> plan = get_preset("quick", max_train_samples=256, max_test_samples=128, epochs=1,
...                   seeds=(0,), batch_sizes=(64,), auto=("autosgd",), peers=())
>>> result = run_arena(plan, tempfile.mkdtemp(), workers=1, timing=False, progress=False)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from autoopt_lab.experiments import ResultsStore, library_versions, run_sweep

from .plan import ArenaPlan
from .table import arena_table, collect, gaps, to_markdown
from .timing import step_time_ratios

logger = logging.getLogger(__name__)

#: The issue's targets for each Auto optimizer's default: within this many points of its
#: tuned grid's best and of the best tuning-free peer, at every batch size.
TARGET_GAP_PTS = 0.5
DEFAULT_AUTOS = ("autosgd", "autoadam", "autoadagrad")


@dataclass
class ArenaResult:
    """What :func:`run_arena` produced (also written to ``out``)."""

    plan: ArenaPlan
    runs: pd.DataFrame
    table: pd.DataFrame
    gaps: pd.DataFrame
    targets: list[dict[str, Any]]
    step_ratios: dict[str, float]
    out: Path


def check_targets(table: pd.DataFrame, gap: pd.DataFrame) -> list[dict[str, Any]]:
    """One row per (Auto default, batch size): the gaps, the diverged count, whether the lr
    still moves, and whether each target is met."""
    rows = []
    for rec in gap[gap["contender"].isin(DEFAULT_AUTOS)].itertuples():
        line = table[(table["batch_size"] == rec.batch_size) & (table["contender"] == rec.contender)]
        div = int(line["diverged"].iloc[0]) if len(line) else 0
        moves = bool(line["lr_moves"].iloc[0]) if "lr_moves" in line and len(line) else None
        to_tuned = getattr(rec, "gap_to_tuned", math.nan)
        to_peer = getattr(rec, "gap_to_best_peer", math.nan)
        rows.append(
            {
                "optimizer": rec.contender,
                "batch_size": int(rec.batch_size),
                "test_mean": float(rec.test_mean),
                "gap_to_tuned": float(to_tuned),
                "gap_to_best_peer": float(to_peer),
                "best_peer": getattr(rec, "best_peer", None),
                "diverged": div,
                "lr_moves": moves,
                "within_tuned": bool(to_tuned <= TARGET_GAP_PTS) if not math.isnan(to_tuned)
                else None,
                "within_peer": bool(to_peer <= TARGET_GAP_PTS) if not math.isnan(to_peer) else None,
            }
        )
    return rows


def run_arena(
    plan: ArenaPlan,
    out: str | Path,
    *,
    store: str | Path | None = None,
    executor: str = "vectorized",
    workers: int | None = None,
    data_root: str | None = None,
    timing: bool = True,
    progress: bool = True,
) -> ArenaResult:
    """Run every missing run of ``plan`` into ``store`` (default ``out/arena.sqlite``) and
    write ``arena_table.md``, ``arena_table.csv``, ``arena.json`` and ``arena.png`` to ``out``.

    Killed and restarted, it redoes no finished run. ``timing`` measures each contender's
    step time against plain SGD at the plan's batch sizes (interleaved rounds).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results = ResultsStore(store or out / "arena.sqlite")
    t0 = time.perf_counter()
    report = run_sweep(
        plan.configs(), results, executor=executor, workers=workers,
        sweep_name=f"arena-{plan.name}", data_root=data_root, progress=progress,
    )
    sweep_s = time.perf_counter() - t0
    ratios: dict[str, float] = {}
    if timing:
        specs = [c.key if not c.is_grid else f"{c.optimizer}:lr=0.01" for c in plan.contenders()]
        n = 128 if 128 in plan.batch_sizes else plan.batch_sizes[0]
        from autoopt_lab.models import model_name_for

        measured = step_time_ratios(
            specs, model_name=model_name_for(plan.dataset), batch_size=n, device="cpu"
        )
        ratios = {c.key: measured[s] for c, s in zip(plan.contenders(), specs, strict=True)}
    table = arena_table(plan, results, ratios)
    runs = collect(plan, results)
    gap = gaps(table) if not table.empty else pd.DataFrame()
    targets = check_targets(table, gap) if not gap.empty else []
    (out / "arena_table.md").write_text(to_markdown(table) + "\n" if not table.empty else "")
    table.to_csv(out / "arena_table.csv", index=False)
    summary = {
        "plan": plan.to_dict(),
        "sweep": report.to_dict(),
        "sweep_wall_time_s": sweep_s,
        "runs_finished": int(len(runs)),
        "runs_planned": len(plan.configs()),
        "targets": targets,
        "target_gap_pts": TARGET_GAP_PTS,
        "step_time_ratio_to_sgd": ratios,
        "table": json.loads(table.to_json(orient="records")) if not table.empty else [],
        "gaps": json.loads(gap.to_json(orient="records")) if not gap.empty else [],
        "versions": library_versions(),
    }
    (out / "arena.json").write_text(json.dumps(summary, indent=2, default=str))
    if not table.empty:
        from .figure import plot_arena

        fig = plot_arena(runs, table, plan)
        fig.savefig(out / "arena.png", dpi=110)
        import matplotlib.pyplot as plt

        plt.close(fig)
    logger.info("arena %s: %d/%d runs, table in %s", plan.name, len(runs), len(plan.configs()), out)
    return ArenaResult(plan, runs, table, gap, targets, ratios, out)
