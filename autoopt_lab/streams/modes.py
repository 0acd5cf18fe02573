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


def parse_seeds(text: str | int | list[int]) -> list[int]:
    """``"0-4"``, ``"0,2,5"``, ``"1-3,9"`` or an int/list -> sorted distinct seeds (>= 0)."""
    if isinstance(text, int):
        items: list[int] = [text]
    elif isinstance(text, list | tuple):
        items = [int(v) for v in text]
    else:
        items = []
        for part in str(text).split(","):
            part = part.strip()
            if not part:
                continue
            lo, sep, hi = part.partition("-")
            try:
                if sep:
                    a, b = int(lo), int(hi)
                    if b < a:
                        raise ValueError
                    if b - a >= 10_000:
                        raise ValueError(f"seed range {part!r} is over 10,000 seeds")
                    items.extend(range(a, b + 1))
                else:
                    items.append(int(part))
            except ValueError as exc:
                why = str(exc) or f"{part!r} is not a seed or a range A-B with A <= B"
                raise ValueError(f"seeds: {why}") from None
    if not items:
        raise ValueError("seeds: none given (e.g. 0-4 or 0,2,5)")
    if min(items) < 0:
        raise ValueError(f"seeds must be >= 0, got {min(items)}")
    return sorted(set(items))
