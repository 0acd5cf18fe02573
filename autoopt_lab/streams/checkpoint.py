"""Stream checkpoints: the whole state of a :class:`~autoopt_lab.streams.run.StreamRun` (its
``state_dict()``) in a file, and what it belongs to.

A checkpoint holds model, optimizer, stream position, RNG and river state and the trace so
far, plus the run's identity (:mod:`.identity`: scenario content, steps scale, seed,
optimizer and resolved options, data, model architecture, device type, library version).
Resuming into a run whose identity differs is refused with the difference named
(:class:`CheckpointMismatchError`), unless the caller asks to start afresh. A file that cannot
be read is a :class:`CheckpointError` naming it; nothing is ever written to it on failure.
Writes are atomic (a temporary file of a unique name, then a rename).

A checkpoint holds plain data only (tensors, numbers, strings, lists and dicts) and is read
with ``torch.load(weights_only=True)``: a file planted in place of one runs no code. The
scenario is stored as a dict, and the river monitor as its inputs (the rolling window and
the normalised losses), replayed into a fresh monitor on load.

>>> import tempfile, pathlib
>>> bad = pathlib.Path(tempfile.mkdtemp()) / "run.ckpt"; _ = bad.write_bytes(b"not torch")
>>> read_checkpoint(bad)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
autoopt_lab.streams.checkpoint.CheckpointError: ... is not a readable stream checkpoint ...
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Protocol

import torch

from .identity import differences
from .monitor import Monitor
from .scenario import MetricsConfig, Scenario, Segment, Shift, Transition


class StreamRun(Protocol):
    """What a checkpoint needs of a :class:`~autoopt_lab.streams.run.StreamRun`."""

    identity: dict[str, Any]
    records: list[dict[str, Any]]

    @property
    def position(self) -> int: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...

__all__ = [
    "CHECKPOINT_VERSION",
    "CheckpointError",
    "CheckpointMismatchError",
    "read_checkpoint",
    "restore_checkpoint",
    "save_checkpoint",
]

#: Format version; 1 had no identity, 2 was a pickle (read with code execution).
CHECKPOINT_VERSION = 3


class CheckpointError(OSError):
    """A checkpoint file that cannot be read (damaged, truncated, or of another format)."""


class CheckpointMismatchError(ValueError):
    """A checkpoint that belongs to another run configuration; the message names the difference."""

    def __init__(self, path: Path, diffs: list[str]) -> None:
        self.path, self.diffs = path, diffs
        super().__init__(
            f"checkpoint {path} belongs to another run ({'; '.join(diffs)}); nothing was "
            "loaded. Rerun with --fresh (fresh=True) to discard it and start afresh, or "
            "write to another --out")


def save_checkpoint(run: StreamRun, path: str | Path) -> Path:
    """Write ``run.state_dict()`` atomically to ``path``; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"version": CHECKPOINT_VERSION, **run.state_dict()}
    from autoopt_lab.experiments.outputs import writing

    with writing(path):
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save(state, f)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return path


def monitor_state(monitor: Monitor) -> dict[str, Any]:
    """``monitor.state_dict()`` (kept for callers of the old name)."""
    return monitor.state_dict()


def restore_monitor(monitor: Monitor, data: dict[str, Any], records: list[dict]) -> None:
    """``monitor.load_state_dict(data, records)`` (kept for callers of the old name)."""
    monitor.load_state_dict(data, records)


def scenario_from_dict(d: dict[str, Any]) -> Scenario:
    """The :class:`Scenario` that ``dataclasses.asdict`` turned into ``d``."""
    segments = tuple(
        Segment(name=s["name"], steps=s["steps"], batch_size=s["batch_size"],
                shifts=tuple(Shift(**sh) for sh in s["shifts"]),
                transition=Transition(**s["transition"]))
        for s in d["segments"])
    return Scenario(**{**d, "segments": segments, "metrics": MetricsConfig(**d["metrics"])})


_KEYS = {"identity", "scenario", "optimizer", "hparams", "model", "opt", "sampler", "cpu_rng",
         "monitor", "records", "hp_host", "skips_host", "timing"}


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The saved state, or :class:`CheckpointError` naming the file and how to recover."""
    path = Path(path)
    how = ("nothing was written to it; delete it, or rerun with --fresh (fresh=True) to "
           "start this run afresh")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a damaged file
        why = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
        raise CheckpointError(f"{path} is not a readable stream checkpoint (it holds more "
                              f"than plain data, or is damaged; nothing in it was run: "
                              f"{type(exc).__name__}: {why}); {how}") from None
    if not isinstance(state, dict) or state.get("version") != CHECKPOINT_VERSION:
        found = state.get("version") if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(f"{path} is not a readable stream checkpoint (format {found!r}, "
                              f"this library writes {CHECKPOINT_VERSION}); {how}")
    missing = sorted(_KEYS - set(state))
    if missing:
        raise CheckpointError(f"{path} is not a readable stream checkpoint (it lacks "
                              f"{', '.join(missing)}); {how}")
    return state


def check_identity(path: str | Path, state: dict[str, Any], run: StreamRun) -> None:
    """Raise :class:`CheckpointMismatchError` unless ``state`` belongs to ``run``."""
    diffs = differences(state["identity"], run.identity)
    if diffs:
        raise CheckpointMismatchError(Path(path), diffs)


def restore_checkpoint(run: StreamRun, state: dict[str, Any], path: str | Path) -> None:
    """Load ``state`` into a freshly built ``run`` of the same identity."""
    if run.position != 0 or run.records:
        raise ValueError("a checkpoint can only be restored into a run that has not started")
    check_identity(path, state, run)
    try:
        run.load_state_dict(state)
    except (RuntimeError, KeyError, ValueError) as exc:
        raise CheckpointError(f"{path}: its model or optimizer state does not load "
                              f"({str(exc)[:160]}); delete it or rerun with --fresh") from None
