"""What the optimizer tests against the float64 twins share: a class with other defaults, an
independent Hessian-vector product, the small CNN, and the step-by-step comparison loop."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, jvp

import autoopt_lab
from autoopt_lab.stats.loop import loop_per_sample_grads


def defaults_to(cls: type, **defaults) -> type:
    """``cls`` with other defaults (same name): e.g. the paper's step as a test's subject."""

    class Configured(cls):
        def __init__(self, params, **options):
            super().__init__(params, **{**defaults, **options})

    Configured.__name__ = Configured.__qualname__ = cls.__name__
    return Configured


def small_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 4 * 4, 5), nn.LogSoftmax(1)
    )


def func_hvp(model: nn.Module, x: torch.Tensor, y: torch.Tensor):
    """``vectors -> H v`` of the batch NLL by forward-over-reverse ``torch.func`` (jvp of grad),
    an algorithm independent of the optimizers' double backward."""
    names = [n for n, _ in model.named_parameters()]

    def loss(params):
        return F.nll_loss(functional_call(model, params, (x,)), y)

    def hvp(vectors):
        params = {n: p.detach() for n, p in model.named_parameters()}
        tangents = dict(zip(names, vectors, strict=True))
        _, out = jvp(grad(loss), (params,), (tangents,))
        return [out[n] for n in names]

    return hvp


def step_beside_twin(
    model: nn.Module, opt, ref, steps: int, *, hvp: bool = False, closure: bool = False,
    rtol: float = 1e-9, atol: float = 1e-11, check: Callable[[], None] | None = None,
) -> bool:
    """Step ``opt`` (fast) and ``ref`` (twin) on the same float64 batches, comparing the
    parameters after every step; True when the twin's trust region bound at some step."""
    gen = torch.Generator().manual_seed(1)
    bound = False
    with autoopt_lab.track(model):
        for _ in range(steps):
            x = torch.randn(16, 1, 6, 6, generator=gen, dtype=torch.float64)
            y = torch.randint(0, 5, (16,), generator=gen)
            per_sample = loop_per_sample_grads(model, F.nll_loss, x, y)
            grads = [per_sample[n] for n, _ in model.named_parameters()]
            ref.step(grads, func_hvp(model, x, y)) if hvp else ref.step(grads)
            opt.zero_grad()
            F.nll_loss(model(x), y).backward()
            opt.step((lambda x=x, y=y: F.nll_loss(model(x), y)) if closure else None)
            bound |= any(s < 1.0 for s in ref.trust_scale)
            for p, q in zip(model.parameters(), ref.params, strict=True):
                torch.testing.assert_close(p.detach(), q, rtol=rtol, atol=atol)
    return bound


def plain_loop(model: nn.Module, opt, batches, loss_fn: Callable = F.cross_entropy) -> None:
    """``zero_grad(); loss.backward(); step()`` over ``(x, y)`` batches (the plain loop)."""
    for x, y in batches:
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()
