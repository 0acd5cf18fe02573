"""Run health, defined once: when a run diverged, skipped steps or sat at chance, the flags
as data, and the words every table, plot and store shows for them.

Every front-end (sweeps, streams, the online learner, the workbench, the analysis tables)
asks this module; none keeps its own thresholds.

* **diverged**: a loss that is non-finite or above :data:`DIVERGED_LOSS` (chance level for
  ten classes is ``ln 10 = 2.3``; a mean NLL this large means the weights have blown up);
* **skipped steps**: an Auto optimizer skipped steps on non-finite gradients;
* **at chance**: accuracy at most a margin above the chance level, the share of the most
  frequent class (``1/K`` for balanced classes). The margin depends on what is measured:
  :data:`CHANCE_MARGIN_PCT` points for a final test error over a whole test set,
  :data:`CHANCE_MARGIN` for the late prequential accuracy of a stream segment (a few small
  batches, so noisier).

Flags are stored as data (:data:`FLAGS` names, plus ``diverged_at`` and
``nonfinite_skips``) and turned into words only for display (:func:`flag_words`).

>>> is_diverged(float("nan")), is_diverged(2.3)
(True, False)
>>> error_at_chance(89.0, chance_error_pct(10)), at_chance(0.9, chance_accuracy([0.5, 0.5]))
(True, False)
>>> flag_words({"flags": ["diverged", "skipped steps"], "diverged_at": 40, "nonfinite_skips": 3})
['diverged at step 40', '3 skipped steps']
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "AT_CHANCE", "CHANCE_MARGIN", "CHANCE_MARGIN_PCT", "DIVERGED", "DIVERGED_LOSS", "FLAGS",
    "SKIPPED", "at_chance", "balanced_chance", "chance_accuracy", "chance_error_pct", "count_text",
    "diverged_mask", "error_at_chance", "flag_list", "flag_text", "flag_words", "flags_from_metrics",
    "is_diverged",
]

#: A loss above this (or non-finite) means the run diverged.
DIVERGED_LOSS = 1e4
#: A final test error within this many points of the chance error is "at chance".
CHANCE_MARGIN_PCT = 2.0
#: A stream segment's late accuracy at most this far above its chance level is "at chance".
CHANCE_MARGIN = 0.05

DIVERGED, SKIPPED, AT_CHANCE = "diverged", "skipped steps", "at chance"
#: The flags, most severe first (a run's status is its first flag, or ``"ok"``).
FLAGS = (DIVERGED, SKIPPED, AT_CHANCE)


def is_diverged(loss: float) -> bool:
    """True for a non-finite loss or one above :data:`DIVERGED_LOSS`."""
    return not math.isfinite(loss) or loss > DIVERGED_LOSS


def diverged_mask(losses: Any) -> Any:
    """Elementwise :func:`is_diverged` of a tensor or array (``~isfinite | > DIVERGED_LOSS``).

    >>> import numpy as np
    >>> diverged_mask(np.array([1.0, np.inf, 2e4])).tolist()
    [False, True, True]
    """
    if hasattr(losses, "isfinite"):  # a torch tensor
        return ~losses.isfinite() | (losses > DIVERGED_LOSS)
    import numpy as np

    return ~np.isfinite(losses) | (losses > DIVERGED_LOSS)


def chance_accuracy(class_shares: Iterable[float]) -> float:
    """The accuracy of always guessing the most frequent class."""
    return float(max(class_shares))


def balanced_chance(num_classes: int) -> float:
    """The chance accuracy among ``num_classes`` balanced classes (``1/K``)."""
    return 1.0 / max(int(num_classes), 1)


def chance_error_pct(num_classes: int) -> float:
    """The error (%) of guessing among ``num_classes`` balanced classes (90.0 for ten)."""
    return 100.0 * (1.0 - balanced_chance(num_classes))


def at_chance(accuracy: float, chance: float, margin: float = CHANCE_MARGIN) -> bool:
    """True when ``accuracy`` is at most ``margin`` above ``chance`` (or unknown, NaN)."""
    return math.isnan(accuracy) or accuracy <= chance + margin


def error_at_chance(error_pct: Any, chance_err_pct: Any, margin_pct: float = CHANCE_MARGIN_PCT
                    ) -> Any:
    """:func:`at_chance` stated on errors (%): ``error_pct >= chance_err_pct - margin_pct``.
    Works elementwise on pandas Series (a NaN error is not at chance here)."""
    return error_pct >= chance_err_pct - margin_pct


def flag_list(*, diverged: bool, skipped: bool, chance: bool) -> list[str]:
    """The set flags, in :data:`FLAGS` order.

    >>> flag_list(diverged=False, skipped=True, chance=True)
    ['skipped steps', 'at chance']
    """
    return [f for f, on in zip(FLAGS, (diverged, skipped, chance), strict=True) if on]


def flags_from_metrics(metrics: Mapping[str, Any]) -> list[str]:
    """The flags of a stored run's metrics (``diverged``, ``nonfinite_skips``, ``at_chance``).

    >>> flags_from_metrics({"diverged": True, "nonfinite_skips": 0, "at_chance": True})
    ['diverged', 'at chance']
    """
    return flag_list(diverged=bool(metrics.get("diverged")),
                     skipped=bool(metrics.get("nonfinite_skips")),
                     chance=bool(metrics.get("at_chance")))


def flag_words(health: Mapping[str, Any] | None, *, loud: bool = False) -> list[str]:
    """A run's flags in words: ``diverged at step N``, ``N skipped steps``, ``at chance``;
    ``loud`` for a figure: ``DIVERGED at step N``, ``SKIPPED STEPS (N)``, ``AT CHANCE``.

    ``health`` holds ``flags`` and, when known, ``diverged_at`` and ``nonfinite_skips``.
    """
    h = health or {}
    out = []
    for flag in h.get("flags", []):
        if flag == DIVERGED and h.get("diverged_at") is not None:
            out.append(f"{'DIVERGED' if loud else flag} at step {h['diverged_at']}")
        elif flag == SKIPPED and h.get("nonfinite_skips"):
            n = int(h["nonfinite_skips"])
            out.append(f"SKIPPED STEPS ({n})" if loud else f"{n} skipped step{'s' if n != 1 else ''}")
        else:
            out.append(str(flag).upper() if loud else str(flag))
    return out


def flag_text(health: Mapping[str, Any] | None) -> str:
    """The loud :func:`flag_words` as one line for a figure, ``""`` when all is well.

    >>> flag_text({"flags": ["diverged", "skipped steps"], "diverged_at": 3, "nonfinite_skips": 5})
    'DIVERGED at step 3; SKIPPED STEPS (5)'
    """
    return "; ".join(flag_words(health, loud=True))


def count_text(n_runs: int, n_diverged: int, n_at_chance: int, n_skipping: int,
               skipped_steps: int = 0) -> str:
    """The flags of a group of runs: ``"1/3 diverged, 2/3 at chance, 1/3 skipped 143
    steps"``; ``""`` when all is well.

    >>> count_text(3, 1, 0, 1, 143)
    '1/3 diverged, 1/3 skipped 143 steps'
    """
    parts = []
    if n_diverged:
        parts.append(f"{n_diverged}/{n_runs} diverged")
    if n_at_chance:
        parts.append(f"{n_at_chance}/{n_runs} at chance")
    if n_skipping:
        parts.append(f"{n_skipping}/{n_runs} skipped {skipped_steps} steps")
    return ", ".join(parts)
