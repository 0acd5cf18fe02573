"""Issue 19: the offline divergence guard covers every registry optimizer."""

from __future__ import annotations

import pytest

from autoopt_lab.experiments import RunConfig, run
from autoopt_lab.optim import registry

TINY = dict(batch_size=32, epochs=2, max_train_samples=128, max_test_samples=64, device="cpu")
BLOWN = {"sf-sgd": {"lr": 1e4}, "dog": {"lr": 1e8}, "dadapt-sgd": {"lr": 1e8},
         "prodigy": {"lr": 1e8}, "sgd": {"lr": 1e4, "momentum": 0.0}}


@pytest.mark.parametrize("name", sorted(BLOWN))
def test_a_blown_up_run_of_any_family_is_flagged_and_stopped(name):
    if not registry.get(name).available:
        pytest.skip(f"{name} is not installed")
    opts = dict(BLOWN[name])
    fields = {k: opts.pop(k) for k in ("lr", "momentum") if name == "sgd" and k in opts}
    result = run(RunConfig("mnist", name, options=opts, **fields, **TINY), progress=False)
    assert result.metrics["diverged"] and result.metrics["epochs_completed"] == 1
