"""What one workbench run is: data, model, optimizer, batch size, length, shift, seed, device.

A :class:`RunConfig` is plain data, validated on construction, so the widgets, the headless
notebook path and the tests all describe a run the same way.

>>> from autoopt_lab.workbench.config import RunConfig
>>> cfg = RunConfig(optimizer="SGD", lr=0.05, momentum=0.9, steps=100)
>>> cfg.is_auto, cfg.family
(False, 'SGD')
>>> RunConfig(optimizer="AutoSGD").is_auto
True
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

#: Optimizer names the workbench offers: the three Auto optimizers and their manual twins.
OPTIMIZERS: tuple[str, ...] = ("AutoSGD", "AutoAdam", "AutoAdaGrad", "SGD", "Adam", "AdaGrad")
#: Data sets known to :func:`autoopt_lab.data.load_arrays`.
DATASETS: tuple[str, ...] = ("fashion-mnist", "mnist", "cifar10")
#: Batch sizes of the paper's grid (Section 5); any integer >= 2 is accepted.
BATCH_SIZES: tuple[int, ...] = (8, 16, 32, 64, 128, 256)
#: The scenario name that means "no shift": a stationary stream over the data set.
NO_SHIFT = "none"


@dataclass
class RunConfig:
    """One workbench run.

    ``lr`` applies to the manual optimizers only, ``momentum`` to manual SGD only (Adam runs
    with the paper's betas (0.9, 0.99); AdaGrad has none). ``model=None`` picks the paper's model for the data set.
    ``scenario`` is a name from the ``streams/`` catalogue or ``"none"``.
    """

    dataset: str = "fashion-mnist"
    model: str | None = None
    optimizer: str = "AutoSGD"
    lr: float = 0.01
    momentum: float = 0.0
    batch_size: int = 64
    steps: int = 300
    scenario: str = NO_SHIFT
    seed: int = 0
    device: str = "cpu"
    compare: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(
                f"optimizer={self.optimizer!r} is unknown; allowed: {', '.join(OPTIMIZERS)}"
            )
        if self.compare is not None and self.compare not in OPTIMIZERS:
            raise ValueError(
                f"compare={self.compare!r} is unknown; allowed: None or one of {', '.join(OPTIMIZERS)}"
            )
        if not isinstance(self.batch_size, int) or self.batch_size < 2:
            raise ValueError(
                f"batch_size={self.batch_size!r} is invalid; it must be an integer >= 2 "
                "(the Auto optimizers need two samples for a variance estimate)"
            )
        if not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"steps={self.steps!r} is invalid; it must be an integer >= 1")
        if not (self.lr > 0):
            raise ValueError(f"lr={self.lr!r} is invalid; it must be > 0")
        if not (0.0 <= self.momentum < 1.0):
            raise ValueError(f"momentum={self.momentum!r} is invalid; it must be in [0, 1)")
        if not isinstance(self.seed, int):
            raise ValueError(f"seed={self.seed!r} is invalid; it must be an integer")
        if self.device != "cpu" and not self.device.startswith("cuda"):
            raise ValueError(f"device={self.device!r} is invalid; allowed: 'cpu', 'cuda', 'cuda:N'")
        if not self.scenario:
            raise ValueError(
                f"scenario={self.scenario!r} is invalid; use {NO_SHIFT!r} for no shift"
            )

    @property
    def is_auto(self) -> bool:
        """True for AutoSGD, AutoAdam and AutoAdaGrad."""
        return self.optimizer.startswith("Auto")

    @property
    def family(self) -> str:
        """The optimizer without its ``Auto`` prefix: ``SGD``, ``Adam`` or ``AdaGrad``."""
        return self.optimizer.removeprefix("Auto")

    def label(self) -> str:
        """A short human label, e.g. ``AutoSGD``, ``SGD lr=0.01 m=0.9`` or ``Adam lr=0.001``."""
        if self.is_auto:
            return self.optimizer
        if self.family == "SGD":
            return f"{self.optimizer} lr={self.lr:g} m={self.momentum:g}"
        return f"{self.optimizer} lr={self.lr:g}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (for the results store and the notebook's JSON summary)."""
        return asdict(self)
