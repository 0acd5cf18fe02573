"""One param group's tensors gathered for a step: gradients, statistics, ``D`` and moments.

:func:`prepare_batch` turns what the engines recorded into the flat tensors and the
``(P, 4)`` moments row of :func:`autoopt_lab.optim.gamma.segment_moments`, handling what a
training loop may have done to the gradient since the backward:

* a gradient scaled after the backward (``clip_grad_norm_``, ``GradScaler.unscale_``) scales
  the per-sample statistics by the same factor squared, per tensor (docs/training-loops.md);
* accumulated micro-batches arrive already added up (:mod:`autoopt_lab.stats.record`);
* a statistic in the scalar form ``Q = sum_i g_i^T W g_i`` gives the tensor's ``V`` directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..stats import record
from . import gamma as G
from .flat import add_segments_, flatten, mul_segments_
from .flat_state import Layout, layout_for
from .preconditioners import InverseHessian

#: State every Auto optimizer keeps; anything else belongs to the preconditioner.
BASE_KEYS = (
    "step",
    "gamma",
    "momentum_buffer",
    "nonfinite_skips",
    "curvature",
    "curvature_count",
    "probe_direction",
    "probe_quad",
    "trust_scale",
    "secant",
    "last_update",
    "gain",
    "gain_terms",
    "momentum",
    "initial_norm",
)


@dataclass
class Batch:
    """The flat tensors of one param group (one device and dtype) for one step."""

    group: dict[str, Any]
    params: list[Tensor]
    states: list[dict[str, Tensor]]
    sizes: list[int]  # the tensors' element counts: segments of the flat vectors
    flat: Tensor  # g, with the L2 term of weight_decay
    prev: Tensor  # p = ghat_{t-1}
    inv_h: Tensor | None  # D (None: the identity)
    pre_state: dict[str, Tensor]  # the preconditioner's state before this step
    new_pre: dict[str, Tensor]  # ... and after it, committed only for active tensors
    steps: Tensor  # (P,) steps taken so far
    m: Tensor  # (P, 4) moments [<g,Dg>, <g,Dp>, <p,Dp>, V]
    finite: Tensor  # 0-dim bool: every moment finite
    scalar: list[int]  # tensors whose statistic came in the scalar form
    layout: Layout | None = None  # the flat state and scratch vectors (None: gathered copies)
    samples: Tensor | None = None  # (P,) float64 batch size per tensor (set by the optimizer)


def expander(sizes: list[int]):
    """``expand(x, a, b)``: ``x * a + b`` in place, ``a`` and ``b`` one value per tensor."""

    def expand(x: Tensor, a: Tensor, b: Tensor) -> Tensor:
        return add_segments_(mul_segments_(x, a, sizes), b, sizes)

    return expand


def clip_ratios(params: list[Tensor]) -> Tensor | None:
    """``||grad now||^2 / ||grad after backward||^2`` per tensor (1 where unknown), or None
    when no backward was noted. Exactly 1 for an untouched gradient."""
    noted = [record.noted_grad(p) for p in params]
    if all(n is None for n in noted):
        return None
    ones = torch.ones((), device=params[0].device)
    before = torch.stack([ones if n is None else n for n in noted])
    now = torch.stack(
        [ones if n is None else record.grad_sq(p.grad) for n, p in zip(noted, params,
                                                                        strict=True)]
    )
    return torch.where(before > 0, now / torch.where(before > 0, before, ones), ones)


def _scalar_variance(
    m: Tensor, b_scalar: list[int], stats: list, data_grad: Tensor, inv_h: Tensor | None,
    params: list[Tensor], sizes: list[int], clip: Tensor | None,
) -> Tensor:
    """Put ``V`` of the tensors with a scalar statistic into ``m`` (docs/statistics.md).

    ``V_W = (Q - N g^T W g) / (N (N - 1))`` under the weights ``W`` the engine used, then
    ``V = V_W (g^T D g) / (g^T W g)``: exact where ``W = D`` (always for SGD), and the
    noise taken to share the gradient's ``D``-weighting otherwise.
    """
    g_parts = data_grad.split(sizes)
    d_parts = None if inv_h is None else inv_h.split(sizes)
    rows = []
    for k in b_scalar:
        st, g0 = stats[k], g_parts[k].view(params[k].shape[0], -1)
        if g0.dtype in (torch.float16, torch.bfloat16):
            g0 = g0.float()
        sq = g0 * g0
        if st.weights is None:
            g_w = sq.sum()
        else:
            row, col = st.weights
            g_w = (row.to(sq.dtype) @ sq @ col.to(sq.dtype)).reshape(())
        g_d = sq.sum() if d_parts is None else (sq * d_parts[k].view_as(sq)).sum()
        n = float(st.batch_size)
        q = st.sum_sq.to(torch.float64) * (1.0 if clip is None else clip[k].double())
        v_w = ((q - n * g_w.double()) / (n * (n - 1))).clamp_min(0.0)
        ratio = torch.where(g_w > 0, g_d.double() / g_w.double().clamp_min(1e-300), 0.0)
        rows.append(v_w * ratio)
    index = torch.tensor(b_scalar, device=m.device)
    m = m.clone()
    m[index, G.VAR] = torch.stack(rows).to(m.device)
    return m


def prepare_batch(
    group: dict[str, Any],
    params: list[Tensor],
    states: list[dict[str, Tensor]],
    stats: list[record.SampleStats],
    sizes: list[int],
    inverse_hessian: InverseHessian,
) -> Batch:
    """Gather one group's gradients and statistics into a :class:`Batch`.

    The state keys kept flat (:mod:`.flat_state`) are read in place: ``prev`` and
    ``pre_state`` are the live buffers, which only the commit of a step may change. On CPU
    the gradient, ``D`` and the new preconditioner state go to the layout's scratch vectors.
    """
    layout = layout_for(params, states, sizes)
    cpu = params[0].device.type == "cpu"
    grads = [p.grad.reshape(-1) for p in params]
    flat = torch.cat(grads, out=layout.scratch("grad", grads[0])) if cpu else flatten(grads)
    scales = [st.grad_scale for st in stats]
    if any(sc != 1.0 for sc in scales):
        flat = mul_segments_(flat, torch.tensor(scales, dtype=torch.float64, device=flat.device),
                             sizes)
    data_grad = flat
    if group["weight_decay"]:
        flat = flat + group["weight_decay"] * flatten(params)
    clip = clip_ratios(params)
    scalar = [k for k, st in enumerate(stats) if st.scalar]
    sum_sq = [None if st.scalar else st.sum_sq for st in stats]
    if clip is not None:  # a gradient scaled since the backward scales S by the square
        sum_sq = [s if s is None else s * c for s, c in zip(sum_sq, clip.to(flat.dtype).unbind(),
                                                              strict=True)]
    steps = torch.stack([s["step"] for s in states])
    pre_keys = [k for k in states[0] if k not in BASE_KEYS]
    pre_state = {k: layout.buffers[k] if k in layout.buffers else flatten([s[k] for s in states])
                 for k in pre_keys}
    work = (lambda name: layout.scratch(name, flat)) if cpu else None
    if work is not None and getattr(inverse_hessian, "takes_work", False):
        inv_h, new_pre = inverse_hessian(pre_state, flat, steps, group, expander(sizes),
                                         work=work)
    else:
        inv_h, new_pre = inverse_hessian(pre_state, flat, steps, group, expander(sizes))
    prev = layout.buffers.get("momentum_buffer")
    if prev is None:
        prev = flatten([s["momentum_buffer"] for s in states])
    sizes_n = {st.batch_size for st in stats}
    n = (
        float(sizes_n.pop())
        if len(sizes_n) == 1
        else torch.tensor([float(st.batch_size) for st in stats], dtype=torch.float64,
                          device=flat.device)
    )
    m = G.segment_moments(
        flat, prev, sum_sq, n, None, len(params), inv_h, data_grad=data_grad, sizes=sizes,
        piece=None if work is None else (lambda k, **kw: layout.piece(k, flat, **kw)),
    )
    if scalar:
        m = _scalar_variance(m, scalar, stats, data_grad, inv_h, params, sizes, clip)
    return Batch(group, params, states, sizes, flat, prev, inv_h, pre_state, new_pre,
                 steps, m, torch.isfinite(m).all(), scalar, layout)
