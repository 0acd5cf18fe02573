"""Shared test fixtures."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def fmnist_train():
    """The Fashion-MNIST training split ``(x, y, info)``, loaded once per session; tests skip
    where the offline data is not installed."""
    from autoopt_lab.data import DataUnavailableError, load_arrays

    try:
        return load_arrays("fashion-mnist", train=True)
    except DataUnavailableError as exc:  # pragma: no cover - depends on the machine
        pytest.skip(f"Fashion-MNIST not available: {exc}")
