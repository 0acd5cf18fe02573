"""River's own estimator checks (river.checks) on the online learners.

They cover the protocol: cloning, repr, pickling, purity of learn/predict, features that
emerge or vanish, shuffled feature order, learn_many == learn_one loop, predict_many ==
predict_one, seeding, seen labels, bounded memory.
"""

from __future__ import annotations

import warnings

import pytest
from river import checks

from autoopt_lab.online import TorchClassifier, TorchRegressor

MODELS = {
    "classifier-default": TorchClassifier(device="cpu"),
    "regressor-default": TorchRegressor(device="cpu"),
    # other optimizers (Schedule-Free: evaluation weights), fewer checks for time
    "classifier-autosgd": TorchClassifier(optimizer="autosgd", device="cpu"),
    "classifier-sf-sgd": TorchClassifier(optimizer="sf-sgd", device="cpu"),
}
ALL_CHECKS = ("classifier-default", "regressor-default")
LONG_CHECKS = {"check_bounded_memory_growth", "check_radically_disappearing_features"}


def _cases():
    for key, model in MODELS.items():
        seen: dict[str, int] = {}
        for check in checks.yield_checks(model):
            if key not in ALL_CHECKS and check.__name__ in LONG_CHECKS:
                continue
            n = seen[check.__name__] = seen.get(check.__name__, 0) + 1
            yield pytest.param(key, check, id=f"{key}-{check.__name__}-{n}")


pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.mark.parametrize(("key", "check"), list(_cases()))
def test_river_check(key, check):
    model = MODELS[key]
    if check.__name__ in model._unit_test_skips():
        pytest.skip("skipped by the estimator")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        check(model.clone())
