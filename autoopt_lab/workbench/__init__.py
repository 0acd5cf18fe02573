"""The interactive workbench: pick data, model, optimizer and shift; watch lr and momentum live.

In a notebook::

    from autoopt_lab.workbench import RunConfig, Workbench
    app = Workbench(RunConfig(optimizer="AutoSGD", steps=300))
    app                 # the controls, Start/Stop, progress and the live plot
    app.show_results()  # after a run: static PNG, results table, JSON of key numbers

Headless (papermill, scripts): ``app.run()`` starts the background run and waits for it.

>>> from autoopt_lab.workbench import RunConfig
>>> RunConfig(optimizer="AutoAdam").family
'Adam'
"""

from autoopt_lab.workbench.app import RunResult, Workbench
from autoopt_lab.workbench.config import OPTIMIZERS, RunConfig
from autoopt_lab.workbench.runner import BackgroundRunner
from autoopt_lab.workbench.sources import StationarySource, StepRecord, StepSource

__all__ = [
    "OPTIMIZERS",
    "BackgroundRunner",
    "RunConfig",
    "RunResult",
    "StationarySource",
    "StepRecord",
    "StepSource",
    "Workbench",
]
