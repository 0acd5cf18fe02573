"""Per-shift report of a stream trace: detection delay, recovery time, prequential error.

Definitions (also in ``streams/README.md``):

* **shift** — the first step ``s`` of every segment after the first.
* **detection delay** of a detector — ``t - s`` for its first detection ``t`` in
  ``[s, end of the segment)``; ``None`` when it never fires there.
* **pre-shift level** — the rolling accuracy at step ``s - 1``.
* **recovery time** — the rolling accuracy first drops below ``pre - margin`` at some step
  after ``s``; recovery is the number of steps from ``s`` until it is back at or above
  ``pre - margin``. ``0`` when it never drops (no visible impact); ``None`` ("not recovered")
  when it is still below at the end of the segment.
* **prequential error** of a segment — the fraction of its samples misclassified by the model
  *before* it trained on them.
* **false alarms** — detections in the first segment after the warm-up.
* **status** of a shift — ``recovered``, ``no drop``, ``not recovered``, or, with the recovery
  time withheld (``None``), why it cannot be read (:mod:`.health`): ``diverged``,
  ``skipped steps`` (in the segment), or ``at chance before`` (the previous segment ended at
  chance: the model had nothing to lose at the shift).

>>> import pandas as pd
>>> from autoopt_lab.streams.scenario import parse_scenario
>>> sc = parse_scenario('name="t"\\ndataset="mnist"\\nmodel="m"\\nseed=0\\nbatch_size=2\\n'
...     '[metrics]\\nwarmup=0\\n[[segments]]\\nname="a"\\nsteps=3\\n[[segments]]\\nname="b"\\nsteps=4\\n')
>>> acc = [0.9, 0.9, 0.9, 0.5, 0.7, 0.9, 0.9]
>>> df = pd.DataFrame({"step": range(7), "segment": [0]*3 + [1]*4, "batch_size": 2,
...     "accuracy": acc, "rolling_accuracy": acc, "loss": 0.1,
...     "detect_ADWIN": [False]*4 + [True, False, False]})
>>> r = shift_report(df, sc)
>>> r["shifts"][0]["recovery_steps"], r["shifts"][0]["detection_delay"]["ADWIN"]
(2, 1)
>>> r["shifts"][0]["status"], r["health"]["status"]
('recovered', 'ok')
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .health import run_health
from .sampler import build_plan
from .scenario import Scenario

__all__ = ["shift_report", "hparam_response"]


def _none_if_nan(v: float) -> float | None:
    return None if v is None or not np.isfinite(v) else float(v)


def hparam_response(df: pd.DataFrame, start: int, end: int, kind: str,
                    before: int = 20, after: int = 50) -> dict[str, float | None] | None:
    """How the tensor-averaged ``kind`` (``"lr"`` or ``"momentum"``) moved around a shift.

    Returns the mean over the ``before`` steps preceding ``start``, the min and max over the
    ``after`` steps from ``start``, and the mean over the last ``before`` steps before ``end``.
    """
    cols = [c for c in df.columns if c.startswith(f"{kind}/")]
    if not cols:
        return None
    avg = df[cols].mean(axis=1).to_numpy()
    steps = df["step"].to_numpy()

    def window(a: int, b: int) -> np.ndarray:
        return avg[(steps >= a) & (steps < b)]

    pre, post, last = window(start - before, start), window(start, start + after), window(end - before, end)
    return {
        "pre": _none_if_nan(pre.mean()) if pre.size else None,
        "post_min": _none_if_nan(post.min()) if post.size else None,
        "post_max": _none_if_nan(post.max()) if post.size else None,
        "end": _none_if_nan(last.mean()) if last.size else None,
    }


def _shift_status(recovery: int | None, flags: list[str]) -> str:
    if flags:
        return flags[0]
    if recovery is None:
        return "not recovered"
    return "no drop" if recovery == 0 else "recovered"


def shift_report(df: pd.DataFrame, scenario: Scenario,
                 base_probs: tuple[float, ...] | None = None) -> dict[str, Any]:
    """The per-segment and per-shift numbers of a trace (columns as written by ``StreamRun``).

    ``base_probs`` are the data set's class frequencies (uniform when omitted), for the
    chance levels of :func:`~autoopt_lab.streams.health.run_health`.
    """
    margin = scenario.metrics.margin
    health = run_health(df, scenario, base_probs)
    det_cols = [c for c in df.columns if c.startswith("detect_")]
    steps = df["step"].to_numpy()
    roll = df["rolling_accuracy"].to_numpy(dtype=float)
    correct = (df["accuracy"] * df["batch_size"]).to_numpy(dtype=float)
    sizes = df["batch_size"].to_numpy(dtype=float)
    plan = build_plan(scenario, tuple([1.0 / scenario.num_classes] * scenario.num_classes))
    segments, shifts = [], []
    start = 0
    for i, seg in enumerate(scenario.segments):
        end = start + seg.steps
        sel = (steps >= start) & (steps < end)
        n = sizes[sel].sum()
        cond = (plan[start].new if seg.transition.kind != "incremental"
                else plan[end - 1].new).describe()
        if i > 0 and seg.batch_size != scenario.segments[i - 1].batch_size:
            cond = f"batch size {scenario.segments[i - 1].batch_size}->{seg.batch_size}; {cond}"
        seg_info = {
            "index": i, "name": seg.name, "start": start, "steps": seg.steps,
            "steps_run": int(sel.sum()), "batch_size": seg.batch_size,
            "condition": cond,
            "prequential_error": _none_if_nan(1.0 - correct[sel].sum() / n) if n else None,
        }
        segments.append(seg_info)
        if i > 0 and sel.any():
            pre_sel = steps == start - 1
            pre = float(roll[pre_sel][0]) if pre_sel.any() else float("nan")
            seg_roll, seg_steps = roll[sel], steps[sel]
            below = seg_roll < pre - margin
            if not below.any():
                recovery: int | None = 0
            else:
                first_below = int(np.argmax(below))
                back = ~below[first_below:]
                recovery = (int(seg_steps[first_below + int(np.argmax(back))] - start)
                            if back.any() else None)
            flags = [f for f in health["segments"][i]["flags"] if f != "at chance"]
            if "at chance" in health["segments"][i - 1]["flags"]:
                flags.append("at chance before")
            status = _shift_status(recovery, flags)
            if flags:
                recovery = None
            delays = {}
            for c in det_cols:
                hits = seg_steps[df[c].to_numpy()[sel].astype(bool)]
                delays[c.removeprefix("detect_")] = int(hits[0] - start) if hits.size else None
            shifts.append({
                "segment": i, "name": seg.name, "step": start,
                "transition": seg.transition.kind, "width": seg.transition.width,
                "recurring_to": seg.transition.to, "condition": seg_info["condition"],
                "pre_shift_accuracy": _none_if_nan(pre),
                "min_rolling_accuracy": _none_if_nan(seg_roll.min()),
                "recovery_steps": recovery,
                "recovered": status in ("recovered", "no drop"),
                "status": status,
                "flags": flags,
                "detection_delay": delays,
                "prequential_error": seg_info["prequential_error"],
                "lr": hparam_response(df, start, end, "lr"),
                "momentum": hparam_response(df, start, end, "momentum"),
            })
        start = end
    first = scenario.segments[0].steps
    warm = scenario.metrics.warmup
    false_alarms = {c.removeprefix("detect_"): int(df[c][(steps >= warm) & (steps < first)].sum())
                    for c in det_cols}
    total_n = sizes.sum()
    return {
        "scenario": scenario.name,
        "dataset": scenario.dataset,
        "steps_run": int(len(df)),
        "recovery_margin": margin,
        "rolling_window_samples": scenario.metrics.window,
        "prequential_error": _none_if_nan(1.0 - correct.sum() / total_n) if total_n else None,
        "segments": segments,
        "shifts": shifts,
        "false_alarms_first_segment": false_alarms,
        "health": {k: v for k, v in health.items() if k != "segments"},
        "segment_health": health["segments"],
    }
