"""Write notebooks/workbench.ipynb (without outputs) from the cells below.

    .venv/bin/python scripts/build_workbench_notebook.py
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

INTRO = """\
# AutoOpt workbench

Pick a data set, an optimizer (Auto or manual SGD, Adam, AdaGrad), a batch size, the length of
the run, a shift scenario from the `streams/` catalogue (or none), a seed and a device; press
**Start** and watch the prequential loss and accuracy, and every tensor's learning rate and
momentum, live. Dashed vertical lines mark the shift boundaries. **Stop** ends a run early.
*Compare with* runs a second optimizer on the same stream, side by side.

Every run is a `StreamRun` from `autoopt_lab.streams`: each step first scores the model on the
incoming batch, then trains on it. A catalogue scenario keeps its data set, model and batch
sizes; the *steps* control rescales its length. With *shift scenario* = `none`, the stream is
shuffled batches of the training set.

When a run ends, the app writes a static PNG, a results table (CSV), the per-step trace and
the key numbers (JSON) to `output_dir`, and adds one row per optimizer to the SQLite results
store the sweeps use (`store_path`). The cells at the bottom show them as ordinary notebook
outputs, which survive in any viewer (the live plot lives in widget state only).
"""

WHY_THREAD = """\
### Why a background thread (and not cooperative stepping)

A cell that loops over training keeps the kernel busy: a click on **Stop** is a widget message
that waits in the kernel's queue until the loop ends, so Stop would never arrive in time.
Two ways out:

* **cooperative stepping**: run a few steps per event-loop turn (`asyncio` tasks or
  `ipykernel`'s `do_one_iteration`) and yield to the kernel between them; it works, but every
  slice of training must be short and hand control back, and a slow step freezes the UI;
* **a background thread** (chosen here): `Start` launches a daemon thread that steps the run;
  the kernel's main thread stays free for widget events, and **Stop** sets a
  `threading.Event` that the loop checks between steps, so the run ends within one step.

PyTorch releases the GIL inside its kernels, so the kernel stays responsive while the thread
trains. The thread also draws the live figure (matplotlib's object API with the Agg canvas, no
pyplot state) into an `ipywidgets.Image`, throttled: at most every `live_interval` seconds,
and never more than 10% of the loop's time (the interval grows when a frame is slow). The
status line reports the measured share of time spent drawing.
"""

PARAMETERS = """\
dataset = "fashion-mnist"  # fashion-mnist, mnist, cifar10 (ignored when a scenario is chosen)
optimizer = "AutoSGD"  # AutoSGD, AutoAdam, AutoAdaGrad, SGD, Adam, AdaGrad
lr = 0.05  # manual optimizers only
momentum = 0.9  # manual SGD only (Adam uses betas (0.9, 0.99) as in the paper)
batch_size = 64  # ignored when a scenario is chosen (the scenario sets it)
steps = None  # None: 300 in quick mode, 3000 in full mode
scenario = "fmnist-rotation-incremental"  # a streams/ catalogue name, or "none"
compare = "SGD"  # a second optimizer on the same stream, or None
seed = 0
device = "cpu"  # "cpu" or "cuda"
quick = True  # quick: a few minutes on a laptop CPU; False: the full-length run
autostart = False  # True: start at once and wait (papermill / headless)
output_dir = "results/workbench"  # PNG, CSV, JSON of each run
store_path = "results/workbench.sqlite"  # the sweeps' SQLite results store; None to skip
live_interval = 0.5  # seconds between live-plot frames, at least
"""

BUILD = """\
import logging

from autoopt_lab.workbench import RunConfig, Workbench

logging.basicConfig(level=logging.WARNING)

if steps is None:
    steps = 300 if quick else 3000
config = RunConfig(
    dataset=dataset,
    optimizer=optimizer,
    lr=lr,
    momentum=momentum,
    batch_size=batch_size,
    steps=steps,
    scenario=scenario,
    compare=compare,
    seed=seed,
    device=device,
)
app = Workbench(config, output_dir=output_dir, store_path=store_path, min_interval=live_interval)
app
"""

HEADLESS_MD = """\
### Headless run

With `autostart = True` (e.g. `papermill -p autostart True`), the next cell starts the run
with the parameters above and waits for it; interactively, press **Start** instead.
"""

HEADLESS = """\
if autostart:
    result = app.run()
    print(f"{result.state}: {result.steps}/{result.planned_steps} steps")
"""

RESULTS_MD = """\
### Results

The static figure, the results table (one row per optimizer: final loss and accuracy over
the last 10% of the steps, prequential accuracy over the run, median lr and momentum over
tensors at the end, accuracy per segment) and the JSON summary written beside them. After an
interactive run, run this cell again.
"""

RESULTS = """\
summary = app.show_results()
{k: summary[k] for k in ("state", "steps", "wall_seconds", "draw_fraction") if k in summary}
"""


def build() -> nbformat.NotebookNode:
    params = new_code_cell(PARAMETERS)
    params.metadata["tags"] = ["parameters"]
    nb = new_notebook(
        cells=[
            new_markdown_cell(INTRO),
            new_markdown_cell(WHY_THREAD),
            params,
            new_code_cell(BUILD),
            new_markdown_cell(HEADLESS_MD),
            new_code_cell(HEADLESS),
            new_markdown_cell(RESULTS_MD),
            new_code_cell(RESULTS),
        ]
    )
    for i, cell in enumerate(nb.cells):
        cell.id = f"workbench-{i}"  # stable ids: rebuilding gives the same file
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


if __name__ == "__main__":
    out = Path(__file__).resolve().parents[1] / "notebooks" / "workbench.ipynb"
    nbformat.write(build(), out)
    print(f"wrote {out}")  # noqa: T201 - a command-line script
