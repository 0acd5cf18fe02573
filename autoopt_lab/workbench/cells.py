"""The cells of ``notebooks/workbench.ipynb``, kept as code so the notebook stays thin.

Registered with :mod:`autoopt_lab.notebooks`; ``python -m autoopt_lab.notebooks`` (re)writes
every notebook.

>>> [kind for kind, _ in CELLS][:3]
['markdown', 'markdown', 'parameters']
"""

from __future__ import annotations

from autoopt_lab.notebooks import register_notebook

INTRO = """\
# AutoOpt workbench

Pick a data set, the optimizer (any optimizer of the registry: the AutoOpt variants, the
tuned baselines SGD / Adam / AdaGrad, the tuning-free peers such as Prodigy, D-Adaptation,
Schedule-Free and DoG), a second optimizer to compare with on the same stream, a batch size,
the length of the run, a shift scenario from the `streams/` catalogue (or none), a seed and a
device; press **Start** and watch the prequential loss and accuracy and the learning rate and
momentum live. Each optimizer has its own settings (`*` marks the required ones: `lr` for the
tuned baselines; an empty field means the optimizer's default). Optimizers whose package is
missing, and data sets or scenarios whose data is missing, are marked in the menus.

Every run is a `StreamRun` from `autoopt_lab.streams`: each step first scores the model on the
incoming batch, then trains on it. A catalogue scenario keeps its data set, model and batch
sizes; *steps* rescales its length (the note under the scenario shows the segments at the
length you set). With *shift scenario* = `none`, the stream is shuffled batches of the
training set.

One colour per optimizer in every panel; the lr and momentum panels show the median over the
model's tensors with a 25-75% band (*per tensor* shows every tensor). Runs that diverged,
skipped steps on non-finite gradients, or stayed at chance level are flagged in the legend
and the results table.

When a run ends, a new folder under `output_dir` receives a static PNG, the results table
(CSV), the per-step trace (CSV) and the key numbers (JSON); the SQLite results store the
sweeps use (`store_path`) gets one row per optimizer, with status `done` for a finished run
and `stopped` for a stopped one. The cells at the bottom show them as ordinary notebook
outputs, which survive in any viewer (the live plot lives in widget state only). Details:
`docs/workbench.md`.
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
optimizer = "autosgd"  # a registry name or spec string, e.g. "autoadam:eps=1e-3"
compare = "sgd:lr=0.05:momentum=0.9"  # a second optimizer on the same stream, or None
batch_size = 64  # ignored when a scenario is chosen (the scenario sets it)
steps = None  # None: 300 in quick mode, 3000 in full mode
scenario = "fmnist-rotation-incremental"  # a streams/ catalogue name, or "none"
seed = 0
device = "auto"  # "auto" (CUDA when present), "cpu", "cuda" or "cuda:N"
quick = True  # quick: a few minutes on a laptop CPU; False: the full-length run
autostart = False  # True: start at once and wait (papermill / headless)
output_dir = "results/workbench"  # each run writes a new folder here
store_path = "results/workbench.sqlite"  # the sweeps' SQLite results store; None to skip
live_interval = 0.5  # seconds between live-plot frames, at least
"""

OPTIMIZERS_MD = """\
### The optimizers on offer

Every optimizer the registry (`autoopt_lab.optim.registry`) knows, with its options; the
menus below list the same ones.
"""

OPTIMIZERS = """\
from autoopt_lab.workbench.choices import optimizer_table

optimizer_table()
"""

BUILD = """\
import logging

from autoopt_lab.workbench import Workbench, WorkbenchSettings

logging.basicConfig(level=logging.WARNING)

if steps is None:
    steps = 300 if quick else 3000
settings = WorkbenchSettings(
    dataset=dataset,
    optimizer=optimizer,
    compare=compare,
    batch_size=batch_size,
    steps=steps,
    scenario=scenario,
    seed=seed,
    device=device,
)
app = Workbench(settings, output_dir=output_dir, store_path=store_path, min_interval=live_interval)
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
    print(f"{result.state}: {result.steps}/{result.planned_steps} steps, in {result.folder}")
"""

RESULTS_MD = """\
### Results

The static figure, the results table (one row per optimizer: final loss and accuracy over
the last 10% of the steps, prequential accuracy over the run, median lr and momentum over
tensors at the end, flags, accuracy per segment by name) and the key numbers also written
as JSON into the run's folder. After an interactive run, run this cell again.
"""

RESULTS = """\
summary = app.show_results()
{k: summary[k] for k in ("state", "steps", "folder", "flags", "wall_seconds") if k in summary}
"""

CELLS = [
    ("markdown", INTRO),
    ("markdown", WHY_THREAD),
    ("parameters", PARAMETERS),
    ("markdown", OPTIMIZERS_MD),
    ("code", OPTIMIZERS),
    ("code", BUILD),
    ("markdown", HEADLESS_MD),
    ("code", HEADLESS),
    ("markdown", RESULTS_MD),
    ("code", RESULTS),
]

register_notebook("workbench.ipynb", CELLS)
