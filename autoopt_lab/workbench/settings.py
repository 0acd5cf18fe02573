"""What one workbench run is: data, model, optimizer(s), batch size, length, shift, seed, device.

:class:`WorkbenchSettings` is plain data, validated on construction against the optimizer
registry (:mod:`autoopt_lab.optim.registry`) and the device rule
(:func:`autoopt_lab.devices.resolve_device`), so the widgets, the headless notebook path and
the tests describe a run the same way. Optimizers are registry names, optionally as spec
strings (``"sgd:lr=0.05:momentum=0.9"``); each optimizer has its own options.

>>> s = WorkbenchSettings(optimizer="autosgd", compare="sgd:lr=0.05:momentum=0.9", steps=100)
>>> s.compare, s.compare_options
('sgd', {'lr': 0.05, 'momentum': 0.9})
>>> list(s.lanes())
['AutoSGD', 'SGD(lr=0.05, momentum=0.9)']
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from autoopt_lab.devices import DEFAULT_DEVICE, resolve_device
from autoopt_lab.optim import registry
from autoopt_lab.optim.spec_strings import Choice

#: Batch sizes of the paper's grid (Section 5); any integer >= 2 is accepted.
BATCH_SIZES: tuple[int, ...] = (8, 16, 32, 64, 128, 256)
#: The scenario name that means "no shift": a stationary stream over the data set.
NO_SHIFT = "none"


@dataclass(frozen=True)
class Lane:
    """One optimizer of a run: a registry name and the options given to it."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def spec(self) -> registry.OptimizerSpec:
        return registry.get(self.name)

    @property
    def label(self) -> str:
        """The registry's label: display name plus non-default options."""
        return self.spec.label(self.options)


def _split(name: str, options: dict[str, Any] | None, what: str) -> tuple[str, dict[str, Any]]:
    """``(registry name, typed options)`` from a name or spec string plus explicit options."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{what}={name!r} is invalid; give a registry name such as 'autosgd'")
    # unknown name or option, wrong type, missing lr: one clear ValueError
    return Choice.parse(name.strip(), options, require=True).pair


@dataclass
class WorkbenchSettings:
    """One workbench run.

    ``optimizer`` and ``compare`` are registry names (or spec strings); ``options`` and
    ``compare_options`` are their own options (``lr`` is required for the tuned ones).
    ``model=None`` picks the data set's model. ``scenario`` is a name from the ``streams/``
    catalogue or ``"none"``. ``device`` follows :func:`autoopt_lab.devices.resolve_device`.
    """

    dataset: str = "fashion-mnist"
    model: str | None = None
    optimizer: str = "autosgd"
    options: dict[str, Any] = field(default_factory=dict)
    batch_size: int = 64
    steps: int = 300
    scenario: str = NO_SHIFT
    seed: int = 0
    device: str = DEFAULT_DEVICE
    compare: str | None = None
    compare_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from autoopt_lab.data import canonical_name
        from autoopt_lab.models import MODELS

        self.dataset = canonical_name(self.dataset)  # "fmnist" -> "fashion-mnist"; else lists them
        if self.model is not None and self.model not in MODELS:
            raise ValueError(
                f"model={self.model!r} is unknown; allowed: None (the data set's) or "
                f"{', '.join(MODELS)}"
            )
        self.optimizer, self.options = _split(self.optimizer, self.options, "optimizer")
        if self.compare is not None:
            self.compare, self.compare_options = _split(
                self.compare, self.compare_options, "compare"
            )
        elif self.compare_options:
            raise ValueError("compare_options were given without a compare optimizer")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or (
            self.batch_size < 2
        ):
            raise ValueError(
                f"batch_size={self.batch_size!r} is invalid; it must be an integer >= 2 "
                "(the Auto optimizers need two samples for a variance estimate)"
            )
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"steps={self.steps!r} is invalid; it must be an integer >= 1")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"seed={self.seed!r} is invalid; it must be an integer")
        if not isinstance(self.scenario, str) or not self.scenario:
            raise ValueError(
                f"scenario={self.scenario!r} is invalid; use {NO_SHIFT!r} for no shift"
            )
        resolve_device(self.device)  # DeviceUnavailableError (a ValueError) names the fix
        labels = [lane.label for lane in self._lane_list()]
        if len(set(labels)) < len(labels):
            raise ValueError(
                f"compare={self.compare!r} is the same run as optimizer={self.optimizer!r} "
                f"({labels[0]}); pick another optimizer or other options, or no comparison"
            )

    def _lane_list(self) -> list[Lane]:
        lanes = [Lane(self.optimizer, dict(self.options))]
        if self.compare is not None:
            lanes.append(Lane(self.compare, dict(self.compare_options)))
        return lanes

    def lanes(self) -> dict[str, Lane]:
        """``{label: Lane}``: the main optimizer, then the one to compare with (if any)."""
        return {lane.label: lane for lane in self._lane_list()}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (for the results store and the notebook's JSON summary)."""
        return asdict(self)
