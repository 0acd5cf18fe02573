"""Measured curvature: eqs. (16)-(18) without the paper's assumption ``H-bar = H-hat``.

Section 4 of the paper assumes that the optimizer's Hessian estimate ``H-hat`` (``I`` for SGD,
``diag(sqrt(v-hat))`` for Adam) *is* the true Hessian ``H-bar``. Eqs. (17)-(18) hold for any
``H-hat``; with ``u1 = H-hat^-1 g`` and ``D = H-hat^-1`` (derivation in ``docs/curvature.md``):

* ``A = [u_i^T H-bar u_j]`` with ``u2 = D (g - p)``;
* ``b = V 1 + [u1^T H-bar u1 - g^T D g,  u2^T H-bar u1 - (g - p)^T D g]``.

The *scalar* model ``H-bar ~= c H-hat`` (one ``c`` per tensor) turns that into
``lr = lr_paper / c`` with the momentum unchanged. ``c`` is measured along the step
direction: ``c = u1^T (H-bar u1) / u1^T H-hat u1 = u1^T (H-bar u1) / g^T D g``, where
``H-bar u1`` is one Hessian-vector product of the batch loss (Pearlmutter's double backward,
or a finite difference of gradients) along ``u1`` for all tensors at once, so each tensor's
share includes its coupling with the others (the quadratic term of a step that moves every
tensor together, split by tensor); without a closure, the secant along the last step gives it
(:func:`secant_means`).

This module holds the maths; :mod:`.closures` runs the user's closure, and
:class:`~autoopt_lab.optim.base.AutoOptimizer` decides when to measure and keeps the state.

>>> import torch
>>> w = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
>>> h = torch.tensor([2.0, 8.0])
>>> hv = double_backward_products(0.5 * (h * w * w).sum(), [w], [[torch.ones(2)]])
>>> hv[0][0]
tensor([2., 8.])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from .flat import segments, sq_norms


class ClosureError(RuntimeError):
    """The closure given to ``step()`` cannot serve a Hessian-vector product."""


def double_backward_products(
    loss: Tensor, params: Sequence[Tensor], vector_sets: Sequence[Sequence[Tensor]]
) -> list[list[Tensor]]:
    """``[H v for v in vector_sets]`` of a scalar ``loss`` that still has its graph
    (Pearlmutter: one backward with graph, then one backward of ``grad . v`` per set)."""
    grads = torch.autograd.grad(loss, list(params), create_graph=True, allow_unused=True)
    used = [i for i, g in enumerate(grads) if g is not None and g.requires_grad]
    results = []
    for j, vectors in enumerate(vector_sets):
        out = [torch.zeros_like(p) for p in params]
        if used:
            dot = sum((grads[i] * vectors[i]).sum() for i in used)
            hv_used = torch.autograd.grad(
                dot, [params[i] for i in used], allow_unused=True,
                retain_graph=j < len(vector_sets) - 1,
            )
            for i, hv in zip(used, hv_used, strict=True):
                if hv is not None:
                    out[i] = hv.detach()
        results.append(out)
    return results


def finite_difference_products(
    gradient_at: Callable[[], list[Tensor]],
    params: Sequence[Tensor],
    vector_sets: Sequence[Sequence[Tensor]],
    base: list[Tensor],
    *,
    relative_step: float = 1e-3,
) -> list[list[Tensor]]:
    """``[H v]`` by a forward difference of gradients: ``(g(w + e v) - g(w)) / e``.

    ``gradient_at()`` returns the gradient at the parameters' current values (one forward and
    one backward: no double backward, so it serves layers without double-backward support);
    ``base`` is ``g(w)`` from the same randomness. ``e`` makes ``||e v||`` equal
    ``relative_step * ||w||`` over all ``params``. The parameters are restored exactly.

    >>> w = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    >>> h = torch.tensor([2.0, 8.0])
    >>> grad = lambda: list(torch.autograd.grad(0.5 * (h * w * w).sum(), [w]))
    >>> hv = finite_difference_products(grad, [w], [[torch.ones(2)]], grad())[0][0]
    >>> [round(v, 2) for v in hv.tolist()]
    [2.0, 8.0]
    """
    kept = [p.detach().clone() for p in params]
    w_norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p) for p in kept]))
    results = []
    try:
        for vectors in vector_sets:
            v_norm = torch.linalg.vector_norm(
                torch.stack([torch.linalg.vector_norm(v.float()) for v in vectors])
            )
            e = relative_step * (w_norm + relative_step) / v_norm.clamp_min(1e-30)
            with torch.no_grad():
                for p, v in zip(params, vectors, strict=True):
                    p.add_(v.to(p.dtype) * e.to(p.dtype))
            moved = gradient_at()
            results.append([(m - b) / e.to(m.dtype) for m, b in zip(moved, base, strict=True)])
            with torch.no_grad():
                for p, k in zip(params, kept, strict=True):
                    p.copy_(k)
    finally:
        with torch.no_grad():
            for p, k in zip(params, kept, strict=True):
                p.copy_(k)
    return results


def secant_means(
    moved: Tensor, before: Tensor, noise: Tensor, quad: Tensor, num: Tensor, den: Tensor,
    decay: float,
) -> tuple[Tensor, Tensor, Tensor]:
    """Running means of the secant's numerator and denominator, and their ratio ``c``.

    One secant is noisy and may be negative; dropping the negative ones (as
    :func:`smooth_curvature` does with single measurements) would bias ``c`` upwards, so the
    unbiased numerators ``s^T (g_t - g_{t-1}) - a V`` are averaged as they come, and ``c`` is
    the ratio of the means (NaN while the mean numerator is not positive). A step that was not
    taken (``quad = 0``) leaves the means as they were.

    >>> num, den, c = secant_means(torch.tensor([1.0]), torch.tensor([-2.0]),
    ...                            torch.tensor([1.0]), torch.tensor([4.0]),
    ...                            torch.zeros(1), torch.zeros(1), 0.5)
    >>> c
    tensor([0.5000])
    """
    value = moved - before - noise
    taken = (quad > 0) & torch.isfinite(value) & torch.isfinite(quad)
    num = torch.where(taken, decay * num + (1 - decay) * torch.where(taken, value, 0.0), num)
    den = torch.where(taken, decay * den + (1 - decay) * torch.where(taken, quad, 0.0), den)
    return num, den, curvature_ratio(num, den)


def curvature_ratio(share: Tensor, quad: Tensor) -> Tensor:
    """``c = u1^T H-bar u1 / u1^T H-hat u1`` per tensor; NaN where it is undefined.

    Undefined: a zero or non-finite denominator, or a non-positive share (negative measured
    curvature along the step: the quadratic model has no minimum there, so that measurement
    is not used).
    """
    ok = (quad > 0) & (share > 0) & torch.isfinite(share) & torch.isfinite(quad)
    safe = torch.where(ok, quad, torch.ones_like(quad))
    return torch.where(ok, share / safe, torch.full_like(share, float("nan")))


def smooth_curvature(
    old: Tensor, count: Tensor, new: Tensor, decay: float
) -> tuple[Tensor, Tensor]:
    """EMA of ``log c`` over measurements (the first one is taken as is); NaN keeps ``old``.

    Returns the new ``(c, count)``. Averaging in log space treats a factor of 10 up and down
    alike, which suits a quantity that spans orders of magnitude between tensors and phases.
    """
    valid = torch.isfinite(new)
    first = count == 0
    log_new = torch.where(valid, new, torch.ones_like(new)).log()
    mixed = (decay * old.log() + (1 - decay) * log_new).exp()
    updated = torch.where(first, torch.where(valid, new, old), mixed)
    return torch.where(valid, updated, old), count + valid.to(count.dtype)


def scale_gamma(gamma: Tensor, c: Tensor, max_lr: float | Tensor = float("inf")) -> Tensor:
    """Map a paper-model ``gamma`` to the measured one: ``lr -> min(lr / c, max_lr)``, with
    the momentum unchanged.

    ``gamma1 = 1 - lr`` and ``gamma2 = lr * momentum``, so both ``1 - gamma1`` and ``gamma2``
    are divided by the same factor.

    >>> scale_gamma(torch.tensor([[0.5, 0.25]], dtype=torch.float64), torch.tensor([10.0]))
    tensor([[0.9500, 0.0250]], dtype=torch.float64)
    >>> scale_gamma(torch.tensor([[0.5, 0.25]], dtype=torch.float64), torch.tensor([0.1]), 1.0)
    tensor([[0.0000, 0.5000]], dtype=torch.float64)
    """
    c = c.to(gamma.dtype).unsqueeze(-1)
    frac = 1 - gamma[..., 0:1]
    if isinstance(max_lr, Tensor):
        max_lr = max_lr.to(gamma.dtype).unsqueeze(-1)
    c = torch.maximum(c, frac / max_lr)  # lr = frac / c <= max_lr
    safe = torch.where(c > 0, c, torch.ones_like(c))
    return torch.stack([1 - frac / safe, gamma[..., 1:2] / safe], -1).squeeze(-2)


def trust_scale(
    update: Tensor, weights: list[Tensor], sizes: list[int], ratio: float
) -> Tensor:
    """Per tensor, the factor in (0, 1] that keeps ``||update|| <= ratio ||w||``, ``(P,)``.

    The quadratic model behind the step is local: a step that changes a tensor by a large
    fraction of its norm leaves the region where the measured curvature describes the loss
    (a ReLU network is only piecewise quadratic). The factor scales the learning rate and
    keeps the momentum. A tensor with ``w = 0`` is not limited (as LAMB's trust ratio).
    ``update`` is flat (``sizes`` its segments), ``weights`` the tensors themselves.

    >>> u, w = torch.tensor([3.0, 4.0, 0.1]), torch.tensor([10.0, 0.0, 1.0])
    >>> trust_scale(u, [w[:2], w[2:]], [2, 1], 0.1)
    tensor([0.2000, 1.0000], dtype=torch.float64)
    """
    nu, nw = sq_norms(segments(update, sizes)), sq_norms(list(weights))
    limit = ratio * nw.sqrt()
    limited = (nu > limit * limit) & (nw > 0)
    return torch.where(limited, limit / nu.sqrt().clamp_min(1e-300), torch.ones_like(nu))


def keep_trust_scale(states: Sequence[dict], scale: Tensor, active: Tensor) -> None:
    """Store each active tensor's trust-region factor in its ``trust_scale`` state (the others
    keep theirs), without a host sync.

    >>> states = [{"trust_scale": torch.ones((), dtype=torch.float64)} for _ in range(2)]
    >>> keep_trust_scale(states, torch.tensor([0.5, 0.25], dtype=torch.float64),
    ...                  torch.tensor([True, False]))
    >>> [float(s["trust_scale"]) for s in states]
    [0.5, 1.0]
    """
    kept = [s["trust_scale"] for s in states]
    torch._foreach_copy_(kept, list(torch.where(active, scale, torch.stack(kept)).unbind()))
