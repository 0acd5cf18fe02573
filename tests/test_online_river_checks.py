"""River's own estimator checks (river.checks) on the online learners.

They cover the protocol: cloning, repr, pickling, purity of learn/predict, features that
emerge or vanish, shuffled feature order, learn_many == learn_one loop, predict_many ==
predict_one, seeding, seen labels, bounded memory.

They run on fresh learners (each check gets ``model.clone()``) and on trained ones (each check
gets an unpickled copy of a learner that took 60 samples: several steps, a non-empty buffer),
where the pickling checks compare the bytes of two pickles of the same learner.
"""

from __future__ import annotations

import pickle
import warnings

import pytest
from river import checks, datasets

from autoopt_lab.online import TorchClassifier, TorchRegressor

MODELS = {
    "classifier-default": TorchClassifier(device="cpu"),
    "regressor-default": TorchRegressor(device="cpu"),
    # other optimizers (Schedule-Free: evaluation weights), fewer checks for time
    "classifier-autosgd": TorchClassifier(optimizer="autosgd", device="cpu"),
    "classifier-sf-sgd": TorchClassifier(optimizer="sf-sgd", device="cpu"),
}


def _trained(model, data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # TrumpApproval's unscaled targets
        for x, y in data.take(60):
            model.learn_one(x, y)
    assert model.n_steps > 0 and model.n_buffered > 0
    return model


TRAINED = {
    "classifier-trained": _trained(TorchClassifier(), datasets.Phishing()),
    "regressor-trained": _trained(TorchRegressor(), datasets.TrumpApproval()),
    "classifier-autosgd-trained": _trained(TorchClassifier(optimizer="autosgd"), datasets.Phishing()),
}
MODELS.update(TRAINED)
ALL_CHECKS = ("classifier-default", "regressor-default", "classifier-trained", "regressor-trained")
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
        check(pickle.loads(pickle.dumps(model)) if key in TRAINED else model.clone())
