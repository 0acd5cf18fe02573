"""Several seeds of one optimizer on one scenario: means, 95% intervals and paired comparisons.

Intervals are Student-t intervals over seeds (``mean +- t_{0.975, n-1} * sd / sqrt(n)``);
one seed has none. Recovery times are averaged over the seeds in which the shift was
readable and recovered (``recovered``/``no drop``); the share of such seeds is reported
beside it, and :func:`median_recovery` counts a readable shift that never recovered as
infinitely slow (so the median is defined while fewer than half did not recover). Two
optimizers run on the same seeds see the same streams, so :func:`paired_difference` compares
them per seed: the interval of the mean difference separates them when it excludes 0.

>>> m = mean_ci([0.30, 0.32, 0.31])
>>> round(m["mean"], 3), [round(v, 3) for v in m["ci"]]
(0.31, [0.285, 0.335])
>>> paired_difference({0: 0.30, 1: 0.32, 2: 0.31}, {0: 0.35, 1: 0.36, 2: 0.37})["separated"]
True
>>> median_recovery([10, 30, None, 20])  # None: not recovered
25.0
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats

from .health import FLAGS

__all__ = ["aggregate_seeds", "mean_ci", "median_recovery", "paired_difference"]

#: Shift statuses whose recovery time can be read.
READABLE = ("recovered", "no drop", "not recovered")


def mean_ci(values: Iterable[float | None], level: float = 0.95) -> dict[str, Any]:
    """Mean, ``level`` t-interval and count of the finite values (``None`` are skipped)."""
    v = np.array([x for x in values if x is not None and math.isfinite(x)], dtype=float)
    if v.size == 0:
        return {"mean": None, "ci": None, "n": 0}
    mean = float(v.mean())
    if v.size < 2:
        return {"mean": mean, "ci": None, "n": 1}
    half = float(stats.t.ppf(0.5 + level / 2, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size))
    return {"mean": mean, "ci": [mean - half, mean + half], "n": int(v.size)}


def paired_difference(a: Mapping[Any, float | None], b: Mapping[Any, float | None],
                      level: float = 0.95) -> dict[str, Any]:
    """Mean of ``a - b`` over the seeds both have, its interval, and whether it excludes 0
    (``None`` with fewer than two common seeds: nothing can be said)."""
    common = [k for k in a if k in b and a[k] is not None and b[k] is not None]
    diff = mean_ci([a[k] - b[k] for k in common], level)  # type: ignore[operator]
    ci = diff["ci"]
    diff["separated"] = None if ci is None else bool(ci[0] > 0 or ci[1] < 0)
    return diff


def median_recovery(times: Sequence[int | float | None]) -> float | None:
    """Median of readable recovery times, ``None`` (not recovered) counting as infinite."""
    if not times:
        return None
    v = np.array([math.inf if t is None else float(t) for t in times])
    med = float(np.median(v))
    return med if math.isfinite(med) else None


def _mean_dict(dicts: list[dict[str, Any] | None]) -> dict[str, Any] | None:
    dicts = [d for d in dicts if d]
    if not dicts:
        return None
    return {k: mean_ci(d.get(k) for d in dicts)["mean"] for k in dicts[0]}


def _aggregate_shift(entries: list[dict[str, Any]]) -> dict[str, Any]:
    first = entries[0]
    statuses = [e.get("status", "recovered" if e["recovered"] else "not recovered")
                for e in entries]
    readable = [e for e, s in zip(entries, statuses, strict=True) if s in READABLE]
    times = [e["recovery_steps"] for e in readable]
    rec = mean_ci(t for t in times if t is not None)
    delays: dict[str, Any] = {}
    delay_ci: dict[str, Any] = {}
    detected: dict[str, str] = {}
    for det in first["detection_delay"]:
        vals = [e["detection_delay"].get(det) for e in entries]
        m = mean_ci(v for v in vals if v is not None)
        delays[det], delay_ci[det] = m["mean"], m["ci"]
        detected[det] = f"{sum(v is not None for v in vals)}/{len(vals)}"
    seg = mean_ci(e["prequential_error"] for e in entries)
    return {
        **{k: first[k] for k in ("segment", "name", "step", "transition", "width",
                                 "recurring_to", "condition") if k in first},
        "recovery_steps": rec["mean"],
        "recovery_ci": rec["ci"],
        "recovery_median": median_recovery(times),
        "recovered": f"{sum(t is not None for t in times)}/{len(entries)}",
        "readable": f"{len(readable)}/{len(entries)}",
        "recovery_by_seed": [e["recovery_steps"] for e in entries],
        "status_by_seed": statuses,
        "detection_delay": delays,
        "detection_delay_ci": delay_ci,
        "detected": detected,
        "prequential_error": seg["mean"],
        "prequential_error_ci": seg["ci"],
        "lr": _mean_dict([e.get("lr") for e in entries]),
        "momentum": _mean_dict([e.get("momentum") for e in entries]),
    }


def aggregate_seeds(runs: Mapping[int, dict[str, Any]]) -> dict[str, Any]:
    """One optimizer's per-seed summaries (``{seed: StreamRun.summary()}``) in one entry."""
    seeds = sorted(runs)
    summaries = [runs[s] for s in seeds]
    err = mean_ci(s["prequential_error"] for s in summaries)
    seen = {f for s in summaries for f in s["health"]["flags"]}
    flags = [f for f in FLAGS if f in seen]
    statuses = {str(seed): s["health"]["status"] for seed, s in zip(seeds, summaries,
                                                                      strict=True)}
    n_shifts = len(summaries[0]["shifts"])
    timing = {k: float(sum(s["timing"][k] for s in summaries)) for k in summaries[0]["timing"]}
    timing["harness_over_train"] = ((timing["data"] + timing["monitor"])
                                    / max(timing["train"], 1e-12))
    return {
        "seeds": seeds,
        "prequential_error": err["mean"],
        "prequential_error_ci": err["ci"],
        "prequential_error_by_seed": {str(k): s["prequential_error"]
                                      for k, s in zip(seeds, summaries, strict=True)},
        "health": {"status": flags[0] if flags else "ok", "flags": flags,
                   "by_seed": statuses,
                   "flagged_seeds": sum(v != "ok" for v in statuses.values())},
        "shifts": [_aggregate_shift([s["shifts"][i] for s in summaries])
                   for i in range(n_shifts)],
        "timing": timing,
    }
