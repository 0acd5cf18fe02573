"""Identity, defined once: the stable hashes that key stored results, and the library
versions a result records.

There are two hash functions, and both must stay: every results store (SQLite run ids,
:func:`config_key`, sha256 of the JSON text) and every stream checkpoint, result file and
tuning cache (:func:`digest`, blake2b of the :func:`canonical` JSON text) written so far is
found again by the hash it was written under. Changing either would orphan those files
(finished runs redone, checkpoints refused). New code keys its own things with
:func:`digest`.

>>> config_key({"a": 1, "b": 0.5}) == config_key({"b": 0.5, "a": 1})
True
>>> digest({"b": 1, "a": (1, 2)}) == digest({"a": [1, 2], "b": 1})
True
>>> library_version() == library_versions()["autoopt_lab"]
True
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import platform
from collections.abc import Callable, Mapping
from typing import Any

import torch

__all__ = ["canonical", "config_key", "digest", "library_version", "library_versions"]


def _json_bytes(value: Any, default: Callable[[Any], Any] | None = None) -> bytes:
    """The compact, key-sorted JSON text both hashes are taken of."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=default).encode()


def config_key(config: dict[str, Any]) -> str:
    """The results store's 16-hex-digit run id of a JSON-able dict (sha256; key order does
    not matter, floats by their repr, other objects by ``str``).

    >>> config_key({"a": 1, "b": 0.5, "c": [1, 2], "d": None, "e": float("nan")})
    '18a591b119f169cf'
    """
    return hashlib.sha256(_json_bytes(config, default=str)).hexdigest()[:16]


def canonical(value: Any) -> Any:
    """``value`` as JSON-friendly data with a stable form (tuples as lists, floats kept,
    non-finite floats and unknown objects by their repr, dataclasses and tensors unpacked)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: canonical(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, list | tuple):
        return [canonical(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, torch.Tensor):
        return canonical(value.tolist())
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return repr(value)


def digest(value: Any, size: int = 16) -> str:
    """A short hex digest (blake2b, ``size`` bytes) of ``canonical(value)``; the streams'
    checkpoints, result files and caches are keyed by it.

    >>> digest({"b": 1, "a": (1, 2), "f": float("inf")})
    'aa3a8ea05d3eafeb14414f066ce34218'
    """
    return hashlib.blake2b(_json_bytes(canonical(value)), digest_size=size).hexdigest()


def library_version() -> str:
    """This library's version (part of a stream run's identity)."""
    from autoopt_lab import __version__

    return str(__version__)


def library_versions() -> dict[str, str]:
    """Versions of Python and the libraries that shape a result (recorded with each run)."""
    import numpy
    import torchvision

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": numpy.__version__,
        "autoopt_lab": library_version(),
        "platform": platform.platform(),
    }
