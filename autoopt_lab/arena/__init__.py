"""The arena: AutoOpt against the tuned grids and the tuning-free peers, same data and seeds.

* :mod:`.plan` — the contenders and their runs (:class:`ArenaPlan`, presets);
* :mod:`.table` — mean ± std per contender and batch size, gaps, markdown;
* :mod:`.timing` — step time against plain SGD, interleaved rounds;
* :mod:`.figure` — one figure a reader takes in at a glance;
* :mod:`.run` — :func:`run_arena`: sweep (resumable), table, targets, figure, JSON.

``autoopt-lab arena`` and ``notebooks/arena.ipynb`` are thin over :func:`run_arena`.
"""

from .plan import AUTO_VARIANTS, PRESETS, ArenaPlan, Contender, get_preset
from .run import ArenaResult, run_arena
from .table import arena_table, gaps, summarise, to_markdown
from .timing import step_time_ratios

__all__ = [
    "AUTO_VARIANTS",
    "PRESETS",
    "ArenaPlan",
    "ArenaResult",
    "Contender",
    "arena_table",
    "gaps",
    "get_preset",
    "run_arena",
    "step_time_ratios",
    "summarise",
    "to_markdown",
]
