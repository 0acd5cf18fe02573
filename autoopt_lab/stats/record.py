"""Where per-sample statistics live between ``backward()`` and ``step()``.

The engines attach a :class:`SampleStats` to each parameter (as ``param.autoopt_stats``, the way
BackPACK and Opacus attach theirs); the Auto optimizers read it in ``step()`` and drop it in
``zero_grad()``.

Two forms of the statistic exist (docs/statistics.md):

* *elementwise*: ``sum_sq`` has the parameter's shape, ``S = sum_i g_i * g_i``;
* *scalar*: ``sum_sq`` is 0-dim, ``Q = sum_i g_i^T W g_i`` with ``W`` the weights in
  ``SampleStats.weights``: ``None`` for the identity, or a ``(row, col)`` pair for the
  rank-1 diagonal ``W = row col^T`` of the parameter viewed as ``(shape[0], -1)``.
  An engine computes it where the elementwise form would need per-sample gradients (the
  "ghost norm" of sequences and convolutions); it reads the weights the optimizer published
  with :func:`publish_weights` before the backward.

Micro-batches add up: a record from another forward pass (another ``generation``) before
``step()`` is combined with the first, as the statistics of one batch of all their samples
(gradient accumulation). A second record of the *same* forward pass is a bug of the engine
(a tied parameter must be combined per sample first) and marks the statistics ``stale``.

>>> import torch
>>> p = torch.nn.Parameter(torch.zeros(3))
>>> attach(p, torch.ones(3), batch_size=4, grad_scale=1.0, generation=1)
>>> attach(p, torch.ones(3), batch_size=4, grad_scale=1.0, generation=2)
>>> peek(p).batch_size, peek(p).sum_sq      # two micro-batches of 4: one batch of 8
(8, tensor([8., 8., 8.]))
>>> clear(p); peek(p) is None
True
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

ATTR = "autoopt_stats"
#: ``||p.grad||^2`` right after the last backward that reached ``p`` (see :func:`note_grad`).
GRAD_ATTR = "autoopt_grad_sq"
#: The weights ``(row, col)`` an optimizer published for the scalar form (see
#: :func:`publish_weights`).
WEIGHTS_ATTR = "autoopt_weights"


@dataclass
class SampleStats:
    """Per-sample statistics of one parameter tensor for one (possibly accumulated) batch.

    ``sum_sq`` is ``sum_i g_i * g_i`` (elementwise) or the 0-dim ``sum_i g_i^T W g_i``
    (``W`` from ``weights``; None is the identity), where ``g_i`` is the gradient of sample
    ``i``'s own loss (not divided by the batch size). ``grad_scale`` turns ``param.grad`` into
    the mean gradient ``g = mean_i g_i`` (1 for a mean-reduced loss, ``1/N`` for a sum).
    ``micro_batches`` counts the forward passes added up. ``stale`` marks statistics that
    cannot be used (two records of one forward pass); the optimizers refuse them.
    """

    sum_sq: Tensor
    batch_size: int
    grad_scale: float
    generation: int
    stale: bool = False
    weights: tuple[Tensor, Tensor] | None = None
    micro_batches: int = 1
    reduction: str = "mean"

    @property
    def scalar(self) -> bool:
        """True for the 0-dim form ``sum_i g_i^T W g_i``."""
        return self.sum_sq.dim() == 0


def weighted_total(sum_sq: Tensor, weights: tuple[Tensor, Tensor] | None) -> Tensor:
    """``<W, S>`` of an elementwise ``S`` (the scalar form of the same statistic).

    >>> import torch
    >>> weighted_total(torch.ones(2, 3), (torch.tensor([1.0, 2.0]), torch.ones(3)))
    tensor(9.)
    """
    if sum_sq.dim() == 0:
        return sum_sq
    if weights is None:
        return sum_sq.sum()
    row, col = weights
    s2 = sum_sq.reshape(sum_sq.shape[0], -1)
    return (row.to(s2.dtype) @ s2 @ col.to(s2.dtype)).reshape(())


def _combine(old: SampleStats, sum_sq: Tensor, n: int, reduction: str) -> None:
    """Add a micro-batch of ``n`` samples to ``old`` in place (see the module docstring)."""
    if old.reduction != reduction:
        old.stale = True
        return
    a, b = old.sum_sq, sum_sq
    if a.dim() != b.dim():  # one pass took the scalar form: both become scalar
        a, b = weighted_total(a, old.weights), weighted_total(b, old.weights)
    total = old.batch_size + n
    if reduction == "mean":  # S was scaled by N^2 for per-sample losses of each micro-batch
        combined = (a / old.batch_size**2 + b / n**2) * total**2
    else:
        combined = a + b
    old.sum_sq = combined
    old.batch_size = total
    old.grad_scale = 1.0 if reduction == "mean" else 1.0 / total
    old.micro_batches += 1


def attach(
    param: Tensor,
    sum_sq: Tensor,
    *,
    batch_size: int,
    grad_scale: float,
    generation: int,
    reduction: str | None = None,
) -> None:
    """Record ``sum_sq`` for ``param``: a new record, or a micro-batch added to the last one.

    ``reduction`` is the loss reduction (``"mean"`` or ``"sum"``; engines pass it, since a
    batch of one has ``grad_scale`` 1 either way); by default it is read from
    ``grad_scale``. A 0-dim ``sum_sq`` is weighted by the weights
    published on ``param`` (see :func:`publish_weights`), if any.
    """
    if reduction is None:
        reduction = "mean" if grad_scale == 1.0 else "sum"
    old = getattr(param, ATTR, None)
    if old is not None:
        if old.generation == generation:  # one forward pass recorded twice: unusable
            old.stale = True
        else:
            _combine(old, sum_sq, batch_size, reduction)
            old.generation = generation
        return
    weights = getattr(param, WEIGHTS_ATTR, None) if sum_sq.dim() == 0 else None
    setattr(
        param,
        ATTR,
        SampleStats(sum_sq, batch_size, grad_scale, generation, weights=weights,
                    reduction=reduction),
    )


def peek(param: Tensor) -> SampleStats | None:
    """The statistics recorded for ``param``, or None."""
    return getattr(param, ATTR, None)


def clear(param: Tensor) -> None:
    """Forget the statistics (and the gradient norm) recorded for ``param``."""
    if hasattr(param, ATTR):
        delattr(param, ATTR)
    if hasattr(param, GRAD_ATTR):
        delattr(param, GRAD_ATTR)


def note_grad(param: Tensor) -> None:
    """Remember ``||param.grad||^2`` as the backward left it (no host sync).

    The optimizers compare it with the gradient ``step()`` receives: a gradient scaled after
    the backward (``clip_grad_norm_``, ``GradScaler.unscale_``) scales the statistics with it.
    The Auto optimizers call it from a post-accumulate-grad hook; an engine that writes
    ``.grad`` itself (the functional engine) calls it after writing.
    """
    g = param.grad
    if g is None or g.is_sparse:
        return
    setattr(param, GRAD_ATTR, grad_sq(g))


def grad_sq(grad: Tensor) -> Tensor:
    """``||grad||^2`` (half precision summed in float32) as one dot product (no temporary),
    the one formula :func:`note_grad` and the optimizers use, so an untouched gradient gives
    a ratio of exactly 1."""
    g = grad.detach()
    g = (g.float() if g.dtype in (torch.float16, torch.bfloat16) else g).reshape(-1)
    return torch.dot(g, g)


def noted_grad(param: Tensor) -> Tensor | None:
    """The value :func:`note_grad` recorded, or None."""
    return getattr(param, GRAD_ATTR, None)


def publish_weights(param: Tensor, weights: tuple[Tensor, Tensor] | None) -> None:
    """Publish the ``(row, col)`` weights an engine should use for the scalar form of
    ``param``'s statistic in the next backward (None: the identity)."""
    if weights is None:
        if hasattr(param, WEIGHTS_ATTR):
            delattr(param, WEIGHTS_ATTR)
        return
    setattr(param, WEIGHTS_ATTR, weights)


def published_weights(param: Tensor) -> tuple[Tensor, Tensor] | None:
    """The weights published for ``param``, or None (the identity)."""
    return getattr(param, WEIGHTS_ATTR, None)


def snapshot(params: list[Tensor]) -> list[tuple]:
    """What is recorded on ``params`` (statistics and gradient norm), to :func:`restore`."""
    return [(getattr(p, ATTR, None), getattr(p, GRAD_ATTR, None)) for p in params]


def restore(params: list[Tensor], saved: list[tuple]) -> None:
    """Put back what :func:`snapshot` saw (e.g. after a closure re-ran the backward)."""
    for p, (stats, grad_sq) in zip(params, saved, strict=True):
        clear(p)
        if stats is not None:
            setattr(p, ATTR, stats)
        if grad_sq is not None:
            setattr(p, GRAD_ATTR, grad_sq)
