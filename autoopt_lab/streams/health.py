"""Is a stream run fit to be read? Divergence, skipped steps and chance-level accuracy.

A run whose loss exploded, whose optimizer skipped steps on non-finite gradients, or whose
model never beat guessing has no meaningful recovery time: a model at chance "recovers" in
zero steps because it never had anything to lose. :func:`run_health` finds these cases in
a trace so the report can withhold recovery times and every summary, table and plot can say
why.

Definitions (:mod:`autoopt_lab.health`, shared with the experiments; also in
``streams/README.md``):

* **diverged** from the first step whose prequential loss is non-finite or above
  :data:`DIVERGED_LOSS`;
* **skipped steps** in a segment when the Auto optimizer's ``nonfinite_skips`` counter
  (trace column) rose there;
* **at chance** for a segment when the accuracy over its second half is at most
  :data:`CHANCE_MARGIN` above the chance level, which is the most frequent class's share
  of that segment's condition (a prior shift raises it); for a whole run when its
  prequential accuracy over the whole stream is (it never learned). A shift whose previous
  segment ended at chance has no recovery time to read (nothing was lost); one whose own
  segment stays at chance after a model had learned simply did not recover.

>>> import pandas as pd
>>> from autoopt_lab.streams.scenario import parse_scenario
>>> sc = parse_scenario('name="t"\\ndataset="mnist"\\nmodel="m"\\nseed=0\\nbatch_size=2\\n'
...     '[[segments]]\\nname="a"\\nsteps=4\\n[[segments]]\\nname="b"\\nsteps=4\\n')
>>> df = pd.DataFrame({"step": range(8), "segment": [0] * 4 + [1] * 4, "batch_size": 2,
...                    "loss": [2.3, 1.0, 0.5, 0.4, 9e25, float("nan"), 2.3, 2.3],
...                    "accuracy": [0.1, 0.5, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0]})
>>> h = run_health(df, sc)
>>> h["status"], h["diverged_at"], h["segments"][1]["flags"]
('diverged', 4, ['diverged', 'at chance'])
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from autoopt_lab.health import (
    CHANCE_MARGIN,
    DIVERGED_LOSS,
    FLAGS,
    at_chance,
    chance_accuracy,
    diverged_mask,
    flag_list,
)

from .sampler import build_plan
from .scenario import Scenario

__all__ = ["CHANCE_MARGIN", "DIVERGED_LOSS", "FLAGS", "chance_levels", "run_health"]


def chance_levels(scenario: Scenario, base_probs: tuple[float, ...] | None = None) -> list[float]:
    """Per segment, the accuracy of always guessing its most frequent class."""
    k = scenario.num_classes
    base = tuple(base_probs) if base_probs is not None else tuple([1.0 / k] * k)
    plan = build_plan(scenario, base)
    out, start = [], 0
    for seg in scenario.segments:
        cond = plan[start + seg.steps - 1].new
        probs = cond.proportions if cond.proportions is not None else base
        out.append(chance_accuracy(probs))
        start += seg.steps
    return out


def _accuracy(df: pd.DataFrame) -> float:
    n = df["batch_size"].to_numpy(dtype=float)
    if not n.sum():
        return math.nan
    return float((df["accuracy"].to_numpy(dtype=float) * n).sum() / n.sum())


def run_health(df: pd.DataFrame, scenario: Scenario,
               base_probs: tuple[float, ...] | None = None) -> dict[str, Any]:
    """Run-level and per-segment flags of a trace (``step, segment, batch_size, loss,
    accuracy``, optionally ``nonfinite_skips``, cumulative)."""
    steps = df["step"].to_numpy()
    loss = df["loss"].to_numpy(dtype=float)
    bad = diverged_mask(loss)
    diverged_at = int(steps[np.argmax(bad)]) if bad.any() else None
    skips = (df["nonfinite_skips"].to_numpy(dtype=float) if "nonfinite_skips" in df
             else np.zeros(len(df)))
    skips = np.nan_to_num(skips, nan=0.0)
    chance = chance_levels(scenario, base_probs)
    segments = []
    start = 0
    prev_skips = 0.0
    for i, seg in enumerate(scenario.segments):
        end = start + seg.steps
        sel = (steps >= start) & (steps < end)
        part = df[sel]
        seg_skips = int(skips[sel].max() - prev_skips) if sel.any() else 0
        if sel.any():
            prev_skips = float(skips[sel].max())
        half = part[part["step"] >= start + seg.steps // 2]
        acc = _accuracy(half) if len(half) else math.nan
        flags = flag_list(diverged=diverged_at is not None and diverged_at < end and sel.any(),
                          skipped=seg_skips > 0,
                          chance=bool(len(half)) and at_chance(acc, chance[i], CHANCE_MARGIN))
        segments.append({"index": i, "name": seg.name, "chance_accuracy": chance[i],
                         "late_accuracy": None if math.isnan(acc) else acc,
                         "nonfinite_skips": seg_skips, "flags": flags})
        start = end
    whole_chance = (float(np.average([chance[s] for s in df["segment"]],
                                     weights=df["batch_size"])) if len(df) else math.nan)
    whole_acc = _accuracy(df) if len(df) else math.nan
    n_skips = int(skips.max()) if len(skips) else 0
    flags = flag_list(diverged=diverged_at is not None, skipped=bool(n_skips),
                      chance=bool(len(df)) and at_chance(whole_acc, whole_chance, CHANCE_MARGIN))
    finite = loss[np.isfinite(loss)]
    return {
        "status": flags[0] if flags else "ok",
        "flags": flags,
        "diverged_at": diverged_at,
        "nonfinite_skips": n_skips,
        "max_loss": float(finite.max()) if finite.size else None,
        "accuracy": None if math.isnan(whole_acc) else whole_acc,
        "chance_accuracy": None if math.isnan(whole_chance) else whole_chance,
        "segments": segments,
    }
