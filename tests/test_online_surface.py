"""Issue 20, the online learner's surface for river users: its own thread count, CPU by default,
a warning for unscaled regression targets, deep-river's conventions (logit modules, ``loss_fn``,
one-argument module factories), byte-stable pickles of a trained learner."""

from __future__ import annotations

import pickle
import random
import warnings

import pytest
import torch
import torch.nn.functional as F
from river import datasets, preprocessing
from torch import nn

from autoopt_lab.online import MLP, Linear, TorchClassifier, TorchRegressor


def _stream(n=64, seed=0):
    rng = random.Random(seed)
    for _ in range(n):
        x = {"a": rng.gauss(0, 1), "b": rng.gauss(0, 1)}
        yield x, "pos" if x["a"] - x["b"] > 0 else "neg"


def _train(model, n=64):
    for x, y in _stream(n):
        model.predict_proba_one(x) if hasattr(model, "predict_proba_one") else None
        model.learn_one(x, y)
    return model


# -- threads and device ------------------------------------------------------------------
def test_the_learner_runs_on_its_own_thread_count_and_restores_the_callers():
    before = torch.get_num_threads()
    seen = []

    class Spy(nn.Module):
        def __init__(self, n_features, n_outputs):
            super().__init__()
            self.linear = nn.Linear(n_features, n_outputs)

        def forward(self, x):
            seen.append(torch.get_num_threads())
            return F.log_softmax(self.linear(x), dim=1)

    try:
        torch.set_num_threads(2)
        model = _train(TorchClassifier(Spy, optimizer="autosgd", batch_size=4, seed=0), 16)
        assert set(seen) == {1} and torch.get_num_threads() == 2
        seen.clear()
        _train(TorchClassifier(Spy, batch_size=4, seed=0, num_threads=None), 16)
        assert set(seen) == {2}
        assert model.num_threads == 1 and "num_threads" in model._get_params()
    finally:
        torch.set_num_threads(before)
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match="num_threads"):
            TorchClassifier(num_threads=bad)


def test_the_default_device_is_the_cpu():
    assert TorchClassifier().device == "cpu" and TorchRegressor().device == "cpu"
    model = _train(TorchClassifier(seed=0), 16)
    assert next(model.module_.parameters()).device.type == "cpu"
    assert TorchClassifier(device="auto").device == "auto"  # still there by choice


# -- regression targets ------------------------------------------------------------------
def test_unscaled_regression_targets_warn_once_with_the_fix():
    model = TorchRegressor(seed=0)
    with pytest.warns(RuntimeWarning, match="TargetStandardScaler") as caught:
        for x, y in datasets.TrumpApproval().take(80):
            model.learn_one(x, y)
    assert sum("TargetStandardScaler" in str(w.message) for w in caught) == 1
    wrapped = preprocessing.TargetStandardScaler(regressor=TorchRegressor(seed=0))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        for x, y in datasets.TrumpApproval().take(80):
            wrapped.learn_one(x, y)


# -- deep-river's conventions ------------------------------------------------------------
def test_a_logit_module_trains_as_its_log_softmax_twin():
    logit = _train(TorchClassifier(Linear(log_probabilities=False), output_is_logit=True,
                                   batch_size=4, seed=0))
    logp = _train(TorchClassifier(Linear(), batch_size=4, seed=0))
    x = {"a": 0.3, "b": -1.0}
    for label, p in logp.predict_proba_one(x).items():
        assert logit.predict_proba_one(x)[label] == pytest.approx(p, abs=1e-6)


def test_a_logit_module_without_the_option_is_one_clear_error():
    model = TorchClassifier(Linear(log_probabilities=False), batch_size=4, seed=0)
    with pytest.raises(ValueError, match="output_is_logit=True"):
        _train(model, 8)


@pytest.mark.parametrize("loss_fn", ["cross_entropy", "nll", "binary_cross_entropy", "mse",
                                     F.cross_entropy, "binary_cross_entropy_with_logits"])
def test_classifier_losses_by_name_or_callable(loss_fn):
    logit = loss_fn in (F.cross_entropy, "binary_cross_entropy_with_logits")
    module = Linear(log_probabilities=not logit)
    model = _train(TorchClassifier(module, loss_fn=loss_fn, output_is_logit=logit,
                                   optimizer="adam:lr=0.05", batch_size=4, seed=0), 128)
    right = sum(model.predict_one(x) == y for x, y in _stream(64, seed=1))
    assert right >= 50, right
    assert pickle.loads(pickle.dumps(model)).predict_proba_one({"a": 1.0}) == \
        model.predict_proba_one({"a": 1.0})


def test_cross_entropy_is_the_default_loss_bit_for_bit():
    a = _train(TorchClassifier(batch_size=4, seed=0))
    b = _train(TorchClassifier(batch_size=4, seed=0, loss_fn="cross_entropy"))
    assert a.predict_proba_one({"a": 0.5}) == b.predict_proba_one({"a": 0.5})


def test_bad_losses_are_refused_at_construction():
    with pytest.raises(ValueError, match="loss_fn"):
        TorchClassifier(loss_fn="hinge")
    with pytest.raises(ValueError, match="output_is_logit=True"):
        TorchClassifier(loss_fn="binary_cross_entropy_with_logits")
    with pytest.raises(ValueError, match="loss_fn"):
        TorchRegressor(loss_fn="cross_entropy")


class OneArgRegressorNet(nn.Module):
    """deep-river's module convention: a class that takes n_features only."""

    def __init__(self, n_features):
        super().__init__()
        self.dense = nn.Linear(n_features, 1)

    def forward(self, x):
        return self.dense(x)


class OneArgClassifierNet(nn.Module):
    def __init__(self, n_features):
        super().__init__()
        self.dense = nn.Linear(n_features, 2)

    def forward(self, x):
        return self.dense(x)


def test_regressor_takes_a_one_argument_factory_and_a_loss_name():
    model = TorchRegressor(OneArgRegressorNet, loss_fn="l1", optimizer="adam:lr=0.05",
                           batch_size=4, seed=0)
    rng = random.Random(0)
    for _ in range(200):
        x = {"a": rng.gauss(0, 1)}
        model.learn_one(x, 2 * x["a"])
    assert model.module_.dense.in_features == 1
    assert model.predict_one({"a": 1.0}) == pytest.approx(2.0, abs=0.3)
    assert pickle.loads(pickle.dumps(model)).predict_one({"a": 1.0}) == model.predict_one({"a": 1.0})


def test_classifier_takes_a_one_argument_logit_factory_and_grows_it():
    model = _train(TorchClassifier(OneArgClassifierNet, output_is_logit=True,
                                   optimizer="adam:lr=0.05", batch_size=4, seed=0), 128)
    assert model.module_.dense.out_features == 2
    model.learn_many(*_frame([({"a": 1.0}, "third")] * 4))
    assert model.module_.dense.out_features == 3 and len(model.labels) == 3


def _frame(rows):
    import pandas as pd

    return pd.DataFrame([x for x, _ in rows]), pd.Series([y for _, y in rows])


# -- pickles -----------------------------------------------------------------------------
@pytest.mark.parametrize("optimizer", ["autoadagrad-paper", "autosgd", "autoadam", "sf-sgd",
                                       "adam:lr=0.01"])
def test_a_trained_learner_pickles_to_the_same_bytes(optimizer):
    model = _train(TorchClassifier(MLP(hidden=(4,)), optimizer=optimizer, batch_size=4, seed=0),
                   30)
    assert model.n_steps > 0 and model.n_buffered > 0
    first = pickle.dumps(model)
    assert pickle.dumps(model) == first
    copy = pickle.loads(first)
    assert pickle.dumps(copy) == first
    x, y = next(_stream(1, seed=5))
    model.learn_one(x, y)
    copy.learn_one(x, y)
    # the tensors (modules, optimizer and RNG state) stay byte-equal as both go on; the
    # buffered dicts do not: pickle shares a string by identity, and a loaded copy's feature
    # names are other objects than the caller's
    assert copy.__getstate__()["_tensors"] == model.__getstate__()["_tensors"]


def test_a_pickle_from_before_the_torch_record_still_loads():
    import copy
    import io

    model = _train(TorchClassifier(optimizer="autosgd", batch_size=4, seed=0), 30)
    state = model.__getstate__()
    state.update(torch.load(io.BytesIO(state.pop("_tensors")), weights_only=False))
    for name in ("num_threads", "loss_fn", "output_is_logit"):  # parameters it did not have
        state.pop(name)
    old = TorchClassifier.__new__(TorchClassifier)
    old.__setstate__(copy.deepcopy(state))  # __getstate__ is shallow: no shared buffer
    assert old.num_threads == 1 and old.loss_fn is None and old.output_is_logit is False
    x = {"a": 0.2, "b": 0.7}
    assert old.predict_proba_one(x) == model.predict_proba_one(x)
    old.learn_one(x, "pos")
    model.learn_one(x, "pos")
    assert old.predict_proba_one(x) == model.predict_proba_one(x)
