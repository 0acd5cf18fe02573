"""Reproducing Figures 2-4 and Table 2: the driver that runs the sweep the targets need,
executes the notebooks through papermill and writes ``summary.json`` with the claim table
first. What runs in each mode: :mod:`~autoopt_lab.experiments.presets` and
:mod:`~autoopt_lab.experiments.plans`.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .config import RunConfig
from .plans import (
    EXECUTOR,
    TARGETS,
    expand_targets,
    figure_autos,
    figure_datasets,
    plan,
    plan_all,
)
from .presets import PRESETS, Preset, get_preset
from .provenance import data_label, data_provenance, run_time_stats, runs_for
from .store import ResultsStore
from .sweep import SweepReport, run_sweep

logger = logging.getLogger(__name__)

__all__ = [
    "EXECUTOR", "NOTEBOOKS", "PRESETS", "TARGETS", "Preset", "check_data", "data_label",
    "data_provenance", "ensure_runs", "expand_targets", "figure_autos", "figure_datasets",
    "get_preset",
    "plan", "plan_all", "reproduce", "run_time_stats", "runs_for", "write_json",
]

NOTEBOOKS: dict[str, str] = {
    "fig2": "fig2_lr_momentum.ipynb",
    "fig3": "fig3_fig4_errors.ipynb",
    "fig4": "fig3_fig4_errors.ipynb",
    "table2": "table2_errors.ipynb",
}


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


class RunsFailedError(RuntimeError):
    """Some runs of the sweep raised; the command line exits with :attr:`exit_code`."""

    exit_code = 1


def check_kernel(kernel_name: str) -> None:
    """A ``ValueError`` naming the installed Jupyter kernels unless ``kernel_name`` is one."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    manager = KernelSpecManager()
    try:
        manager.get_kernel_spec(kernel_name)
    except NoSuchKernel:
        known = ", ".join(sorted(manager.find_kernel_specs())) or "none"
        raise ValueError(f"no Jupyter kernel named {kernel_name!r}; installed: {known} "
                         "(register one with `python -m ipykernel install --user --name "
                         f"{kernel_name}`)") from None


def reproduce(
    targets: Sequence[str] | str,
    mode: str,
    out_dir: str | os.PathLike[str],
    *,
    datasets: Sequence[str] = ("mnist", "fashion-mnist"),
    store: str | os.PathLike[str] | None = None,
    workers: int = 2,
    device: str = "auto",
    data_root: str | None = None,
    kernel_name: str = "python3",
    progress: bool = True,
    allow_subset: bool = False,
) -> dict[str, Any]:
    """Run the sweep the targets need, execute their notebooks into ``out_dir`` and write
    ``out_dir/summary.json`` (the claim table first); return that summary.

    A mode that uses the whole data set (``full``) refuses a data set of which only a
    subset is available (:class:`~autoopt_lab.data.SubsetOnlyError`) unless
    ``allow_subset``; then every output says so (``data_warning``)."""
    import papermill

    from .claims import claim_table

    t0 = time.perf_counter()
    targets = expand_targets(targets)
    check_kernel(kernel_name)  # before hours of runs end in a notebook that cannot start
    preset = get_preset(mode)
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    store_path = Path(store).resolve() if store else out / "results.sqlite"
    datasets = [datasets] if isinstance(datasets, str) else list(datasets)
    warning = check_data(preset, datasets, data_root, allow_subset=allow_subset)
    results = ResultsStore(store_path)

    configs = plan_all(targets, preset, datasets, device=device)
    report = ensure_runs(
        configs, results, workers=workers, data_root=data_root, progress=progress,
        sweep_name=f"reproduce-{mode}",
    )
    t_sweep = time.perf_counter() - t0
    if report.failed:
        raise RunsFailedError(f"{report.failed} runs failed and were kept with their tracebacks "
                              f"(the 'error' column of {store_path}); the notebooks were not run. "
                              "Rerun the same command to retry them")

    notebooks: dict[str, list[str]] = {}
    for t in targets:
        notebooks.setdefault(NOTEBOOKS[t], []).append(t)
    src_dir = notebook_dir()

    def execute(name: str) -> float:
        params: dict[str, Any] = {
            "mode": preset.name,
            "datasets": datasets,
            "store": str(store_path),
            "out_dir": str(out),
            "workers": workers,
            "device": device,
            "data_root": data_root or "",
            "data_warning": warning or "",
        }
        if name == NOTEBOOKS["fig3"]:
            params["figures"] = [t for t in notebooks[name] if t in ("fig3", "fig4")]
        t1 = time.perf_counter()
        papermill.execute_notebook(
            str(src_dir / name), str(out / name), parameters=params, kernel_name=kernel_name,
            cwd=str(out), progress_bar=False,
        )
        return time.perf_counter() - t1

    # the runs are all in the store now: the notebooks only read it, so they run side by side
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(notebooks)))) as pool:
        executed = dict(zip(notebooks, pool.map(execute, notebooks), strict=True))

    all_runs = runs_for(results, configs)
    claims = claim_table(results, preset, datasets, device=device)
    summary: dict[str, Any] = {
        "claims": claims.to_dict("records"),
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
