"""How much to run: the quick and full modes, and seed lists.

One place for the policy the CLI and the notebooks share: ``quick`` scales every length by
0.25 and tunes baselines on the quick grid (minutes on a laptop CPU); ``full`` runs the
catalogue lengths with the full grid. An explicit steps scale or grid overrides the mode's.

>>> m = resolve_mode("quick"); (m.steps_scale, m.grid)
(0.25, 'quick')
>>> resolve_mode("quick", steps_scale=0.5).steps_scale
0.5
>>> parse_seeds("0-2,7")
[0, 1, 2, 7]
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from autoopt_lab.seeds import parse_seeds

__all__ = ["MODES", "Mode", "parse_seeds", "resolve_mode"]


@dataclass(frozen=True)
class Mode:
    """A run size: length scale of every scenario and the baselines' tuning grid."""

    name: str
    steps_scale: float
    grid: str
    description: str = ""


MODES: dict[str, Mode] = {
    "quick": Mode("quick", 0.25, "quick", "every length x 0.25, quick tuning grid"),
    "full": Mode("full", 1.0, "full", "catalogue lengths, full tuning grid"),
}


def resolve_mode(mode: str = "full", *, steps_scale: float | None = None,
                 grid: str | None = None) -> Mode:
    """The mode ``mode`` with an explicit ``steps_scale`` or ``grid`` taking precedence."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; allowed: {', '.join(MODES)}")
    out = MODES[mode]
    if steps_scale is not None:
        if not (math.isfinite(steps_scale) and steps_scale > 0):
            raise ValueError(f"steps scale must be a finite number > 0, got {steps_scale}")
        out = replace(out, steps_scale=float(steps_scale))
    if grid is not None:
        from .baselines import LR_GRIDS

        if grid not in LR_GRIDS:
            raise ValueError(f"unknown grid {grid!r}; allowed: {', '.join(LR_GRIDS)}")
        out = replace(out, grid=grid)
    return out
