"""Run several optimizers on one scenario and write the trace, summary and figures.

``run_scenario`` is what ``autoopt-lab stream`` and the notebook call: baselines are first
tuned on the scenario's first segment (see :mod:`autoopt_lab.streams.baselines`), then every
optimizer runs the same stream (same seed, same batches). Outputs in ``out``:

* ``trace.parquet`` — one row per optimizer and step (long format, column ``optimizer``);
* ``summary.json`` — per optimizer the per-shift report, the tuned hyper-parameters and the
  harness cost;
* ``<optimizer>.png`` per optimizer and ``comparison.png``.

>>> trace, summary = run_scenario(find_scenario("fmnist-batch-size").scaled(0.1),
...                               ["autosgd", "sgd"], out="results/demo")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from .baselines import tune_baseline
from .optimizers import BASELINES, OPTIMIZERS
from .plot import plot_comparison, plot_run
from .run import StreamRun
from .scenario import Scenario

__all__ = ["parse_optimizers", "run_scenario"]

logger = logging.getLogger(__name__)


def parse_optimizers(text: str | Sequence[str]) -> list[str]:
    """``"autosgd,sgd"`` -> ``["autosgd", "sgd"]``, validated.

    >>> parse_optimizers("autosgd, SGD")
    ['autosgd', 'sgd']
    """
    names = [s.strip().lower() for s in (text.split(",") if isinstance(text, str) else text)]
    names = [n for n in names if n]
    bad = [n for n in names if n not in OPTIMIZERS]
    if bad or not names:
        raise ValueError(f"unknown optimizer(s) {bad or names}; allowed: {', '.join(OPTIMIZERS)}")
    return list(dict.fromkeys(names))


def _run_one(scenario: Scenario, name: str, hparams: dict[str, Any], *, data: Any, device: Any,
             out: Path | None, checkpoint_every: int | None, progress: bool) -> StreamRun:
    ckpt = out / f"{name}.ckpt" if (out is not None and checkpoint_every) else None
    if ckpt is not None and ckpt.is_file():
        run = StreamRun.from_checkpoint(ckpt, device=device, data=data)
        logger.info("%s: resumed from %s at step %d", name, ckpt, run.position)
    else:
        run = StreamRun(scenario, name, hparams=hparams, device=device, data=data)
    while not run.done:
        n = checkpoint_every or run.total_steps
        run.run(n, progress=progress)
        if ckpt is not None:
            run.save_checkpoint(ckpt)
    return run


def run_scenario(scenario: Scenario, optimizers: Sequence[str], *,
                 out: str | Path | None = None, device: torch.device | str | None = None,
                 data: tuple[torch.Tensor, torch.Tensor, Any] | None = None,
                 grid: str = "full", tuning_cache: str | Path | None = None,
                 baseline_hparams: dict[str, dict[str, float]] | None = None,
                 auto_hparams: dict[str, Any] | None = None,
                 checkpoint_every: int | None = None,
                 progress: bool = True) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Run ``optimizers`` on ``scenario``; returns ``(trace, summary)`` and writes them to ``out``.

    Baselines use ``baseline_hparams[name]`` when given, else are tuned on the first segment
    with ``grid``. ``auto_hparams`` are keyword options for every Auto optimizer (``ewma``,
    ``gamma0``, ...). With ``checkpoint_every`` each run saves ``<out>/<name>.ckpt`` that often
    and a rerun resumes from it.
    """
    optimizers = parse_optimizers(optimizers)
    if data is None:
        from autoopt_lab.data import load_arrays

        data = load_arrays(scenario.dataset, train=True)
    outp = Path(out) if out is not None else None
    if outp is not None:
        outp.mkdir(parents=True, exist_ok=True)
        if tuning_cache is None:
            tuning_cache = outp / "tuning.json"
    traces, summary = [], {"scenario": scenario.name, "source": scenario.source,
                           "description": scenario.description,
                           "total_steps": scenario.total_steps,
                           "data": getattr(data[2], "to_dict", lambda: {})(),
                           "optimizers": {}}
    for name in optimizers:
        tuning = None
        hp: dict[str, Any] = {}
        if name not in BASELINES:
            hp = dict(auto_hparams or {})
        else:
            if baseline_hparams and name in baseline_hparams:
                hp = dict(baseline_hparams[name])
            else:
                tuning = tune_baseline(scenario, name, grid=grid, data=data, device=device,
                                       cache=tuning_cache)
                hp = dict(tuning["best"])
        run = _run_one(scenario, name, hp, data=data, device=device, out=outp,
                       checkpoint_every=checkpoint_every, progress=progress)
        trace = run.trace()
        if name in BASELINES:
            trace["hp_lr"] = hp["lr"]
            trace["hp_momentum"] = hp.get("momentum", float("nan"))
        s = run.summary()
        if tuning is not None:
            s["tuning"] = tuning
        summary["optimizers"][name] = s
        traces.append(trace)
        if outp is not None:
            plot_run(trace, scenario, path=outp / f"{name}.png", hparams=hp or None)
        run.close()
        logger.info("%s on %s: prequential error %.4f, harness/train %.3f", name, scenario.name,
                    s["prequential_error"] or float("nan"), s["timing"]["harness_over_train"])
    full = pd.concat(traces, ignore_index=True)
    if outp is not None:
        full.to_parquet(outp / "trace.parquet", index=False)
        (outp / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
        plot_comparison(full, scenario, path=outp / "comparison.png")
    return full, summary
