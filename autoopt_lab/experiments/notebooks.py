"""The cells of the reproduction notebooks, so they stay thin and reviewable as code.

Registered with :mod:`autoopt_lab.notebooks`; ``python -m autoopt_lab.notebooks`` (re)writes
every notebook.
"""

from __future__ import annotations

from autoopt_lab.notebooks import register_notebook

PARAMETERS_COMMON = """\
mode = "quick"  # "quick": minutes on a laptop CPU; "full": the paper's sizes
datasets = ["mnist", "fashion-mnist"]  # any of "mnist", "fashion-mnist", "cifar10"
store = ""  # SQLite results file; "" means <out_dir>/results.sqlite
out_dir = "."  # PNGs and the JSON summary go here
workers = 1  # > 1: parallel worker processes for runs not yet in the store
device = "auto"  # "auto" uses CUDA when present
data_root = ""  # "" means $AUTOOPT_DATA or ~/.cache/autoopt-lab/data
data_warning = ""  # set by `reproduce --allow-subset`: said in every title"""

SETUP = """\
from pathlib import Path

from autoopt_lab.experiments import ResultsStore, analysis, claims, plots
from autoopt_lab.experiments import reproduce as rp

out = Path(out_dir)
out.mkdir(parents=True, exist_ok=True)
preset = rp.get_preset(mode)
results = ResultsStore(store or out / "results.sqlite")
warn = f" - WARNING: {data_warning}" if data_warning else ""
print(f"mode {preset.name}: {preset.description}{warn}")"""


def _run_cell(target: str) -> str:
    """The cell that runs (or reuses) the sweep behind ``target`` and shows its provenance."""
    return f"""\
configs = rp.plan("{target}", preset, datasets, device=device)
report = rp.ensure_runs(configs, results, workers=workers, data_root=data_root or None)
runs = rp.runs_for(results, configs)
provenance = rp.data_provenance(runs)
labels = {{p["dataset"]: rp.data_label(p, preset) + warn for p in provenance}}
print(report.to_dict())
provenance"""


FIG2 = [
    (
        "markdown",
        """\
# Figure 2: AutoSGD's learning rate and momentum against step

The paper's Figure 2 shows, for the first convolutional layer of the MNIST CNN, the learning
rate and momentum that AutoSGD picks at each step, one curve per mini-batch size. Expected
shape: the learning rate rises with the batch size, peaks and then decays by itself; the
momentum starts low and grows as the learning rate falls. One row per AutoSGD variant (the
paper's method as written; the library default when it differs); curves are the mean over
seeds, bands the seeds' std. The claim "the adapted lr grows with the batch size" is judged
in the Table 2 notebook's claim table.""",
    ),
    (
        "parameters",
        PARAMETERS_COMMON + '\ntensor = "conv1.weight"  # the paper plots the first conv layer',
    ),
    ("code", SETUP),
    ("code", _run_cell("fig2")),
    (
        "code",
        """\
traces = analysis.hparam_traces(results, runs, tensor=tensor, optimizers=rp.figure_autos("sgd"))
per_dataset, pngs = {}, []
for ds, tr in traces.groupby("dataset"):
    fig = plots.plot_hparams(tr, title=f"Figure 2: {tensor}, {labels[ds]}")
    png = f"fig2_{ds}.png"
    fig.savefig(out / png, dpi=110)
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
    "data_warning": data_warning or None,
    "tensor": tensor,
    "n_runs": len(runs),
    "data": provenance,
    "titles": labels,
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

* **Figure 3**: SGD at each mini-batch size; every grid setting (lr x momentum; mean over the
  seeds, bars = the seeds' std) coloured by its learning rate, and each AutoSGD variant.
* **Figure 4**: at N = 128, the SGD, Adam and AdaGrad grids against every Auto variant and
  tuning-free peer of the same family, per data set.

The tables give, per variant, the best grid setting, the gap to it, the variant's rank among
the grid settings (1 = better than every grid setting) and its health flags: a run that
diverged, skipped non-finite steps or ended at chance is named, never silently averaged.""",
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
record = {"notebook": "fig3_fig4", "mode": preset.name, "preset": preset.to_dict(),
          "data_warning": data_warning or None, "png": []}
columns = ["dataset", "batch_size", "display", "role", "test_mean", "best_test_mean",
           "best_config", "gap_test", "rank", "n_settings", "flags"]""",
    ),
    (
        "code",
        """\
if "fig3" in figures:
    runs3 = rp.runs_for(results, plans["fig3"])
    summary3 = analysis.setting_summary(runs3)
    labels3 = {p["dataset"]: rp.data_label(p, preset) + warn for p in rp.data_provenance(runs3)}
    for ds in rp.figure_datasets(preset, datasets):
        title = f"Figure 3: SGD grid vs AutoSGD, {labels3[ds]} (mean over seeds, bars = std)"
        fig = plots.plot_errors_by_batch_size(summary3, ds, "sgd", title=title)
        fig.savefig(out / f"fig3_{ds}.png", dpi=110)
        record["png"].append(f"fig3_{ds}.png")
    fig3_table = analysis.auto_vs_grid(summary3)
    record["fig3"] = {"n_runs": len(runs3), "data": rp.data_provenance(runs3), "titles": labels3,
                      "auto_vs_grid": fig3_table.to_dict("records")}
    display(fig3_table[columns])""",
    ),
    (
        "code",
        """\
if "fig4" in figures:
    runs4 = rp.runs_for(results, plans["fig4"])
    summary4 = analysis.setting_summary(runs4)
    labels4 = {p["dataset"]: rp.data_label(p, preset) + warn for p in rp.data_provenance(runs4)}
    fig = plots.plot_errors_by_optimizer(summary4, preset.table_batch_size, titles=labels4,
                                         datasets=datasets)
    fig.suptitle("Figure 4: every grid vs the Auto variants and peers (mean over seeds, bars = std)")
    fig.savefig(out / "fig4.png", dpi=110)
    record["png"].append("fig4.png")
    fig4_table = analysis.auto_vs_grid(summary4)
    record["fig4"] = {"n_runs": len(runs4), "data": rp.data_provenance(runs4), "titles": labels4,
                      "auto_vs_grid": fig4_table.to_dict("records")}
    display(fig4_table[columns])""",
    ),
    ("code", 'rp.write_json(out / "fig3_fig4.json", record)'),
]

TABLE2 = [
    (
        "markdown",
        """\
# Do the paper's claims hold? The claim table, then Table 2

**The claim table comes first.** One row per claim of the paper and data set: the paper's
own figure for it (its gap Auto - tuned on *its* data), ours for every variant (the gap on
*our* data, in points and in units of the seeds' pooled std), and a verdict for the paper's
method, by the rule written in the row. Variants: the paper's method as written, the
authors' published settings, the library default, and the best tuning-free peer.

**Table 2** then gives, at N = 128, the best grid setting of each tuned optimizer (chosen by
mean test error over seeds, which flatters the tuned column) and every variant, as mean ±
std over seeds, with health flags. The paper's numbers appear only beside the data set they
come from (MNIST), labelled as the paper's: their runs use the whole data set, ours the
offline subset, so compare the gaps, not the errors.""",
    ),
    ("parameters", PARAMETERS_COMMON),
    ("code", SETUP),
    ("code", _run_cell("table2")),
    (
        "code",
        """\
claim_table = claims.claim_table(results, preset, datasets, device=device)
claims.claim_display(claim_table)""",
    ),
    (
        "code",
        """\
table = analysis.table2(runs, batch_size=preset.table_batch_size, by="test", datasets=datasets)
analysis.table2_display(table)""",
    ),
    (
        "code",
        """\
flagged = analysis.setting_summary(runs)
flagged[flagged["flags"] != ""][["dataset", "variant", "lr", "momentum", "test_mean", "flags"]]""",
    ),
    (
        "code",
        """\
fig = plots.plot_table2(table, titles=labels)
fig.suptitle(f"Table 2 at N = {preset.table_batch_size} (bars: mean over seeds +- std)")
fig.savefig(out / "table2.png", dpi=110)
marks = claims.paper_gap_marks(datasets)
fig = plots.plot_claims(table, titles=labels, paper_gaps=marks)
fig.savefig(out / "claims.png", dpi=90)
summary = {
    "claims": claim_table.to_dict("records"),
    "claim_rules": claims.RULES,
    "notebook": "table2",
    "mode": preset.name,
    "preset": preset.to_dict(),
    "data_warning": data_warning or None,
    "batch_size": preset.table_batch_size,
    "selection": "best grid setting by mean test error over seeds",
    "n_runs": len(runs),
    "data": provenance,
    "titles": labels,
    "cells": table.to_dict("records"),
    "png": ["table2.png", "claims.png"],
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
