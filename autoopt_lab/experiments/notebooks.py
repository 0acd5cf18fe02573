"""The cells of the reproduction notebooks, so they stay thin and reviewable as code.

Registered with :mod:`autoopt_lab.notebooks`; ``python -m autoopt_lab.notebooks`` (re)writes
every notebook.
"""

from __future__ import annotations

from autoopt_lab.notebooks import register_notebook


def _run_cell(target: str) -> str:
    """The cell that runs (or reuses) the sweep behind ``target`` and shows its provenance."""
    return f"""\
configs = rp.plan("{target}", preset, datasets, device=device)
report = rp.ensure_runs(configs, results, workers=workers, data_root=data_root or None)
runs = rp.runs_for(results, configs)
print(report.to_dict())
rp.data_provenance(runs)"""


PARAMETERS_COMMON = """\
mode = "quick"  # "quick": minutes on a laptop CPU; "full": the paper's sizes
datasets = ["fashion-mnist"]  # any of "mnist", "fashion-mnist", "cifar10"
store = ""  # SQLite results file; "" means <out_dir>/results.sqlite
out_dir = "."  # PNGs and the JSON summary go here
workers = 1  # > 1: parallel worker processes for runs not yet in the store
device = "auto"  # "auto" uses CUDA when present
data_root = ""  # "" means $AUTOOPT_DATA or ~/.cache/autoopt-lab/data"""

SETUP = """\
from pathlib import Path

from autoopt_lab.experiments import ResultsStore, analysis, plots
from autoopt_lab.experiments import reproduce as rp

out = Path(out_dir)
out.mkdir(parents=True, exist_ok=True)
preset = rp.get_preset(mode)
results = ResultsStore(store or out / "results.sqlite")
print(f"mode {preset.name}: {preset.description}")"""

FIG2 = [
    (
        "markdown",
        """\
# Figure 2: AutoSGD's learning rate and momentum against step

The paper's Figure 2 shows, for the first convolutional layer of the MNIST CNN, the learning
rate and momentum that AutoSGD picks at each step, one curve per mini-batch size. Expected
shape: the learning rate rises with the batch size, peaks and then decays by itself; the
momentum starts low and grows as the learning rate falls.

All logic lives in `autoopt_lab.experiments`; this notebook only calls it. Runs already in the
store are reused.""",
    ),
    (
        "parameters",
        PARAMETERS_COMMON + '\ntensor = "conv1.weight"  # the paper plots the first conv layer',
    ),
    ("code", SETUP),
    (
        "code",
        _run_cell("fig2"),
    ),
    (
        "code",
        """\
traces = analysis.hparam_traces(results, runs, tensor=tensor)
per_dataset = {}
pngs = []
for ds, tr in traces.groupby("dataset"):
    fig = plots.plot_hparams(tr, title=f"AutoSGD, {tensor}, {ds} ({preset.name} mode)")
    png = f"fig2_{ds}.png"
    fig.savefig(out / png, dpi=120)
    pngs.append(png)
    per_dataset[ds] = analysis.hparam_trace_summary(tr)
per_dataset""",
    ),
    (
        "code",
        """\
summary = {
    "notebook": "fig2",
    "mode": preset.name,
    "preset": preset.to_dict(),
    "tensor": tensor,
    "n_runs": len(runs),
    "data": rp.data_provenance(runs),
    "per_dataset": per_dataset,
    "png": pngs,
}
rp.write_json(out / "fig2.json", summary)""",
    ),
]

FIG3_FIG4 = [
    (
        "markdown",
        """\
# Figures 3 and 4: test error against train error for every grid setting

* **Figure 3**: SGD at each mini-batch size; every grid setting (lr x momentum, mean over the
  seeds run) coloured by its learning rate, AutoSGD as black dots (one per seed).
* **Figure 4**: at N = 128, SGD, Adam and AdaGrad grids against AutoSGD, AutoAdam and
  AutoAdaGrad, per data set.

The tables under each figure give the best grid setting, the Auto run's errors and the Auto
run's rank among the grid settings (1 = better than every grid setting).""",
    ),
    ("parameters", PARAMETERS_COMMON + '\nfigures = ["fig3", "fig4"]  # which of the two to draw'),
    ("code", SETUP),
    (
        "code",
        """\
plans = {f: rp.plan(f, preset, datasets, device=device) for f in figures}
report = rp.ensure_runs(
    [c for cs in plans.values() for c in cs], results, workers=workers, data_root=data_root or None
)
print(report.to_dict())
record = {"notebook": "fig3_fig4", "mode": preset.name, "preset": preset.to_dict(), "png": []}""",
    ),
    (
        "code",
        """\
if "fig3" in figures:
    runs3 = rp.runs_for(results, plans["fig3"])
    summary3 = analysis.setting_summary(runs3)
    for ds in datasets:
        fig = plots.plot_errors_by_batch_size(summary3, runs3, ds, optimizer="sgd")
        fig.savefig(out / f"fig3_{ds}.png", dpi=120)
        record["png"].append(f"fig3_{ds}.png")
    fig3_table = analysis.auto_vs_grid(summary3)
    record["fig3"] = {"n_runs": len(runs3), "data": rp.data_provenance(runs3),
                      "auto_vs_grid": fig3_table.to_dict("records")}
    display(fig3_table)""",
    ),
    (
        "code",
        """\
if "fig4" in figures:
    runs4 = rp.runs_for(results, plans["fig4"])
    summary4 = analysis.setting_summary(runs4)
    fig = plots.plot_errors_by_optimizer(summary4, runs4, batch_size=preset.table_batch_size)
    fig.savefig(out / "fig4.png", dpi=120)
    record["png"].append("fig4.png")
    fig4_table = analysis.auto_vs_grid(summary4)
    record["fig4"] = {"n_runs": len(runs4), "data": rp.data_provenance(runs4),
                      "auto_vs_grid": fig4_table.to_dict("records")}
    display(fig4_table)""",
    ),
    ("code", 'rp.write_json(out / "fig3_fig4.json", record)'),
]

TABLE2 = [
    (
        "markdown",
        """\
# Table 2: best grid setting vs its Auto counterpart, at N = 128

For each optimizer, the grid setting with the lowest **mean test error over seeds** (the
paper picks "the lowest train and test errors"; we select on test and report both), and the
Auto optimizer's single run per seed. Mean and std are over seeds, in percent. The paper's
value stands beside ours with the difference (ours minus paper, percentage points).

Fashion-MNIST is not in the paper. It runs the paper's MNIST architecture and is compared with
the paper's MNIST column only for orientation: Fashion-MNIST is a harder task, so higher
errors are expected. In quick mode the runs are also far shorter than the paper's.""",
    ),
    ("parameters", PARAMETERS_COMMON),
    ("code", SETUP),
    (
        "code",
        _run_cell("table2"),
    ),
    (
        "code",
        """\
table = analysis.table2(runs, batch_size=preset.table_batch_size, by="test")
analysis.table2_display(table)""",
    ),
    (
        "code",
        """\
fig = plots.plot_table2(table)
fig.savefig(out / "table2.png", dpi=120)
summary = {
    "notebook": "table2",
    "mode": preset.name,
    "preset": preset.to_dict(),
    "batch_size": preset.table_batch_size,
    "selection": "best grid setting by mean test error over seeds",
    "n_runs": len(runs),
    "data": rp.data_provenance(runs),
    "cells": table.to_dict("records"),
    "png": ["table2.png"],
}
rp.write_json(out / "table2.json", summary)""",
    ),
]

NOTEBOOK_CELLS = {
    "fig2_lr_momentum.ipynb": FIG2,
    "fig3_fig4_errors.ipynb": FIG3_FIG4,
    "table2_errors.ipynb": TABLE2,
}


for _name, _cells in NOTEBOOK_CELLS.items():
    register_notebook(_name, _cells)
