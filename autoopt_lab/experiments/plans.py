"""What each reproduction target runs in a mode: the configs behind Figures 2-4 and Table 2.

* ``table2`` / ``fig4`` (the same runs): on every data set, at N = 128, each tuned
  optimizer over its grid and every other role of :mod:`~autoopt_lab.experiments.variants`
  (the paper's method, the authors' settings, the library default, the tuning-free peers)
  on the same preconditioner;
* ``fig2``: the AutoSGD variants (paper's method and library default) at each batch size;
* ``fig3``: the SGD grid and the same AutoSGD variants at each batch size.

Figures 2-3 run on the first ``preset.figure_datasets`` data sets (all in full mode).

>>> autos = len(figure_autos())  # Auto variants x 3 batch sizes x 3 seeds (+ SGD's 8 settings)
>>> [len(plan(t, "quick", ["mnist"])) for t in ("fig2", "fig3")] == [9 * autos, 9 * (autos + 8)]
True
"""

from __future__ import annotations

from collections.abc import Sequence

from .config import RunConfig
from .executors import executor_engine
from .grids import dedupe, grid
from .presets import Preset, get_preset
from .variants import BASES, auto_for, paper_for, tuned_for, variants_for

TARGETS: tuple[str, ...] = ("fig2", "fig3", "fig4", "table2")
#: The executor the reproduction sweeps run on; its engine is part of the planned ids.
EXECUTOR = "vectorized"


def figure_datasets(preset: Preset | str, datasets: Sequence[str]) -> list[str]:
    """The data sets that get the multi-batch-size Figures 2-3 in this mode.

    >>> figure_datasets("quick", ["mnist", "fashion-mnist"]), figure_datasets("full", ["a", "b"])
    (['mnist'], ['a', 'b'])
    """
    limit = get_preset(preset).figure_datasets
    return list(datasets)[:limit] if limit is not None else list(datasets)


def figure_autos(base: str = "sgd") -> list[str]:
    """The Auto optimizers Figures 2-3 follow: the paper's method and the library default."""
    return list(dict.fromkeys(n for n in (paper_for(base), auto_for(base)) if n))


def plan(
    target: str,
    mode: str | Preset,
    datasets: Sequence[str] = ("mnist",),
    *,
    device: str = "auto",
) -> list[RunConfig]:
    """The runs one target needs (with the engine :data:`EXECUTOR` computes them with)."""
    engine = executor_engine(EXECUTOR)
    return dedupe(c.with_engine(engine) for c in _target_configs(target, mode, datasets, device))


def _target_configs(
    target: str, mode: str | Preset, datasets: Sequence[str], device: str
) -> list[RunConfig]:
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; allowed: {', '.join(TARGETS)}, all")
    p = get_preset(mode)
    datasets = [datasets] if isinstance(datasets, str) else list(datasets)
    common = dict(
        epochs=p.epochs,
        max_train_samples=p.max_train_samples,
        max_test_samples=p.max_test_samples,
        device=device,
        train_eval=p.train_eval,
    )
    if target in ("fig2", "fig3"):
        figs = figure_datasets(p, datasets)
        sizes = p.fig2_batch_sizes if target == "fig2" else p.fig3_batch_sizes
        opts = figure_autos("sgd") + ([tuned_for("sgd")] if target == "fig3" else [])
        return grid(figs, opts, batch_sizes=sizes, seeds=p.figure_seeds, lrs=p.sgd_lrs,
                    momenta=p.momenta, **common)
    # fig4 and table2 share the N = 128 runs over the Table 2 seeds
    configs: list[RunConfig] = []
    for base in BASES:
        names = [v.optimizer for v in variants_for(base, peers=p.peers)]
        configs += grid(datasets, list(dict.fromkeys(names)), batch_sizes=[p.table_batch_size],
                        seeds=p.table_seeds, lrs=p.lrs(base), momenta=p.momenta, **common)
    return configs


def expand_targets(targets: Sequence[str] | str) -> list[str]:
    """``"all"`` -> every target; otherwise validated, in canonical order."""
    targets = [targets] if isinstance(targets, str) else list(targets)
    if "all" in targets:
        return list(TARGETS)
    bad = [t for t in targets if t not in TARGETS]
    if bad:
        raise ValueError(f"unknown target(s) {bad}; allowed: {', '.join(TARGETS)}, all")
    return [t for t in TARGETS if t in targets]


def plan_all(
    targets: Sequence[str] | str,
    mode: str | Preset,
    datasets: Sequence[str],
    *,
    device: str = "auto",
) -> list[RunConfig]:
    """The union of the targets' runs, without repeats."""
    out: list[RunConfig] = []
    for t in expand_targets(targets):
        out += plan(t, mode, datasets, device=device)
    return dedupe(out)
