"""The optimizer registry: every optimizer the project can train with, by name.

One :class:`OptimizerSpec` per name says what the optimizer is (display name, family, the
preconditioner family it pairs with), which options it takes, how to build it over a model
and how to read its per-tensor learning rate and momentum. Runs, sweeps, ``reproduce``,
streams, the workbench, the arena and the CLI all go through it: adding an optimizer (a
tuning-free peer, an Auto variant) is one :func:`register` call.

Names are lower case (``"autosgd"``, ``"prodigy"``). A *spec string* adds options to a name:
``"autoadam:eps=1e-3:bias_correction=constant"`` (a :class:`~.spec_strings.Choice`). Building
one over a model is :func:`autoopt_lab.optim.build` (:mod:`.bound`); this module imports
neither of those modules (they import it).

>>> from torch import nn
>>> from autoopt_lab.optim import Choice, build
>>> spec = get("sgd")
>>> spec.display, spec.family, spec.required
('SGD', 'tuned', ('lr',))
>>> bound = build("sgd", nn.Linear(2, 2), lr=0.1, momentum=0.9)
>>> [round(v, 2) for v in bound.hparams()["weight"].tolist()]
[0.1, 0.9]
>>> Choice.parse("autoadam:eps=1e-3:bias_correction=constant").pair
('autoadam', {'eps': 0.001, 'bias_correction': 'constant'})
"""

from __future__ import annotations

import importlib.util
import inspect
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

#: The families an optimizer can belong to.
FAMILIES: tuple[str, ...] = ("auto", "tuned", "peer")
#: The preconditioner families (Table 1 of the paper) an optimizer pairs with.
BASES: tuple[str, ...] = ("sgd", "adam", "adagrad")

Factory = Callable[[list[tuple[str, nn.Parameter]], dict[str, Any]], torch.optim.Optimizer]
HparamReader = Callable[[torch.optim.Optimizer, dict[int, str]], dict[str, Tensor]]


class UnknownOptimizerError(ValueError):
    """A name (or option) the registry does not know; the message lists what it does."""


class MissingPackageError(ImportError):
    """A registered optimizer whose package is not installed; the message says how to get it."""


@dataclass(frozen=True)
class Option:
    """One keyword option of an optimizer: its name, default, type, allowed values and least
    value. Numbers must be finite (an infinite default, "no limit", may be given too).

    >>> Option("d_coef", 1.0, float, minimum=0.0).coerce("-5", "prodigy")
    Traceback (most recent call last):
    ...
    ValueError: optimizer 'prodigy': option d_coef=-5.0 must be >= 0
    """

    name: str
    default: Any
    kind: type
    choices: tuple[Any, ...] | None = None
    help: str = ""
    minimum: float | None = None

    def coerce(self, value: Any, optimizer: str) -> Any:
        """``value`` converted to this option's type (strings are parsed), or a clear error."""
        value = self._convert(value, optimizer)
        if self.choices is not None and value not in self.choices:
            raise ValueError(
                f"optimizer {optimizer!r}: option {self.name}={value!r}; allowed: "
                f"{', '.join(map(repr, self.choices))}"
            )
        if self.kind in (int, float, tuple):
            numbers = value if isinstance(value, tuple) else (value,)
            if value != self.default and not all(math.isfinite(v) for v in numbers):
                raise ValueError(
                    f"optimizer {optimizer!r}: option {self.name}={value!r} is not finite"
                )
            if self.minimum is not None and any(v < self.minimum for v in numbers):
                raise ValueError(
                    f"optimizer {optimizer!r}: option {self.name}={value!r} must be >= "
                    f"{self.minimum:g}"
                )
            if value == self.default:  # 0 and 0.0 are one value (and one run id)
                return self.default
        return value

    def _convert(self, value: Any, optimizer: str) -> Any:
        try:
            if self.kind is bool:
                if isinstance(value, str):
                    low = value.strip().lower()
                    if low not in ("true", "false", "1", "0", "yes", "no"):
                        raise ValueError(f"not a bool: {value!r}")
                    value = low in ("true", "1", "yes")
                elif not isinstance(value, bool):
                    raise ValueError(f"not a bool: {value!r}")
            elif self.kind is tuple:
                if isinstance(value, str):
                    parts = value.strip().strip("()[]").replace("/", ",").split(",")
                    value = tuple(float(v) for v in parts if v.strip())
                else:
                    value = tuple(float(v) for v in value)
            elif self.kind is float:
                if isinstance(value, bool):
                    raise ValueError(f"not a number: {value!r}")
                value = float(value)
            elif self.kind is int:
                if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                    raise ValueError(f"not an integer: {value!r}")
                value = int(value)
            elif self.kind is str:
                value = str(value)
        except (TypeError, ValueError, OverflowError) as exc:
            raise ValueError(
                f"optimizer {optimizer!r}: option {self.name}={value!r} is not a valid "
                f"{self.kind.__name__} ({exc})"
            ) from None
        return value


@dataclass(frozen=True)
class OptimizerSpec:
    """Everything the project needs to know about one optimizer.

    ``factory(named_params, options)`` builds it over ``(name, parameter)`` pairs with the
    resolved options (defaults, then ``preset``, then the caller's). ``read_hparams`` returns
    ``{tensor name: tensor([lr, momentum])}`` without a host sync (None: read ``lr`` and
    ``momentum``/``betas[0]`` from the param groups). ``per_sample_stats`` optimizers get
    :func:`autoopt_lab.track` hooks; ``probe`` optimizers take a loss closure at ``step()``
    (measured curvature); ``eval_switch`` optimizers (Schedule-Free) must be put in eval
    mode around evaluation. ``vectorized`` names the stacked optimizer the vectorised sweep
    uses for it (tuned grids only). ``package`` is the pip distribution that provides it.
    ``check(options)`` raises ValueError for resolved option values the optimizer refuses
    (checked by :meth:`resolve`, so a bad value fails when a run is configured).
    """

    name: str
    display: str
    family: str
    base: str
    factory: Factory
    options: tuple[Option, ...] = ()
    required: tuple[str, ...] = ()
    preset: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    per_sample_stats: bool = False
    probe: bool = False
    eval_switch: bool = False
    vectorized: str | None = None
    package: str | None = None
    module: str | None = None
    read_hparams: HparamReader | None = None
    check: Callable[[dict[str, Any]], None] | None = None

    def __post_init__(self) -> None:
        if self.name != self.name.lower() or not self.name or ":" in self.name:
            raise ValueError(f"optimizer names are lower case without ':', got {self.name!r}")
        if self.family not in FAMILIES:
            raise ValueError(f"family must be one of {FAMILIES}, got {self.family!r}")
        if self.base not in BASES:
            raise ValueError(f"base must be one of {BASES}, got {self.base!r}")
        known = {o.name for o in self.options}
        for key in (*self.required, *self.preset):
            if key not in known:
                raise ValueError(f"{self.name}: {key!r} is not one of its options {sorted(known)}")

    @property
    def is_auto(self) -> bool:
        """True for the AutoOpt optimizers (any variant)."""
        return self.family == "auto"

    @property
    def option_names(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.options)

    @property
    def available(self) -> bool:
        """False when the package that provides it is not installed."""
        return self.module is None or importlib.util.find_spec(self.module) is not None

    def check_option_names(self, keys: Iterable[str]) -> None:
        """Raise :class:`UnknownOptimizerError` naming the keys this optimizer does not take.

        >>> get("sgd").check_option_names(["lr", "ewma"])
        Traceback (most recent call last):
        ...
        autoopt_lab.optim.registry.UnknownOptimizerError: optimizer 'sgd' has no option(s) ['ewma']; its options: lr, momentum
        """
        unknown = sorted(set(keys) - set(self.option_names))
        if unknown:
            allowed = ", ".join(self.option_names) or "none"
            raise UnknownOptimizerError(
                f"optimizer {self.name!r} has no option(s) {unknown}; its options: {allowed}"
            )

    def require_available(self) -> None:
        """Raise :class:`MissingPackageError` (saying what to install) when the package that
        provides this optimizer is not installed."""
        if not self.available:
            raise MissingPackageError(
                f"optimizer {self.name!r} needs the package {self.package!r}: "
                f"pip install '{self.package}' (or: pip install 'autoopt-lab[peers]')"
            )

    def resolve(
        self, options: Mapping[str, Any] | None = None, *, require: bool = True
    ) -> dict[str, Any]:
        """Defaults, overlaid by the preset, overlaid by ``options`` (checked and typed).

        ``require=False`` skips the check that required options (``lr`` of the tuned
        optimizers) are present, for a spec whose value comes later (a tuning grid).

        >>> get("autoadam-authors").resolve()["eps"]
        0.001
        >>> get("sgd").resolve(require=False)["lr"] is None
        True
        """
        options = dict(options or {})
        self.check_option_names(options)
        by_name = {o.name: o for o in self.options}
        missing = [k for k in self.required if options.get(k) is None]
        if missing and require:
            raise ValueError(f"optimizer {self.name!r} needs {', '.join(missing)}")
        out = {o.name: o.default for o in self.options}
        out.update(self.preset)
        for key, value in options.items():
            if value is None and key not in self.required:
                continue
            out[key] = by_name[key].coerce(value, self.name)
        if self.check is not None:
            self.check(out)
        return out

    def overrides(self, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The resolved options that differ from this spec's own (default + preset) values."""
        base = self.resolve({k: v for k, v in (options or {}).items() if k in self.required})
        full = self.resolve(options)
        return {k: v for k, v in full.items() if base.get(k) != v or k in self.required}

    def label(self, options: Mapping[str, Any] | None = None) -> str:
        """Display name plus non-default options, e.g. ``AutoAdam(ewma=0.95)``.

        >>> get("autoadam").label({"ewma": 0.95})
        'AutoAdam(ewma=0.95)'
        """
        extra = self.overrides(options)
        if not extra:
            return self.display
        text = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in extra.items())
        return f"{self.display}{' ' if self.display.endswith(')') else ''}({text})"


_REGISTRY: dict[str, OptimizerSpec] = {}


def register(spec: OptimizerSpec, *, replace: bool = False) -> OptimizerSpec:
    """Add ``spec`` to the registry (``replace=True`` to redefine a name); returns it."""
    if spec.name in _REGISTRY and not replace:
        raise ValueError(f"optimizer {spec.name!r} is already registered (pass replace=True)")
    _REGISTRY[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    """Remove ``name`` (tests use it to clean up a toy optimizer)."""
    _REGISTRY.pop(name, None)


def get(name: str) -> OptimizerSpec:
    """The spec registered as ``name`` (case-insensitive), or a clear error listing names."""
    key = str(name).strip().lower()
    if key not in _REGISTRY:
        raise UnknownOptimizerError(
            f"unknown optimizer {name!r}; known: {', '.join(names())}"
        )
    return _REGISTRY[key]


def names(
    family: str | Sequence[str] | None = None,
    *,
    base: str | None = None,
    available: bool | None = None,
) -> list[str]:
    """Registered names in registration order, optionally filtered.

    >>> names("tuned")
    ['sgd', 'adam', 'adagrad']
    """
    families = (family,) if isinstance(family, str) else family
    out = []
    for spec in _REGISTRY.values():
        if families is not None and spec.family not in families:
            continue
        if base is not None and spec.base != base:
            continue
        if available is not None and spec.available != available:
            continue
        out.append(spec.name)
    return out


def specs(family: str | Sequence[str] | None = None) -> list[OptimizerSpec]:
    """The registered specs, optionally of some families."""
    return [get(n) for n in names(family)]


def display_names() -> dict[str, str]:
    """``{display name: name}`` for menus (the workbench dropdown)."""
    return {get(n).display: n for n in names()}


#: Words of an option's name that make a whole-number default a count (an int option).
COUNT_WORDS = frozenset({"steps", "every", "slice", "iters", "epochs", "count", "num", "size"})


def _annotated_kind(annotation: Any) -> type | None:
    """The option type an annotation names (``"float"``, ``Union[float, Tensor]``...)."""
    if annotation is inspect.Parameter.empty:
        return None
    text = annotation if isinstance(annotation, str) else getattr(
        annotation, "__name__", str(annotation))
    words = [w for w in re.findall(r"[A-Za-z_]+", text) if w != "typing"]
    if words and words[0].lower() == "tuple":
        return tuple
    for kind in (float, bool, int, str):
        if kind.__name__ in words:
            return kind
    return None


def _default_kind(name: str, default: Any) -> type | None:
    """The option type a default implies: a whole number is a count only by its name."""
    if isinstance(default, bool):
        return bool
    if isinstance(default, int):
        return int if COUNT_WORDS & set(name.lower().split("_")) else float
    if isinstance(default, float) or default is None:
        return float
    if isinstance(default, tuple | list):
        return tuple
    if isinstance(default, str):
        return str
    return None


def options_from_signature(cls: type, *, skip: Sequence[str] = ("params",)) -> tuple[Option, ...]:
    """The keyword options of an optimizer class, from its ``__init__`` signature.

    A parameter's type is its annotation's, else its default's (a whole-number default is
    an int only for a count, ``warmup_steps``; ``weight_decay=0`` is a float). A numeric
    option whose default is not negative must not be.
    """
    out = []
    for p in inspect.signature(cls.__init__).parameters.values():
        if p.name in ("self", *skip) or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
            continue
        default = p.default
        if default is inspect.Parameter.empty:
            continue
        kind = _annotated_kind(p.annotation) or _default_kind(p.name, default)
        if kind is None or (kind is tuple and not isinstance(default, tuple | list)):
            continue  # option types we cannot take from a command line
        numbers = default if isinstance(default, tuple | list) else (default,)
        minimum = None
        if kind in (int, float, tuple) and all(
            isinstance(v, int | float) and not isinstance(v, bool) and v >= 0 for v in numbers
        ):
            minimum = 0.0
        out.append(Option(p.name, default, kind, minimum=minimum))
    return tuple(out)


#: Names this module used to re-export; they live in :mod:`.bound` and :mod:`.spec_strings`
#: (both import this module, so it does not import them: ``registry.build`` still works, the
#: lookup happens on first use). New code imports them from ``autoopt_lab.optim``.
_MOVED = {
    "BoundOptimizer": "bound", "build": "bound", "group_hparams": "bound",
    "hparam_pair": "bound", "Choice": "spec_strings", "parse_list": "spec_strings",
    "parse_options": "spec_strings", "parse_spec": "spec_strings", "split_list": "spec_strings",
}


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        return getattr(importlib.import_module(f"{__package__}.{_MOVED[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BASES",
    "FAMILIES",
    "MissingPackageError",
    "Option",
    "OptimizerSpec",
    "UnknownOptimizerError",
    "display_names",
    "get",
    "names",
    "options_from_signature",
    "register",
    "specs",
    "unregister",
]
