"""River's dict features as tensor columns, in an order that does not depend on dict order.

A :class:`FeatureLayout` maps feature names to input columns. Names are added when a batch is
trained on (never when predicting), the new names of one batch in sorted order, so two streams
that differ only in the order of their dicts' keys give the same columns. A feature that is
absent from a sample, or whose value is ``None`` or NaN, is 0 in its column, as in river's
linear models (the feature contributes nothing); a name the layout does not hold is ignored
at prediction time.

>>> layout = FeatureLayout()
>>> layout.extend([{"b": 1.0, "a": 2.0}])
['a', 'b']
>>> layout.matrix([{"a": 3.0, "z": 9.0}], width=2).tolist()
[[3.0, 0.0]]
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

__all__ = ["FeatureLayout", "clean_features", "frame_rows", "sort_names"]


def sort_names(names: Iterable[Hashable]) -> list[Hashable]:
    """``names`` sorted by (type name, name), or by ``repr`` when they do not compare.

    >>> sort_names(["b", 2, "a", 1])
    [1, 2, 'a', 'b']
    """
    names = list(names)
    try:
        return sorted(names, key=lambda n: (type(n).__name__, n))
    except TypeError:
        return sorted(names, key=lambda n: (type(n).__name__, repr(n)))


def _number(name: Hashable, value: Any) -> float | None:
    """One feature value as a float; None for a missing value; a clear error otherwise."""
    if value is None:
        return None
    if isinstance(value, bool | np.bool_):
        return float(value)
    if isinstance(value, numbers.Real):
        out = float(value)
        if math.isnan(out):
            return None
        if math.isinf(out):
            raise ValueError(f"feature {name!r} is {out}; values must be finite (NaN = missing)")
        return out
    raise ValueError(
        f"feature {name!r} has the non-numeric value {value!r} ({type(value).__name__}); "
        "encode it first, e.g. river.preprocessing.OneHotEncoder() for categories"
    )


def clean_features(x: Mapping[Hashable, Any]) -> dict[Hashable, float]:
    """A copy of ``x`` with float values and missing ones (None, NaN) dropped.

    >>> clean_features({"a": 1, "b": None, "c": True})
    {'a': 1.0, 'c': 1.0}
    """
    if not isinstance(x, Mapping):
        raise ValueError(f"features must be a dict (river's convention), got {type(x).__name__}")
    out = {}
    for name, value in x.items():
        kind = type(value)
        if kind is float and -math.inf < value < math.inf:  # the common case, fast
            out[name] = value
            continue
        v = float(value) if kind is int else _number(name, value)
        if v is not None:
            out[name] = v
    return out


class FeatureLayout:
    """Feature name -> input column; ``fixed`` names make the layout final.

    With ``fixed`` names (a learner's ``features=``) nothing is ever added and other names are
    ignored. Otherwise :meth:`extend` appends each trained batch's unseen names, sorted.
    """

    def __init__(self, fixed: Sequence[Hashable] | None = None) -> None:
        self.fixed = fixed is not None
        self.names: list[Hashable] = list(fixed or ())
        self.index: dict[Hashable, int] = {n: i for i, n in enumerate(self.names)}
        if len(self.index) != len(self.names):
            raise ValueError("features= holds a name twice")

    def __len__(self) -> int:
        return len(self.names)

    def extend(self, rows: Iterable[Mapping[Hashable, float]]) -> list[Hashable]:
        """Add the names in ``rows`` not yet in the layout (sorted); return them."""
        if self.fixed:
            return []
        new = {n for row in rows for n in row if n not in self.index}
        added = sort_names(new)
        for name in added:
            self.index[name] = len(self.names)
            self.names.append(name)
        return added

    def matrix(
        self,
        rows: Sequence[Mapping[Hashable, float]],
        *,
        width: int,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> torch.Tensor:
        """``(len(rows), width)`` tensor of clean rows; unknown names and columns >= width skipped."""
        out = np.zeros((len(rows), width), dtype=np.float64)
        index = self.index
        for r, row in enumerate(rows):
            for name, value in row.items():
                col = index.get(name)
                if col is not None and col < width:
                    out[r, col] = value
        return torch.as_tensor(out, dtype=dtype, device=device)

    def frame_matrix(
        self,
        X: pd.DataFrame,
        *,
        width: int,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> torch.Tensor:
        """As :meth:`matrix` for a data frame (NaN = missing = 0), one column at a time."""
        check_frame(X)
        out = np.zeros((len(X), width), dtype=np.float64)
        for name in X.columns:
            col = self.index.get(name)
            if col is None or col >= width:
                continue
            values = frame_column(X, name)
            out[:, col] = np.nan_to_num(values, nan=0.0)
        return torch.as_tensor(out, dtype=dtype, device=device)


def frame_rows(X: pd.DataFrame) -> list[dict[Hashable, float]]:
    """The rows of ``X`` as clean feature dicts (NaN = missing, dropped), in column order.

    >>> frame_rows(pd.DataFrame({"a": [1.0, None], "b": [2, 3]}))
    [{'a': 1.0, 'b': 2.0}, {'b': 3.0}]
    """
    check_frame(X)
    names = list(X.columns)
    columns = [frame_column(X, n) for n in names]
    rows = []
    for values in zip(*columns, strict=True) if columns else [()] * len(X):
        rows.append({n: float(v) for n, v in zip(names, values, strict=True) if v == v})
    return rows


def check_frame(X: Any) -> None:
    """A clear error unless ``X`` is a data frame with unique column names."""
    if not isinstance(X, pd.DataFrame):
        raise ValueError(f"X must be a pandas DataFrame, got {type(X).__name__}")
    if not X.columns.is_unique:
        dup = sorted({repr(c) for c in X.columns[X.columns.duplicated()]})
        raise ValueError(f"X has duplicate column names: {', '.join(dup)}")


def frame_column(X: pd.DataFrame, name: Hashable) -> np.ndarray:
    """Column ``name`` of ``X`` as float64 (NaN = missing), or a clear error."""
    try:
        values = pd.to_numeric(X[name], errors="raise").to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError):
        raise ValueError(
            f"feature {name!r} has non-numeric values; encode it first, e.g. "
            "river.preprocessing.OneHotEncoder() for categories"
        ) from None
    if np.isinf(values).any():
        raise ValueError(f"feature {name!r} has infinite values; values must be finite")
    return values
