"""Vectorised grid sweeps: stacked model, stacked optimizers, groups against sequential runs."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from autoopt_lab.experiments import ResultsStore, RunConfig, run, run_sweep
from autoopt_lab.experiments.stacked import NotVectorizableError, StackedModel
from autoopt_lab.experiments.stacked_optim import StackedOptimizer
from autoopt_lab.experiments.vectorized import execute_task, plan_tasks, run_group
from autoopt_lab.models import build_model

TINY = dict(epochs=2, device="cpu", max_train_samples=128, max_test_samples=64)


def _cfgs(opt: str, settings, batch_size: int = 32, **kw):
    extra = {**TINY, **kw}
    out = []
    for lr, mom, seed in settings:
        out.append(
            RunConfig("mnist", opt, lr=lr, momentum=mom, batch_size=batch_size, seed=seed, **extra)
        )
    return out


def _assert_same_run(a, b, *, loss_tol: float = 1e-4) -> None:
    ma, mb = a.metrics, b.metrics
    assert ma["steps"] == mb["steps"]
    assert ma["diverged"] == mb["diverged"]
    assert ma["epochs_completed"] == mb["epochs_completed"]
    # errors are counts over <= 128 samples: one flipped prediction is ~0.8 point
    for key in ("train_err_pct_per_epoch", "test_err_pct_per_epoch"):
        assert ma[key] == pytest.approx(mb[key], abs=1.1), key
    for key in ("train_loss_per_epoch", "test_loss_per_epoch"):
        assert ma[key] == pytest.approx(mb[key], rel=loss_tol, abs=loss_tol), key
    assert list(a.trace.columns) == list(b.trace.columns)
    assert a.trace["step"].tolist() == b.trace["step"].tolist()
    diff = (a.trace["loss"] - b.trace["loss"]).abs().max()
    assert diff < loss_tol * 10, diff
    for col in a.trace.columns:
        if col.startswith(("lr/", "momentum/")):
            assert a.trace[col].tolist() == pytest.approx(b.trace[col].tolist())


@pytest.mark.parametrize(
    ("opt", "settings"),
    [
        ("sgd", [(0.05, 0.0, 0), (0.01, 0.9, 0), (0.1, 0.5, 0)]),
        ("adam", [(1e-3, None, 0), (10**-2.5, None, 0)]),
        ("adagrad", [(0.01, None, 1), (0.05, None, 1)]),
        ("sgd", [(0.05, 0.5, 0), (0.02, 0.9, 3)]),  # mixed seeds: member-major path
    ],
)
def test_group_matches_sequential_runs_with_dropout(opt, settings):
    """Same init, data order and dropout masks as each sequential run (CPU)."""
    cfgs = _cfgs(opt, settings)
    grouped = run_group(cfgs, progress=False)
    for cfg, res in zip(cfgs, grouped, strict=True):
        assert res.config == cfg.with_engine("stacked") and res.config.engine == "stacked"
        assert res.metrics["vectorized_group"] == len(cfgs)
        _assert_same_run(res, run(cfg, progress=False))


def test_group_matches_sequential_with_short_last_batch():
    cfgs = _cfgs("adam", [(1e-3, None, 2), (3e-3, None, 2)], batch_size=50, epochs=1)
    for cfg, res in zip(cfgs, run_group(cfgs, progress=False), strict=True):  # 128 = 2 * 50 + 28
        _assert_same_run(res, run(cfg, progress=False))


@pytest.mark.parametrize("huge", [(1e30, 0.0), (30.0, 0.9)])  # loss inf/nan; loss > 1e4
def test_divergence_is_recorded_like_sequential(huge):
    cfgs = _cfgs("sgd", [(*huge, 0), (0.01, 0.0, 0)], **{"trace_every": 1})
    grouped = run_group(cfgs, progress=False)
    seq = [run(c, progress=False) for c in cfgs]
    assert seq[0].metrics["diverged"], "the test needs a diverging setting"
    assert grouped[0].metrics["diverged"] and not grouped[1].metrics["diverged"]
    assert grouped[0].metrics["steps"] == seq[0].metrics["steps"]
    assert grouped[0].metrics["epochs_completed"] == seq[0].metrics["epochs_completed"]
    assert len(grouped[0].trace) == len(seq[0].trace)
    _assert_same_run(grouped[1], seq[1])


@pytest.mark.parametrize("model_name", ["mnist_cnn", "cifar_lenet"])
@pytest.mark.parametrize("shared", [True, False])
def test_stacked_model_matches_members(model_name, shared):
    torch.manual_seed(0)
    k, n = 3, 5
    members = [build_model(model_name).eval() for _ in range(k)]
    size = (1, 28, 28) if model_name == "mnist_cnn" else (3, 32, 32)
    sm = StackedModel(members, [torch.Generator() for _ in members]).eval()
    if shared:
        x = torch.randn(n, *size)
        xs = [x] * k
        out = sm(x, shared=True)
    else:
        xs = [torch.randn(n, *size) for _ in range(k)]
        out = sm(torch.cat(xs))
    expected = torch.cat([m(xi) for m, xi in zip(members, xs, strict=True)])
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-4)
    # gradients land on the right member
    out.sum().backward()
    for j, m in enumerate(members):
        m.zero_grad()
        m(xs[j]).sum().backward()
        for name, p in sm.stacked_parameters().items():
            ref = dict(m.named_parameters())[name].grad
            torch.testing.assert_close(p.grad[j], ref, atol=1e-4, rtol=1e-4)


def test_stacked_dropout_draws_member_streams():
    """Member k's masks are those F.dropout / F.dropout2d would draw from its generator."""
    torch.manual_seed(0)
    k, n = 3, 4
    model = nn.Sequential(
        nn.Conv2d(1, 2, 3),
        nn.Dropout2d(0.5),
        nn.Flatten(),
        nn.Linear(8, 6),
        nn.Dropout(0.3),
        nn.Linear(6, 2),
    )
    members = [model] + [nn.Sequential(*[m for m in model]) for _ in range(k - 1)]
    gens = [torch.Generator().manual_seed(s) for s in range(k)]
    sm = StackedModel(members, gens).train()
    x = torch.randn(n, 1, 4, 4)
    out = sm(x, shared=True).view(k, n, -1)
    for j in range(k):
        torch.manual_seed(j)  # the default stream, seeded as gens[j] was
        torch.testing.assert_close(out[j], model.train()(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    ("kind", "torch_cls", "kw"),
    [
        ("sgd", torch.optim.SGD, {}),
        ("adam", torch.optim.Adam, {"betas": (0.9, 0.99)}),
        ("adagrad", torch.optim.Adagrad, {}),
    ],
)
def test_stacked_optimizer_matches_torch_optim(kind, torch_cls, kw):
    torch.manual_seed(1)
    lrs, momenta = [0.1, 0.01, 0.3], [0.0, 0.9, 0.5]
    shapes = [(4, 3), (5,)]
    init = [torch.randn(len(lrs), *s) for s in shapes]
    stacked = [nn.Parameter(t.clone()) for t in init]
    opt = StackedOptimizer(stacked, kind, lrs=lrs, momenta=momenta if kind == "sgd" else None, **kw)
    refs = []
    for j, lr in enumerate(lrs):
        ps = [nn.Parameter(t[j].clone()) for t in init]
        extra = {"momentum": momenta[j]} if kind == "sgd" else kw
        refs.append((ps, torch_cls(ps, lr=lr, **extra)))
    for _ in range(6):
        grads = [torch.randn_like(t) for t in init]
        for p, g in zip(stacked, grads, strict=True):
            p.grad = g.clone()
        opt.step()
        for j, (ps, o) in enumerate(refs):
            for p, g in zip(ps, grads, strict=True):
                p.grad = g[j].clone()
            o.step()
    for j, (ps, _) in enumerate(refs):
        for p, ref in zip(stacked, ps, strict=True):
            torch.testing.assert_close(p.detach()[j], ref.detach(), atol=1e-6, rtol=1e-5)


def test_bad_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="allowed: sgd, adam, adagrad"):
        StackedOptimizer([nn.Parameter(torch.zeros(2, 1))], "rmsprop", lrs=[0.1, 0.2])
    with pytest.raises(ValueError, match="no K=2 axis"):
        StackedOptimizer([nn.Parameter(torch.zeros(3, 1))], "adam", lrs=[0.1, 0.2])
    bn = [nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2)) for _ in range(2)]
    with pytest.raises(NotVectorizableError, match="BatchNorm1d"):
        StackedModel(bn, [torch.Generator(), torch.Generator()])
    auto = RunConfig("mnist", "autosgd", batch_size=32, **TINY)
    with pytest.raises(NotVectorizableError, match="cannot be vectorised"):
        run_group([auto, auto], progress=False)
    mixed = _cfgs("sgd", [(0.1, 0.0, 0)]) + _cfgs("sgd", [(0.1, 0.0, 0)], batch_size=64)
    with pytest.raises(NotVectorizableError, match="share every config field"):
        run_group(mixed, progress=False)


def test_plan_tasks_groups_by_everything_but_hparams():
    sgd = _cfgs("sgd", [(lr, 0.0, s) for s in (0, 1) for lr in (0.1, 0.01, 0.001)])
    assert [len(t) for t in plan_tasks(sgd)] == [1] * 6  # the loop engine is never grouped
    sgd = [c.with_engine("stacked") for c in sgd]
    auto = [RunConfig("mnist", "autoadam", batch_size=32, **TINY).with_engine("stacked")]
    assert auto[0].engine == "loop"
    tasks = plan_tasks(sgd + auto)
    assert [len(t) for t in tasks] == [3, 3, 1]
    assert {c.seed for c in tasks[0]} == {0} and tasks[2] == auto
    assert [len(t) for t in plan_tasks(sgd, mix_seeds=True)] == [6]
    assert [len(t) for t in plan_tasks(sgd, max_group=2)] == [2, 1, 2, 1]
    assert [len(t) for t in plan_tasks(sgd, max_samples_per_step=64)] == [2, 1, 2, 1]
    assert sorted(c.run_id() for t in tasks for c in t) == sorted(c.run_id() for c in sgd + auto)


def test_execute_task_fails_groups_it_cannot_stack_instead_of_mixing_engines(monkeypatch):
    cfgs = _cfgs("sgd", [(0.05, 0.0, 0), (0.01, 0.0, 0)], **{"epochs": 1})
    cfgs = [c.with_engine("stacked") for c in cfgs]

    def refuse(*a, **k):
        raise NotVectorizableError("pretend the model is unsupported")

    monkeypatch.setattr("autoopt_lab.experiments.vectorized.run_group", refuse)
    outcomes = execute_task(cfgs)
    assert [o.config for o in outcomes] == cfgs
    assert all(not o.ok and "pretend" in o.error and "--executor process" in o.error
               for o in outcomes)


def test_vectorized_executor_sweep_into_store_and_resume(tmp_path):
    cfgs = _cfgs("adam", [(1e-3, None, 0), (1e-2, None, 0), (3e-3, None, 0)], **{"epochs": 1})
    cfgs += [RunConfig("mnist", "autosgd", batch_size=32, **{**TINY, "epochs": 1})]
    store = ResultsStore(tmp_path / "r.sqlite")
    first = run_sweep(cfgs[:2], store, executor="vectorized", workers=1, progress=False)
    assert (first.done, first.failed) == (2, 0)
    again = run_sweep(cfgs, store, executor="vectorized", workers=1, progress=False)
    assert (again.skipped, again.done, again.failed) == (2, 2, 0)
    runs = store.runs().set_index("run_id")
    assert len(runs) == 4
    assert set(runs["engine"]) == {"stacked", "loop"}  # Adam stacked, AutoSGD in a loop
    seq = run(cfgs[2], progress=False)
    got = runs.loc[cfgs[2].with_engine("stacked").run_id()]
    assert got["final_test_err_pct"] == pytest.approx(seq.metrics["final_test_err_pct"], abs=1.1)
    assert math.isclose(
        got["test_loss_per_epoch"][0], seq.metrics["test_loss_per_epoch"][0], rel_tol=1e-4
    )
    assert store.trace(cfgs[2].with_engine("stacked").run_id())["loss"].notna().all()


def test_functional_dropout_outside_modules_is_refused(monkeypatch):
    class Sneaky(nn.Module):
        def __init__(self, **_):
            super().__init__()
            self.fc = nn.Linear(784, 10)

        def forward(self, x):
            return F.log_softmax(F.dropout(self.fc(x.flatten(1)), 0.5, self.training), 1)

    monkeypatch.setitem(
        __import__("autoopt_lab.models", fromlist=["MODELS"]).MODELS, "sneaky", Sneaky
    )
    cfgs = [
        RunConfig(
            "mnist",
            "sgd",
            lr=lr,
            momentum=0.0,
            batch_size=32,
            model="sneaky",
            **{**TINY, "epochs": 1},
        )
        for lr in (0.1, 0.01)
    ]
    with pytest.raises(NotVectorizableError, match="random numbers outside"):
        run_group(cfgs, progress=False)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_group_agrees_with_members_and_sequential_without_dropout():
    torch.manual_seed(0)
    members = [build_model("mnist_cnn").cuda().eval() for _ in range(3)]
    gens = [torch.Generator(device="cuda").manual_seed(j) for j in range(3)]
    sm = StackedModel(members, gens).cuda().eval()
    x = torch.randn(7, 1, 28, 28, device="cuda")
    expected = torch.cat([m(x) for m in members])
    torch.testing.assert_close(sm(x, shared=True), expected, atol=1e-4, rtol=1e-3)
    cfgs = [
        RunConfig("mnist", "adam", lr=lr, batch_size=32, seed=0, **{**TINY, "device": "cuda"})
        for lr in (1e-3, 3e-3)
    ]
    for cfg, res in zip(cfgs, run_group(cfgs, progress=False), strict=True):
        seq = run(cfg, progress=False)  # dropout masks differ on CUDA: agreement is loose
        assert res.metrics["steps"] == seq.metrics["steps"]
        assert res.metrics["final_test_err_pct"] == pytest.approx(
            seq.metrics["final_test_err_pct"], abs=15
        )
