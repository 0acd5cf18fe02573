"""Grids of :class:`RunConfig`: the paper's (Section 5), or any subset of it, for any
optimizer in the registry.

An optimizer is given as a registry name, a spec string (``"autoadam:ewma=0.95"``) or a
``(name, options)`` pair. Tuned optimizers (family ``"tuned"``) run over the learning-rate
grid (and SGD over the momentum grid too), unless the spec string fixes ``lr`` /
``momentum``; every other optimizer runs one setting per batch size.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from autoopt_lab.optim import registry
from autoopt_lab.optim.spec_strings import Choice, parse_list

from .config import RunConfig, field_options
from .paper import (
    PAPER_ADAM_BETAS,
    PAPER_BATCH_SIZES,
    PAPER_EPOCHS,
    PAPER_LRS,
    PAPER_MOMENTA,
    PAPER_SEEDS,
)

OptimizerItem = str | tuple[str, Mapping[str, Any]]


def parse_item(text: str) -> tuple[str, dict[str, Any]]:
    """One spec string -> ``(name, typed options)``; unlike a full spec, a tuned optimizer's
    ``lr`` may be left to the grid (:meth:`~autoopt_lab.optim.Choice.parse`).

    >>> parse_item("SGD:momentum=0.9")
    ('sgd', {'momentum': 0.9})
    """
    return Choice.parse(str(text)).pair


def parse_optimizer_items(items: str | Iterable[OptimizerItem]) -> list[tuple[str, dict]]:
    """Names, spec strings or ``(name, options)`` pairs -> ``[(name, typed options)]``.

    ``"all"`` (alone) is every available optimizer.

    >>> parse_optimizer_items("autosgd,adam:lr=1e-3")
    [('autosgd', {}), ('adam', {'lr': 0.001})]
    """
    return parse_list(items if isinstance(items, str) else list(items))


def _settings(
    spec: registry.OptimizerSpec,
    opts: dict[str, Any],
    lrs: Sequence[float],
    momenta: Sequence[float],
    betas: tuple[float, float],
) -> list[dict[str, Any]]:
    """The per-optimizer settings of one grid cell (batch size, seed aside)."""
    carried = field_options(spec)
    rest = {k: v for k, v in opts.items() if k not in carried}
    base: dict[str, Any] = {"options": rest}
    if "betas" in carried:
        base["betas"] = tuple(opts.get("betas", betas))
    if "lr" not in carried:
        return [base]
    lr_values = [opts["lr"]] if "lr" in opts else list(lrs)
    if "momentum" not in carried:
        return [{**base, "lr": lr} for lr in lr_values]
    m_values = [opts["momentum"]] if "momentum" in opts else list(momenta)
    return [{**base, "lr": lr, "momentum": m} for lr in lr_values for m in m_values]


def grid(
    datasets: Sequence[str] = ("mnist", "cifar10"),
    optimizers: str | Iterable[OptimizerItem] = "all",
    *,
    batch_sizes: Sequence[int] = PAPER_BATCH_SIZES,
    seeds: Iterable[int] = PAPER_SEEDS,
    epochs: int = PAPER_EPOCHS,
    lrs: Sequence[float] = PAPER_LRS,
    momenta: Sequence[float] = PAPER_MOMENTA,
    betas: tuple[float, float] = PAPER_ADAM_BETAS,
    max_train_samples: int | None = None,
    max_test_samples: int | None = None,
    device: str = "auto",
    train_eval: str = "epoch",
) -> list[RunConfig]:
    """Every run of the grid: tuned optimizers over lr (SGD: lr x momentum) per batch size,
    every other optimizer one run per batch size; each for every seed. ``"all"`` (the
    default) is every available optimizer in the registry.

    The other defaults are the paper's grid: 324 SGD + 54 Adam + 54 AdaGrad settings and
    6 settings for each other optimizer, per data set, times 10 seeds.

    >>> len(grid(["mnist"], ["sgd"], seeds=[0]))
    324
    >>> len(grid(["mnist"], ["adam", "adagrad", "autosgd"], seeds=range(10)))
    1140
    >>> len(grid(["mnist"], "prodigy,autoadam:ewma=0.95", batch_sizes=[128], seeds=[0, 1]))
    4
    """
    seeds = list(seeds)
    items = parse_optimizer_items(optimizers)
    out: list[RunConfig] = []
    common = dict(
        epochs=epochs,
        max_train_samples=max_train_samples,
        max_test_samples=max_test_samples,
        device=device,
        train_eval=train_eval,
    )
    for dataset in datasets:
        for name, opts in items:
            spec = registry.get(name)
            settings = _settings(spec, opts, lrs, momenta, betas)
            for n in batch_sizes:
                for s in settings:
                    for seed in seeds:
                        out.append(
                            RunConfig(dataset, name, batch_size=n, seed=seed, **s, **common)
                        )
    return out


def dedupe(configs: Iterable[RunConfig]) -> list[RunConfig]:
    """Configs in order, without repeats (by run id)."""
    seen: set[str] = set()
    out = []
    for c in configs:
        rid = c.run_id()
        if rid not in seen:
            seen.add(rid)
            out.append(c)
    return out
