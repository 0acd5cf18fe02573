"""Buffering, prequential order and growth of the online learners (autoopt_lab.online)."""

from __future__ import annotations

import copy
import pickle
import random
import warnings

import pandas as pd
import pytest
import torch
from torch import nn

from autoopt_lab.online import MLP, TorchClassifier, TorchRegressor
from autoopt_lab.optim import registry

pytestmark = pytest.mark.usefixtures("single_thread")


def zero_linear(n_features: int, n_outputs: int) -> nn.Sequential:
    """Logistic regression starting at zero (module level: learners holding it pickle)."""
    net = nn.Sequential(nn.Linear(n_features, n_outputs), nn.LogSoftmax(dim=1))
    nn.init.zeros_(net[0].weight)
    nn.init.zeros_(net[0].bias)
    return net


def logits_only(n_features: int, n_outputs: int) -> nn.Linear:
    return nn.Linear(n_features, n_outputs)


def toy_stream(n: int, seed: int = 0, *, third_class_from: int | None = None) -> list:
    rng = random.Random(seed)
    out = []
    for t in range(n):
        x = {"a": rng.gauss(0, 1), "b": rng.gauss(0, 1)}
        y = "pos" if x["a"] - 0.5 * x["b"] > 0 else "neg"
        if third_class_from is not None and t >= third_class_from and x["b"] > 1:
            y = "other"
        out.append((x, y))
    return out


def options_for(name: str) -> dict:
    return {"lr": 0.05} if "lr" in registry.get(name).required else {}


def state(model) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.module_.state_dict().items()}


def same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# -- buffering -------------------------------------------------------------------------------


def test_weights_change_only_when_a_batch_is_full():
    model = TorchClassifier(batch_size=4, seed=0, device="cpu")
    before = None
    for t, (x, y) in enumerate(toy_stream(24)):
        model.learn_one(x, y)
        assert model.n_buffered == (t + 1) % 4
        assert model.n_steps == (t + 1) // 4
        if model.module_ is None:
            continue
        now = state(model)
        if before is not None:
            assert same_state(before, now) == ((t + 1) % 4 != 0), t
        before = now


def test_a_buffered_sample_does_not_leak_into_predictions():
    model = TorchClassifier(optimizer="autoadam", batch_size=4, seed=1, device="cpu")
    stream = toy_stream(40)
    for x, y in stream[:16]:
        model.learn_one(x, y)
    probes = [x for x, _ in stream[20:40]]
    weights = state(model)
    expected = [model.predict_proba_one(x) for x in probes]
    # three buffered samples: a new label and a new feature among them
    model.learn_one({"a": 5.0, "b": 1.0, "new": 3.0}, "unseen")
    for x, y in stream[16:18]:
        model.learn_one(x, y)
    assert model.n_buffered == 3 and same_state(weights, state(model))
    for x, old in zip(probes, expected, strict=True):
        got = model.predict_proba_one({**x, "new": 1.0})
        assert got["unseen"] == 0.0  # reported (river tracks seen labels), never trained
        assert {k: got[k] for k in old} == old  # bit for bit
    # the fourth sample completes the batch: the label gets an output unit, weights move
    model.learn_one(*stream[18])
    got = model.predict_proba_one(probes[0])
    assert 0.0 < got["unseen"] < 1.0 and not same_state(weights, state(model))
    assert "new" in model.feature_names


@pytest.mark.parametrize("optimizer", ["autosgd", "sf-sgd"])
def test_prediction_uses_only_complete_batches_learned_before(optimizer):
    """Progressive validation: the prediction for sample t equals that of a learner trained
    on the complete batches before t, and nothing else (not sample t, not the buffer)."""
    batch, stream = 8, toy_stream(60, seed=3)
    model = TorchClassifier(optimizer=optimizer, batch_size=batch, seed=2, device="cpu")
    predictions = []
    for x, y in stream:
        predictions.append(model.predict_proba_one(x))
        model.learn_one(x, y)
    for t in (9, 21, 31, 47, 55):
        complete = (t // batch) * batch
        ref = TorchClassifier(optimizer=optimizer, batch_size=batch, seed=2, device="cpu")
        frame = pd.DataFrame([x for x, _ in stream[:complete]])
        ref.learn_many(frame, pd.Series([y for _, y in stream[:complete]]))
        assert ref.n_buffered == 0
        assert ref.predict_proba_one(stream[t][0]) == predictions[t]
        # a learner that also holds the buffered samples (t - complete of them) agrees
        held = TorchClassifier(optimizer=optimizer, batch_size=batch, seed=2, device="cpu")
        for x, y in stream[:t]:
            held.learn_one(x, y)
        assert held.n_buffered == t - complete
        assert held.predict_proba_one(stream[t][0]) == predictions[t]


def test_learn_many_is_a_learn_one_loop():
    stream = toy_stream(50, seed=4, third_class_from=20)
    one = TorchClassifier(batch_size=6, seed=0, device="cpu")
    many = one.clone()
    for x, y in stream:
        one.learn_one(x, y)
    for start, stop in [(0, 5), (5, 23), (23, 24), (24, 50)]:  # frames across batch edges
        part = stream[start:stop]
        many.learn_many(pd.DataFrame([x for x, _ in part]), pd.Series([y for _, y in part]))
    assert (one.n_steps, one.n_buffered) == (many.n_steps, many.n_buffered) == (8, 2)
    assert one.labels == many.labels and same_state(state(one), state(many))


def test_flush_trains_the_rest():
    model = TorchClassifier(batch_size=8, seed=0, device="cpu")
    for x, y in toy_stream(11):
        model.learn_one(x, y)
    assert (model.n_steps, model.n_buffered) == (1, 3)
    assert model.flush() == 3 and (model.n_steps, model.n_buffered) == (2, 0)
    model.learn_one({"a": 1.0}, "pos")
    assert model.flush() == 0 and model.n_buffered == 1  # an Auto step needs two samples


def test_before_any_step():
    clf, reg = TorchClassifier(device="cpu"), TorchRegressor(device="cpu")
    assert clf.predict_proba_one({"a": 1.0}) == {} and clf.predict_one({"a": 1.0}) is None
    assert reg.predict_one({"a": 1.0}) == 0.0
    frame = pd.DataFrame({"a": [1.0, 2.0]}, index=[7, 9])
    assert clf.predict_many(frame).tolist() == [None, None]
    assert reg.predict_many(frame).tolist() == [0.0, 0.0]
    clf.learn_one({"a": 1.0}, "x")
    clf.learn_one({"a": 2.0}, "y")
    assert clf.predict_proba_one({"a": 1.0}) == {"x": 0.5, "y": 0.5}  # uniform until a step
    assert list(clf.predict_proba_many(frame).index) == [7, 9]


# -- labels, features, bad input -----------------------------------------------------------


def test_labels_of_any_hashable_type():
    labels = [("tuple", 1), "text", 3, frozenset({"f"})]
    rng = random.Random(0)
    stream = []
    for _ in range(400):
        k = rng.randrange(4)
        stream.append(({"f0": float(k == 0), "f1": float(k == 1), "f2": float(k == 2)}, labels[k]))
    model = TorchClassifier(batch_size=4, seed=0, device="cpu")
    for x, y in stream:
        model.learn_one(x, y)
    assert set(model.labels) == set(labels)
    hits = sum(model.predict_one(x) == y for x, y in stream[-100:])
    assert hits >= 95
    frame = pd.DataFrame([x for x, _ in stream[-8:]])
    assert model.predict_many(frame).tolist() == [model.predict_one(x) for x, _ in stream[-8:]]


def test_fixed_classes_refuse_others_and_lose_nothing():
    model = TorchClassifier(classes=("neg", "pos"), batch_size=4, seed=0, device="cpu")
    for x, y in toy_stream(6):
        model.learn_one(x, y)
    assert model.n_buffered == 2
    with pytest.raises(ValueError, match="not one of classes"):
        model.learn_one({"a": 1.0}, "other")
    with pytest.raises(ValueError, match="not one of classes"):
        model.learn_many(pd.DataFrame({"a": [1.0, 2.0]}), pd.Series(["pos", "other"]))
    assert model.n_buffered == 2 and model.labels == ["neg", "pos"]


@pytest.mark.parametrize(
    ("x", "message"),
    [
        ({"a": "red"}, "non-numeric"),
        ({"a": float("inf")}, "finite"),
        ([1.0, 2.0], "must be a dict"),
    ],
)
def test_bad_features_are_one_clear_error(x, message):
    model = TorchClassifier(batch_size=4, device="cpu")
    model.learn_one({"a": 1.0}, "pos")
    with pytest.raises(ValueError, match=message):
        model.learn_one(x, "neg")
    assert model.n_buffered == 1 and model.labels == ["pos"]


def test_bad_labels_and_targets():
    clf, reg = TorchClassifier(device="cpu"), TorchRegressor(device="cpu")
    with pytest.raises(ValueError, match="None"):
        clf.learn_one({"a": 1.0}, None)
    with pytest.raises(ValueError, match="hashable"):
        clf.learn_one({"a": 1.0}, ["a", "list"])
    with pytest.raises(ValueError, match="finite number"):
        reg.learn_one({"a": 1.0}, float("nan"))
    with pytest.raises(ValueError, match="rows"):
        clf.learn_many(pd.DataFrame({"a": [1.0, 2.0]}), pd.Series(["a"]))
    assert clf.n_buffered == reg.n_buffered == 0


def test_missing_values_are_zero():
    model = TorchRegressor(optimizer="sgd:lr=0.1", batch_size=2, seed=0, device="cpu")
    for _ in range(3):
        model.learn_one({"a": 1.0, "b": 2.0}, 1.0)
        model.learn_one({"a": -1.0, "b": None}, 0.0)
    nan = float("nan")
    assert model.predict_one({"a": 0.5, "b": nan}) == model.predict_one({"a": 0.5})
    assert model.predict_one({"a": 0.5, "b": 0.0}) == model.predict_one({"a": 0.5, "zz": 4.0})


def test_a_module_without_log_probabilities_is_refused_at_its_first_step():
    model = TorchClassifier(logits_only, batch_size=2, device="cpu")
    model.learn_one({"a": 1.0}, "x")
    with pytest.raises(ValueError, match="log-probabilities"):
        model.learn_one({"a": -1.0}, "y")
    assert model.n_buffered == 1 and model.labels == ["x"]  # the failing call left nothing


def batch_norm(n_features: int, n_outputs: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_features, n_outputs), nn.BatchNorm1d(n_outputs),
                         nn.LogSoftmax(dim=1))


def test_a_layer_without_per_sample_gradients_is_refused_by_auto_optimizers_only():
    auto = TorchClassifier(batch_norm, optimizer="autosgd", batch_size=2, device="cpu")
    auto.learn_one({"a": 1.0}, "x")
    with pytest.raises(TypeError, match="BatchNorm"):
        auto.learn_one({"a": 2.0}, "y")
    assert auto.n_buffered == 1 and auto.n_steps == 0
    plain = TorchClassifier(batch_norm, optimizer="adam:lr=0.1", batch_size=2, device="cpu")
    for i in range(4):
        plain.learn_one({"a": float(i)}, "xy"[i % 2])
    assert plain.n_steps == 2


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"optimizer": "no-such-optimizer"}, registry.UnknownOptimizerError),
        ({"optimizer": "autosgd:nope=1"}, registry.UnknownOptimizerError),
        ({"optimizer": "sgd"}, ValueError),  # lr required
        ({"optimizer": "autosgd", "batch_size": 1}, ValueError),
        ({"batch_size": 0}, ValueError),
        ({"seed": 1.5}, ValueError),
        ({"features": ("a", "a")}, ValueError),
        ({"classes": ()}, ValueError),
        ({"module": 3}, ValueError),
        ({"module": nn.Sequential(nn.ReLU())}, ValueError),
    ],
)
def test_bad_parameters_fail_at_construction(kwargs, error):
    with pytest.raises(error):
        TorchClassifier(**{"device": "cpu", **kwargs})


def test_unavailable_device_fails_at_construction():
    from autoopt_lab.devices import DeviceUnavailableError

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(DeviceUnavailableError):
        TorchClassifier(device="cuda")


def test_optimizer_options_reach_the_optimizer():
    model = TorchClassifier(
        optimizer="sgd:lr=0.2", optimizer_options={"momentum": 0.5}, batch_size=2, device="cpu"
    )
    for x, y in toy_stream(2):
        model.learn_one(x, y)
    lr, momentum = model.optimizer_.hparams()["0.weight"].tolist()
    assert (lr, momentum) == pytest.approx((0.2, 0.5))


# -- growth ------------------------------------------------------------------------------


@pytest.fixture
def toy_optimizer():
    """A registered optimizer the learner must accept like any other (no hard-coded names)."""
    spec = registry.OptimizerSpec(
        "toy-sign-sgd", "Toy", "tuned", "sgd",
        lambda named, opts: torch.optim.SGD([p for _, p in named], lr=opts["lr"]),
        options=(registry.Option("lr", 0.01, float),),
    )
    registry.register(spec)
    yield spec.name
    registry.unregister(spec.name)


def test_new_features_grow_the_input_exactly_for_every_optimizer(toy_optimizer):
    """A feature that appears late gets a zero column and zero optimizer state: the same
    model as one that had the column (at zero) all along, for every registry optimizer."""
    rng = random.Random(0)
    stream = []
    for t in range(96):
        x = {"a": rng.gauss(0, 1), "b": rng.gauss(0, 1)}
        if t >= 40:
            x["c"] = rng.gauss(0, 1)
        stream.append((x, int(x["a"] + x.get("c", 0.0) > 0)))
    for name in registry.names(available=True):
        kw = dict(optimizer=name, optimizer_options=options_for(name), classes=(0, 1),
                  batch_size=8, seed=0, device="cpu")
        fixed = TorchClassifier(zero_linear, features=("a", "b", "c"), **kw)
        grown = TorchClassifier(zero_linear, **kw)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            for x, y in stream:
                pf, pg = fixed.predict_proba_one(x), grown.predict_proba_one(x)
                assert pf == pytest.approx(pg, abs=1e-5), name
                fixed.learn_one(x, y)
                grown.learn_one(x, y)
        assert grown.module_[0].in_features == 3, name


def test_new_classes_grow_the_output_for_every_optimizer(toy_optimizer):
    stream = toy_stream(160, seed=5, third_class_from=60)
    for name in registry.names(available=True):
        model = TorchClassifier(optimizer=name, optimizer_options=options_for(name),
                                batch_size=8, seed=0, device="cpu")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            for x, y in stream:
                model.learn_one(x, y)
        assert model.module_[0].out_features == 3, name
        proba = model.predict_proba_one({"a": 0.0, "b": 2.0})
        assert set(proba) == {"neg", "pos", "other"} and sum(proba.values()) == pytest.approx(1)


def test_a_module_instance_is_copied_and_grown():
    net = nn.Sequential(nn.Linear(1, 2), nn.LogSoftmax(dim=1))
    original = copy.deepcopy(net.state_dict())
    model = TorchClassifier(net, batch_size=4, seed=0, device="cpu")
    for x, y in toy_stream(40, third_class_from=10):
        model.learn_one(x, y)
    assert model.module_ is not net and same_state(original, net.state_dict())
    assert model.module_[0].weight.shape == (3, 2)


# -- seeds, pickling ---------------------------------------------------------------------


def test_a_seed_repeats_the_run_and_leaves_the_global_rng_alone():
    stream = toy_stream(40)

    def run(seed):
        model = TorchClassifier(MLP(hidden=(8,)), batch_size=4, seed=seed, device="cpu")
        out = []
        for x, y in stream:
            out.append(model.predict_proba_one(x))
            model.learn_one(x, y)
        return out

    torch.manual_seed(123)
    rng = torch.get_rng_state()
    first = run(0)
    assert torch.equal(rng, torch.get_rng_state())
    assert run(0) == first and run(1) != first


@pytest.mark.parametrize("optimizer", ["autosgd", "autoadam", "sf-sgd", "prodigy", "dog"])
def test_pickled_learner_continues_identically(optimizer):
    stream = toy_stream(80, seed=6, third_class_from=30)
    model = TorchClassifier(optimizer=optimizer, batch_size=4, seed=0, device="cpu")
    for x, y in stream[:41]:
        model.learn_one(x, y)
    copies = [pickle.loads(pickle.dumps(model)), copy.deepcopy(model)]
    for x, y in stream[41:]:
        expected = model.predict_proba_one(x)
        for other in copies:
            assert other.predict_proba_one(x) == expected
            other.learn_one(x, y)
        model.learn_one(x, y)


def test_schedule_free_predicts_with_its_evaluation_weights():
    model = TorchClassifier(optimizer="sf-sgd", batch_size=4, seed=0, device="cpu")
    stream = toy_stream(40)
    for x, y in stream:
        model.learn_one(x, y)
    x = stream[0][0]
    train_weights = state(model)
    got = model.predict_proba_one(x)
    assert same_state(train_weights, state(model))  # predicting changed nothing
    with model.optimizer_.evaluating(), torch.no_grad():
        logp = model.module_(torch.tensor([[x["a"], x["b"]]]))
    expected = torch.softmax(logp.double(), dim=1)[0].tolist()
    assert [got[k] for k in model.labels] == pytest.approx(expected, abs=1e-6)
    with torch.no_grad():
        plain = torch.softmax(model.module_(torch.tensor([[x["a"], x["b"]]])).double(), 1)
    assert plain[0].tolist() != pytest.approx(expected, abs=1e-6)
