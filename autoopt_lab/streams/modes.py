"""How much to run: the quick and full modes, and seed lists.

One place for the policy the CLI and the notebooks share: ``quick`` scales every length by
0.25 and tunes baselines on the quick grid (minutes on a laptop CPU); ``full`` runs the
catalogue lengths with the full grid (the ``stream`` rows of :data:`autoopt_lab.sizes.SIZES`).
An explicit steps scale or grid overrides the mode's.

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

from autoopt_lab import sizes
from autoopt_lab.seeds import parse_seeds

__all__ = ["MODES", "Mode", "parse_seeds", "resolve_mode"]


@dataclass(frozen=True)
class Mode:
    """A run size: length scale of every scenario and the baselines' tuning grid."""

    name: str
    steps_scale: float
    grid: str
    description: str = ""


#: The stream modes, from :data:`autoopt_lab.sizes.SIZES` (``quick``, ``full``).
MODES: dict[str, Mode] = {name: Mode(name, **row) for name, row in sizes.SIZES["stream"].items()}


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
        if grid not in sizes.LR_GRIDS["stream"]:
            raise ValueError(
                f"unknown grid {grid!r}; allowed: {', '.join(sizes.LR_GRIDS['stream'])}")
        out = replace(out, grid=grid)
    return out
