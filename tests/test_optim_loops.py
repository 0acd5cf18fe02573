"""The Auto optimizers in the loops people write: plain, torch-style closure, clipping,
accumulation, schedulers, the model passed as ``params``; and the secant curvature."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from twin_checks import plain_loop

import autoopt_lab
from autoopt_lab import AutoAdaGrad, AutoAdam, AutoSGD
from autoopt_lab.optim import curvature as C


def _model() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 4 * 4, 5), nn.LogSoftmax(1)
    )


def _data(steps: int, n: int = 16, seed: int = 1, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(n, 1, 6, 6, generator=gen, dtype=dtype), torch.randint(0, 5, (n,),
                                                                            generator=gen))
        for _ in range(steps)
    ]


def _params(model):
    return [p.detach().clone() for p in model.parameters()]


def _teacher_data(steps: int, n: int = 64, seed: int = 1):
    """Batches whose labels a fixed random teacher gives: a task with signal to learn (random
    labels have none, and the Auto gain rightly stays near zero on them)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(100)
        teacher = _model()  # the model's own architecture: a task it can learn
    out = []
    with torch.no_grad():
        for _ in range(steps):
            x = torch.randn(n, 1, 6, 6, generator=gen)
            out.append((x, teacher(x).argmax(1)))
    return out


@pytest.mark.parametrize("cls", [AutoSGD, AutoAdam, AutoAdaGrad])
def test_plain_loop_with_the_model_as_params_learns(cls):
    """``opt = AutoX(model)`` tracks the model; ``backward(); step()`` needs nothing else."""
    torch.manual_seed(0)
    model = _model()
    opt = cls(model)
    held_x, held_y = _teacher_data(1, n=512, seed=2)[0]
    with torch.no_grad():
        start = float(F.nll_loss(model(held_x), held_y))
    for x, y in _teacher_data(60):
        opt.zero_grad()
        F.nll_loss(model(x), y).backward()
        opt.step()
    with torch.no_grad():
        end = float(F.nll_loss(model(held_x), held_y))
    assert end < 0.9 * start, (start, end)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    opt.close()
    assert getattr(model, "_autoopt_tracker", None) is None


def test_lightning_style_closure_without_a_prior_backward():
    """``step(closure)`` where the closure zeroes, runs backward and returns the loss, and no
    backward came before: the optimizer calls it for the gradients, then again (twice, with the
    same random numbers) for the finite-difference curvature; dropout is no obstacle."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(36, 20), nn.ReLU(), nn.Dropout(0.3),
                          nn.Linear(20, 5), nn.LogSoftmax(1))
    opt = AutoAdam(model, curvature_every=2)
    calls = []
    for x, y in _data(4):

        def closure(x=x, y=y):
            calls.append(1)
            opt.zero_grad()
            loss = F.nll_loss(model(x), y)
            loss.backward()
            return loss

        loss = opt.step(closure)
        assert isinstance(loss, torch.Tensor)
    assert len(calls) == 4 + 2 * 2  # every step, plus two per measurement (steps 1 and 3)
    c = torch.stack([s["curvature"] for s in opt.state.values()])
    assert torch.isfinite(c).all() and (c > 0).all() and (c != 1).any()


def test_the_probe_leaves_grads_statistics_and_weights_as_they_were():
    from autoopt_lab.optim.closures import closure_products
    from autoopt_lab.stats import record

    torch.manual_seed(0)
    model = _model()
    x, y = _data(1)[0]
    with autoopt_lab.track(model):
        F.nll_loss(model(x), y).backward()
        params = list(model.parameters())
        before = (_params(model), [p.grad.clone() for p in params],
                  [record.peek(p) for p in params])

        def torch_style():
            for p in params:
                p.grad = None
            loss = F.nll_loss(model(x), y)
            loss.backward()
            return loss

        closure_products(torch_style, params, [[torch.randn_like(p) for p in params]])
        assert all(torch.equal(p, q) for p, q in zip(params, before[0], strict=True))
        assert all(torch.equal(p.grad, g) for p, g in zip(params, before[1], strict=True))
        assert all(record.peek(p) is s for p, s in zip(params, before[2], strict=True))


@pytest.mark.parametrize("cls,opts", [
    (AutoSGD, {}),
    (AutoAdam, {"curvature_source": "secant"}),
    (AutoAdaGrad, {"curvature": "paper"}),
])
def test_a_gradient_scaled_after_backward_is_a_scaled_loss(cls, opts):
    """Scaling ``.grad`` after the backward (what clip_grad_norm_ and GradScaler.unscale_ do)
    scales the per-sample statistics with it: the run equals one on the scaled loss."""
    runs = []
    for where in ("loss", "grad"):
        torch.manual_seed(0)
        model = _model().double()
        opt = cls(model, **opts)
        for x, y in _data(6, dtype=torch.float64):
            opt.zero_grad()
            loss = F.nll_loss(model(x), y)
            (loss * 0.3 if where == "loss" else loss).backward()
            if where == "grad":
                for p in model.parameters():
                    p.grad.mul_(0.3)
            opt.step()
        runs.append(_params(model))
    for a, b in zip(*runs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-12)


def test_clip_grad_norm_is_consistent_and_reported_momentum_stays_in_range():
    torch.manual_seed(0)
    model = _model()
    opt = AutoAdam(model)
    for x, y in _data(8):
        opt.zero_grad()
        F.nll_loss(model(x), y).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.05)
        opt.step()
    for hp in opt.hparams().values():
        assert 0.0 <= hp["momentum"] <= 1.0 and 0.0 <= hp["lr"]


def test_lr_is_a_multiplier_a_scheduler_drives():
    runs = {}
    for lr in (1.0, 0.5, 0.0):
        torch.manual_seed(0)
        model = _model().double()
        opt = AutoSGD(model, lr=lr)
        start = _params(model)
        x, y = _data(1, dtype=torch.float64)[0]
        opt.zero_grad()
        F.nll_loss(model(x), y).backward()
        opt.step()
        runs[lr] = [p.detach() - s for p, s in zip(model.parameters(), start, strict=True)]
        if lr:
            ratio = [hp["lr"] for hp in opt.hparams().values()]
            runs[f"hp{lr}"] = ratio
    for full, half, zero in zip(runs[1.0], runs[0.5], runs[0.0], strict=True):
        torch.testing.assert_close(half, 0.5 * full)
        assert not zero.any()
    for a, b in zip(runs["hp1.0"], runs["hp0.5"], strict=True):
        assert b == pytest.approx(0.5 * a)

    model = _model()
    opt = AutoAdam(model)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=4)
    for x, y in _data(4):
        opt.zero_grad()
        F.nll_loss(model(x), y).backward()
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)
    restored = AutoAdam(_model())
    restored.load_state_dict(opt.state_dict())  # 'initial_lr' from the scheduler is accepted


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf")])
def test_a_bad_lr_is_refused(bad):
    with pytest.raises(ValueError, match="lr"):
        AutoAdam(_model(), lr=bad)


def test_secant_measures_the_curvature_along_the_step_on_a_quadratic():
    """Identical samples (no noise): the secant is exact, ``c = s^T H s / s^T s``."""
    h = torch.tensor([1.0, 4.0, 9.0], dtype=torch.float64)
    w = nn.Parameter(torch.tensor([1.0, -1.0, 0.5], dtype=torch.float64))
    opt = AutoSGD([w], curvature="measured", curvature_source="secant", trust_ratio=0.0,
                  curvature_ewma=0.0)
    from autoopt_lab.stats import record

    history = []
    for _ in range(2):
        opt.zero_grad()
        w.grad = h * w.detach()  # g = H w, the same for every sample
        record.attach(w, 4 * w.grad**2, batch_size=4, grad_scale=1.0, generation=len(history))
        history.append(w.detach().clone())
        opt.step()
    s = history[1] - history[0]
    expected = float((s * h * s).sum() / (s * s).sum())
    assert float(opt.state[w]["curvature"]) == pytest.approx(expected, rel=1e-9)


def test_secant_noise_correction_is_unbiased():
    """``s^T (g_t - g_{t-1}) - a V`` has the expectation ``s^T H s`` when the step ``s``
    holds ``a`` times the noisy previous gradient (docs/curvature.md)."""
    gen = torch.Generator().manual_seed(0)
    dim, draws, a = 50, 4000, 0.2
    h = torch.linspace(0.5, 2.0, dim, dtype=torch.float64)
    g_bar = torch.randn(dim, generator=gen, dtype=torch.float64)
    sigma = 0.7
    n1 = sigma * torch.randn(draws, dim, generator=gen, dtype=torch.float64)
    n2 = sigma * torch.randn(draws, dim, generator=gen, dtype=torch.float64)
    s = -a * (g_bar + n1)
    g_prev, g_now = g_bar + n1, g_bar + h * s + n2
    v = sigma**2 * dim  # E[n^T n]
    raw = (s * g_now).sum(1) - (s * g_prev).sum(1)
    corrected = raw - a * v
    truth = (s * h * s).sum(1)
    assert float(corrected.mean()) == pytest.approx(float(truth.mean()), rel=0.03)
    assert float(raw.mean()) > 1.2 * float(truth.mean())  # uncorrected: biased upwards
    zeros = torch.zeros(draws, dtype=torch.float64)
    _, _, ratio = C.secant_means((s * g_now).sum(1), (s * g_prev).sum(1),
                                 torch.full((draws,), a * v, dtype=torch.float64),
                                 (s * s).sum(1), zeros, zeros, 0.0)
    assert (ratio[torch.isfinite(ratio)] > 0).all()  # a negative secant is no measurement


def test_grad_scaler_unscale_gives_the_unscaled_run():
    """GradScaler multiplies the loss by 2^16 and unscale_ divides the gradients in place:
    the statistics follow, and the run equals the one without a scaler."""
    runs = []
    for scaled in (False, True):
        torch.manual_seed(0)
        model = _model()
        opt = AutoAdam(model)
        scaler = torch.amp.GradScaler("cpu", enabled=scaled)
        for x, y in _data(5):
            opt.zero_grad()
            scaler.scale(F.nll_loss(model(x), y)).backward()
            scaler.unscale_(opt)
            scaler.step(opt)
            scaler.update()
        runs.append(_params(model))
    for a, b in zip(*runs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_a_gradient_changed_without_a_version_bump_is_still_seen():
    """GradScaler's unscale kernel writes .grad without bumping its version counter: the
    optimizer compares norms, not versions."""
    g = torch.randn(3)
    torch._amp_foreach_non_finite_check_and_unscale_([g], torch.zeros(1), torch.tensor(0.5))
    assert g._version == 0  # why versions cannot tell


def _ghost_model() -> nn.Module:
    return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 6 * 6, 5), nn.LogSoftmax(1))


def _run_with_statistics(path: str, cls, steps: int = 6, **opts):
    from autoopt_lab.stats import ghost

    torch.manual_seed(0)
    model = _ghost_model().double()
    opt = cls(model, curvature="paper", **opts)
    gen = torch.Generator().manual_seed(3)
    scalar = []
    with ghost.forced(path):
        for _ in range(steps):
            x = torch.randn(8, 2, 6, 6, generator=gen, dtype=torch.float64)
            y = torch.randint(0, 5, (8,), generator=gen)
            opt.zero_grad()
            F.nll_loss(model(x), y).backward()
            scalar.append(model[0].weight.autoopt_stats.scalar)
            opt.step()
    return _params(model), scalar, opt


def test_scalar_statistics_give_the_elementwise_step_for_sgd():
    """The ghost norm is exact for ``D = I``: AutoSGD steps the same with either form."""
    ghost_run, scalar, _ = _run_with_statistics("ghost", AutoSGD)
    plain_run, elementwise, _ = _run_with_statistics("elementwise", AutoSGD)
    assert all(scalar) and not any(elementwise)
    for a, b in zip(ghost_run, plain_run, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("cls", [AutoAdam, AutoAdaGrad])
def test_scalar_statistics_with_published_weights_learn_like_the_elementwise_form(cls):
    """With a diagonal ``D`` the scalar form is weighted by the rank-1 ``W`` the optimizer
    publishes after each step (identity at the first): close to the elementwise step, finite.
    Measured after 6 steps: the weights differ by 6.7% (AutoAdam) and under 5% (AutoAdaGrad)
    of their norm, the first step's identity weighting being the coarsest."""
    from autoopt_lab.stats import record

    ghost_run, scalar, opt = _run_with_statistics("ghost", cls)
    plain_run, _, _ = _run_with_statistics("elementwise", cls)
    weight = opt.param_groups[0]["params"][0]
    row, col = record.published_weights(weight)
    assert row.shape == (4,) and col.shape == (2 * 3 * 3,) and (row > 0).all()
    for a, b in zip(ghost_run, plain_run, strict=True):
        assert torch.isfinite(a).all()
        assert float((a - b).norm()) <= 0.1 * float(b.norm())


def test_plain_loop_resume_is_bit_for_bit():
    """The secant's memory (the last update, the running means) is in the state: a run
    saved and resumed continues exactly as the straight run."""
    data = _data(8)

    torch.manual_seed(0)
    straight = _model()
    plain_loop(straight, AutoAdam(straight), data, F.nll_loss)
    torch.manual_seed(0)
    first = _model()
    opt = AutoAdam(first)
    plain_loop(first, opt, data[:4], F.nll_loss)
    assert all("last_update" in s and s["secant"].dtype == torch.float64
               for s in opt.state.values())
    resumed = _model()
    resumed.load_state_dict(first.state_dict())
    opt2 = AutoAdam(resumed)
    opt2.load_state_dict(opt.state_dict())
    plain_loop(resumed, opt2, data[4:], F.nll_loss)
    assert all(torch.equal(p, q) for p, q in zip(straight.parameters(), resumed.parameters(),
                                                  strict=True))
