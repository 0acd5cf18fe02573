"""What the workbench's controls offer: optimizers from the registry, data sets and scenarios
with their availability, and a scenario described at the length the run will have.

Every optimizer comes from :mod:`autoopt_lab.optim.registry` (none is named here): a toy
optimizer registered in a test shows up in the menu. Optimizers whose package is missing and
data sets whose files are missing stay in the menus, marked, so that nothing fails only
after Start.

>>> menu = optimizer_menu()
>>> menu[0]
('AutoSGD · auto', 'autosgd')
>>> describe_scenario("fmnist-rotation-incremental", steps=300)["scale"]
0.25
"""

from __future__ import annotations

import functools
import html
import logging
import re
from dataclasses import dataclass
from typing import Any

from autoopt_lab.optim import registry
from autoopt_lab.workbench.settings import NO_SHIFT

log = logging.getLogger(__name__)

#: Marks in menu labels.
MISSING_PACKAGE = "not installed"
MISSING_DATA = "data missing"


def optimizer_label(name: str) -> str:
    """``"<display> · <family>"``, marked when its package is missing."""
    spec = registry.get(name)
    label = f"{spec.display} · {spec.family}"
    return label if spec.available else f"{label} ({MISSING_PACKAGE}: pip install {spec.package})"


def optimizer_menu() -> list[tuple[str, str]]:
    """``[(label, registry name)]`` for every registered optimizer, in registry order."""
    return [(optimizer_label(n), n) for n in registry.names()]


def optimizer_table():
    """Every registered optimizer: name, display name, family, base, required and other
    options, whether it is installed, and its description (a pandas DataFrame)."""
    import pandas as pd

    rows = []
    for name in registry.names():
        spec = registry.get(name)
        rows.append(
            {
                "name": name,
                "display": spec.display,
                "family": spec.family,
                "base": spec.base,
                "required": ", ".join(spec.required),
                "options": ", ".join(o for o in spec.option_names if o not in spec.required),
                "installed": spec.available,
                "description": spec.description,
            }
        )
    return pd.DataFrame(rows).set_index("name")


# -- data sets ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DataStatus:
    """Whether a data set loads on this machine without a download, and what to do if not."""

    name: str
    local: bool
    source: str = ""
    fix: str = ""
    samples: int = 0
    full_size: int = 0

    @property
    def is_subset(self) -> bool:
        return self.local and 0 < self.samples < self.full_size


@functools.cache
def data_status(name: str) -> DataStatus:
    """Try to load ``name`` (train split) from disk only; cached per process.

    Loading is what Start does anyway (:func:`autoopt_lab.data.load_arrays` caches it), so a
    data set found here costs nothing more later.
    """
    from autoopt_lab.data import DataUnavailableError, load_arrays

    try:
        _, _, info = load_arrays(name, train=True, download=False)
    except DataUnavailableError as exc:
        return DataStatus(name, False, fix=exc.fix)
    return DataStatus(
        name, True, source=info.source, samples=info.num_samples, full_size=info.full_size
    )


def dataset_names() -> list[str]:
    """The data sets :func:`autoopt_lab.data.load_arrays` knows."""
    from autoopt_lab.data import DATASETS

    return list(DATASETS)


def dataset_menu() -> list[tuple[str, str]]:
    """``[(label, name)]``; data sets not on disk, or only a subset of them, are marked."""
    out = []
    for name in dataset_names():
        status = data_status(name)
        label = name if status.local else f"{name} ({MISSING_DATA})"
        if status.is_subset:
            label = f"{name} (subset: {status.samples:,} of {status.full_size:,} images)"
        out.append((label, name))
    return out


def data_problem(name: str) -> str:
    """One sentence on how to get a data set that is not on disk ("" when it is)."""
    from autoopt_lab.data import downloads_allowed

    status = data_status(name)
    if status.local:
        return ""
    then = " Start will try to download it." if downloads_allowed() else ""
    return f"Data set {name} is not on this machine.{then} To get it, run: {status.fix}"


# -- scenarios ------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _catalogue() -> tuple[tuple[str, Any], ...]:
    from autoopt_lab.streams import list_catalogue

    try:
        return tuple(list_catalogue())
    except FileNotFoundError as exc:
        log.warning("no shift scenarios: %s", exc)
        return ()


def reload_scenarios() -> None:
    """Read the ``streams/`` catalogue again (a new workbench sees edited scenario files)."""
    _catalogue.cache_clear()


def scenario_names() -> list[str]:
    """Names of the catalogue scenarios (the ``streams/*.toml`` file stems)."""
    return [name for name, _ in _catalogue()]


def find(name: str):
    """The catalogue scenario ``name`` (a clear error listing the names)."""
    for key, sc in _catalogue():
        if key == name:
            return sc
    raise ValueError(f"scenario={name!r} is unknown; allowed: {NO_SHIFT}, {', '.join(scenario_names())}")


def scenario_menu() -> list[tuple[str, str]]:
    """``[(label, name)]``: ``none`` first, then the catalogue; missing data marked."""
    out = [("none (stationary stream)", NO_SHIFT)]
    for name, sc in _catalogue():
        local = data_status(sc.dataset).local
        out.append((name if local else f"{name} ({MISSING_DATA}: {sc.dataset})", name))
    return out


_STEPS = re.compile(r"(\d+)(?=(\s|-)steps?\b)")


def describe_scenario(name: str, steps: int) -> dict[str, Any]:
    """A catalogue scenario as a run of ``steps`` steps will see it.

    Returns ``dataset``, ``model``, ``batch_size`` (first segment), ``native_steps``,
    ``scale``, ``segments`` (``name``, ``start``, ``steps``, ``transition``, ``width`` at the
    run's length) and ``description`` with its step counts rescaled.
    """
    sc = find(name)
    scale = steps / sc.total_steps
    run = sc.scaled(scale) if sc.total_steps != steps else sc
    segments, start = [], 0
    for seg in run.segments:
        segments.append(
            {
                "name": seg.name,
                "start": start,
                "steps": seg.steps,
                "batch_size": seg.batch_size,
                "transition": seg.transition.kind,
                "width": seg.transition.width,
            }
        )
        start += seg.steps
    text = sc.description
    if scale != 1:
        text = _STEPS.sub(lambda m: str(max(1, round(int(m.group(1)) * scale))), text)
    return {
        "dataset": sc.dataset,
        "model": sc.model,
        "batch_size": sc.segments[0].batch_size,
        "native_steps": sc.total_steps,
        "steps": run.total_steps,
        "scale": round(scale, 4),
        "segments": segments,
        "description": text,
    }


def scenario_note(info: dict[str, Any]) -> str:
    """HTML for the scenario note under the menu (from :func:`describe_scenario`)."""
    segs = " &rarr; ".join(
        f"{html.escape(s['name'])} [{s['start']}, {s['start'] + s['steps']})"
        + (f" {s['transition']} over {s['width']}" if s["width"] else "")
        for s in info["segments"]
    )
    scale = (
        f"rescaled &times;{info['scale']:g} from its own {info['native_steps']} steps"
        if info["scale"] != 1
        else "at its own length"
    )
    return (
        f"<small>{html.escape(info['description'])}<br><b>this run</b>: {info['steps']} "
        f"steps, {scale}<br>segments: {segs}</small>"
    )


def device_menu() -> list[str]:
    """``auto`` (the project's default, see :func:`autoopt_lab.devices.resolve_device`),
    ``cpu``, and the CUDA devices present."""
    import torch

    cuda = [f"cuda:{i}" for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    return ["auto", "cpu", *(["cuda"] if cuda else []), *cuda]
