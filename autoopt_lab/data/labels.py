"""Labels checked against the data set's classes: a damaged labels file is an error, never a
model with more outputs.

>>> import torch
>>> check_labels("mnist", torch.tensor([0, 9, 3]), "torchvision", "/data")
>>> check_labels("mnist", torch.tensor([0, 200]), "torchvision", "/data")
Traceback (most recent call last):
...
autoopt_lab.data.labels.DamagedDataError: data set 'mnist' (torchvision, /data): 1 of 2 labels lie outside its 10 classes 0-9 (e.g. 200); its labels file is damaged. To fix it, delete the data set's files under /data and load it again
"""

from __future__ import annotations

import torch

from .errors import DataUnavailableError

#: How many classes each data set has (labels are ``0 .. n - 1``).
NUM_CLASSES: dict[str, int] = {"mnist": 10, "fashion-mnist": 10, "cifar10": 10}


class DamagedDataError(DataUnavailableError):
    """A source gave data that cannot be the data set (labels outside its classes)."""

    def __init__(self, name: str, source: str, problem: str, fix: str) -> None:
        self.name, self.tried, self.fix = name, [(source, problem)], fix
        RuntimeError.__init__(self, f"data set {name!r} ({source}): {problem}. To fix it, {fix}")


def check_labels(name: str, y: torch.Tensor, source: str, location: str) -> None:
    """Raise :class:`DamagedDataError` if a label of ``y`` is not one of ``name``'s classes."""
    k = NUM_CLASSES[name]
    bad = (y < 0) | (y >= k)
    if bool(bad.any()):
        n = int(bad.sum())
        raise DamagedDataError(
            name, f"{source}, {location}",
            f"{n} of {len(y)} labels lie outside its {k} classes 0-{k - 1} "
            f"(e.g. {int(y[bad][0])}); its labels file is damaged",
            f"delete the data set's files under {location} and load it again")
