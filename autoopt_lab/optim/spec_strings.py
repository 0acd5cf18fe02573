"""Spec strings: an optimizer name with options, ``"autoadam:eps=1e-3:bias_correction=constant"``.

Options follow the name after ``:``, as ``key=value`` pairs separated by ``:``; values are
typed by the optimizer's :class:`~autoopt_lab.optim.registry.Option`. A comma list of spec
strings names several optimizers (commas inside brackets belong to a value).

>>> parse_spec("autosgd:ewma=0.95")
('autosgd', {'ewma': 0.95})
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .registry import get, names


def split_list(text: str) -> list[str]:
    """Split a comma list, keeping commas inside brackets: ``"a,b:betas=(1,2)"`` -> 2 items.

    >>> split_list("autosgd, adam:betas=(0.9,0.99)")
    ['autosgd', 'adam:betas=(0.9,0.99)']
    """
    out, depth, cur = [], 0, []
    for ch in str(text):
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        if ch == "," and depth == 0:
            out.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur).strip())
    return [s for s in out if s]


def parse_options(text: str) -> dict[str, str]:
    """``"k=v:k=v"`` (or ``"k=v,k=v"``) -> ``{k: v}`` with values as strings.

    >>> parse_options("ewma=0.95:max_lr=0.3")
    {'ewma': '0.95', 'max_lr': '0.3'}
    """
    out: dict[str, str] = {}
    text = str(text).strip()
    if not text:
        return out
    parts = []
    for chunk in split_list(text):
        parts.extend(p for p in chunk.split(":") if p.strip())
    for part in parts:
        if "=" not in part:
            raise ValueError(f"option {part!r} is not of the form key=value")
        key, value = part.split("=", 1)
        key = key.strip()
        if not key:
            raise ValueError(f"option {part!r} has no name")
        out[key] = value.strip()
    return out


def parse_spec(text: str) -> tuple[str, dict[str, Any]]:
    """``"name:k=v:k=v"`` -> ``(name, typed options)``; an unknown name or key is an error."""
    text = str(text).strip()
    name, _, rest = text.partition(":")
    spec = get(name)
    raw = parse_options(rest)
    spec.resolve(raw, require=False)  # names and values; a required lr may come later
    by_name = {o.name: o for o in spec.options}
    return spec.name, {k: by_name[k].coerce(v, spec.name) for k, v in raw.items()}


def parse_list(text: str | Sequence[str], *, allow_all: bool = True) -> list[tuple[str, dict]]:
    """A comma list of spec strings (``"all"``: every available optimizer) -> ``[(name, opts)]``.

    >>> parse_list("autosgd,sgd:lr=0.1:momentum=0.9")
    [('autosgd', {}), ('sgd', {'lr': 0.1, 'momentum': 0.9})]
    """
    items = split_list(text) if isinstance(text, str) else list(text)
    if not items:
        raise ValueError("no optimizer given")
    if allow_all and len(items) == 1 and items[0].lower() == "all":
        return [(n, {}) for n in names(available=True)]
    return [parse_spec(i) for i in items]


