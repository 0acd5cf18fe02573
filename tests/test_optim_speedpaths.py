"""The fast paths of ``step()``: flat state kept between steps, scratch vectors reused,
an accepted step written in place. Each is checked against the general path (gathered
copies, every value selected by the finiteness flag) bit for bit."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import autoopt_lab
from autoopt_lab import AutoAdaGrad, AutoAdam, AutoSGD
from autoopt_lab.optim import step_rule

pytestmark = pytest.mark.usefixtures("single_thread")

PAPER = {"step": "paper"}  # the step rule the in-place path serves
CASES = [
    (AutoSGD, {**PAPER}),
    (AutoSGD, {**PAPER, "lr": 0.5, "trust_ratio": 0.001}),
    (AutoAdam, {**PAPER}),  # measured curvature, secant source in the plain loop, trust region
    (AutoAdaGrad, {**PAPER}),
    (AutoAdam, {**PAPER, "curvature": "paper", "trust_ratio": 0.0, "lr": 0.5}),
    (AutoSGD, {**PAPER, "curvature": "measured", "curvature_source": "secant",
               "weight_decay": 1e-3}),
]


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(48, 5),
                         nn.LogSoftmax(1))


def _train(cls, opts, steps=12, model=None, opt=None, seed=1):
    model = model or _model()
    opt = opt or cls(model, **opts)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x, y = torch.randn(16, 1, 6, 6, generator=gen), torch.randint(0, 5, (16,), generator=gen)
        opt.zero_grad()
        F.nll_loss(model(x), y).backward()
        opt.step()
    return model, opt


def _bits(model):
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("case", range(len(CASES)))
def test_in_place_step_has_the_bits_of_the_general_step(case, monkeypatch):
    cls, opts = CASES[case]
    fast, _ = _train(cls, opts)
    monkeypatch.setattr(step_rule, "in_place_ready", lambda b: False)
    slow, _ = _train(cls, opts)
    for a, b in zip(_bits(fast), _bits(slow), strict=True):
        assert torch.equal(a, b)


def test_state_is_per_parameter_views_of_one_buffer():
    model, opt = _train(AutoAdam, PAPER, steps=3)
    params = list(model.parameters())
    for key in ("momentum_buffer", "exp_avg_sq", "last_update"):
        views = [opt.state[p][key] for p in params]
        assert [v.shape for v in views] == [p.shape for p in params]
        base = views[0].untyped_storage().data_ptr()
        assert all(v.untyped_storage().data_ptr() == base for v in views)


def test_state_dict_round_trip_resumes_bit_for_bit():
    model, opt = _train(AutoAdam, {}, steps=4)
    saved_model, saved_opt = copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict())
    _train(AutoAdam, {}, steps=3, model=model, opt=opt, seed=7)
    other = _model()
    other.load_state_dict(saved_model)
    opt2 = AutoAdam(other)
    opt2.load_state_dict(saved_opt)
    _train(AutoAdam, {}, steps=3, model=other, opt=opt2, seed=7)
    for a, b in zip(_bits(model), _bits(other), strict=True):
        assert torch.equal(a, b)
    opt.close()
    opt2.close()


def test_a_tensor_without_gradient_changes_the_layout_and_back():
    model = _model()
    opt = AutoAdam(model)
    gen = torch.Generator().manual_seed(2)
    for i in range(6):
        x, y = torch.randn(16, 1, 6, 6, generator=gen), torch.randint(0, 5, (16,), generator=gen)
        opt.zero_grad()
        F.nll_loss(model(x), y).backward()
        if i % 2:
            model[3].bias.grad = None  # this step leaves the head's bias out
            autoopt_lab.stats.record.clear(model[3].bias)
        opt.step()
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert int(opt.state[model[3].bias]["step"]) == 3
    assert int(opt.state[model[3].weight]["step"]) == 6


def test_a_non_finite_step_changes_no_state():
    model, opt = _train(AutoAdam, {}, steps=3)
    before = copy.deepcopy(opt.state_dict()["state"])
    weights = _bits(model)
    x = torch.randn(16, 1, 6, 6)
    opt.zero_grad()
    F.nll_loss(model(x * float("nan")), torch.zeros(16, dtype=torch.long)).backward()
    opt.step()
    for a, b in zip(_bits(model), weights, strict=True):
        assert torch.equal(a, b)
    after = opt.state_dict()["state"]
    for idx, s in before.items():
        for key, value in s.items():
            # these record the skip, or the secant of the previous step (measured before)
            if key not in ("nonfinite_skips", "last_update", "secant", "curvature",
                           "curvature_count"):
                assert torch.equal(after[idx][key], value), key


def test_a_group_added_later_and_a_second_optimizer_keep_their_own_state():
    model = _model()
    head = list(model[3].parameters())
    opt = AutoAdam([{"params": list(model[0].parameters())}])
    other = AutoSGD(model.named_parameters())  # the same tensors, its own state
    gen = torch.Generator().manual_seed(4)
    with autoopt_lab.track(model):
        for i in range(4):
            if i == 2:
                opt.add_param_group({"params": head})
            x, y = torch.randn(16, 1, 6, 6, generator=gen), torch.randint(0, 5, (16,),
                                                                        generator=gen)
            for o in (opt, other):
                o.zero_grad()
                F.nll_loss(model(x), y).backward()
                o.step()
    mine, theirs = opt.state[head[0]], other.state[head[0]]
    assert int(mine["step"]) == 2 and int(theirs["step"]) == 4
    assert mine["momentum_buffer"].data_ptr() != theirs["momentum_buffer"].data_ptr()
    assert all(torch.isfinite(p).all() for p in model.parameters())


# The decoupled step (the defaults): a batch of 16 with momentum_batch=4 gives mu = 0.75.
MU = {"momentum_batch": 4.0}
DECOUPLED_CASES = [
    (AutoSGD, {**MU}),  # measured curvature (the default), secant source in the plain loop
    (AutoSGD, {**MU, "lr": 0.5, "trust_ratio": 0.001}),  # the trust region binds
    (AutoSGD, {"curvature": "paper", "trust_ratio": 0.0, "lr": 0.5, "momentum": 0.5,
               "adapt_momentum": False}),  # no secant, no trust region
    (AutoAdam, {**MU}),
    (AutoAdam, {**MU, "curvature": "paper", "trust_ratio": 0.0, "lr": 0.5}),
    (AutoAdam, {**MU, "trust_ratio": 0.002, "lr": 2.0, "weight_decay": 1e-3}),
    (AutoAdaGrad, {**MU}),
    (AutoAdaGrad, {**MU, "curvature": "measured", "curvature_source": "secant", "lr": 0.5,
                   "trust_ratio": 0.001}),
    (AutoAdam, {**MU, "trust_ratio": 10.0}),  # a trust region that never binds
]


class _Gated(nn.Module):
    """The test model with a side branch ``gate * side(x)``: with ``gate = 0`` the side's
    tensors have an exactly zero gradient (inactive in the step: they keep their state)."""

    def __init__(self) -> None:
        super().__init__()
        self.body = _model()
        self.side = nn.Linear(36, 5)
        self.gate = 1.0

    def forward(self, x):
        return self.body(x) + self.gate * self.side(x.flatten(1))


def _train_gated(cls, opts, steps=10):
    torch.manual_seed(3)
    model = _Gated()
    opt = cls(model, **opts)
    gen = torch.Generator().manual_seed(5)
    for i in range(steps):
        x, y = torch.randn(16, 1, 6, 6, generator=gen), torch.randint(0, 5, (16,), generator=gen)
        model.gate = 0.0 if i % 3 == 1 else 1.0  # the side branch is inactive every third step
        opt.zero_grad()
        F.nll_loss(model(x), y).backward()
        if i == 7:  # and the head's bias is left out of one step altogether
            model.body[3].bias.grad = None
            autoopt_lab.stats.record.clear(model.body[3].bias)
        opt.step()
    return model, opt


def _state_bits(model, opt):
    out = []
    for p in model.parameters():
        for key, value in sorted(opt.state[p].items()):
            if isinstance(value, torch.Tensor):
                out.append((key, value.detach().clone()))
    return out


@pytest.mark.parametrize("case", range(len(DECOUPLED_CASES)))
def test_decoupled_in_place_step_has_the_bits_of_the_general_step(case, monkeypatch):
    from autoopt_lab.optim import decoupled_step

    cls, opts = DECOUPLED_CASES[case]
    calls, bound = [], []
    real, trust = decoupled_step._step_in_place, decoupled_step._trust_scale
    monkeypatch.setattr(decoupled_step, "_step_in_place",
                        lambda *a: calls.append(1) or real(*a))

    def _trust_scale(*a):
        scale = trust(*a)
        bound.append(bool((scale < 1).any()))
        return scale

    monkeypatch.setattr(decoupled_step, "_trust_scale", _trust_scale)
    fast, fast_opt = _train_gated(cls, opts)
    assert fast_opt.defaults["step"] == "decoupled" and len(calls) == 10
    fast_state = _state_bits(fast, fast_opt)
    monkeypatch.setattr(decoupled_step, "in_place_ready", lambda b: False)
    slow, slow_opt = _train_gated(cls, opts)
    assert len(calls) == 10
    for a, b in zip(_bits(fast), _bits(slow), strict=True):
        assert torch.equal(a, b)
    slow_state = _state_bits(slow, slow_opt)
    assert [k for k, _ in fast_state] == [k for k, _ in slow_state]
    for (key, a), (_, b) in zip(fast_state, slow_state, strict=True):
        assert torch.equal(a, b), key
    side = fast_opt.state[fast.side.weight]
    # inactive in steps 1, 4 and 7 (weight decay gives it a gradient)
    assert int(side["step"]) == (10 if "weight_decay" in opts else 7)
    ratio = opts.get("trust_ratio", 0.03)
    if 0 < ratio < 0.01:  # binds where made small, and never at 10
        assert any(bound)
    if ratio > 1:
        assert bound and not any(bound)


def test_decoupled_in_place_step_keeps_the_state_as_views_of_one_buffer():
    model, opt = _train(AutoAdam, {}, steps=3)
    params = list(model.parameters())
    assert opt.defaults["step"] == "decoupled"
    for key in ("momentum_buffer", "exp_avg_sq", "last_update"):
        views = [opt.state[p][key] for p in params]
        base = views[0].untyped_storage().data_ptr()
        assert all(v.untyped_storage().data_ptr() == base for v in views), key
