"""Which optimizers a stream runs, with which options: spec strings and per-optimizer options.

Optimizers come from :mod:`autoopt_lab.optim.registry` only. ``"autosgd,autoadam:eps=1e-3"``
selects two (``"all"``: every available one); each entry keeps the options its spec string
gave. :func:`apply_shared_options` adds options shared by several Auto optimizers (the CLI's
``--auto-options``): each key goes only to the selected Auto optimizers that take it, an
entry's own spec-string value wins, and a key that no selected Auto optimizer knows is one
clear error.

>>> parse_optimizers("autosgd, autoadam:eps=1e-3")
[('autosgd', {}), ('autoadam', {'eps': 0.001})]
>>> apply_shared_options(parse_optimizers("autosgd,autoadam"), "ewma=0.95,bias_correction=constant")
[('autosgd', {'ewma': 0.95}), ('autoadam', {'ewma': 0.95, 'bias_correction': 'constant'})]
>>> entry_key("autoadam", {"eps": 0.001})
'autoadam:eps=0.001'
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from autoopt_lab.optim import registry
from autoopt_lab.optim.spec_strings import Choice, choice_text, parse_choices, parse_options

from .identity import digest

__all__ = ["Entry", "apply_shared_options", "entry_key", "file_slug", "parse_optimizers"]

Entry = tuple[str, dict[str, Any]]


def _typed(name: str, options: Mapping[str, Any]) -> Entry:
    """``(canonical name, typed options)``; unknown keys and refused values raise. A tuned
    optimizer may leave out its ``lr`` (it is then tuned on the first segment)."""
    return Choice.of(name, options).pair


def parse_optimizers(spec: str | Sequence[str | Entry]) -> list[Entry]:
    """A comma list of spec strings, or a list of spec strings / ``(name, options)`` pairs,
    as ``[(name, typed options)]``; duplicates are dropped, unknown names and keys raise."""
    return [c.pair for c in parse_choices(spec, unique=True)]


def apply_shared_options(entries: list[Entry], options: str | Mapping[str, Any]) -> list[Entry]:
    """Add ``options`` (``"k=v,k=v"`` or a dict) to the Auto entries that take each key."""
    raw = parse_options(options) if isinstance(options, str) else dict(options)
    if not raw:
        return [(n, dict(o)) for n, o in entries]
    autos = [n for n, _ in entries if registry.get(n).is_auto]
    if not autos:
        raise ValueError(f"--auto-options {', '.join(raw)}: no Auto optimizer is selected "
                         f"(selected: {', '.join(n for n, _ in entries)})")
    for key in raw:
        if not any(key in registry.get(n).option_names for n in autos):
            known = sorted({o for n in autos for o in registry.get(n).option_names})
            raise registry.UnknownOptimizerError(
                f"--auto-options: no selected Auto optimizer ({', '.join(dict.fromkeys(autos))}) "
                f"takes {key!r}; their options: {', '.join(known)}")
    out = []
    for name, opts in entries:
        spec = registry.get(name)
        new = dict(opts)
        if spec.is_auto:
            for key, value in raw.items():
                if key in spec.option_names and key not in opts:
                    new[key] = value
        out.append(_typed(name, new))
    return out


def entry_key(name: str, options: Mapping[str, Any]) -> str:
    """The entry as a spec string: its name, then its options in the order given (the
    canonical :func:`~autoopt_lab.optim.spec_strings.choice_text`)."""
    return choice_text(name, options)


def file_slug(key: str) -> str:
    """A file-name-safe form of an entry key (a digest is added when characters changed).

    >>> file_slug("autosgd"), file_slug("adam:betas=(0.9,0.99)").startswith("adam_betas=_0.9")
    ('autosgd', True)
    """
    safe = re.sub(r"[^A-Za-z0-9._=-]+", "_", key)
    return safe if safe == key else f"{safe}-{digest(key, 4)}"
