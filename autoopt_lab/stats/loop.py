"""The slow reference: one backward pass per sample. For tests only.

>>> import torch, torch.nn.functional as F
>>> model = torch.nn.Linear(3, 2)
>>> g = loop_per_sample_grads(model, F.cross_entropy, torch.randn(4, 3), torch.tensor([0, 1, 1, 0]))
>>> g["weight"].shape
torch.Size([4, 2, 3])
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn


def loop_per_sample_grads(
    model: nn.Module,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    inputs: Tensor,
    targets: Tensor,
) -> dict[str, Tensor]:
    """Per-sample gradients ``name -> (N, *shape)`` by looping over the samples."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    out: dict[str, list[Tensor]] = {n: [] for n, _ in named}
    for i in range(inputs.shape[0]):
        loss = loss_fn(model(inputs[i : i + 1]), targets[i : i + 1])
        grads = torch.autograd.grad(loss, [p for _, p in named], allow_unused=True)
        for (n, p), g in zip(named, grads, strict=True):
            out[n].append(torch.zeros_like(p) if g is None else g)
    return {n: torch.stack(v) for n, v in out.items()}


def loop_sum_sq(
    model: nn.Module,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    inputs: Tensor,
    targets: Tensor,
) -> dict[str, Tensor]:
    """``sum_i g_i * g_i`` per parameter, in float64, by looping over the samples."""
    grads = loop_per_sample_grads(model, loss_fn, inputs, targets)
    return {n: g.double().square().sum(0) for n, g in grads.items()}
