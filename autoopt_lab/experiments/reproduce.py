"""Reproducing Figures 2-4 and Table 2: what to run in each mode, and the driver that runs
the sweep and executes the notebooks through papermill.

Modes (presets):

* ``quick``: minutes on a laptop CPU. Reduced grid (4 learning rates; SGD momentum 0 and
  0.9), 3 epochs, a fixed 4,096-image training subset and 2,000 test images, 3 seeds for
  Table 2 / Figure 4, 1 seed for Figures 2-3, batch sizes 32, 128, 256.
* ``full``: the paper's setting: 9 learning rates x 6 momenta x 6 batch sizes, 10 seeds,
  10 epochs, the whole data set.
* ``smoke``: seconds; for tests of the plumbing only. Its numbers mean nothing.

Every output records the mode and the preset, so a quick result is never mistaken for the
paper's setting.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from .config import RunConfig
from .executors import executor_engine
from .grids import dedupe, grid
from .paper import (
    PAPER_BATCH_SIZES,
    PAPER_EPOCHS,
    PAPER_LRS,
    PAPER_MOMENTA,
    PAPER_SEEDS,
    TABLE2_BATCH_SIZE,
)
from .store import ResultsStore
from .sweep import SweepReport, run_sweep
from .variants import BASES, auto_for, tuned_for

logger = logging.getLogger(__name__)

TARGETS: tuple[str, ...] = ("fig2", "fig3", "fig4", "table2")
NOTEBOOKS: dict[str, str] = {
    "fig2": "fig2_lr_momentum.ipynb",
    "fig3": "fig3_fig4_errors.ipynb",
    "fig4": "fig3_fig4_errors.ipynb",
    "table2": "table2_errors.ipynb",
}


def _exp(*exponents: float) -> tuple[float, ...]:
    return tuple(10.0**e for e in exponents)


@dataclass(frozen=True)
class Preset:
    """The sizes of one reproduction mode."""

    name: str
    description: str
    epochs: int
    max_train_samples: int | None
    max_test_samples: int | None
    table_seeds: tuple[int, ...]
    figure_seeds: tuple[int, ...]
    fig2_batch_sizes: tuple[int, ...]
    fig3_batch_sizes: tuple[int, ...]
    sgd_lrs: tuple[float, ...]
    momenta: tuple[float, ...]
    adam_lrs: tuple[float, ...]
    adagrad_lrs: tuple[float, ...]
    table_batch_size: int = TABLE2_BATCH_SIZE

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


PRESETS: dict[str, Preset] = {
    "full": Preset(
        name="full",
        description="the paper's setting: full data, 10 epochs, 10 seeds, the whole grid",
        epochs=PAPER_EPOCHS,
        max_train_samples=None,
        max_test_samples=None,
        table_seeds=PAPER_SEEDS,
        figure_seeds=PAPER_SEEDS,
        fig2_batch_sizes=PAPER_BATCH_SIZES,
        fig3_batch_sizes=PAPER_BATCH_SIZES,
        sgd_lrs=PAPER_LRS,
        momenta=PAPER_MOMENTA,
        adam_lrs=PAPER_LRS,
        adagrad_lrs=PAPER_LRS,
    ),
    "quick": Preset(
        name="quick",
        description=(
            "reduced: 4,096 training / 2,000 test images (fixed subsets), 3 epochs, "
            "4 learning rates, SGD momentum {0, 0.9}, 3 seeds for Table 2 and Figure 4, "
            "1 seed for Figures 2-3, batch sizes {32, 128, 256}"
        ),
        epochs=3,
        max_train_samples=4096,
        max_test_samples=2000,
        table_seeds=(0, 1, 2),
        figure_seeds=(0,),
        fig2_batch_sizes=(32, 128, 256),
        fig3_batch_sizes=(32, 128, 256),
        sgd_lrs=_exp(-2, -1.5, -1, -0.5),
        momenta=(0.0, 0.9),
        adam_lrs=_exp(-3.5, -3, -2.5, -2),
        adagrad_lrs=_exp(-2, -1.5, -1, -0.5),
    ),
    "smoke": Preset(
        name="smoke",
        description="plumbing test only: 256 / 256 images, 1 epoch, 2 seeds; numbers are meaningless",
        epochs=1,
        max_train_samples=256,
        max_test_samples=256,
        table_seeds=(0, 1),
        figure_seeds=(0,),
        fig2_batch_sizes=(64, 128),
        fig3_batch_sizes=(64, 128),
        sgd_lrs=_exp(-1.5, -1),
        momenta=(0.9,),
        adam_lrs=_exp(-2.5),
        adagrad_lrs=_exp(-1),
    ),
}


def get_preset(mode: str | Preset) -> Preset:
    """A preset by name (``quick``, ``full``, ``smoke``)."""
    if isinstance(mode, Preset):
        return mode
    if mode not in PRESETS:
        raise ValueError(f"unknown mode {mode!r}; allowed: {', '.join(PRESETS)}")
    return PRESETS[mode]


#: The executor the reproduction sweeps run on; its engine is part of the planned ids.
EXECUTOR = "vectorized"


def plan(
    target: str,
    mode: str | Preset,
    datasets: Sequence[str] = ("fashion-mnist",),
    *,
    device: str = "auto",
) -> list[RunConfig]:
    """The runs one target needs (with the engine :data:`EXECUTOR` computes them with).

    >>> len(plan("table2", "quick"))  # (8 SGD + 4 Adam + 4 AdaGrad + 3 Auto) x 3 seeds
    57
    >>> len(plan("fig2", "full", ["mnist"]))  # AutoSGD at 6 batch sizes x 10 seeds
    60
    """
    engine = executor_engine(EXECUTOR)
    return [c.with_engine(engine) for c in _target_configs(target, mode, datasets, device)]


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
    )
    sgd, autosgd = tuned_for("sgd"), auto_for("sgd")
    if target == "fig2":
        return grid(
            datasets, [autosgd], batch_sizes=p.fig2_batch_sizes, seeds=p.figure_seeds, **common
        )
    if target == "fig3":
        return grid(
            datasets,
            [sgd, autosgd],
            batch_sizes=p.fig3_batch_sizes,
            seeds=p.figure_seeds,
            lrs=p.sgd_lrs,
            momenta=p.momenta,
            **common,
        )
    # fig4 and table2 share the N = 128 runs over the Table 2 seeds
    n = [p.table_batch_size]
    seeds = p.table_seeds
    lrs = {"sgd": p.sgd_lrs, "adam": p.adam_lrs, "adagrad": p.adagrad_lrs}
    configs = []
    for base in BASES:
        configs += grid(datasets, [tuned_for(base)], batch_sizes=n, seeds=seeds, lrs=lrs[base],
                        momenta=p.momenta, **common)
    configs += grid(datasets, [auto_for(b) for b in BASES], batch_sizes=n, seeds=seeds, **common)
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


def check_data(
    preset: Preset, datasets: Sequence[str], data_root: str | None, *, allow_subset: bool = False
) -> str | None:
    """Fail fast: missing data raises the loader's error; a mode that uses the whole data
    set refuses a subset unless ``allow_subset`` (then the returned warning goes into every
    output)."""
    from autoopt_lab.data import SubsetOnlyError, download_command, load_arrays

    warnings = []
    for ds in datasets:
        _, y, info = load_arrays(ds, train=True, root=data_root)
        if preset.max_train_samples is not None or not info.is_subset:
            continue
        if not allow_subset:
            raise SubsetOnlyError(
                ds, info.source, len(y), info.full_size,
                f"{download_command(ds, data_root)}; or pass --allow-subset to run the "
                f"{preset.name} plan on the subset anyway (every output then says so)",
            )
        warnings.append(
            f"{ds}: only {len(y):,} of {info.full_size:,} training images ({info.source}); "
            f"this is NOT the paper's {preset.name} setting"
        )
    return "; ".join(warnings) or None


def ensure_runs(
    configs: Sequence[RunConfig],
    store: ResultsStore,
    *,
    workers: int = 1,
    data_root: str | None = None,
    progress: bool = True,
    sweep_name: str | None = None,
) -> SweepReport:
    """Run whatever of ``configs`` is not yet in ``store``.

    Fixed-hyper-parameter settings that share model, batch size and seed train together
    (the ``vectorized`` executor); the Auto runs and the rest run one by one.
    """
    return run_sweep(
        configs,
        store,
        executor=EXECUTOR,
        workers=workers,
        data_root=data_root or None,
        progress=progress,
        sweep_name=sweep_name,
    )


def runs_for(store: ResultsStore, configs: Sequence[RunConfig]) -> pd.DataFrame:
    """The finished runs of ``store`` that belong to ``configs`` (other runs are ignored)."""
    ids = {c.run_id() for c in configs}
    runs = store.runs()
    if runs.empty:
        return runs
    return runs[runs["run_id"].isin(ids)].reset_index(drop=True)


def data_provenance(runs: pd.DataFrame) -> list[dict[str, Any]]:
    """Per data set: the source, and the train/test sizes actually used (subset or not)."""
    out = []
    for ds, g in runs.groupby("dataset", sort=True):
        r = g.iloc[0]
        out.append(
            {
                "dataset": ds,
                "source": r.get("data_source"),
                "train_samples_used": int(r.get("train_samples")),
                "test_samples_used": int(r.get("test_samples")),
                "train_split_size": int(r.get("train_data.num_samples")),
                "official_train_size": int(r.get("train_data.full_size")),
                "is_subset": bool(r.get("data_is_subset")),
                "notes": r.get("train_data.notes") or "",
            }
        )
    return out


def run_time_stats(runs: pd.DataFrame) -> dict[str, Any]:
    """Wall and CPU seconds per run, overall and per optimizer. CPU time is what a run
    costs on an idle core; wall time also counts waiting for a busy machine."""
    if runs.empty:
        return {"n": 0}
    cpu = runs["cpu_time_s"] if "cpu_time_s" in runs else runs["wall_time_s"]
    return {
        "n": len(runs),
        "mean_wall_s": float(runs["wall_time_s"].mean()),
        "mean_cpu_s": float(cpu.mean()),
        "sum_cpu_s": float(cpu.sum()),
        "runs_per_hour_per_idle_core": 3600.0 / float(cpu.mean())
        if float(cpu.mean()) > 0
        else None,
        "mean_cpu_s_by_optimizer": {
            k: float(v) for k, v in cpu.groupby(runs["optimizer"]).mean().items()
        },
        "mean_cpu_s_by_batch_size": {
            int(k): float(v) for k, v in cpu.groupby(runs["batch_size"]).mean().items()
        },
    }


def write_json(path: str | os.PathLike[str], payload: dict[str, Any]) -> Path:
    """Write ``payload`` as indented JSON (NaN becomes null)."""

    def clean(v: Any) -> Any:
        if isinstance(v, float) and v != v:
            return None
        if isinstance(v, dict):
            return {str(k): clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        if hasattr(v, "item"):
            return clean(v.item())
        return v

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(clean(payload), indent=2, sort_keys=False) + "\n")
    return path


def notebook_dir() -> Path:
    """Where the notebooks live: ``$AUTOOPT_NOTEBOOKS`` or the repository's ``notebooks/``."""
    env = os.environ.get("AUTOOPT_NOTEBOOKS")
    path = Path(env) if env else Path(__file__).resolve().parents[2] / "notebooks"
    if not path.is_dir():
        raise FileNotFoundError(
            f"notebook folder {path} not found; run from a source checkout "
            "(pip install -e .) or set $AUTOOPT_NOTEBOOKS"
        )
    return path


def reproduce(
    targets: Sequence[str] | str,
    mode: str,
    out_dir: str | os.PathLike[str],
    *,
    datasets: Sequence[str] = ("fashion-mnist",),
    store: str | os.PathLike[str] | None = None,
    workers: int = 2,
    device: str = "auto",
    data_root: str | None = None,
    kernel_name: str = "python3",
    progress: bool = True,
    allow_subset: bool = False,
) -> dict[str, Any]:
    """Run the sweep the targets need, execute their notebooks into ``out_dir`` and write
    ``out_dir/summary.json``; return that summary.

    A mode that uses the whole data set (``full``) refuses a data set of which only a
    subset is available (:class:`~autoopt_lab.data.SubsetOnlyError`) unless
    ``allow_subset``; then every output says so (``data_warning``)."""
    import papermill

    t0 = time.perf_counter()
    targets = expand_targets(targets)
    preset = get_preset(mode)
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    store_path = Path(store).resolve() if store else out / "results.sqlite"
    datasets = [datasets] if isinstance(datasets, str) else list(datasets)
    warning = check_data(preset, datasets, data_root, allow_subset=allow_subset)

    configs = plan_all(targets, preset, datasets, device=device)
    results = ResultsStore(store_path)
    report = ensure_runs(
        configs,
        results,
        workers=workers,
        data_root=data_root,
        progress=progress,
        sweep_name=f"reproduce-{mode}",
    )
    t_sweep = time.perf_counter() - t0
    if report.failed:
        raise RuntimeError(f"{report.failed} runs failed; see the 'error' column of {store_path}")

    notebooks: dict[str, list[str]] = {}
    for t in targets:
        notebooks.setdefault(NOTEBOOKS[t], []).append(t)
    src_dir = notebook_dir()
    executed = {}
    for name, nb_targets in notebooks.items():
        params: dict[str, Any] = {
            "mode": preset.name,
            "datasets": datasets,
            "store": str(store_path),
            "out_dir": str(out),
            "workers": workers,
            "device": device,
            "data_root": data_root or "",
        }
        if name == NOTEBOOKS["fig3"]:
            params["figures"] = [t for t in nb_targets if t in ("fig3", "fig4")]
        t1 = time.perf_counter()
        papermill.execute_notebook(
            str(src_dir / name),
            str(out / name),
            parameters=params,
            kernel_name=kernel_name,
            cwd=str(out),
            progress_bar=progress,
        )
        executed[name] = time.perf_counter() - t1

    all_runs = runs_for(results, configs)
    summary: dict[str, Any] = {
        "mode": preset.name,
        "preset": preset.to_dict(),
        "is_paper_setting": preset.name == "full" and warning is None,
        "data_warning": warning,
        "targets": targets,
        "datasets": datasets,
        "store": str(store_path),
        "runs": len(configs),
        "sweep": report.to_dict(),
        "sweep_wall_time_s": t_sweep,
        "run_times": run_time_stats(all_runs),
        "notebooks_wall_time_s": executed,
    }
    for part in ("fig2", "fig3_fig4", "table2"):
        path = out / f"{part}.json"
        if path.is_file():
            summary[part] = json.loads(path.read_text())
    if "table2" in summary:
        summary["table2_cells"] = summary["table2"]["cells"]
        summary["data"] = summary["table2"].get("data")
    summary["wall_time_s"] = time.perf_counter() - t0
    write_json(out / "summary.json", summary)
    return summary
