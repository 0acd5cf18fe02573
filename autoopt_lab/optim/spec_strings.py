"""Optimizer choices: a registry name with options, ``"autoadam:eps=1e-3:bias_correction=constant"``.

Options follow the name after ``:``, as ``key=value`` pairs separated by ``:``; values are
typed by the optimizer's :class:`~autoopt_lab.optim.registry.Option`. A comma list of spec
strings names several optimizers (commas inside brackets belong to a value).

:class:`Choice` is the one value every front-end (grids, the CLI, streams, the workbench, the
online learner, the arena) parses a choice into: the name checked, the options known, typed
and accepted by the optimizer, and one canonical text (:func:`choice_text`) that the stream
leaderboard's keys, checkpoints and the analysis' variant names use.

>>> c = Choice.parse("autosgd:ewma=0.95")
>>> c.name, c.options, c.text
('autosgd', {'ewma': 0.95}, 'autosgd:ewma=0.95')
>>> parse_spec("autosgd:ewma=0.95")
('autosgd', {'ewma': 0.95})
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .registry import OptimizerSpec, get, names


def format_value(value: Any) -> str:
    """An option value as the canonical text writes it: a float as ``:g`` when that reads
    back exactly (``1.0`` -> ``1``, ``0.001`` -> ``0.001``), else in full (``repr``); a
    tuple as ``(a,b)``.

    >>> format_value(1.0), format_value(1e-3), format_value(0.123456789), format_value((0.9, 0.99))
    ('1', '0.001', '0.123456789', '(0.9,0.99)')
    """
    if isinstance(value, tuple | list):
        return "(" + ",".join(format_value(v) for v in value) + ")"
    if isinstance(value, float):
        short = f"{value:g}"
        return short if float(short) == value else repr(value)
    return str(value)


def choice_text(name: str, options: Mapping[str, Any] | None = None) -> str:
    """The canonical text of a choice: its name, then ``key=value`` in the order given.

    This is the stream leaderboard's cell key and the results' variant name (it was
    ``selection.entry_key``; the analysis used ``str`` values sorted by key before, which
    differs only for values such as ``1.0`` or tuples: those texts were never stored as keys).

    >>> choice_text("autoadam", {"eps": 0.001, "betas": (0.9, 0.99)})
    'autoadam:eps=0.001:betas=(0.9,0.99)'
    """
    parts = [f"{k}={format_value(v)}" for k, v in (options or {}).items()]
    return ":".join([name, *parts])


@dataclass(frozen=True)
class Choice:
    """One optimizer choice: a registry name and its typed options.

    Build it with :meth:`parse` (a spec string, a ``(name, options)`` pair or a Choice,
    with extra options on top) or :meth:`of` (a name and options). Two choices are equal
    when their names and options are, whatever the options' order.

    >>> Choice.parse("SGD:momentum=0.9").pair
    ('sgd', {'momentum': 0.9})
    >>> Choice.parse("sgd", {"lr": "0.1"}, require=True).label
    'SGD(lr=0.1)'
    >>> Choice.parse("sgd:ewma=1")
    Traceback (most recent call last):
    ...
    autoopt_lab.optim.registry.UnknownOptimizerError: optimizer 'sgd' has no option(s) ['ewma']; its options: lr, momentum
    """

    name: str
    options: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, name: str, options: Mapping[str, Any] | None = None, *,
           require: bool = False) -> Choice:
        """Name ``name`` with ``options`` checked and typed (None values are left out).

        ``require=False`` lets a tuned optimizer's ``lr`` come later (a tuning grid);
        unknown names or keys and values the optimizer refuses raise ``ValueError``.
        """
        spec = get(name)
        options = {k: v for k, v in dict(options or {}).items() if v is not None}
        spec.resolve(options, require=require)  # names, types and the optimizer's own checks
        by_name = {o.name: o for o in spec.options}
        return cls(spec.name, {k: by_name[k].coerce(v, spec.name) for k, v in options.items()})

    @classmethod
    def parse(cls, text: str | tuple[str, Mapping[str, Any]] | Choice,
              options: Mapping[str, Any] | None = None, *, require: bool = False) -> Choice:
        """A spec string ``"name:k=v:k=v"`` (or a pair, or a Choice), with ``options`` on
        top of the ones it gives."""
        if isinstance(text, Choice):
            name, given = text.name, dict(text.options)
        elif isinstance(text, tuple):
            name, given = text[0], dict(text[1] or {})
        else:
            if not isinstance(text, str):
                raise ValueError(f"{text!r} is not an optimizer; give a registry name such as "
                                 "'autosgd' or a spec string such as 'sgd:lr=0.1'")
            name, _, rest = text.strip().partition(":")
            given = parse_options(rest)
        return cls.of(name, {**given, **dict(options or {})}, require=require)

    @property
    def spec(self) -> OptimizerSpec:
        return get(self.name)

    @property
    def text(self) -> str:
        """The canonical text (:func:`choice_text`); ``Choice.parse(c.text) == c``."""
        return choice_text(self.name, self.options)

    @property
    def pair(self) -> tuple[str, dict[str, Any]]:
        """``(name, options)`` as a plain tuple (what the list parsers return)."""
        return self.name, dict(self.options)

    @property
    def label(self) -> str:
        """The registry's display label: ``AutoAdam(ewma=0.95)``."""
        return self.spec.label(self.options)

    def require_available(self) -> Choice:
        """This choice, or :class:`~.registry.MissingPackageError` saying what to install."""
        self.spec.require_available()
        return self

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Choice):
            return NotImplemented
        return self.name == other.name and dict(self.options) == dict(other.options)

    def __hash__(self) -> int:
        return hash((self.name, frozenset(self.options)))

    def __str__(self) -> str:
        return self.text


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
    """``"name:k=v:k=v"`` -> ``(name, typed options)``; an unknown name or key is an error
    (a required ``lr`` may come later): :meth:`Choice.parse` as a pair."""
    return Choice.parse(str(text)).pair


ChoiceItem = str | tuple[str, Mapping[str, Any]] | Choice


def parse_choices(items: str | Sequence[ChoiceItem], *, allow_all: bool = True,
                  unique: bool = False) -> list[Choice]:
    """A comma list of spec strings, or a list of spec strings (each may be a comma list),
    ``(name, options)`` pairs or choices -> ``[Choice]``; ``"all"`` (alone) is every available
    optimizer; ``unique=True`` drops repeats.

    >>> [c.text for c in parse_choices(["autosgd,adam:lr=1e-3", ("sgd", {"lr": 0.1})])]
    ['autosgd', 'adam:lr=0.001', 'sgd:lr=0.1']
    """
    flat: list[ChoiceItem] = []
    for item in [items] if isinstance(items, str) else list(items):
        flat += split_list(item) if isinstance(item, str) else [item]
    if not flat:
        raise ValueError(f"no optimizer given; known: {', '.join(names())}")
    if allow_all and len(flat) == 1 and isinstance(flat[0], str) and flat[0].lower() == "all":
        return [Choice(n, {}) for n in names(available=True)]
    out: list[Choice] = []
    for item in flat:
        choice = Choice.parse(item)
        if not (unique and choice in out):
            out.append(choice)
    return out


def parse_list(text: str | Sequence[ChoiceItem], *, allow_all: bool = True) -> list[tuple[str, dict]]:
    """:func:`parse_choices` as ``[(name, options)]`` pairs.

    >>> parse_list("autosgd,sgd:lr=0.1:momentum=0.9")
    [('autosgd', {}), ('sgd', {'lr': 0.1, 'momentum': 0.9})]
    """
    return [c.pair for c in parse_choices(text, allow_all=allow_all)]
