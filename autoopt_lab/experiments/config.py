"""``RunConfig``: everything that fixes one training run, and its stable identity.

The optimizer is any name in :mod:`autoopt_lab.optim.registry`. The tuned optimizers keep
their hyper-parameters in the fields ``lr``, ``momentum`` and ``betas`` (the grid's axes);
the Adam-family Auto optimizers keep ``betas`` there too. Every other option travels in
``options`` (typed and checked by the optimizer's spec). A run's id is
:func:`autoopt_lab.identity.config_key` of its :meth:`RunConfig.identity`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from autoopt_lab.identity import config_key
from autoopt_lab.optim import registry

DEFAULT_BETAS: tuple[float, float] = (0.9, 0.99)
# The fields that carry an optimizer option (for the optimizers that use them, see
# :func:`field_options`); they never also appear in ``options``.
_HPARAM_FIELDS = ("lr", "momentum", "betas")
# Fields that do not change a run's result, so they stay out of its identity.
_NOT_IN_KEY = frozenset({"trace_every", "train_eval"})
#: When the train error is measured: after every epoch, or after the last one only (it is a
#: pass over the whole training set, about a quarter of a short run's time).
TRAIN_EVALS: tuple[str, ...] = ("epoch", "final")
#: How a run is computed: ``"loop"`` (one model, :func:`~autoopt_lab.experiments.run`) or
#: ``"stacked"`` (with other grid settings as one stacked model, the vectorised executor).
#: The two agree only to float rounding, which chaotic training amplifies to points of error
#: (docs/reproduction.md), so the engine is part of a run's identity.
ENGINES: tuple[str, ...] = ("loop", "stacked")


def field_options(spec: registry.OptimizerSpec) -> tuple[str, ...]:
    """The options of ``spec`` that a :class:`RunConfig` holds in its own fields.

    >>> field_options(registry.get("sgd")), field_options(registry.get("autoadam"))
    (('lr', 'momentum'), ('betas',))
    >>> field_options(registry.get("prodigy"))
    ()
    """
    if spec.family == "tuned":
        carried: tuple[str, ...] = _HPARAM_FIELDS
    elif spec.is_auto:
        carried = ("betas",)
    else:
        carried = ()
    return tuple(k for k in carried if k in spec.option_names)


class FrozenOptions(Mapping[str, Any]):
    """An immutable, hashable ``{option: value}`` mapping, sorted by key (tuple values).

    >>> opts = FrozenOptions({"ewma": 0.95, "betas": [0.9, 0.999]})
    >>> dict(opts), hash(opts) == hash(FrozenOptions({"betas": (0.9, 0.999), "ewma": 0.95}))
    ({'betas': (0.9, 0.999), 'ewma': 0.95}, True)
    """

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, Any] | None = None) -> None:
        pairs = []
        for k, v in dict(items or {}).items():
            if isinstance(v, list | tuple):
                v = tuple(v)
            pairs.append((str(k), v))
        self._items: tuple[tuple[str, Any], ...] = tuple(sorted(pairs))

    def __getitem__(self, key: str) -> Any:
        for k, v in self._items:
            if k == key:
                return v
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return (k for k, _ in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(self._items)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return dict(self) == dict(FrozenOptions(other))
        return NotImplemented

    def __repr__(self) -> str:
        return repr(dict(self))

    def to_json(self) -> dict[str, Any]:
        """A plain dict with lists for tuples (JSON)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self._items}


@dataclass(frozen=True)
class RunConfig:
    """One run: data set, model, optimizer and its options, batch size, epochs, seed and
    device, plus the quick-mode data limits.

    ``optimizer`` is a registry name (case-insensitive). Tuned optimizers need ``lr`` (and
    SGD ``momentum``; Adam's first moment is ``betas[0]``, pass ``momentum=None``); every
    other optimizer sets its own step size and takes ``lr=None, momentum=None``. ``options``
    are the optimizer's other keyword options (strings from a command line are coerced by
    its spec). ``model=None`` picks the paper's model for the data set.
    ``max_train_samples`` / ``max_test_samples`` cut fixed, seed-independent subsets.
    ``trace_every=None`` thins the per-step trace to at most ~2,000 rows. ``engine`` is
    ``"loop"`` or ``"stacked"`` (see :data:`ENGINES`; only optimizers with a stacked form).
    ``train_eval="final"`` measures the train error after the last epoch only (the other
    epochs record NaN); like ``trace_every`` it does not change the run's identity.

    >>> cfg = RunConfig("fashion-mnist", "sgd", lr=0.01, momentum=0.0, batch_size=128)
    >>> cfg.model, len(cfg.run_id()), cfg.build_options()
    ('mnist_cnn', 16, {'lr': 0.01, 'momentum': 0.0})
    >>> RunConfig("mnist", "autoadam", options={"ewma": "0.95"}).label()
    'AutoAdam(ewma=0.95) N=128 seed=0'
    """

    dataset: str
    optimizer: str
    lr: float | None = None
    momentum: float | None = None
    batch_size: int = 128
    epochs: int = 10
    seed: int = 0
    device: str = "auto"
    model: str | None = None
    betas: tuple[float, float] = DEFAULT_BETAS
    max_train_samples: int | None = None
    max_test_samples: int | None = None
    trace_every: int | None = field(default=None, compare=False)
    options: Mapping[str, Any] = field(default_factory=FrozenOptions)
    engine: str = "loop"
    train_eval: str = field(default="epoch", compare=False)

    def __post_init__(self) -> None:
        from autoopt_lab.data import canonical_name
        from autoopt_lab.models import MODELS, model_name_for

        object.__setattr__(self, "dataset", canonical_name(self.dataset))
        spec = registry.get(self.optimizer)  # an unknown name lists the known ones
        object.__setattr__(self, "optimizer", spec.name)
        if self.model is None:
            object.__setattr__(self, "model", model_name_for(self.dataset))
        elif self.model not in MODELS:
            raise ValueError(f"unknown model {self.model!r}; allowed: {', '.join(MODELS)}")
        _check_device_name(self.device)
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        self._normalise_options(spec)
        self._check_hparams(spec)
        for name in ("batch_size", "epochs"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if spec.per_sample_stats and self.batch_size < 2:
            raise ValueError(
                f"{spec.name} needs batch_size >= 2 (a variance estimate over the batch)"
            )
        for name in ("max_train_samples", "max_test_samples", "trace_every"):
            value = getattr(self, name)
            if value is not None and int(value) < 1:
                raise ValueError(f"{name} must be None or >= 1, got {value}")
        if self.train_eval not in TRAIN_EVALS:
            raise ValueError(
                f"train_eval must be one of {', '.join(TRAIN_EVALS)}, got {self.train_eval!r}"
            )
        if self.engine not in ENGINES:
            raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {self.engine!r}")
        if self.engine == "stacked" and not self.stackable:
            raise ValueError(
                f"{spec.name} with options {dict(self.options)} has no stacked form; "
                "use engine='loop'"
            )

    def _normalise_options(self, spec: registry.OptimizerSpec) -> None:
        raw = {k: v for k, v in dict(self.options or {}).items() if v is not None}
        by_name = {o.name: o for o in spec.options}
        spec.check_option_names(raw)
        typed = {k: by_name[k].coerce(v, spec.name) for k, v in raw.items()}
        for key in field_options(spec):  # "sgd:lr=0.1" sets the lr field
            if key not in typed:
                continue
            value = typed.pop(key)
            current = getattr(self, key)
            unset = current is None or (key == "betas" and tuple(current) == DEFAULT_BETAS)
            if not unset and tuple(_as_list(current)) != tuple(_as_list(value)):
                raise ValueError(f"{spec.name}: {key} given twice ({current!r} and {value!r})")
            object.__setattr__(self, key, value)
        object.__setattr__(self, "options", FrozenOptions(typed))

    def _check_hparams(self, spec: registry.OptimizerSpec) -> None:
        carried = field_options(spec)
        if "lr" not in carried:
            if self.lr is not None or self.momentum is not None:
                what = "sets lr and momentum itself" if spec.is_auto else "sets its own step size"
                raise ValueError(
                    f"{spec.name} {what}; pass lr=None, momentum=None (its own options go in "
                    f"options, e.g. {spec.name}:key=value)"
                )
        else:
            if self.lr is None or not (math.isfinite(self.lr) and self.lr > 0):
                raise ValueError(f"{spec.name} needs a finite lr > 0, got {self.lr!r}")
            if "momentum" in carried:
                if self.momentum is None or not 0.0 <= self.momentum < 1.0:
                    raise ValueError(f"{spec.name} needs momentum in [0, 1), got {self.momentum!r}")
            elif self.momentum is not None:
                raise ValueError(
                    f"{spec.name} takes no momentum (Adam's first moment is betas[0]); "
                    "pass momentum=None"
                )
        if "betas" not in carried and self.betas != DEFAULT_BETAS:
            raise ValueError(f"{spec.name} takes no betas field; pass its options in options")
        spec.resolve(self.build_options())  # every option known, typed and present

    @property
    def spec(self) -> registry.OptimizerSpec:
        """The optimizer's registry entry."""
        return registry.get(self.optimizer)

    @property
    def is_auto(self) -> bool:
        """True for the AutoOpt optimizers (any variant)."""
        return self.spec.is_auto

    @property
    def stackable(self) -> bool:
        """True when the stacked engine can train it: its optimizer has a stacked form, it
        has no options beyond the grid's fields, and its model's layers can be stacked."""
        from .stacked import stackable_model

        return (
            self.spec.vectorized is not None
            and not self.options
            and stackable_model(str(self.model))
        )

    def with_engine(self, engine: str) -> RunConfig:
        """This config computed by ``engine``; configs without a stacked form stay ``loop``.

        >>> RunConfig("mnist", "adam", lr=1e-3).with_engine("stacked").engine
        'stacked'
        >>> RunConfig("mnist", "autosgd").with_engine("stacked").engine
        'loop'
        """
        engine = engine if self.stackable else "loop"
        return self if engine == self.engine else dataclasses.replace(self, engine=engine)

    def build_options(self) -> dict[str, Any]:
        """The keyword options for :func:`autoopt_lab.optim.registry.build`."""
        spec = self.spec
        out: dict[str, Any] = {k: getattr(self, k) for k in field_options(spec)}
        out.update(self.options)
        return out

    def resolved_options(self) -> dict[str, Any]:
        """Every option the optimizer will run with (defaults filled in)."""
        return self.spec.resolve(self.build_options())

    def to_dict(self) -> dict[str, Any]:
        """All fields as plain JSON types."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["betas"] = list(self.betas)
        d["options"] = FrozenOptions(self.options).to_json()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown RunConfig keys {sorted(unknown)}; allowed: {sorted(names)}")
        d = dict(d)
        if "betas" in d:
            d["betas"] = tuple(d["betas"])
        return cls(**d)

    def identity(self) -> dict[str, Any]:
        """What :meth:`run_id` hashes: every field that changes the result, plus the
        optimizer's resolved options (defaults filled in, less those held in fields) when
        it has any, so a changed library default changes the id of the runs it affects; the
        engine when it is not ``"loop"``; and the data's content hash when it is not the data
        set's reference content (:mod:`autoopt_lab.data.fingerprint`)."""
        d = {k: v for k, v in self.to_dict().items() if k not in _NOT_IN_KEY}
        del d["options"]
        if d["engine"] == "loop":  # ids from before engines existed are loop runs
            del d["engine"]
        from autoopt_lab.data.fingerprint import run_data_key

        data = run_data_key(self.dataset)
        if data is not None:  # ids from before data hashes are on the reference data
            d["data"] = data
        carried = field_options(self.spec)
        resolved = {k: v for k, v in self.resolved_options().items() if k not in carried}
        if resolved:
            d["options"] = FrozenOptions(resolved).to_json()
        return d

    def run_id(self) -> str:
        """A stable 16-hex-digit hash of :meth:`identity`."""
        return config_key(self.identity())

    def label(self) -> str:
        """A short human label, e.g. ``SGD(lr=0.01, momentum=0.9) N=128 seed=0``."""
        return f"{self.spec.label(self.build_options())} N={self.batch_size} seed={self.seed}"


def _as_list(value: Any) -> list[Any]:
    """``value`` as a list (a scalar becomes a one-item list), for comparisons."""
    return list(value) if isinstance(value, list | tuple) else [value]


def _check_device_name(device: str) -> None:
    """A device *name* check (availability is checked when a run starts)."""
    text = str(device).strip().lower()
    if text == "auto":
        return
    try:
        dev = torch.device(text)
    except (RuntimeError, TypeError):
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda", "mps", "xpu"):
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {device!r}")


def check_batch_fits(configs: list[RunConfig], n_train: dict[str, int]) -> None:
    """A ``ValueError`` when a config's batch is larger than its training set (``n_train``:
    samples per data set, before ``max_train_samples``): its one short batch would be
    recorded under a batch size that never ran."""
    for c in configs:
        n = min(n_train[c.dataset], c.max_train_samples or n_train[c.dataset])
        if c.batch_size > n:
            raise ValueError(
                f"batch size {c.batch_size} is larger than the {n:,} training samples of "
                f"{c.dataset}; give a batch size of at most {n:,} (or more samples)")
