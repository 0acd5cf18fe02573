"""Seed lists, parsed once for every front-end (sweeps, arena, streams, notebooks).

``"0-4"``, ``"0,2,5"``, ``"1-3,9"`` (ranges inclusive, low to high), an int or a list ->
sorted distinct seeds (>= 0), at most :data:`MAX_SEEDS` (counted before any list is built,
so a typo like ``0-100000000`` is refused at once, with what it would have cost).

>>> parse_seeds("3,1,1-2"), parse_seeds(7), parse_seeds([2, 0])
([1, 2, 3], [7], [0, 2])
>>> parse_seeds("5-2")
Traceback (most recent call last):
...
autoopt_lab.seeds.SeedsError: seeds: seed range '5-2' is reversed (give 2-5); it would run nothing
"""

from __future__ import annotations

import argparse

__all__ = ["MAX_SEEDS", "SeedsError", "parse_seeds"]

#: The most seeds one option may list.
MAX_SEEDS = 10_000


class SeedsError(argparse.ArgumentTypeError, ValueError):
    """A seed list that cannot be read (a ``ValueError``; argparse shows its message)."""


def parse_seeds(text: str | int | list[int] | tuple[int, ...]) -> list[int]:
    """``text`` as sorted distinct seeds; :class:`SeedsError` names what is wrong."""
    if isinstance(text, int):
        ranges = [range(text, text + 1)]
    elif isinstance(text, list | tuple):
        ranges = [range(int(v), int(v) + 1) for v in text]
    else:
        ranges = [_range(part.strip()) for part in str(text).split(",") if part.strip()]
    if not ranges:
        raise SeedsError(f"seeds: none given in {text!r} (e.g. 0-4 or 0,2,5)")
    count = sum(len(r) for r in ranges)
    if count > MAX_SEEDS:
        from autoopt_lab.experiments.sweep import duration_text

        raise SeedsError(
            f"seeds {text!r} are {count:,} seeds, over the limit of {MAX_SEEDS:,}: a plan of "
            f"at least {count:,} runs, about {duration_text(count)} at 1 s per run; nothing "
            "was planned")
    if min(r.start for r in ranges) < 0:
        raise SeedsError(f"seeds must be >= 0, got {min(r.start for r in ranges)}")
    return sorted({seed for r in ranges for seed in r})


def _range(part: str) -> range:
    lo, sep, hi = part.partition("-")
    try:
        first, last = (int(lo), int(hi)) if sep else (int(part), int(part))
    except ValueError:
        raise SeedsError(f"seeds: {part!r} is not a seed or a range A-B with A <= B") from None
    if last < first:
        raise SeedsError(f"seeds: seed range {part!r} is reversed (give {last}-{first}); it "
                         "would run nothing")
    return range(first, last + 1)
