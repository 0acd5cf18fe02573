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


@pytest.fixture
def single_thread():
    """One intra-op torch thread for the test (tiny models run faster), restored afterwards."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def no_training(monkeypatch):
    """Make any training, sweep or reproduction run fail the test: a refusal must come first."""

    def refuse(*a, **k):
        raise AssertionError("training started before the inputs were checked")

    monkeypatch.setattr("autoopt_lab.experiments.run", refuse)
    monkeypatch.setattr("autoopt_lab.experiments.run_sweep", refuse)
    monkeypatch.setattr("autoopt_lab.experiments.reproduce.ensure_runs", refuse)
