"""Issue 19: online learners skip missing labels, keep label types, flag divergence and check
their optimizer's options when constructed."""

from __future__ import annotations

import random
import warnings

import numpy as np
import pandas as pd
import pytest

from autoopt_lab.online import TorchClassifier, TorchRegressor


def _clf(**kw):
    return TorchClassifier(optimizer="sgd:lr=0.1", batch_size=2, seed=0, device="cpu", **kw)


def test_a_nan_label_is_skipped_with_a_warning():
    model = _clf()
    with pytest.warns(RuntimeWarning, match="missing label"):
        for i in range(8):
            model.learn_one({"a": float(i)}, float("nan"))
    assert model.labels == [] and model.n_buffered == 0 and model.n_steps == 0
    model.learn_one({"a": 1.0}, "x")
    with pytest.warns(RuntimeWarning, match="missing label"):
        model.learn_one({"a": 1.0}, np.float64("nan"))
    assert model.labels == ["x"] and model.n_buffered == 1


def test_learn_many_skips_missing_labels_and_keeps_int_labels():
    X = pd.DataFrame({"a": np.arange(6.0)})
    model = _clf()
    with pytest.warns(RuntimeWarning, match="1 sample"):
        model.learn_many(X, pd.Series([0, 1, 2, 0, 1, np.nan]))  # pandas made them floats
    assert model.labels == [0, 1, 2] and all(type(v) is int for v in model.labels)
    assert model.n_steps == 2 and model.n_buffered == 1
    assert all(type(v) is int for v in model.predict_many(X))
    nullable = _clf()
    with pytest.warns(RuntimeWarning, match="1 sample"):
        nullable.learn_many(X, pd.Series([0, 1, 2, 0, 1, None], dtype="Int64"))
    assert nullable.labels == [0, 1, 2]
    floats = _clf()  # a float column without missing values is the user's: floats stay
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        floats.learn_many(X, pd.Series([0.5, 1.0, 0.5, 1.0, 0.5, 1.0]))
    assert floats.labels == [0.5, 1.0]


def _diverging_stream(n=80):
    rng = random.Random(0)
    for _ in range(n):
        x = {f"f{j}": rng.gauss(0, 3) for j in range(10)}
        yield x, sum(x.values())


def test_a_diverging_regressor_is_flagged():
    model = TorchRegressor(optimizer="sf-sgd", batch_size=8, seed=0, device="cpu")
    with pytest.warns(RuntimeWarning, match="diverged"):
        for x, y in _diverging_stream():
            model.learn_one(x, y)
    assert model.diverged_at is not None and 0 < model.diverged_at < model.n_steps
    healthy = TorchRegressor(optimizer="adam:lr=0.01", batch_size=8, seed=0, device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        for x, y in _diverging_stream(24):
            healthy.learn_one(x, y)
    assert healthy.diverged_at is None


def test_the_divergence_rule_is_the_offline_one():
    from autoopt_lab.experiments.run import DIVERGED_LOSS
    from autoopt_lab.streams import health

    assert health.DIVERGED_LOSS is DIVERGED_LOSS


@pytest.mark.parametrize("spec", ["autosgd:ewma=5", "prodigy:d_coef=nan", "sf-sgd:momentum=1.5",
                                  "prodigy:betas=(1.5,0.9)"])
def test_options_are_checked_at_construction(spec):
    with pytest.raises(ValueError):
        TorchClassifier(optimizer=spec)
    with pytest.raises(ValueError):
        name, _, option = spec.partition(":")
        TorchRegressor(optimizer=name, optimizer_options=dict([option.split("=")]))
