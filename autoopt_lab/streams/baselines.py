"""Fixed-hyper-parameter baselines tuned on the first segment only.

A practitioner tunes on the data they have before the stream starts to drift, so each baseline
(SGD, Adam, AdaGrad) runs a small grid on the scenario's *first segment* (same seed, same
batches) and keeps the setting with the lowest prequential error there. The chosen setting
then runs unchanged on the whole stream.

Grids (``"full"``): SGD lr in {10^-3, 10^-2.5, 10^-2, 10^-1.5, 10^-1} x momentum {0, 0.9};
Adam and AdaGrad lr in five half-decades (Adam 10^-4 .. 10^-2, AdaGrad 10^-3 .. 10^-1).
``"quick"`` keeps three lrs around the paper's best values (SGD x momentum {0, 0.9}).

>>> [g["lr"] for g in GRIDS["quick"]["adam"]]
[0.0003, 0.001, 0.003]
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from .optimizers import BASELINES
from .scenario import Scenario

__all__ = ["GRIDS", "first_segment", "tune_baseline"]

logger = logging.getLogger(__name__)


def _half_decades(lo: float, hi: float) -> list[float]:
    out, e = [], lo
    while e <= hi + 1e-9:
        out.append(round(10.0**e, 6))
        e += 0.5
    return out


GRIDS: dict[str, dict[str, list[dict[str, float]]]] = {
    "full": {
        "sgd": [{"lr": lr, "momentum": m} for m in (0.0, 0.9) for lr in _half_decades(-3, -1)],
        "adam": [{"lr": lr} for lr in _half_decades(-4, -2)],
        "adagrad": [{"lr": lr} for lr in _half_decades(-3, -1)],
    },
    "quick": {
        "sgd": [{"lr": lr, "momentum": m} for m in (0.0, 0.9) for lr in (0.01, 0.03, 0.1)],
        "adam": [{"lr": lr} for lr in (0.0003, 0.001, 0.003)],
        "adagrad": [{"lr": lr} for lr in (0.01, 0.03, 0.1)],
    },
}


def first_segment(scenario: Scenario) -> Scenario:
    """The scenario cut to its first segment (what the baselines are tuned on)."""
    return replace(scenario, segments=scenario.segments[:1])


def _cache_key(scenario: Scenario, name: str, grid: list[dict[str, float]]) -> str:
    seg = scenario.segments[0]  # its name does not matter, only what it draws
    return json.dumps([scenario.dataset, scenario.model, scenario.seed, seg.steps,
                       seg.batch_size, repr(seg.shifts), scenario.metrics.window, name, grid],
                      sort_keys=True)


def tune_baseline(scenario: Scenario, name: str, *, grid: str | list[dict[str, float]] = "full",
                  data: tuple[torch.Tensor, torch.Tensor, Any] | None = None,
                  device: torch.device | str | None = None,
                  cache: str | Path | None = None, progress: bool = False) -> dict[str, Any]:
    """Grid-search baseline ``name`` on the first segment; returns ``{"best", "grid"}``.

    ``grid`` is ``"full"``, ``"quick"`` or an explicit list of hyper-parameter dicts. With
    ``cache`` (a JSON file), results are reused across scenarios sharing the same first segment.
    """
    from .run import StreamRun

    if name not in BASELINES:
        raise ValueError(f"only baselines are tuned; got {name!r}, allowed: {', '.join(BASELINES)}")
    if isinstance(grid, str):
        if grid not in GRIDS:
            raise ValueError(f"unknown grid {grid!r}; allowed: {', '.join(GRIDS)}")
        grid = GRIDS[grid][name]
    key = _cache_key(scenario, name, grid)
    store: dict[str, Any] = {}
    if cache is not None and Path(cache).is_file():
        store = json.loads(Path(cache).read_text())
        if key in store:
            logger.info("tuning of %s on %s's first segment: from cache", name, scenario.name)
            return store[key]
    sc1 = first_segment(scenario)
    rows = []
    for hp in grid:
        run = StreamRun(sc1, name, hparams=hp, device=device, data=data)
        run.run(progress=progress)
        err = run.summary()["prequential_error"]
        err = 1.0 if err is None else err
        rows.append({"hparams": hp, "prequential_error": err})
        logger.info("tune %s %s on %s[0]: prequential error %.4f", name, hp, scenario.name, err)
    best = min(rows, key=lambda r: r["prequential_error"])
    result = {"best": best["hparams"], "grid": rows, "tuned_on_steps": sc1.total_steps}
    if cache is not None:
        store[key] = result
        Path(cache).parent.mkdir(parents=True, exist_ok=True)
        Path(cache).write_text(json.dumps(store, indent=1))
    return result
