"""Curvature products from the closure a training loop passes to ``step()``, of either kind.

* a *loss-only* closure returns the batch loss with its graph (``lambda: loss_fn(model(x),
  y)``): one forward, then Hessian-vector products by double backward;
* a *torch-style* closure zeroes the gradients, runs forward and backward and returns the
  loss (``torch.optim.LBFGS``'s contract, and what PyTorch Lightning passes to every
  optimizer): Hessian-vector products by a forward difference of two gradients, with the same
  random numbers (dropout masks) at both points.

Either way the parameters, their ``.grad``, the per-sample statistics and the random number
generators are as they were afterwards; statistics hooks are suspended while the closure
runs.

>>> import torch
>>> w = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
>>> h = torch.tensor([2.0, 8.0])
>>> def torch_style():
...     w.grad = None
...     loss = 0.5 * (h * w * w).sum()
...     loss.backward()
...     return loss
>>> [round(v, 3) for v in closure_products(torch_style, [w], [[torch.ones(2)]])[0][0].tolist()]
[2.0, 8.0]
>>> closure_products(lambda: 0.5 * (h * w * w).sum(), [w], [[torch.ones(2)]])[0][0]
tensor([2., 8.])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from ..stats import record, suspended
from .curvature import ClosureError, double_backward_products, finite_difference_products


class _Saved:
    """Gradients, statistics and random states of ``params``, restored on exit."""

    def __init__(self, params: Sequence[Tensor]) -> None:
        self.params = list(params)
        self.grads = [p.grad for p in self.params]
        self.versions = [None if g is None else g._version for g in self.grads]
        self.values = [None if g is None else g.detach().clone() for g in self.grads]
        self.stats = record.snapshot(self.params)
        self.cuda = sorted({p.device.index or 0 for p in self.params if p.device.type == "cuda"})
        self.rng = torch.get_rng_state()
        self.cuda_rng = [torch.cuda.get_rng_state(d) for d in self.cuda]

    def reset_rng(self) -> None:
        """Put the random number generators back to the saved states."""
        torch.set_rng_state(self.rng)
        for d, state in zip(self.cuda, self.cuda_rng, strict=True):
            torch.cuda.set_rng_state(state, d)

    def grads_changed(self) -> bool:
        """True if ``.grad`` of any parameter was replaced or written since saving."""
        return any(
            p.grad is not g or (g is not None and g._version != v)
            for p, g, v in zip(self.params, self.grads, self.versions, strict=True)
        )

    def restore(self) -> None:
        """Gradients (the same tensor objects, same values) and statistics as saved."""
        for p, g, value in zip(self.params, self.grads, self.values, strict=True):
            if g is not None and (p.grad is not g or not torch.equal(g, value)):
                g.copy_(value)
            p.grad = g
        record.restore(self.params, self.stats)


def _call(closure: Callable[[], object]) -> object:
    """The closure's result; a backward through a graph freed before ``step()`` (the loss
    was computed outside the closure) is a :class:`ClosureError` that says so."""
    try:
        return closure()
    except RuntimeError as exc:
        if "backward through the graph a second time" not in str(exc):
            raise
        raise ClosureError(
            "the closure passed to step() calls backward() on a loss whose graph was already "
            "used by an earlier backward(): compute the loss inside the closure (zero_grad, "
            "forward, backward, return the loss), or pass no closure after loss.backward()"
        ) from None


def _gradients(params: Sequence[Tensor]) -> list[Tensor]:
    return [torch.zeros_like(p) if p.grad is None else p.grad.detach().clone() for p in params]


def closure_products(
    closure: Callable[[], object],
    params: Sequence[Tensor],
    vector_sets: Sequence[Sequence[Tensor]],
    *,
    others: Sequence[Tensor] = (),
    relative_step: float = 1e-3,
) -> list[list[Tensor]]:
    """``[H v for v in vector_sets]`` of the batch loss the closure computes (either kind).

    ``others`` are further parameters whose gradients and statistics the closure may touch
    (the optimizer's other tensors): they are restored too.
    """
    saved = _Saved([*params, *(p for p in others if all(p is not q for q in params))])
    try:
        with torch.enable_grad(), suspended():
            loss = _call(closure)
            if saved.grads_changed():  # torch-style: it ran backward itself
                base = _gradients(params)  # g(w), drawn with the random states saved above

                def gradient_at() -> list[Tensor]:
                    saved.reset_rng()
                    _call(closure)
                    return _gradients(params)

                return finite_difference_products(
                    gradient_at, params, vector_sets, base, relative_step=relative_step
                )
            if not isinstance(loss, Tensor) or loss.dim() != 0 or not loss.requires_grad:
                raise ClosureError(
                    "the closure passed to step() must either return the batch loss as a "
                    "scalar tensor that still has its graph (opt.step(lambda: "
                    "F.nll_loss(model(x), y))) or, torch-style, zero the gradients, call "
                    f"backward() and return the loss; it returned {type(loss).__name__}"
                    + (f" of shape {tuple(loss.shape)}" if isinstance(loss, Tensor) else "")
                    + (" without a graph" if isinstance(loss, Tensor) and loss.dim() == 0
                       else "")
                    + " and computed no gradients"
                )
            return double_backward_products(loss, params, vector_sets)
    finally:
        saved.restore()
