"""The error raised when a data set cannot be found anywhere."""

from __future__ import annotations


class DataUnavailableError(RuntimeError):
    """No source could provide a data set.

    The message lists every source that was tried, why each failed, and the one command that
    fixes it. The ``tried`` attribute holds the same list as ``(source, reason)`` pairs.

    >>> err = DataUnavailableError("cifar10", [("torchvision", "no files")], "copy them")
    >>> err.tried
    [('torchvision', 'no files')]
    """

    def __init__(self, name: str, tried: list[tuple[str, str]], fix: str) -> None:
        self.name = name
        self.tried = list(tried)
        self.fix = fix
        lines = [f"data set {name!r} is not available. Sources tried, in order:"]
        lines += [f"  - {source}: {reason}" for source, reason in self.tried]
        lines.append(f"To fix it, run: {fix}")
        super().__init__("\n".join(lines))
