"""The data sets a stream leaderboard trains on: each scenario's own.

>>> from autoopt_lab.streams.leaderboard import plan_leaderboard
>>> plan = plan_leaderboard(scenarios=["mnist-batch-size"], optimizers="sgd:lr=0.1")
>>> plan.datasets()
{'mnist-batch-size': 'mnist'}
"""

from __future__ import annotations

from typing import Any

from autoopt_lab import data
from autoopt_lab.data.errors import DataUnavailableError

__all__ = ["MissingScenarioData", "board_data"]


def board_data(plan: Any, given: Any = None) -> dict[str, Any]:
    """``{data set: (x, y, info)}``, the training split of each scenario's own data set.

    ``given`` is one ``(x, y, info)`` (for plans of that one data set) or such a mapping;
    the data sets it lacks are loaded. A missing one is one line naming the scenario, the
    data set and the fix, before any cell runs.
    """
    if given is not None and not isinstance(given, dict):
        given = {given[2].name: given}
    out = dict(given or {})
    for scenario, dataset in plan.datasets().items():
        if dataset in out:
            continue
        if given:
            raise ValueError(f"scenario {scenario!r} trains on {dataset!r} but the data given "
                             f"is {', '.join(map(repr, given))}")
        try:
            out[dataset] = data.load_arrays(dataset, train=True)
        except DataUnavailableError as exc:
            raise MissingScenarioData(scenario, exc) from None
    return out


class MissingScenarioData(DataUnavailableError):
    """A scenario's data set is not available: one line with the fix."""

    def __init__(self, scenario: str, cause: DataUnavailableError) -> None:
        self.name, self.tried, self.fix = cause.name, cause.tried, cause.fix
        RuntimeError.__init__(self, f"scenario {scenario!r} needs the data set {cause.name!r}, "
                                    f"which is not available here; to fix it, run: {cause.fix}")
