"""The samples an online learner has been given but has not trained on yet.

AutoOpt estimates the gradient noise from the samples of one step (eq. 22 needs ``N >= 2``),
so a learner that receives one sample at a time collects them here and takes one optimizer
step each time ``size`` samples are waiting. Samples are stored as copies (clean feature dicts
and targets), so the caller may reuse or mutate what it passed in.

>>> buf = SampleBuffer(2)
>>> buf.push({"a": 1.0}, True)
False
>>> buf.push({"a": 2.0}, False)
True
>>> xs, ys = buf.peek()
>>> ys, len(buf)
([True, False], 2)
>>> buf.discard(2); len(buf)
0
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

__all__ = ["SampleBuffer"]


class SampleBuffer:
    """A FIFO of ``(x, y)`` samples waiting for a full mini-batch of ``size``."""

    def __init__(self, size: int) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {size!r}")
        self.size = size
        self.xs: list[dict[Hashable, float]] = []
        self.ys: list[Any] = []

    def __len__(self) -> int:
        return len(self.xs)

    @property
    def full(self) -> bool:
        """True when at least one whole mini-batch is waiting."""
        return len(self.xs) >= self.size

    def push(self, x: dict[Hashable, float], y: Any) -> bool:
        """Append one sample (already a clean copy); True when a mini-batch is ready."""
        self.xs.append(x)
        self.ys.append(y)
        return self.full

    def peek(self, n: int | None = None) -> tuple[list[dict[Hashable, float]], list[Any]]:
        """The oldest ``n`` samples (default: one mini-batch), without removing them."""
        n = self.size if n is None else n
        return self.xs[:n], self.ys[:n]

    def discard(self, n: int) -> None:
        """Drop the oldest ``n`` samples (after a step trained on them)."""
        del self.xs[:n]
        del self.ys[:n]

    def truncate(self, n: int) -> None:
        """Keep only the oldest ``n`` samples (undo pushes after a failed step)."""
        del self.xs[n:]
        del self.ys[n:]
