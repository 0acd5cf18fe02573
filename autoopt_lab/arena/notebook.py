"""The cells of ``notebooks/arena.ipynb``, registered with :mod:`autoopt_lab.notebooks`.

The notebook is thin over :func:`autoopt_lab.arena.run_arena`; papermill sets its
parameters (``preset``, ``out_dir``, ...).
"""

from __future__ import annotations

from autoopt_lab.notebooks import register_notebook

CELLS = [
    (
        "markdown",
        """\
# The arena: AutoOpt against the tuned grids and the tuning-free peers

Every contender trains the paper's CNN on the same data, seeds and number of steps:

* **tuned grids** (SGD lr x momentum, Adam lr, AdaGrad lr), reported at their best setting
  per batch size, as the paper reports its grids;
* **AutoOpt variants**: the library defaults (curvature measured by Hessian-vector products,
  `docs/curvature.md`), the paper's method exactly as written (`*-paper`), the authors'
  published AutoAdam, and the paper's AutoSGD with a trust region (`max_lr=0.3`);
* **tuning-free peers** from their own packages at their defaults: Prodigy, D-Adaptation
  (SGD, Adam, AdaGrad), Schedule-Free (SGD, AdamW), DoG.

Runs go through the results store, so a rerun (or a killed run) redoes nothing finished.
All logic lives in `autoopt_lab.arena`; this notebook only calls it.""",
    ),
    (
        "parameters",
        """\
preset = "quick"  # "quick" (minutes), "full" (the issue's protocol, hours on CPU), "mnist"
out_dir = "."  # table, figure and JSON go here
store = ""  # SQLite results file; "" means <out_dir>/arena.sqlite
workers = 1  # worker processes for runs not yet in the store
timing = True  # measure each contender's step time against plain SGD
overrides = {}  # ArenaPlan fields to change, e.g. {"seeds": (0,), "epochs": 1}""",
    ),
    (
        "code",
        """\
from pathlib import Path

from IPython.display import Image, Markdown, display

from autoopt_lab.arena import get_preset, run_arena

plan = get_preset(preset, **overrides)
print(plan.description or plan.name)
result = run_arena(plan, out_dir, store=store or None, workers=workers, timing=timing,
                   progress=True)""",
    ),
    ("markdown", "## The table (mean ± seed std; tuned grids at their best setting)"),
    (
        "code",
        """\
display(Markdown((Path(out_dir) / "arena_table.md").read_text()))
display(Image(str(Path(out_dir) / "arena.png")))""",
    ),
    (
        "markdown",
        """\
## The targets

For each Auto default and batch size: the gap to its tuned grid's best setting and to the best
tuning-free peer (points of test error; negative is better), diverged runs, and whether the
learning rate still moves in the second half of training. The issue's target is a gap of at
most 0.5 points to both.""",
    ),
    (
        "code",
        """\
import pandas as pd

targets = pd.DataFrame(result.targets)
targets""",
    ),
]

register_notebook("arena.ipynb", CELLS)
