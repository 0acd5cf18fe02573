"""The functional engine: per-sample gradients of any model with ``torch.func``.

``functional_backward`` replaces ``loss.backward()``: it fills ``param.grad`` exactly as a
backward of the batch loss would, and attaches the per-sample statistics the Auto optimizers
need. It is also the reference the hook engine is tested against.

>>> import torch, torch.nn.functional as F
>>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
>>> loss = functional_backward(model, F.cross_entropy, torch.randn(5, 4), torch.arange(5) % 2)
>>> model[1].weight.grad.shape, model[1].weight.autoopt_stats.batch_size
(torch.Size([2, 4]), 5)
"""

from __future__ import annotations

import contextlib
import functools
import itertools
from collections.abc import Callable, Iterator

from torch import Tensor, nn
from torch.func import functional_call, grad_and_value, vmap

from . import record, recurrent
from .hooks import Reduction, loss_scale
from .rules import UnsupportedModuleError

_generations = itertools.count(-1, -1)  # negative: never collides with the hook engine


def _check_batch_norm(model: nn.Module) -> None:
    for name, m in model.named_modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training:
            raise UnsupportedModuleError(
                f"module {name!r} is BatchNorm in training mode: samples interact there, so "
                "per-sample gradients are undefined; use GroupNorm/LayerNorm or call .eval() on it"
            )


@contextlib.contextmanager
def _unrolled_rnns(model: nn.Module) -> Iterator[None]:
    """LSTM/GRU layers run their unrolled forward (``vmap`` has no rule for ATen's GRU, and
    batches ATen's LSTM by a loop)."""
    swapped = []
    for m in model.modules():
        if type(m) in (nn.LSTM, nn.GRU):
            swapped.append((m, m.__dict__.get("forward")))
            m.forward = functools.partial(recurrent.rnn_forward, m, None)
    try:
        yield
    finally:
        for m, forward in swapped:
            del m.forward
            if forward is not None:
                m.forward = forward


def per_sample_grads(
    model: nn.Module,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    inputs: Tensor,
    targets: Tensor,
    *,
    randomness: str = "different",
    chunk_size: int | None = None,
) -> tuple[dict[str, Tensor], Tensor]:
    """Per-sample gradients ``name -> (N, *shape)`` of each sample's own loss, and the losses."""
    _check_batch_norm(model)
    trainable = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
    fixed = {n: p.detach() for n, p in model.named_parameters() if not p.requires_grad}
    fixed.update(dict(model.named_buffers()))

    def one(params: dict[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
        out = functional_call(model, {**params, **fixed}, (x.unsqueeze(0),))
        return loss_fn(out, y.unsqueeze(0))

    fn = vmap(
        grad_and_value(one), in_dims=(None, 0, 0), randomness=randomness, chunk_size=chunk_size
    )
    with _unrolled_rnns(model):
        grads, losses = fn(trainable, inputs, targets)
    return grads, losses


def functional_backward(
    model: nn.Module,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    inputs: Tensor,
    targets: Tensor,
    *,
    loss_reduction: Reduction = "mean",
    randomness: str = "different",
    chunk_size: int | None = None,
) -> Tensor:
    """Do what ``loss_fn(model(inputs), targets).backward()`` does, plus per-sample statistics.

    ``loss_fn`` must accept a batch of one sample; ``loss_reduction`` says how the batch loss
    reduces (``"mean"`` or ``"sum"``). Returns the (detached) batch loss.
    """
    n = inputs.shape[0]
    _, grad_scale = loss_scale(loss_reduction, n)
    grads, losses = per_sample_grads(
        model, loss_fn, inputs, targets, randomness=randomness, chunk_size=chunk_size
    )
    generation = next(_generations)
    params = dict(model.named_parameters())
    for name, g in grads.items():
        p = params[name]
        batch_grad = g.sum(0) if loss_reduction == "sum" else g.mean(0)
        p.grad = batch_grad if p.grad is None else p.grad + batch_grad
        record.attach(
            p, g.square().sum(0), batch_size=n, grad_scale=grad_scale, generation=generation,
            reduction=loss_reduction,
        )
        record.note_grad(p)
    return losses.sum() if loss_reduction == "sum" else losses.mean()
