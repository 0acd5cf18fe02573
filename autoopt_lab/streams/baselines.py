"""Fixed-hyper-parameter baselines tuned on the first segment only.

A practitioner tunes on the data they have before the stream starts to drift, so every
optimizer of the registry's ``"tuned"`` family runs a small grid on the scenario's *first
segment* (same seed, same batches) and keeps the setting with the lowest prequential error
there (a run that diverged there counts as error 1). The chosen setting then runs unchanged
on the whole stream.

Grids follow the optimizer's preconditioner family (``spec.base``) and options, so a newly
registered tuned optimizer gets one too (:data:`autoopt_lab.sizes.LR_GRIDS`): ``"full"`` has five half-decades of ``lr`` (SGD and
AdaGrad families 10^-3 .. 10^-1, Adam 10^-4 .. 10^-2), ``"quick"`` three values around the
paper's best; optimizers with a ``momentum`` option also try momentum 0 and 0.9.

Results are cached per grid point and per grid, keyed by what the first segment draws (its
content, seed and model, not its name), the hash of the data tensors actually passed in, the
device type and the library version; a killed tuning redoes only the points it had not
finished.

>>> [g["lr"] for g in grid_for("adam", "quick")]
[0.0003, 0.001, 0.003]
>>> len(grid_for("sgd", "full"))
10
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

import torch

from autoopt_lab import sizes
from autoopt_lab.devices import resolve_device
from autoopt_lab.optim import registry

from .identity import data_fingerprint, digest, library_version
from .scenario import Scenario

__all__ = ["LR_GRIDS", "TUNING_SWEEP", "JsonCache", "StoreCache", "first_segment", "grid_for", "tune_baseline",
           "tuning_grid", "tuning_key"]

logger = logging.getLogger(__name__)


#: Learning rates per grid and preconditioner family (``OptimizerSpec.base``): the
#: ``stream`` grids of :data:`autoopt_lab.sizes.LR_GRIDS`.
LR_GRIDS: dict[str, dict[str, tuple[float, ...]]] = sizes.LR_GRIDS["stream"]
#: Momenta tried for optimizers that take a ``momentum`` option.
MOMENTA = sizes.momenta("stream", "full")
#: The results-store ``sweep`` label of tuning results (:class:`StoreCache`).
TUNING_SWEEP = "stream-tuning"


def grid_for(name: str, grid: str = "full") -> list[dict[str, float]]:
    """The tuning grid of tuned optimizer ``name`` (``grid`` is ``"full"`` or ``"quick"``)."""
    spec = registry.get(name)
    if spec.family != "tuned":
        raise ValueError(f"only the registry's tuned optimizers are tuned "
                         f"({', '.join(registry.names('tuned'))}); {name!r} is {spec.family}")
    if grid not in LR_GRIDS:
        raise ValueError(f"unknown grid {grid!r}; allowed: {', '.join(LR_GRIDS)}")
    extra = sorted(set(spec.required) - {"lr"})
    if extra:
        raise ValueError(f"cannot tune {name!r}: it also requires {extra}")
    lrs = sizes.lr_grid("stream", grid, spec.base)
    if "momentum" in spec.option_names:
        return [{"lr": lr, "momentum": m} for m in sizes.momenta("stream", grid) for lr in lrs]
    return [{"lr": lr} for lr in lrs]


def tuning_grid(name: str, grid: str, fixed: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The grid of ``name`` with the options the caller fixed held at their values.

    >>> tuning_grid("sgd", "quick", {"momentum": 0.9})[:2]
    [{'lr': 0.01, 'momentum': 0.9}, {'lr': 0.03, 'momentum': 0.9}]
    """
    out: list[dict[str, Any]] = []
    for point in grid_for(name, grid):
        p = {k: (fixed[k] if fixed.get(k) is not None else v) for k, v in point.items()}
        if p not in out:
            out.append(p)
    return out


def first_segment(scenario: Scenario) -> Scenario:
    """The scenario cut to its first segment (what the baselines are tuned on)."""
    return replace(scenario, segments=scenario.segments[:1])


class Cache(Protocol):
    def get(self, key: str) -> Any: ...

    def put(self, key: str, value: Any) -> None: ...


class JsonCache:
    """A JSON file of ``{key: value}``; each write re-reads the file and replaces it atomically.

    >>> import tempfile
    >>> c = JsonCache(tempfile.mkdtemp() + "/tuning.json"); c.put("k", {"x": 1}); c.get("k")
    {'x': 1}
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def _read(self) -> dict[str, Any]:
        if not self.path.is_file():
            return {}
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError) as exc:
            raise OSError(f"tuning cache {self.path} is not readable JSON ({exc}); nothing was "
                          "written to it; delete it or pass another --tuning-cache") from None
        return data if isinstance(data, dict) else {}

    def get(self, key: str) -> Any:
        return self._read().get(key)

    def put(self, key: str, value: Any) -> None:
        data = self._read()
        data[key] = value
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        tmp.replace(self.path)


class StoreCache:
    """Tuning results kept as rows of a results store (the leaderboard's cache: a killed
    leaderboard redoes no tuning point it had finished), beside :class:`JsonCache`."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self._mem: dict[str, Any] | None = None

    def _load(self) -> dict[str, Any]:
        if self._mem is None:
            runs = self.store.runs()
            self._mem = {}
            if len(runs) and "sweep" in runs:
                for _, r in runs[runs["sweep"] == TUNING_SWEEP].iterrows():
                    self._mem[r["run_id"]] = json.loads(r["tuning_json"])
        return self._mem

    def get(self, key: str) -> Any:
        return self._load().get(key)

    def put(self, key: str, value: Any) -> None:
        self.store.add_run({"kind": "tuning"}, {"tuning_json": json.dumps(value)}, None,
                           run_id=key, sweep=TUNING_SWEEP)
        self._load()[key] = value


def tuning_key(scenario: Scenario, name: str, grid: list[dict[str, float]],
               data: tuple[torch.Tensor, torch.Tensor, Any], device: torch.device) -> str:
    """What a tuning result depends on: the first segment's draws (not its name), the data's
    bytes, the optimizer and grid, the device type and the library version."""
    sc1 = first_segment(scenario)
    seg = replace(sc1.segments[0], name="first")
    canon = replace(sc1, name="", description="", source="", scale=1.0, segments=(seg,))
    return digest({"scenario": canon, "data": data_fingerprint(data[0], data[1]),
                   "optimizer": name, "grid": grid, "device": device.type,
                   "library": library_version()})


def tune_baseline(scenario: Scenario, name: str, *, grid: str | list[dict[str, float]] = "full",
                  data: tuple[torch.Tensor, torch.Tensor, Any] | None = None,
                  device: torch.device | str | None = None,
                  cache: str | Path | Cache | None = None,
                  progress: bool = False) -> dict[str, Any]:
    """Grid-search tuned optimizer ``name`` on the first segment; returns
    ``{"best", "grid", "tuned_on_steps"}``.

    ``grid`` is ``"full"``, ``"quick"`` or an explicit list of option dicts. ``cache`` (a
    JSON file path or an object with ``get``/``put``) keeps every finished grid point.
    """
    from .run import StreamRun

    points = grid_for(name, grid) if isinstance(grid, str) else list(grid)
    if not points:
        raise ValueError("the tuning grid is empty")
    dev = resolve_device(device)
    if data is None:
        from autoopt_lab.data import load_arrays

        data = load_arrays(scenario.dataset, train=True)
    store: Cache | None = JsonCache(cache) if isinstance(cache, str | Path) else cache
    key = tuning_key(scenario, name, points, data, dev)
    if store is not None and (hit := store.get(key)) is not None:
        logger.info("tuning of %s on %s's first segment: from cache", name, scenario.name)
        return hit
    sc1 = first_segment(scenario)
    rows = []
    for hp in points:
        point = digest([key, hp])
        row = store.get(point) if store is not None else None
        if row is None:
            run = StreamRun(sc1, name, hparams=hp, device=dev, data=data)
            try:
                run.run(progress=progress)
                s = run.summary()
            finally:
                run.close()
            err = s["prequential_error"]
            if err is None or "diverged" in s["health"]["flags"]:
                err = 1.0
            row = {"hparams": hp, "prequential_error": err, "health": s["health"]["status"]}
            if store is not None:
                store.put(point, row)
        rows.append(row)
        logger.info("tune %s %s on %s[0]: prequential error %.4f", name, hp, scenario.name,
                    row["prequential_error"])
    best = min(rows, key=lambda r: r["prequential_error"])
    result = {"best": best["hparams"], "grid": rows, "tuned_on_steps": sc1.total_steps}
    if store is not None:
        store.put(key, result)
    return result
