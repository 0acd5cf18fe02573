"""The maths of AutoOpt: moments, the 2x2 solve for gamma, and what it means as lr/momentum.

Notation (paper eqs. 10-26, docs/method.md), per parameter tensor at step ``t``:
``g`` the mean per-sample gradient, ``p`` the previous estimator ``ghat_{t-1}``, ``D`` the
diagonal of the optimizer's inverse-Hessian estimate, ``S = sum_i g_i * g_i``. With
``G = [g, g - p]``, ``A = G^T D G`` and ``b = [V, V]``, the optimal ``gamma`` minimises
``q(gamma) = -gamma^T b + 1/2 gamma^T A gamma``. We minimise it over the feasible triangle
``gamma1 >= 0, gamma2 >= 0, gamma1 + gamma2 <= 1`` (lr and momentum in [0, 1]).

Everything here is batched over parameter tensors: ``(P, ...)`` rows, one per tensor, so a
whole step is a handful of tensor ops and never syncs with the host.

>>> import torch
>>> g, p, seg = torch.tensor([1.0, 0.0]), torch.zeros(2), torch.zeros(2, dtype=torch.long)
>>> m = segment_moments(g, p, torch.tensor([6.0, 2.0]), 4.0, seg, 1)   # V = (8 - 4) / 12
>>> solve_gamma(m, momentum=torch.tensor([False]))
tensor([[0.3333, 0.0000]], dtype=torch.float64)
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from .flat import combine_segments, segment_dots, segments

#: Columns of a moments row.
AGG, AGP, APP, VAR = 0, 1, 2, 3


def segment_moments(
    g: Tensor,
    prev: Tensor,
    sum_sq: Tensor | list[Tensor | None],
    batch_size: Tensor | float,
    segments: Tensor | None,
    count: int,
    inv_hessian: Tensor | None = None,
    data_grad: Tensor | None = None,
    *,
    sizes: list[int] | None = None,
    piece: Callable[..., Tensor] | None = None,
) -> Tensor:
    """``[<g,Dg>, <g,Dp>, <p,Dp>, V]`` in float64 for many tensors at once, ``(count, 4)``.

    ``D = 1`` when ``inv_hessian`` is None. ``V = (<D, S> - N <g0, D g0>) / (N (N - 1))`` is
    eq. (22) written with ``S``, where ``g0 = mean_i g_i`` is ``data_grad`` (``g`` without an
    L2 term; defaults to ``g``); float rounding below zero is clamped to zero.
    The inputs are the tensors flattened and concatenated; ``segments`` maps each element to
    its tensor, ``sizes`` gives each tensor's element count (when omitted, the sums go
    through ``segments``); with ``sizes``, ``sum_sq`` may be a list of per-tensor ``S`` (None
    for a tensor whose ``V`` comes from a scalar statistic: 0 here) and ``batch_size`` is a float (all tensors) or ``(count,)``. The
    elementwise products are formed in the parameter dtype and summed per tensor (float32
    dot products with ``sizes``); the variance term is summed as ``sum_j D_j (S_j - N
    g0_j^2)``, a sum of (up to rounding) non-negative terms.
    """
    same = data_grad is None or data_grad is g
    g0 = g if same else data_grad
    if sizes is not None and piece is not None:  # the same sums, tensor by tensor
        out = _moments_in(g, prev, sum_sq, g0, batch_size, inv_hessian, sizes, piece)
    elif sizes is None:
        n = batch_size if isinstance(batch_size, float) else batch_size.to(g.dtype)[segments]
        dg = g if inv_hessian is None else inv_hessian * g
        dp = prev if inv_hessian is None else inv_hessian * prev
        d0 = dg if same else (g0 if inv_hessian is None else inv_hessian * g0)
        ds = sum_sq if inv_hessian is None else inv_hessian * sum_sq
        cols = torch.stack([g * dg, g * dp, prev * dp, ds - n * g0 * d0], 1)
        out = torch.zeros(count, 4, dtype=torch.float64, device=g.device)
        out.index_add_(0, segments, cols.to(torch.float64))
    else:  # per-tensor dot products: two temporaries of the parameters' size at a time
        dg = g if inv_hessian is None else inv_hessian * g
        agg = segment_dots(g, dg, sizes)
        dp = prev if inv_hessian is None else inv_hessian * prev
        agp, app = segment_dots(g, dp, sizes), segment_dots(prev, dp, sizes)
        del dp
        # V's column: sum_j D_j (S_j - N g0_j^2), each term formed before summing
        parts = sum_sq if isinstance(sum_sq, list) else list(sum_sq.split(sizes))
        var = _variance_by_tensor(parts, g0, batch_size, inv_hessian, sizes)
        out = torch.stack([agg, agp, app, var], 1)
    var = out[:, VAR] / (batch_size * (batch_size - 1))
    return torch.cat([out[:, :VAR], var.clamp_min(0.0).unsqueeze(1)], 1)


def _moments_in(
    g: Tensor, prev: Tensor, sum_sq: Tensor | list[Tensor | None], g0: Tensor,
    n: Tensor | float, inv_hessian: Tensor | None, sizes: list[int],
    piece: Callable[..., Tensor],
) -> Tensor:
    """The four per-tensor sums of :func:`segment_moments`, tensor by tensor, each product
    formed in ``piece(k)`` (a reused vector aligned as the other path's new one, so the
    sums keep their bits; ``piece(k, as_segment=False)``: as a new allocation)."""
    gs, ps = segments(g, sizes), segments(prev, sizes)
    ds = None if inv_hessian is None else segments(inv_hessian, sizes)
    agg, agp, app = [], [], []
    for k, (g_k, p_k) in enumerate(zip(gs, ps, strict=True)):
        dg = g_k if ds is None else torch.mul(ds[k], g_k, out=piece(k))
        agg.append(torch.dot(g_k, dg))
        dp = p_k if ds is None else torch.mul(ds[k], p_k, out=piece(k))
        agp.append(torch.dot(g_k, dp))
        app.append(torch.dot(p_k, dp))
    parts = sum_sq if isinstance(sum_sq, list) else list(sum_sq.split(sizes))
    w_parts = [piece(k, as_segment=False) for k in range(len(sizes))]
    var = _variance_by_tensor(parts, g0, n, inv_hessian, sizes, w_parts)
    cols = [torch.stack(c).to(torch.float64) for c in (agg, agp, app)]
    return torch.stack([*cols, var], 1)


def _variance_by_tensor(
    sum_sq: list[Tensor | None], g0: Tensor, n: Tensor | float, inv_hessian: Tensor | None,
    sizes: list[int], w_parts: list[Tensor] | None = None,
) -> Tensor:
    """``sum_j D_j (S_j - N g0_j^2)`` tensor by tensor (0 where ``S`` is None)."""
    g_parts = segments(g0, sizes)
    d_parts = None if inv_hessian is None else segments(inv_hessian, sizes)
    out = []
    for k, s_k in enumerate(sum_sq):
        if s_k is None:
            out.append(torch.zeros((), dtype=g0.dtype, device=g0.device))
            continue
        if isinstance(n, float) and w_parts is not None and s_k.dtype == g0.dtype:
            centred = torch.addcmul(s_k.reshape(-1), g_parts[k], g_parts[k], value=-n,
                                    out=w_parts[k])
        elif isinstance(n, float):
            centred = torch.addcmul(s_k.reshape(-1), g_parts[k], g_parts[k], value=-n)
        else:  # tensors of different batch sizes (rare): no host sync
            centred = s_k.reshape(-1) - n[k].to(g0.dtype) * g_parts[k] * g_parts[k]
        out.append(centred.sum() if d_parts is None else torch.dot(d_parts[k], centred))
    return torch.stack(out).to(torch.float64)


def quadratic_form(m: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``(A00, A01, A11)`` of ``A = G^T D G`` from a ``(..., 4)`` moments tensor."""
    agg, agp, app = m[..., AGG], m[..., AGP], m[..., APP]
    return agg, agg - agp, agg - 2 * agp + app


def objective(m: Tensor, gamma: Tensor) -> Tensor:
    """``q(gamma) = -gamma^T b + 1/2 gamma^T A gamma`` (eq. 16 up to constants), batched."""
    a00, a01, a11 = quadratic_form(m)
    g1, g2 = gamma[..., 0], gamma[..., 1]
    quad = a00 * g1 * g1 + 2 * a01 * g1 * g2 + a11 * g2 * g2
    return -m[..., VAR] * (g1 + g2) + 0.5 * quad


def argmin_unit(
    a: Tensor, c: Tensor, lo: float | Tensor = 0.0, hi: float | Tensor = 1.0
) -> Tensor:
    """Minimiser of ``1/2 a s^2 - c s`` over ``s in [lo, hi]`` for ``a >= 0`` (batched).

    ``lo`` and ``hi`` are floats or tensors broadcastable to ``c``.
    """
    ratio = c / torch.where(a > 0, a, torch.ones_like(a))
    if isinstance(lo, Tensor) or isinstance(hi, Tensor):
        lo_t = torch.as_tensor(lo, dtype=c.dtype, device=c.device).expand_as(c)
        hi_t = torch.as_tensor(hi, dtype=c.dtype, device=c.device).expand_as(c)
        linear = torch.where(c > 0, hi_t, lo_t)  # a == 0: the objective is linear in s
        return torch.minimum(torch.maximum(torch.where(a > 0, ratio, linear), lo_t), hi_t)
    linear = torch.where(c > 0, hi, lo).to(c.dtype)  # a == 0: the objective is linear in s
    return torch.where(a > 0, ratio, linear).clamp(lo, hi)


def solve_gamma(
    m: Tensor, momentum: Tensor, *, max_lr: float | Tensor = 1.0, rcond: float = 1e-10
) -> Tensor:
    """The constrained minimiser of ``q`` over the triangle, ``(P, 4) -> (P, 2)``.

    ``momentum`` is a ``(P,)`` bool tensor: where False (the first step, or momentum
    adaptation switched off) only ``gamma1`` is solved for and ``gamma2 = 0``.
    ``max_lr < 1`` shrinks the triangle to ``gamma1 >= 1 - max_lr`` (lr <= max_lr); a
    ``(P,)`` tensor gives each tensor its own.
    Candidates: the interior solution ``A^-1 b`` when it is feasible and ``A`` is not
    near-singular (``det > rcond * A00 * A11``), and the clipped 1-D minimiser on each edge.
    For a convex ``q`` the best feasible candidate is the constrained minimum.
    """
    agg, agp, app, var = m.unbind(-1)
    lo = 1.0 - max_lr  # the smallest gamma1
    a00, a01, a11 = quadratic_form(m)
    edge_g2 = torch.stack([argmin_unit(a00, var, lo, 1.0), torch.zeros_like(var)], -1)
    # gamma1 = lo: q = 1/2 A11 g2^2 - (V - A01 lo) g2 + const, g2 in [0, 1 - lo]
    g2 = argmin_unit(a11, var - a01 * lo, 0.0, 1.0 - lo)
    edge_g1 = torch.stack([torch.zeros_like(var) + lo, g2], -1)
    s = argmin_unit(app, app - agp, lo, 1.0)  # gamma1 + gamma2 = 1: gamma = (s, 1 - s)
    edge_sum = torch.stack([s, 1 - s], -1)
    det = agg * app - agp * agp  # = A00 A11 - A01^2, the Gram determinant of (g, p)
    safe = det > rcond * a00 * a11
    den = torch.where(safe, det, torch.ones_like(det))
    inner = torch.stack([var * (app - agp) / den, var * agp / den], -1)
    feasible = safe & (inner[..., 0] >= lo) & (inner[..., 1] >= 0) & (inner.sum(-1) <= 1)
    cands = torch.stack([edge_g2, edge_g1, edge_sum, inner], -2)  # (P, 4, 2)
    q = objective(m.unsqueeze(-2), cands)
    q[..., 3] = torch.where(feasible, q[..., 3], torch.full_like(q[..., 3], float("inf")))
    best = q.argmin(-1, keepdim=True)
    chosen = torch.gather(cands, -2, best.unsqueeze(-1).expand(*best.shape, 2)).squeeze(-2)
    return torch.where(momentum.unsqueeze(-1), chosen, edge_g2)


def solve_gamma_authors(
    m: Tensor, momentum: Tensor, *, max_lr: float | Tensor = 1.0, max_gamma1: float = 0.999
) -> Tensor:
    """The rule of the authors' published code, ``(P, 4) -> (P, 2)``.

    Take the unconstrained ``A^-1 b`` when it lies in ``lo <= g1 <= max_gamma1,
    0 <= g2 < 1 - g1`` (``lo = 1 - max_lr``, 0 in their code); otherwise fall back to no
    momentum and ``g1 = min(V / A00, max_gamma1)`` (so the lr never drops below
    ``1 - max_gamma1``), at least ``lo``.
    """
    agg, agp, app, var = m.unbind(-1)
    a00 = agg
    lo = 1.0 - max_lr
    fallback_g1 = torch.minimum(
        var / torch.where(a00 > 0, a00, torch.ones_like(a00)), torch.full_like(var, max_gamma1)
    )
    fallback_g1 = torch.where(a00 > 0, fallback_g1, torch.full_like(var, max_gamma1))
    fallback_g1 = torch.maximum(fallback_g1, torch.zeros_like(fallback_g1) + lo)
    fallback = torch.stack([fallback_g1, torch.zeros_like(var)], -1)
    det = agg * app - agp * agp
    den = torch.where(det > 0, det, torch.ones_like(det))
    inner = torch.stack([var * (app - agp) / den, var * agp / den], -1)
    g1, g2 = inner[..., 0], inner[..., 1]
    inside = (det > 0) & (g1 >= lo) & (g1 <= max_gamma1) & (g2 >= 0) & (g2 < 1 - g1)
    return torch.where((inside & momentum).unsqueeze(-1), inner, fallback)


def ewma(gamma_new: Tensor, gamma_old: Tensor, decay: Tensor | float) -> Tensor:
    """Eq. (26): ``gamma_E = (1 - v) gamma_O + v gamma_E(prev)``."""
    if isinstance(decay, Tensor):
        decay = decay.unsqueeze(-1)
    return (1 - decay) * gamma_new + decay * gamma_old


def to_hparams(gamma: Tensor) -> Tensor:
    """``(..., 2)`` gamma -> ``(..., 2)`` ``[lr, momentum] = [1 - g1, g2 / (1 - g1)]``.

    The momentum is 0 where the learning rate is 0 (then ``g2`` is 0 too).
    """
    lr = 1 - gamma[..., 0]
    mom = torch.where(lr > 0, gamma[..., 1] / torch.where(lr > 0, lr, torch.ones_like(lr)), 0.0)
    return torch.stack([lr, mom], -1)


def estimator(
    g: Tensor, prev: Tensor, gamma: Tensor, segments: Tensor | None,
    sizes: list[int] | None = None
) -> Tensor:
    """Eq. (14), ``ghat = (1 - g1 - g2) g + g2 p``, for many flattened tensors at once.

    ``gamma`` is ``(P, 2)``, one row per tensor; ``segments`` maps each element to its row
    (or ``sizes`` gives each tensor's element count: the faster segment-wise path).

    >>> g, p = torch.tensor([1.0, 2.0, 4.0]), torch.tensor([3.0, -1.0, 0.0])
    >>> gam = torch.tensor([[0.2, 0.3], [0.0, 1.0]], dtype=torch.float64)
    >>> estimator(g, p, gam, torch.tensor([0, 0, 1]))
    tensor([1.4000, 0.7000, 0.0000])
    >>> estimator(g, p, gam, None, [2, 1])
    tensor([1.4000, 0.7000, 0.0000])
    """
    if sizes is not None:
        return combine_segments(g, 1 - gamma[:, 0] - gamma[:, 1], prev, gamma[:, 1], sizes)
    coef = torch.stack([1 - gamma[:, 0] - gamma[:, 1], gamma[:, 1]], 1).to(g.dtype)[segments]
    return g * coef[:, 0] + prev * coef[:, 1]
