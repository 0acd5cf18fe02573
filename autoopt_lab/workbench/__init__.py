"""The interactive workbench: pick data, model, optimizers and shift; watch lr and momentum live.

In a notebook::

    from autoopt_lab.workbench import WorkbenchSettings, Workbench
    app = Workbench(WorkbenchSettings(optimizer="autosgd", compare="sgd:lr=0.05", steps=300))
    app                 # the controls, Start/Stop, progress and the live plot
    app.show_results()  # after a run: static PNG, results table, key numbers

Headless (papermill, scripts): ``app.run()`` starts the background run and waits for it.
Every optimizer of :mod:`autoopt_lab.optim.registry` is offered; see ``docs/workbench.md``.

>>> from autoopt_lab.workbench import WorkbenchSettings
>>> WorkbenchSettings(optimizer="AutoAdam").optimizer
'autoadam'
"""

from autoopt_lab.workbench.app import Workbench
from autoopt_lab.workbench.results import WorkbenchOutcome
from autoopt_lab.workbench.runner import BackgroundRunner
from autoopt_lab.workbench.settings import Lane, WorkbenchSettings
from autoopt_lab.workbench.sources import StepRecord, StepSource

__all__ = [
    "BackgroundRunner",
    "Lane",
    "StepRecord",
    "StepSource",
    "Workbench",
    "WorkbenchOutcome",
    "WorkbenchSettings",
]
