"""The engines that train runs, by name: ``loop`` (one model at a time,
:func:`~autoopt_lab.experiments.run.run`) and ``stacked`` (a group as one stacked model,
:func:`~autoopt_lab.experiments.vectorized.run_group`) register themselves here.

Executors and :func:`~autoopt_lab.experiments.run.run` train through :func:`train`, so
neither imports the other's engine: the registry is the only link.

>>> from autoopt_lab.experiments import RunConfig
>>> sorted(engine_names())
['loop', 'stacked']
>>> train_one(RunConfig("mnist", "sgd", lr=0.1, momentum=0.0, epochs=1, device="cpu",
...                     max_train_samples=64, max_test_samples=32), progress=False).ok
True
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from .result import RunOutcome, RunResult

if TYPE_CHECKING:  # pragma: no cover
    from .config import RunConfig

__all__ = ["Engine", "engine_names", "register_engine", "train", "train_one"]

#: ``engine(configs, data_root=..., progress=...)`` -> one result per config, in order.
Engine = Callable[..., list[RunResult]]

_ENGINES: dict[str, Engine] = {}


def register_engine(name: str, engine: Engine) -> None:
    """Make ``engine`` train the configs whose ``engine`` field is ``name``."""
    _ENGINES[name] = engine


def engine_names() -> list[str]:
    """The registered engines."""
    return sorted(_ENGINES)


def train(configs: Sequence[RunConfig], *, data_root: str | None = None,
          progress: bool = False) -> list[RunResult]:
    """Train ``configs`` (one engine, that of the first config) and return their results."""
    name = configs[0].engine
    if name not in _ENGINES:
        raise ValueError(f"no engine {name!r} is registered; known: {', '.join(engine_names())}")
    return _ENGINES[name](list(configs), data_root=data_root, progress=progress)


def train_one(config: RunConfig, data_root: str | None = None,
              progress: bool = False) -> RunOutcome:
    """Train ``config``; a run that raises becomes an outcome holding its traceback."""
    try:
        return RunOutcome(config, train([config], data_root=data_root, progress=progress)[0])
    except Exception:  # noqa: BLE001 - a failed run is recorded, the sweep goes on
        return RunOutcome(config, error=traceback.format_exc())
