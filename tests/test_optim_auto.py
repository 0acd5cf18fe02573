"""The Auto optimizers: step-by-step agreement with the float64 reference twin, the torch
conventions (named params, groups, closures, state_dict), degenerate input, and theory."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from twin_checks import defaults_to, step_beside_twin

import autoopt_lab
from autoopt_lab.optim import registry
from autoopt_lab.optim.twin import ReferenceAutoOpt

AutoSGD, AutoAdam, AutoAdaGrad = (  # this module tests the paper's method as written
    defaults_to(c, curvature="paper", trust_ratio=0.0, step="paper")
    for c in (autoopt_lab.AutoSGD, autoopt_lab.AutoAdam, autoopt_lab.AutoAdaGrad)
)


def _small_model():
    return nn.Sequential(
        nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 4 * 4, 5), nn.LogSoftmax(1)
    )


CASES = [
    (AutoSGD, "sgd", {}),
    (AutoSGD, "sgd", {"adapt_momentum": False, "weight_decay": 1e-2}),
    (AutoSGD, "sgd", {"ewma": 0.5, "gamma0": 0.9}),
    (AutoAdam, "adam", {"betas": (0.9, 0.99), "eps": 1e-3}),
    (AutoAdam, "adam", {"bias_correction": "constant", "eps": 1e-3}),
    (AutoAdaGrad, "adagrad", {"eps": 1e-3}),
    (AutoSGD, "sgd", {"max_lr": 0.3}),
    (AutoAdam, "adam", {"max_lr": 0.05, "eps": 1e-3}),
    # the paper's curvature inside the trust region (AutoSGD's default): the region binds
    (AutoSGD, "sgd", {"trust_ratio": 0.03}),
    (AutoAdam, "adam", {"eps": 1e-3, "trust_ratio": 0.01}),
]


@pytest.mark.parametrize("cls,kind,opts", CASES)
def test_fast_optimizer_matches_reference_twin_step_by_step(cls, kind, opts):
    torch.manual_seed(0)
    model = _small_model().double()
    ref = ReferenceAutoOpt(list(model.parameters()), kind=kind, **opts)
    opt = cls(model.named_parameters(), **opts)
    bound = step_beside_twin(model, opt, ref, 8)
    assert bound == bool(opts.get("trust_ratio"))  # a trust region here is active, not idle
    hp = opt.hparams()
    for (name, _), (lr, mom) in zip(model.named_parameters(), ref.hparams(), strict=True):
        assert hp[name]["lr"] == pytest.approx(lr, abs=1e-9)
        assert hp[name]["momentum"] == pytest.approx(mom, abs=1e-9)


def _train(model, opt, batches, reduction="mean"):
    with autoopt_lab.track(model, loss_reduction=reduction):
        for x, y in batches:
            opt.zero_grad()
            F.nll_loss(model(x), y, reduction=reduction).backward()
            opt.step()


def _batches(n_batches, n=12, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(n, 1, 6, 6, generator=gen), torch.randint(0, 5, (n,), generator=gen))
        for _ in range(n_batches)
    ]


def test_sum_reduction_gives_the_same_trajectory_as_mean():
    torch.manual_seed(0)
    a, b = _small_model(), _small_model()
    b.load_state_dict(a.state_dict())
    oa, ob = AutoSGD(a.parameters()), AutoSGD(b.parameters())
    _train(a, oa, _batches(5), "mean")
    _train(b, ob, _batches(5), "sum")
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("cls", [AutoSGD, AutoAdam, AutoAdaGrad])
def test_state_dict_resume_continues_exactly(cls):
    torch.manual_seed(0)
    data = _batches(10)
    full = _small_model()
    start = {k: v.clone() for k, v in full.state_dict().items()}
    opt = cls(full.named_parameters())
    _train(full, opt, data)

    first = _small_model()
    first.load_state_dict(start)
    opt1 = cls(first.named_parameters())
    _train(first, opt1, data[:5])
    ckpt = {"model": first.state_dict(), "opt": opt1.state_dict()}
    ckpt = {
        k: {kk: (vv.clone() if torch.is_tensor(vv) else vv) for kk, vv in v.items()}
        for k, v in ckpt.items()
    }

    resumed = _small_model()
    resumed.load_state_dict(ckpt["model"])
    opt2 = cls(resumed.named_parameters())
    opt2.load_state_dict(opt1.state_dict())
    _train(resumed, opt2, data[5:])
    for p, q in zip(full.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(p, q)
    assert opt.hparams() == opt2.hparams()


def test_hparams_keys_names_or_indices_and_groups():
    model = _small_model()
    named = AutoSGD(model.named_parameters())
    assert list(named.hparams()) == [n for n, _ in model.named_parameters()]
    plain = AutoSGD(
        [
            {"params": list(model[0].parameters()), "ewma": 0.5},
            {"params": list(model[3].parameters())},
        ]
    )
    assert list(plain.hparams()) == [0, 1, 2, 3]
    assert plain.param_groups[0]["ewma"] == 0.5 and plain.param_groups[1]["ewma"] == 0.9
    t = named.hparam_tensors()["0.weight"]
    assert t.shape == (2,) and t.dtype == torch.float64


def test_closure_is_called_with_grad_enabled():
    model = _small_model()
    opt = AutoSGD(model.parameters())
    x, y = _batches(1)[0]

    def closure():
        opt.zero_grad()
        loss = F.nll_loss(model(x), y)
        loss.backward()
        return loss

    with autoopt_lab.track(model):
        loss = opt.step(closure)
    assert torch.is_tensor(loss) and opt.state[model[0].weight]["step"] == 1


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"ewma": 1.0}, "ewma"),
        ({"ewma": -0.1}, "ewma"),
        ({"gamma0": 1.5}, "gamma0"),
        ({"weight_decay": -1.0}, "weight_decay"),
        ({"adapt_momentum": "yes"}, "adapt_momentum"),
        ({"solver": "newton"}, "solver"),
        ({"max_lr": 0.0}, "max_lr"),
        ({"max_lr": 1.5}, "max_lr"),
    ],
)
def test_bad_options_are_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AutoSGD(nn.Linear(2, 2).parameters(), **kwargs)


def test_bad_adam_options():
    with pytest.raises(ValueError, match="betas"):
        AutoAdam(nn.Linear(2, 2).parameters(), betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="bias_correction"):
        AutoAdam(nn.Linear(2, 2).parameters(), bias_correction="sometimes")
    with pytest.raises(ValueError, match="eps"):
        AutoAdaGrad(nn.Linear(2, 2).parameters(), eps=0.0)


def test_missing_statistics_is_a_clear_error():
    model = _small_model()
    opt = AutoSGD(model.named_parameters())
    x, y = _batches(1)[0]
    F.nll_loss(model(x), y).backward()
    with pytest.raises(RuntimeError, match=r"'0.weight'.*autoopt_lab.track"):
        opt.step()


@pytest.mark.parametrize("cls", [AutoSGD, AutoAdam, AutoAdaGrad])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_accumulated_micro_batches_step_as_one_batch(cls, reduction):
    """Two micro-batches (each loss divided by 2 for a mean, as users write it) give the
    statistics, and so the step, of one batch of all their samples."""
    x, y = _batches(1)[0]
    results = []
    for split in (False, True):
        torch.manual_seed(0)
        model = _small_model().double()
        opt = cls(model.named_parameters(), trust_ratio=0.0, curvature="paper")
        with autoopt_lab.track(model, loss_reduction=reduction):
            for _ in range(3):
                opt.zero_grad()
                if split:
                    for xs, ys in zip(x.double().chunk(2), y.chunk(2), strict=True):
                        loss = F.nll_loss(model(xs), ys, reduction=reduction)
                        (loss / 2 if reduction == "mean" else loss).backward()
                else:
                    F.nll_loss(model(x.double()), y, reduction=reduction).backward()
                opt.step()
        results.append([p.detach().clone() for p in model.parameters()])
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def _snapshot(model, opt):
    params = [p.detach().clone() for p in model.parameters()]
    state = {id(p): {k: v.clone() for k, v in s.items()} for p, s in opt.state.items()}
    return params, state


def _same(model, opt, snap):
    params, state = snap
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), params, strict=True))
    for p, s in opt.state.items():
        for k, v in s.items():
            if k == "nonfinite_skips":
                continue
            assert torch.equal(v, state[id(p)][k]), k


@pytest.mark.parametrize("cls", [AutoSGD, AutoAdam, AutoAdaGrad])
def test_batch_of_one_skips_with_a_warning(cls):
    model = _small_model()
    opt = cls(model.parameters())
    _train(model, opt, _batches(2))
    snap = _snapshot(model, opt)
    with pytest.warns(RuntimeWarning, match="batch of 1"):
        _train(model, opt, _batches(1, n=1))
    _same(model, opt, snap)


@pytest.mark.parametrize("cls", [AutoSGD, AutoAdam, AutoAdaGrad])
def test_nonfinite_gradients_skip_the_whole_step(cls):
    model = _small_model()
    opt = cls(model.parameters())
    _train(model, opt, _batches(3))
    snap = _snapshot(model, opt)
    x, y = _batches(1)[0]
    x[0, 0, 0, 0] = float("nan")
    _train(model, opt, [(x, y)])
    _same(model, opt, snap)
    with pytest.warns(RuntimeWarning, match="non-finite"):
        opt.hparams()
    _train(model, opt, _batches(2, seed=5))  # and it carries on
    assert all(torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.parametrize("cls", [AutoSGD, AutoAdam, AutoAdaGrad])
def test_zero_gradient_leaves_the_tensor_untouched(cls):
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    opt = cls(model.parameters())
    x = torch.randn(8, 3)
    with autoopt_lab.track(model):
        for _ in range(3):
            opt.zero_grad()
            (model(x).sum() * 0.0).backward()
            opt.step()
    assert all(torch.isfinite(s["gamma"]).all() for s in opt.state.values())
    assert all(s["step"] == 0 for s in opt.state.values())


def test_identical_samples_give_v_zero_and_a_full_step():
    """V = 0 means no noise: the optimum is lr = 1 (gamma = 0), never NaN."""
    model = nn.Linear(3, 1, bias=False)
    opt = AutoSGD(model.parameters(), ewma=0.0)
    x = torch.ones(5, 3)
    with autoopt_lab.track(model):
        for _ in range(3):
            opt.zero_grad()
            F.mse_loss(model(x), torch.full((5, 1), 2.0)).backward()
            opt.step()
    lr = opt.hparams()[0]["lr"]
    assert lr == pytest.approx(1.0)
    assert torch.isfinite(model.weight).all()


def test_theory_v_hat_is_unbiased_on_a_quadratic():
    """f(w; x) = 1/2 |w - x|^2, x ~ N(mu, sigma^2 I): H = I, V = p sigma^2 / N."""
    torch.manual_seed(0)
    p, n, sigma, trials = 20, 8, 0.7, 4000
    mu = torch.randn(p, dtype=torch.float64)
    w = torch.zeros(p, dtype=torch.float64)
    x = mu + sigma * torch.randn(trials, n, p, dtype=torch.float64)
    gi = w - x  # per-sample gradients
    g = gi.mean(1)
    s = gi.square().sum(1)

    v = torch.stack(
        [_moments(g[t], torch.zeros(p, dtype=torch.float64), s[t], n)[3] for t in range(trials)]
    )
    expected = p * sigma**2 / n
    se = v.std() / trials**0.5
    assert abs(v.mean() - expected) < 4 * se
    gg = (g * g).sum(1)
    gbar2 = (mu * mu).sum()
    assert abs(gg.mean() - (gbar2 + expected)) < 4 * gg.std() / trials**0.5


def test_autosgd_learns_a_real_task_without_nan():
    torch.manual_seed(0)
    x = torch.randn(512, 10)
    true_w = torch.randn(10, 3)
    y = (x @ true_w).argmax(1)
    model = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 3), nn.LogSoftmax(1))
    opt = AutoSGD(model.named_parameters())
    with autoopt_lab.track(model):
        for _ in range(6):
            for i in range(0, 512, 32):
                opt.zero_grad()
                F.nll_loss(model(x[i : i + 32]), y[i : i + 32]).backward()
                opt.step()
    acc = (model(x).argmax(1) == y).float().mean()
    assert acc > 0.85
    hp = opt.hparams()
    assert all(0 <= v["lr"] <= 1 and 0 <= v["momentum"] <= 1 for v in hp.values())
    assert any(v["lr"] > 0.01 for v in hp.values())  # it moved away from the warm start


def test_functional_engine_drives_the_optimizer_like_the_hooks():
    torch.manual_seed(0)
    a, b = _small_model(), _small_model()
    b.load_state_dict(a.state_dict())
    oa, ob = AutoSGD(a.parameters()), AutoSGD(b.parameters())
    data = _batches(4)
    _train(a, oa, data)
    for x, y in data:
        ob.zero_grad()
        autoopt_lab.functional_backward(b, F.nll_loss, x, y)
        ob.step()
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-6)


def test_no_warning_in_normal_training():
    model = _small_model()
    opt = AutoSGD(model.parameters())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _train(model, opt, _batches(3))
        opt.hparams()


def test_registry_builds_every_available_optimizer_and_reads_hparams():
    for name in registry.names(available=True):
        spec = registry.get(name)
        model = _small_model()
        opts = {"lr": 0.01} if spec.required else {}
        x, y = _batches(1)[0]
        with registry.build(name, model, **opts) as bound:
            assert (bound.tracker is not None) == spec.per_sample_stats
            bound.zero_grad()
            F.nll_loss(model(x), y).backward()
            bound.step(lambda model=model, x=x, y=y: F.nll_loss(model(x), y))
            hp = bound.hparams()
        assert set(hp) == {n for n, _ in model.named_parameters()}, name
        assert all(v.shape == (2,) and torch.isfinite(v).all() for v in hp.values()), name
    with pytest.raises(ValueError, match="unknown optimizer 'rmsprop'"):
        registry.build("rmsprop", _small_model())
    with pytest.raises(ValueError, match="needs lr"):
        registry.build("sgd", _small_model())


# -- loading a state that belongs elsewhere (issue 13) ----------------------------------------


def _trained_state(cls, model):
    opt = cls(model.named_parameters())
    _train(model, opt, _batches(2))
    return opt.state_dict()


def test_state_from_another_optimizer_class_is_refused_by_name():
    state = _trained_state(AutoSGD, _small_model())
    target = AutoAdam(_small_model().named_parameters())
    with pytest.raises(ValueError, match=r"not from a AutoAdam .*'betas'"):
        target.load_state_dict(state)
    assert not target.state  # nothing was loaded


def test_state_from_differently_shaped_tensors_names_the_first_mismatch():
    state = _trained_state(AutoSGD, _small_model())
    other = nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 5), nn.LogSoftmax(1)
    )
    target = AutoSGD(other.named_parameters())
    with pytest.raises(ValueError, match=r"tensor '0.weight'.*shape \(3, 1, 3, 3\).*\(4, 1, 3, 3\)"):
        target.load_state_dict(state)
    assert not target.state


def test_state_with_other_tensor_names_or_counts_is_refused():
    state = _trained_state(AutoSGD, _small_model())
    renamed = nn.Sequential(nn.Sequential(*_small_model()))
    with pytest.raises(ValueError, match="'0.weight' is '0.0.weight' here"):
        AutoSGD(renamed.named_parameters()).load_state_dict(state)
    fewer = nn.Sequential(nn.Flatten(), nn.Linear(36, 5), nn.LogSoftmax(1))
    with pytest.raises(ValueError, match="holds 4 tensors"):
        AutoSGD(fewer.named_parameters()).load_state_dict(state)
    with pytest.raises(ValueError, match="not an optimizer state_dict"):
        AutoSGD(_small_model().named_parameters()).load_state_dict({"weights": 1})


def test_a_state_saved_before_the_curvature_options_resumes_as_it_ran():
    """A state without the later options (curvature, trust_ratio, ...) loads into today's
    default optimizer and continues the method it was saved with, bit for bit."""
    import copy

    from autoopt_lab.optim.validation import ADDED_OPTIONS

    torch.manual_seed(0)
    model = _small_model()
    opt = AutoAdam(model.named_parameters())  # the paper's method, no trust region
    _train(model, opt, _batches(2))
    old = copy.deepcopy(opt.state_dict())  # as if saved to disk: no shared tensors
    for group in old["param_groups"]:
        for key in ADDED_OPTIONS:
            del group[key]
    resumed = copy.deepcopy(model)
    opt_resumed = autoopt_lab.AutoAdam(resumed.named_parameters())  # measured + trust
    opt_resumed.load_state_dict(old)
    more = _batches(3, seed=1)
    _train(model, opt, more)
    _train(resumed, opt_resumed, more)
    for p, q in zip(model.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(p, q)

def _moments(g, prev, sum_sq, n, inv_hessian=None):
    """``gamma.segment_moments`` of a single tensor, as one ``(4,)`` row."""
    from autoopt_lab.optim import gamma as G

    seg = torch.zeros(g.numel(), dtype=torch.long)
    return G.segment_moments(g, prev, sum_sq, float(n), seg, 1, inv_hessian)[0]
