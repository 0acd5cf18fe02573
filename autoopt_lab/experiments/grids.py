"""Grids of :class:`RunConfig`: the paper's (Section 5), or any subset of it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from .config import AUTO_OPTIMIZERS, OPTIMIZERS, RunConfig
from .paper import (
    PAPER_ADAM_BETAS,
    PAPER_BATCH_SIZES,
    PAPER_EPOCHS,
    PAPER_LRS,
    PAPER_MOMENTA,
    PAPER_SEEDS,
)


def grid(
    datasets: Sequence[str] = ("mnist", "cifar10"),
    optimizers: Sequence[str] = OPTIMIZERS,
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
) -> list[RunConfig]:
    """Every run of the grid: SGD over lr x momentum x batch, Adam and AdaGrad over
    lr x batch, one Auto run per batch size; each for every seed.

    The defaults are the paper's grid: 324 SGD + 54 Adam + 54 AdaGrad settings and
    6 settings for each Auto optimizer, per data set, times 10 seeds.

    >>> len(grid(["mnist"], ["sgd"], seeds=[0]))
    324
    >>> len(grid(["mnist"], ["adam", "adagrad", "autosgd"], seeds=range(10)))
    1140
    """
    seeds = list(seeds)
    out: list[RunConfig] = []
    common = dict(
        epochs=epochs,
        max_train_samples=max_train_samples,
        max_test_samples=max_test_samples,
        device=device,
    )
    for dataset in datasets:
        for opt in optimizers:
            opt = opt.lower()
            if opt not in OPTIMIZERS:
                raise ValueError(f"unknown optimizer {opt!r}; allowed: {', '.join(OPTIMIZERS)}")
            for n in batch_sizes:
                if opt in AUTO_OPTIMIZERS:
                    settings = [dict(lr=None, momentum=None)]
                elif opt == "sgd":
                    settings = [dict(lr=lr, momentum=m) for lr in lrs for m in momenta]
                else:
                    settings = [dict(lr=lr, momentum=None) for lr in lrs]
                for s in settings:
                    for seed in seeds:
                        kw = dict(betas=betas) if opt in ("adam", "autoadam") else {}
                        out.append(
                            RunConfig(dataset, opt, batch_size=n, seed=seed, **s, **kw, **common)
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
