"""What a run produced: the result vocabulary every engine and executor speaks.

:class:`RunResult` (config, metrics record, step trace) and :class:`RunOutcome` (a result or
the error a run raised); :func:`run_metrics` builds the metrics record (the run's row in the
results store, health flags included) and :func:`trace_frame` the per-step trace.

>>> trace_frame([]).columns.tolist()
['step', 'epoch', 'loss', 'loss_window_mean']
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd
import torch

from autoopt_lab import health

if TYPE_CHECKING:  # pragma: no cover
    from .config import RunConfig

__all__ = ["MAX_TRACE_ROWS", "RunOutcome", "RunResult", "run_metrics", "trace_frame"]

MAX_TRACE_ROWS = 2000


@dataclass
class RunResult:
    """What a run produced: its config, scalar and per-epoch metrics, and the step trace."""

    config: RunConfig
    metrics: dict[str, Any]
    trace: pd.DataFrame = field(repr=False)

    @property
    def run_id(self) -> str:
        return self.config.run_id()


@dataclass
class RunOutcome:
    """A finished run: its result, or the error (a traceback) it raised."""

    config: RunConfig
    result: RunResult | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def run_metrics(
    per_epoch: dict[str, list[float]],
    *,
    diverged: bool,
    nonfinite_skips: int = 0,
    steps: int,
    trace_every: int,
    wall_time_s: float,
    device: Any,
    train_info: Any,
    test_info: Any,
    n_train: int,
    n_test: int,
    versions: dict[str, str],
) -> dict[str, Any]:
    """The metrics record of one run (its row in the results store).

    Health flags (:mod:`autoopt_lab.health`): ``diverged`` (the loss became non-finite or
    exceeded ``DIVERGED_LOSS``), ``nonfinite_skips`` (steps an Auto optimizer skipped for
    non-finite gradients) and ``at_chance`` (final test error within ``CHANCE_MARGIN_PCT``
    points of chance).
    """
    chance = health.chance_error_pct(train_info.num_classes)
    final_test = per_epoch["test_err_pct"][-1]
    return {
        "final_train_err_pct": per_epoch["train_err_pct"][-1],
        "final_test_err_pct": per_epoch["test_err_pct"][-1],
        "train_err_pct_per_epoch": per_epoch["train_err_pct"],
        "test_err_pct_per_epoch": per_epoch["test_err_pct"],
        "train_loss_per_epoch": per_epoch["train_loss"],
        "test_loss_per_epoch": per_epoch["test_loss"],
        "epochs_completed": len(per_epoch["train_err_pct"]),
        "diverged": diverged,
        "nonfinite_skips": int(nonfinite_skips),
        "chance_err_pct": chance,
        "at_chance": bool(health.error_at_chance(final_test, chance)),
        "steps": steps,
        "trace_every": trace_every,
        "wall_time_s": wall_time_s,
        "device_used": str(device),
        "train_samples": n_train,
        "test_samples": n_test,
        "train_data": train_info.to_dict(),
        "test_data": test_info.to_dict(),
        "data_source": train_info.source,
        "data_is_subset": bool(train_info.is_subset or n_train < train_info.num_samples),
        "versions": versions,
    }


def trace_frame(rows: list) -> pd.DataFrame:
    """Rows -> a wide frame: step, epoch, loss, loss_window_mean, lr/<tensor>, momentum/<tensor>."""
    if not rows:
        return pd.DataFrame(columns=["step", "epoch", "loss", "loss_window_mean"])
    names = list(rows[0][4])
    losses = torch.stack([torch.stack([r[2].float(), r[3].float()]) for r in rows]).cpu()
    hps = torch.stack(
        [torch.stack([r[4][n].float().reshape(2) for n in names]) for r in rows]
    ).cpu()
    data: dict[str, Any] = {
        "step": [r[0] for r in rows],
        "epoch": [r[1] for r in rows],
        "loss": losses[:, 0].numpy(),
        "loss_window_mean": losses[:, 1].numpy(),
    }
    for j, n in enumerate(names):
        data[f"lr/{n}"] = hps[:, j, 0].numpy()
        data[f"momentum/{n}"] = hps[:, j, 1].numpy()
    return pd.DataFrame(data)
