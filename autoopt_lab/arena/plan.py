"""What the arena trains: the tuned grids, every Auto variant and the tuning-free peers, on the
same data, seeds and steps.

A :class:`Contender` is one line of the arena's table: a tuned grid (several settings, the
best one per batch size is reported, as the paper does), or one optimizer at its defaults
(an Auto variant or a peer; spec strings such as ``"autosgd-paper:max_lr=0.3"`` are
variants). :class:`ArenaPlan` turns the contenders into
:class:`~autoopt_lab.experiments.RunConfig` runs.

>>> plan = get_preset("quick")
>>> [c.key for c in plan.contenders()][:4]
['sgd', 'adam', 'adagrad', 'autosgd']
>>> len(plan.configs()) == len(plan.batch_sizes) * len(plan.seeds) * plan.settings_count()
True
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from autoopt_lab import sizes
from autoopt_lab.experiments import RunConfig
from autoopt_lab.optim import Choice, registry

#: Auto variants in every arena: the library defaults (the decoupled step with measured
#: curvature inside the trust region, docs/decoupled.md), AutoSGD's default before it (the
#: paper's step and curvature inside the trust region), the paper's method as written, the
#: authors' published AutoAdam, and the paper's AutoSGD with the lr cap that stabilises it
#: (max_lr=0.3, docs/method.md).
AUTO_VARIANTS: tuple[str, ...] = (
    "autosgd",
    "autoadam",
    "autoadagrad",
    "autosgd:step=paper:curvature=paper",
    "autosgd-paper",
    "autoadam-paper",
    "autoadagrad-paper",
    "autoadam-authors",
    "autosgd-paper:max_lr=0.3",
)
#: The tuned grids (:data:`autoopt_lab.sizes.LR_GRIDS`): learning rates by the registry's
#: preconditioner family, and the momenta of the optimizers with a momentum option.
LR_GRID: dict[str, tuple[float, ...]] = dict(sizes.LR_GRIDS["arena"]["arena"])
MOMENTA: tuple[float, ...] = sizes.momenta("arena", "arena")


@dataclass(frozen=True)
class Contender:
    """One line of the arena: a key, its display label, family and preconditioner family,
    the registry optimizer, and its settings (several for a tuned grid)."""

    key: str
    label: str
    family: str
    base: str
    optimizer: str
    settings: tuple[dict[str, Any], ...]

    @property
    def is_grid(self) -> bool:
        return self.family == "tuned"


@dataclass(frozen=True)
class PlannedRun:
    """One run of the arena: its contender, the grid setting's label ("" for the others)
    and its config."""

    contender: Contender
    setting: str
    config: RunConfig


def _tuned(name: str, settings: list[dict[str, Any]]) -> Contender:
    spec = registry.get(name)
    label = f"{spec.display} (best of {len(settings)})"
    return Contender(name, label, "tuned", spec.base, name, tuple(settings))


def _single(text: str) -> Contender:
    choice = Choice.parse(text)
    spec = choice.spec
    return Contender(text, choice.label, spec.family, spec.base, choice.name,
                     (dict(choice.options),))


@dataclass(frozen=True)
class ArenaPlan:
    """The arena's runs. ``peers=None`` means every installed tuning-free peer, ``tuned=None``
    every registered tuned optimizer's grid (``()``: none, to run only the other contenders,
    e.g. a new variant to compare with a table run before)."""

    name: str = "full"
    description: str = ""
    dataset: str = "fashion-mnist"
    batch_sizes: tuple[int, ...] = (32, 128, 256)
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    epochs: int = 2
    max_train_samples: int | None = None
    max_test_samples: int | None = 5000
    lr_grid: Mapping[str, tuple[float, ...]] = field(default_factory=lambda: dict(LR_GRID))
    momenta: tuple[float, ...] = MOMENTA
    auto: tuple[str, ...] = AUTO_VARIANTS
    peers: tuple[str, ...] | None = None
    tuned: tuple[str, ...] | None = None
    device: str = "auto"
    extra: tuple[str, ...] = field(default=())

    def contenders(self) -> list[Contender]:
        """Tuned grids first, then the Auto variants, the peers and any extra spec strings."""
        tuned = self.tuned if self.tuned is not None else tuple(registry.names("tuned"))
        for name in tuned:
            if registry.get(name).family != "tuned":
                raise ValueError(f"{name!r} is not a tuned optimizer; tuned ones: "
                                 + ", ".join(registry.names("tuned")))
        out = [_tuned(name, self.tuned_settings(name)) for name in tuned]
        peers = self.peers if self.peers is not None else tuple(
            registry.names("peer", available=True)
        )
        out += [_single(t) for t in (*self.auto, *peers, *self.extra)]
        keys = [c.key for c in out]
        if len(set(keys)) != len(keys):
            raise ValueError(f"the arena lists a contender twice: {keys}")
        return out

    def tuned_settings(self, name: str) -> list[dict[str, Any]]:
        """The grid of tuned optimizer ``name``: its family's learning rates (x momenta)."""
        spec = registry.get(name)
        if spec.base not in self.lr_grid:
            raise ValueError(f"the arena has no learning rates for the {spec.base!r} family "
                             f"({name}); add them to autoopt_lab.sizes.LR_GRIDS")
        lrs = self.lr_grid[spec.base]
        if "momentum" in spec.option_names:
            return [{"lr": lr, "momentum": m} for m in self.momenta for lr in lrs]
        return [{"lr": lr} for lr in lrs]

    def settings_count(self) -> int:
        return sum(len(c.settings) for c in self.contenders())

    def runs(self) -> list[PlannedRun]:
        """Every run: each contender's settings x batch sizes x seeds."""
        out = []
        for c in self.contenders():
            for setting in c.settings:
                lr = setting.get("lr") if c.is_grid else None
                mom = setting.get("momentum") if c.is_grid else None
                options = {} if c.is_grid else dict(setting)
                label = ", ".join(f"{k}={v:.3g}" for k, v in setting.items()) if c.is_grid else ""
                for n in self.batch_sizes:
                    for seed in self.seeds:
                        cfg = RunConfig(
                            self.dataset, c.optimizer, lr=lr, momentum=mom, batch_size=n,
                            epochs=self.epochs, seed=seed, device=self.device,
                            max_train_samples=self.max_train_samples,
                            max_test_samples=self.max_test_samples, options=options,
                        )
                        out.append(PlannedRun(c, label, cfg))
        return out

    def configs(self) -> list[RunConfig]:
        """The :class:`RunConfig` of every run."""
        return [r.config for r in self.runs()]

    def to_dict(self) -> dict[str, Any]:
        """The plan as recorded in the arena's summary (``<base>_lrs`` per family and
        ``sgd_momenta``, as it always was)."""
        d: dict[str, Any] = {}
        for key, value in dataclasses.asdict(self).items():
            if key == "lr_grid":
                d["sgd_lrs"] = value.get("sgd")
                d["sgd_momenta"] = self.momenta
                d.update({f"{b}_lrs": v for b, v in value.items() if b != "sgd"})
            elif key != "momenta":
                d[key] = value
        d["contenders"] = [c.key for c in self.contenders()]
        return d


#: The arena's presets, from :data:`autoopt_lab.sizes.SIZES` (``full``, ``quick``, ``mnist``).
def _preset(mode: str) -> ArenaPlan:
    row = sizes.size("arena", mode)
    grid = row.pop("grid")
    return ArenaPlan(mode, **row, lr_grid=dict(sizes.LR_GRIDS["arena"][grid]),
                     momenta=sizes.momenta("arena", grid))


PRESETS: dict[str, ArenaPlan] = {mode: _preset(mode) for mode in sizes.SIZES["arena"]}


def get_preset(name: str | ArenaPlan, **overrides: Any) -> ArenaPlan:
    """A preset by name (``full``, ``quick``, ``mnist``), with fields overridden
    (``<base>_lrs=...`` sets one family's learning rates, ``sgd_momenta=...`` the momenta)."""
    if isinstance(name, ArenaPlan):
        plan = name
    elif name in PRESETS:
        plan = PRESETS[name]
    else:
        raise ValueError(f"unknown arena preset {name!r}; known: {', '.join(PRESETS)}")
    overrides = {k: v for k, v in overrides.items() if v is not None}
    grid = dict(plan.lr_grid)
    for key in [k for k in overrides if k.endswith("_lrs")]:  # sgd_lrs=...: one family's grid
        value = overrides.pop(key)
        if isinstance(value, str):
            raise ValueError(f"{key} must be a list, got the string {value!r}")
        grid[key.removesuffix("_lrs")] = tuple(value)
    if grid != dict(plan.lr_grid):
        overrides["lr_grid"] = grid
    if "sgd_momenta" in overrides:
        overrides["momenta"] = overrides.pop("sgd_momenta")
    for key in ("batch_sizes", "seeds", "auto", "peers", "tuned", "extra", "momenta"):
        if key in overrides:
            value = overrides[key]
            if isinstance(value, str):
                raise ValueError(f"{key} must be a list, got the string {value!r}")
            overrides[key] = tuple(value)
    return dataclasses.replace(plan, **overrides) if overrides else plan
