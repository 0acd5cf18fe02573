"""Where per-sample statistics live between ``backward()`` and ``step()``.

The engines attach a :class:`SampleStats` to each parameter (as ``param.autoopt_stats``, the way
BackPACK and Opacus attach theirs); the Auto optimizers read it in ``step()`` and drop it in
``zero_grad()``.

>>> import torch
>>> p = torch.nn.Parameter(torch.zeros(3))
>>> attach(p, torch.ones(3), batch_size=4, grad_scale=1.0, generation=0)
>>> peek(p).batch_size
4
>>> clear(p); peek(p) is None
True
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

ATTR = "autoopt_stats"


@dataclass
class SampleStats:
    """Per-sample statistics of one parameter tensor for one mini-batch.

    ``sum_sq`` is ``sum_i g_i * g_i`` (elementwise), where ``g_i`` is the gradient of sample
    ``i``'s own loss (not divided by the batch size). ``grad_scale`` turns ``param.grad`` into
    the mean gradient ``g = mean_i g_i`` (1 for a mean-reduced loss, ``1/N`` for a sum).
    ``stale`` marks statistics that met a second record (a second backward pass, i.e. gradient
    accumulation) before ``step()``; the optimizers refuse them.
    """

    sum_sq: torch.Tensor
    batch_size: int
    grad_scale: float
    generation: int
    stale: bool = False


def attach(
    param: torch.Tensor,
    sum_sq: torch.Tensor,
    *,
    batch_size: int,
    grad_scale: float,
    generation: int,
) -> None:
    """Record ``sum_sq`` for ``param``; a second record before ``step()`` marks it stale."""
    old = getattr(param, ATTR, None)
    if old is not None:  # a second backward (or a second route) before step(): unusable
        old.stale = True
        return
    setattr(param, ATTR, SampleStats(sum_sq, batch_size, grad_scale, generation))


def peek(param: torch.Tensor) -> SampleStats | None:
    """The statistics recorded for ``param``, or None."""
    return getattr(param, ATTR, None)


def clear(param: torch.Tensor) -> None:
    """Forget the statistics recorded for ``param``."""
    if hasattr(param, ATTR):
        delattr(param, ATTR)
