"""What a stream run *is*: the fingerprint that checkpoints, result files and caches carry.

Two runs with equal identities produce the same trace. The identity holds the scenario's
content hash (every segment, shift, transition, metric setting and the seed; not the file
path), the steps scale and seed (also inside the content, named apart so a difference reads
well), the optimizer's name and fully resolved options, a hash of the data tensors actually
passed in, the model's architecture, and the library version. :func:`differences` names what
differs between two identities, in words. The hash itself (:func:`digest`) and the library
version live in :mod:`autoopt_lab.identity`, shared with the experiments.

>>> from autoopt_lab.streams.scenario import parse_scenario
>>> sc = parse_scenario('name="t"\\ndataset="mnist"\\nmodel="m"\\nseed=0\\nbatch_size=4\\n'
...                     '[[segments]]\\nname="a"\\nsteps=8\\n')
>>> a = {"scenario": scenario_hash(sc), "seed": 0, "options": {"lr": 0.1}}
>>> b = {"scenario": scenario_hash(sc.scaled(0.5)), "seed": 0, "options": {"lr": 0.3}}
>>> differences(a, b)
['scenario content differs', 'options: lr=0.1 -> lr=0.3']
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from autoopt_lab.data.fingerprint import tensor_digest
from autoopt_lab.identity import canonical, digest, library_version

from .scenario import Scenario

__all__ = [
    "canonical",
    "data_fingerprint",
    "differences",
    "digest",
    "library_version",
    "model_fingerprint",
    "model_weights_fingerprint",
    "scenario_hash",
]


def scenario_hash(scenario: Scenario) -> str:
    """Hash of what a scenario draws: everything but its source path."""
    return digest(dataclasses.replace(scenario, source=""))


_DATA_CACHE: dict[tuple, str] = {}


def _tensor_key(t: torch.Tensor) -> tuple:
    return (t.data_ptr(), tuple(t.shape), tuple(t.stride()), str(t.dtype), str(t.device),
            t._version)


def data_fingerprint(x: torch.Tensor, y: torch.Tensor) -> str:
    """Hash of the data tensors' bytes (cached per tensor while it is not modified).

    >>> x = torch.zeros(3, 1, 2, 2, dtype=torch.uint8); y = torch.tensor([0, 1, 2])
    >>> data_fingerprint(x, y) == data_fingerprint(x.clone(), y.clone())
    True
    """
    key = (_tensor_key(x), _tensor_key(y))
    if key not in _DATA_CACHE:
        if len(_DATA_CACHE) > 16:
            _DATA_CACHE.clear()
        _DATA_CACHE[key] = tensor_digest(x, y)
    return _DATA_CACHE[key]


def model_fingerprint(model: nn.Module) -> str:
    """The architecture: class name, then every parameter and buffer's name and shape."""
    parts = [type(model).__qualname__]
    parts += [f"{n}:{tuple(t.shape)}" for n, t in model.state_dict().items()]
    return digest(parts)


def model_weights_fingerprint(model: nn.Module) -> str:
    """Architecture and the current weights (for caches keyed on a model's initial state)."""
    h = hashlib.blake2b(model_fingerprint(model).encode(), digest_size=16)
    for t in model.state_dict().values():
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _show(value: Any) -> str:
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={v}" for k, v in value.items()) or "none"
    return str(value)


def differences(have: Mapping[str, Any], want: Mapping[str, Any]) -> list[str]:
    """What differs between two identities, one phrase per field (empty when they agree)."""
    out = []
    for key in sorted(set(have) | set(want), key=lambda k: list(want).index(k)
                      if k in want else len(want)):
        a, b = canonical(have.get(key)), canonical(want.get(key))
        if a == b:
            continue
        if key == "scenario":
            out.append("scenario content differs")
        elif key in ("data", "model"):
            out.append(f"{key} differs")
        elif isinstance(a, dict) and isinstance(b, dict):
            changed = {k for k in set(a) | set(b) if a.get(k) != b.get(k)}
            out.append(f"{key}: " + _show({k: a.get(k) for k in sorted(changed)}) + " -> "
                       + _show({k: b.get(k) for k in sorted(changed)}))
        else:
            out.append(f"{key}: {_show(a)} -> {_show(b)}")
    return out
