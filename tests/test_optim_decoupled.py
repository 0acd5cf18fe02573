"""The decoupled step (``step="decoupled"``): step-by-step agreement with its float64 twin,
the maths on quadratics with known answers, what ``hparams()`` reports, and the torch
conventions it must keep (state_dict, the plain loop, schedulers)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from twin_checks import plain_loop, small_cnn, step_beside_twin

import autoopt_lab
from autoopt_lab.optim import decoupled as DC
from autoopt_lab.optim.twin_decoupled import ReferenceDecoupled

CLASSES = {"sgd": autoopt_lab.AutoSGD, "adam": autoopt_lab.AutoAdam,
           "adagrad": autoopt_lab.AutoAdaGrad}


CASES = [  # a batch of 16: momentum_batch=4 gives mu = 0.75, the default 16 gives mu = 0
    ("sgd", {"curvature": "paper", "trust_ratio": 0.0, "momentum_batch": 4.0}),
    ("sgd", {"curvature": "paper", "trust_ratio": 0.0, "momentum": 0.5, "adapt_momentum": False,
             "weight_decay": 1e-2}),
    ("adam", {"curvature": "paper", "trust_ratio": 0.0, "eps": 1e-3, "momentum_batch": 4.0}),
    ("adagrad", {"curvature": "paper", "trust_ratio": 0.0, "eps": 1e-3}),
    ("sgd", {"curvature": "paper", "trust_ratio": 0.002}),  # the trust region binds
    ("adam", {"curvature": "measured", "curvature_every": 3, "trust_ratio": 0.0, "eps": 1e-3,
              "momentum_batch": 4.0}),
    ("adagrad", {"curvature": "measured", "curvature_every": 2, "eps": 1e-3,
                 "adapt_momentum": False, "trust_ratio": 0.03}),  # the default region binds
]


@pytest.mark.parametrize("kind,opts", CASES)
def test_fast_decoupled_step_matches_its_float64_twin(kind, opts):
    torch.manual_seed(0)
    model = small_cnn().double()
    ref = ReferenceDecoupled(list(model.parameters()), kind=kind, **opts)
    opt = CLASSES[kind](model.named_parameters(), step="decoupled", **opts)
    bound = step_beside_twin(model, opt, ref, 8, hvp=True, closure=True, rtol=1e-8, atol=1e-10)
    assert bound == bool(opts.get("trust_ratio"))
    hp = opt.hparams()
    for (name, _), (lr, mom) in zip(model.named_parameters(), ref.hparams(), strict=True):
        assert hp[name]["lr"] == pytest.approx(lr, rel=1e-8, abs=1e-12)
        assert hp[name]["momentum"] == pytest.approx(mom)
        assert hp[name]["effective_momentum"] == pytest.approx(mom)
        assert hp[name]["gain"] == pytest.approx(lr / (1 - mom), rel=1e-8, abs=1e-12)


def test_gain_is_the_line_search_along_the_step_on_a_noise_free_quadratic():
    """``L = 1/2 c ||w||^2`` with ``D = I``, no noise: ``kappa = 1 / c`` whatever ``ghat``'s
    mix of old and new gradients, once ``ghat`` points along ``w``."""
    c = 4.0
    w = torch.tensor([3.0, -1.0], dtype=torch.float64)
    g = c * w
    p = 0.5 * g  # an older gradient along the same line
    m = torch.tensor([[g @ g, g @ p, p @ p, 0.0]], dtype=torch.float64)
    for mu in (0.0, 0.5, 0.9):
        signal, quad = DC.directional_moments(m, mu)
        kappa = DC.gain(signal, quad, torch.tensor([c], dtype=torch.float64))
        ghat = (1 - mu) * g + mu * p
        # the exact line search of L along ghat: argmin_k ||w - k ghat||^2
        assert float(kappa) == pytest.approx(float(w @ ghat) / float(ghat @ ghat))
        assert torch.allclose(w - kappa * ghat, torch.zeros(2, dtype=torch.float64))


def test_gain_numerator_is_unbiased_under_noise():
    """``(1 - mu)(<g,g> - V) + mu <g,p>`` averages to ``grad^T ghat_mean`` over batches."""
    gen = torch.Generator().manual_seed(0)
    true = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    p = torch.tensor([0.3, 0.1, -0.2], dtype=torch.float64)
    mu, n, draws = 0.7, 8, 20000
    samples = true + torch.randn(draws, n, 3, generator=gen, dtype=torch.float64)
    g = samples.mean(1)
    var = ((samples - g[:, None]) ** 2).sum((1, 2)) / (n * (n - 1))
    m = torch.stack([(g * g).sum(1), g @ p, (p @ p).expand(draws), var], 1)
    signal, _ = DC.directional_moments(m, mu)
    expected = float(true @ ((1 - mu) * true + mu * p))
    assert float(signal.mean()) == pytest.approx(expected, rel=0.02)


def test_effective_momentum_and_gain_of_the_papers_parametrisation():
    """Eq. (10): the weight of the previous step is ``alpha beta`` and the steady-state gain
    ``alpha (1 - beta) / (1 - alpha beta)``: a constant gradient ``g`` makes steps
    approaching ``kappa D g``."""
    alpha, beta = 0.02, 0.9
    mu, kappa = DC.effective(torch.tensor([alpha]), torch.tensor([beta]))
    ghat = torch.zeros(())
    for _ in range(2000):
        ghat = alpha * ((1 - beta) * 1.0 + beta * ghat)
    assert float(mu) == pytest.approx(alpha * beta)
    assert float(ghat) == pytest.approx(float(kappa), rel=1e-6)


def test_trust_region_floor_keeps_shrunk_weights_moving():
    limit = DC.trust_limit(torch.tensor([0.01]), torch.tensor([1.0]), 0.03)
    assert float(limit) == pytest.approx(0.03)  # the initial norm (1), not today's (0.1)


def test_hparams_report_mu_and_kappa_for_both_parametrisations():
    torch.manual_seed(0)
    for step in ("paper", "decoupled"):
        model = nn.Linear(4, 3)
        opt = autoopt_lab.AutoAdam(model, step=step)
        for _ in range(5):
            x, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step(lambda x=x, y=y, model=model: F.cross_entropy(model(x), y))
        hp = opt.hparams()["weight"]
        assert set(hp) == {"lr", "momentum", "effective_momentum", "gain"}
        if step == "paper":
            assert hp["effective_momentum"] == pytest.approx(hp["lr"] * hp["momentum"])
        else:
            assert hp["effective_momentum"] == hp["momentum"]
            assert hp["momentum"] == pytest.approx(0.0)  # a batch of 16: no memory
            assert hp["gain"] == pytest.approx(hp["lr"] / (1 - hp["momentum"]))
        assert hp["gain"] >= 0
        opt.close()


@pytest.mark.parametrize("kind", ["sgd", "adam", "adagrad"])
def test_decoupled_state_dict_resume_continues_exactly(kind):
    def batches():
        gen = torch.Generator().manual_seed(3)
        return [(torch.randn(12, 4, generator=gen), torch.randint(0, 3, (12,), generator=gen))
                for _ in range(6)]

    torch.manual_seed(0)
    a = nn.Linear(4, 3)
    b = nn.Linear(4, 3)
    b.load_state_dict(a.state_dict())
    opt_a = CLASSES[kind](a, step="decoupled", curvature="measured")
    data = batches()
    plain_loop(a, opt_a, data)
    opt_b = CLASSES[kind](b, step="decoupled", curvature="measured")
    plain_loop(b, opt_b, data[:3])
    saved = opt_b.state_dict()
    opt_b.close()
    opt_c = CLASSES[kind](b, step="decoupled", curvature="measured")
    opt_c.load_state_dict(saved)
    plain_loop(b, opt_c, data[3:])
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)


def test_decoupled_learns_in_the_plain_loop_and_never_nans():
    torch.manual_seed(0)
    x = torch.randn(512, 10)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
    for cls in CLASSES.values():
        model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 3))
        opt = cls(model, step="decoupled", curvature="measured")
        gen = torch.Generator().manual_seed(1)
        start = float(F.cross_entropy(model(x), y))
        for _ in range(150):
            i = torch.randint(0, 512, (64,), generator=gen)
            opt.zero_grad()
            F.cross_entropy(model(x[i]), y[i]).backward()
            opt.step()
        end = float(F.cross_entropy(model(x), y))
        assert end == end and end < 0.5 * start, cls.__name__
        opt.close()


def test_lr_multiplier_scales_the_decoupled_step():
    torch.manual_seed(0)
    x, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
    moved = []
    for lr in (1.0, 0.5, 0.0):
        torch.manual_seed(1)
        model = nn.Linear(4, 3)
        torch.nn.init.constant_(model.weight, 0.1)
        start = model.weight.detach().clone()
        opt = autoopt_lab.AutoSGD(model, step="decoupled", lr=lr, trust_ratio=0.0)
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
        moved.append(float((model.weight - start).norm()))
        opt.close()
    assert moved[1] == pytest.approx(0.5 * moved[0], rel=1e-5) and moved[2] == 0.0, moved


def test_batch_momentum_memory_grows_with_the_batch():
    mu = DC.batch_momentum(torch.tensor([16.0, 32.0, 160.0, 4096.0]), 0.9, 16.0)
    memory = 1 / (1 - mu)
    assert memory[:3].tolist() == pytest.approx([1.0, 2.0, 10.0])
    assert float(mu[3]) == pytest.approx(0.9)  # capped at momentum


def test_bad_momentum_is_a_clear_error():
    with pytest.raises(ValueError, match="momentum"):
        autoopt_lab.AutoAdam(nn.Linear(2, 2).parameters(), step="decoupled", momentum=1.0)
    with pytest.raises(ValueError, match="step"):
        autoopt_lab.AutoAdam(nn.Linear(2, 2).parameters(), step="heavy")
    with pytest.raises(ValueError, match="momentum_batch"):
        autoopt_lab.AutoSGD(nn.Linear(2, 2).parameters(), step="decoupled", momentum_batch=0)
