"""Linear maps whose backward also reports per-sample gradients (for layers that bypass hooks).

``nn.MultiheadAttention`` and ``nn.LSTM``/``nn.GRU`` use their weights without calling a
``Linear`` module, so no hook sees them. Their tracked forwards (:mod:`.attention`,
:mod:`.recurrent`) run the projections through :func:`linears`: ``F.linear(x_j, w_j, b_j)`` for
a few inputs, where ``w_j``/``b_j`` are row ranges of the layer's parameters. The backward
computes the input gradients, the per-sample gradients of each parameter (the batch is dimension
``batch_dim`` of every input) and the parameter gradients as their sum, and hands the
per-sample gradients to ``report(n, {name: (N, *shape)}, {})``. Where ``report.path`` picks
the ghost norm for a weight (:mod:`autoopt_lab.stats.ghost`), its statistic comes as a 0-dim
``Q`` in the third argument and its gradient from one matmul.

>>> import torch
>>> w = torch.nn.Parameter(torch.randn(6, 4))
>>> x = torch.randn(5, 3, 4)                         # (T, N, in): the batch is dimension 1
>>> seen = {}
>>> def report(n, per_sample, sums):
...     seen.update(per_sample)
>>> (y,) = linears([(x, "w", None, None, None)], {"w": w}, report, batch_dim=1)
>>> y.sum().backward()
>>> seen["w"].shape, torch.allclose(seen["w"].sum(0), w.grad, atol=1e-5)
(torch.Size([3, 6, 4]), True)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

from . import ghost, record

#: ``report(n, per_sample, sums)``: per-sample gradients ``(N, *shape)`` and ready statistics
#: (0-dim ghost norms) by parameter name; it may carry a ``path(name, n, out, in_, positions)``
#: method choosing ``"ghost"`` or ``"elementwise"`` per weight.
Report = Callable[..., None]
#: One projection: input, weight name, its rows (None: all), bias name (or None), its rows.
Projection = tuple[Tensor, str, "slice | None", "str | None", "slice | None"]


def _rows(t: Tensor, rows: slice | None) -> Tensor:
    return t if rows is None else t[rows]


def _to_batch_major(t: Tensor, batch_dim: int, n: int) -> Tensor:
    """``(N, R, features)`` view of ``t`` whose batch is ``batch_dim`` (1: ``(R, N, f)`` rows)."""
    if batch_dim == 0:
        return t.reshape(n, -1, t.shape[-1])
    return t.reshape(-1, n, t.shape[-1]).transpose(0, 1)


def _add_rows(
    per_sample: dict[int, Tensor], idx: int, param: Tensor, rows: slice | None, value: Tensor
) -> None:
    """Add ``value`` (per-sample gradients of ``param[rows]``) to ``per_sample[idx]``."""
    if rows is None and idx not in per_sample:
        per_sample[idx] = value
        return
    if idx not in per_sample:
        per_sample[idx] = value.new_zeros(value.shape[0], *param.shape)
    target = per_sample[idx] if rows is None else per_sample[idx][:, rows]
    target += value


class _Linears(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, plan: tuple, names: tuple, meta: tuple, *tensors: Tensor
    ) -> tuple[Tensor, ...]:
        outs = []
        for xi, wi, w_rows, bi, b_rows in plan:
            bias = None if bi is None else _rows(tensors[bi], b_rows)
            outs.append(F.linear(tensors[xi], _rows(tensors[wi], w_rows), bias))
        ctx.save_for_backward(*tensors)
        ctx.plan, ctx.names, ctx.meta = plan, names, meta
        return tuple(outs)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, *douts: Tensor | None) -> tuple:  # type: ignore[override]
        tensors = ctx.saved_tensors
        batch_dim, n, report = ctx.meta
        grads: list[Tensor | None] = [None] * len(tensors)
        per_sample: dict[int, Tensor] = {}
        sums: dict[int, Tensor] = {}
        for (xi, wi, w_rows, bi, b_rows), dz in zip(ctx.plan, douts, strict=True):
            if dz is None:
                continue
            w = tensors[wi]
            dz = dz.to(w.dtype)
            x = tensors[xi]
            if ctx.needs_input_grad[3 + xi]:
                gx = dz.matmul(_rows(w, w_rows)).to(x.dtype)
                grads[xi] = gx if grads[xi] is None else grads[xi] + gx
            dzb = _to_batch_major(dz, batch_dim, n)
            if ctx.needs_input_grad[3 + wi]:
                xb = _to_batch_major(x, batch_dim, n).to(w.dtype)
                if statistics_path(report, ctx.names[wi], w, n, xb.shape[1]) == "ghost":
                    weights = _row_weights(record.published_weights(w), w_rows)
                    q = ghost.linear_ghost_norm(xb, dzb, weights)
                    sums[wi] = q if wi not in sums else sums[wi] + q
                    g = dz.reshape(-1, dz.shape[-1]).t() @ x.reshape(-1, x.shape[-1]).to(w.dtype)
                    if grads[wi] is None:
                        grads[wi] = torch.zeros_like(w)
                    _rows(grads[wi], w_rows).add_(g)
                else:
                    _add_rows(per_sample, wi, w, w_rows, torch.bmm(dzb.transpose(1, 2), xb))
            if bi is not None and ctx.needs_input_grad[3 + bi]:
                _add_rows(per_sample, bi, tensors[bi], b_rows, dzb.sum(1))
        for idx, ps in per_sample.items():
            grads[idx] = ps.sum(0)
        if per_sample or sums:
            report(
                n,
                {ctx.names[idx]: ps for idx, ps in per_sample.items()},
                {ctx.names[idx]: q for idx, q in sums.items()},
            )
        return (None, None, None, *grads)


def statistics_path(report: Report, name: str, w: Tensor, n: int, positions: int) -> str:
    """The statistics path of a weight: the tracker's choice (``report.path``) if it makes
    one (it takes per-sample gradients where a parameter must be combined over uses)."""
    choose = getattr(report, "path", None)
    if choose is None:
        return "elementwise"
    return choose(name, n, w.shape[0], w[0].numel(), positions)


def _row_weights(
    weights: tuple[Tensor, Tensor] | None, rows: slice | None
) -> tuple[Tensor, Tensor] | None:
    if weights is None or rows is None:
        return weights
    return weights[0].reshape(-1)[rows], weights[1]


def linears(
    projections: Sequence[Projection],
    params: dict[str, Tensor],
    report: Report,
    *,
    batch_dim: int = 0,
    n: int | None = None,
) -> tuple[Tensor, ...]:
    """``F.linear(x, params[w][w_rows], params[b][b_rows])`` per projection, one output each.

    Inputs given as the same tensor object are passed once (their gradients add up). The
    batch is dimension ``batch_dim`` (0 or 1) of every input; with ``batch_dim=1`` and the
    batch size ``n`` given, a 2-D input is read as rows ``(position, sample)`` flattened, as
    attention's out-projection has them.
    """
    tensors: list[Tensor] = []
    index: dict[int, int] = {}

    def slot(t: Tensor) -> int:
        if id(t) not in index:
            index[id(t)] = len(tensors)
            tensors.append(t)
        return index[id(t)]

    plan = []
    for x, w, w_rows, b, b_rows in projections:
        bi = None if b is None else slot(params[b])
        plan.append((slot(x), slot(params[w]), w_rows, bi, b_rows))
    if n is None:
        n = projections[0][0].shape[batch_dim]
    names = {index[id(p)]: name for name, p in params.items() if id(p) in index}
    return _Linears.apply(
        tuple(plan), tuple(names.get(i) for i in range(len(tensors))), (batch_dim, n, report),
        *tensors,
    )
