"""Steps 4-7 of :mod:`.step_rule` for an accepted step, written into the flat state.

When the step is known to be accepted (on CPU, reading the finiteness flag costs nothing),
no value needs to be kept for a rejected one: the estimator is formed in the momentum
buffer, the update in the secant's ``last_update`` (or a scratch vector), and the
preconditioner's new state is copied once. The arithmetic is that of
:func:`.step_rule.apply_batch`, operation for operation, so the parameters come out with
the same bits (the golden hashes of tests/test_optim_curvature.py pin them).

Another step rule can use the three parts, guarded by ``in_place_ready(b) and bool(ok)``:
:func:`estimator_` (``ghat`` over the momentum buffer, with :func:`.flat.combine_segments`'
rounding), :func:`update_into` (``D ghat`` into a kept vector) and :func:`commit_`
(parameters and preconditioner).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from . import curvature as C
from .batch import Batch
from .flat import segments


def in_place_ready(b: Batch) -> bool:
    """True when ``b`` reads its momentum from a flat buffer it may overwrite (CPU)."""
    lay = b.layout
    return (
        lay is not None
        and b.prev.device.type == "cpu"
        and lay.buffers.get("momentum_buffer") is b.prev
        and all(k in lay.buffers for k in b.new_pre)
    )


def _scale_(flat: Tensor, values: Tensor, sizes: list[int], only: list[int] | None = None
            ) -> None:
    """``flat *= values`` segment by segment (``only``: those segments, the others' values
    being 1)."""
    parts, values = segments(flat, sizes), list(values.to(flat.dtype).unbind())
    if only is not None:
        parts, values = [parts[k] for k in only], [values[k] for k in only]
    if parts:
        torch._foreach_mul_(parts, values)


def estimator_(b: Batch, ca: Tensor, cb: Tensor) -> Tensor:
    """``ghat = ca g + cb p`` per tensor (``(P,)`` coefficients), written over the momentum
    buffer ``b.prev`` with the rounding of :func:`.flat.combine_segments`."""
    ghat, lay, sizes = b.prev, b.layout, b.sizes
    _scale_(ghat, cb, sizes)
    coef = ca.to(ghat.dtype).unbind()
    for k, (h, g, c) in enumerate(zip(segments(ghat, sizes), segments(b.flat, sizes), coef,
                                      strict=True)):
        h.add_(torch.mul(g, c, out=lay.piece(k, g)))  # (p cb) + (g ca): an addcmul would
        # round differently
    return ghat


def update_into(b: Batch, ghat: Tensor, *, keep: bool, alias: bool = False) -> Tensor:
    """``D ghat``: into the state ``last_update`` when ``keep`` (the secant's; made on first
    use, so the caller need not copy it there), else over the gradient's copy ``b.flat``
    (not needed after the estimator), or ``ghat`` itself when ``alias`` and there is no
    ``D`` (the caller then scales the two once)."""
    lay, params, states = b.layout, b.params, b.states
    if keep:
        if not lay.adopt("last_update", params, states):
            lay.create("last_update", params, states)
        update = lay.buffers["last_update"]
    elif b.inv_h is None and alias:
        return ghat
    else:
        update = b.flat
    if b.inv_h is None:
        return update.copy_(ghat)
    return torch.mul(b.inv_h, ghat, out=update)


def commit_(b: Batch, update: Tensor, active: Tensor, all_active: bool) -> None:
    """``params -= update``; the preconditioner's new state for the active tensors."""
    sizes, lay = b.sizes, b.layout
    torch._foreach_sub_(b.params, [u.view_as(p) for u, p in zip(segments(update, sizes),
                                                                 b.params, strict=True)])
    for key, value in b.new_pre.items():
        if all_active:
            lay.buffers[key].copy_(value)
        else:
            torch._foreach_lerp_(segments(lay.buffers[key], sizes), segments(value, sizes),
                                 list(active.to(value.dtype).unbind()))


def apply_in_place(
    b: Batch, gamma_used: Tensor, active: Tensor, *, remember: Callable | None = None
) -> None:
    """Estimator, update, trust region, ``lr``, secant memory and commit of an accepted
    step; ``remember`` is the step rule's secant bookkeeping (None: no secant)."""
    group, params, states, sizes = b.group, b.params, b.states, b.sizes
    all_active = bool(active.all())
    # the estimator, eq. (14): ghat = (1 - g1 - g2) g + g2 p
    ghat = estimator_(b, 1 - gamma_used[:, 0] - gamma_used[:, 1], gamma_used[:, 1])
    update = update_into(b, ghat, keep=remember is not None, alias=all_active)
    if not all_active:
        _scale_(update, active.to(torch.float64), sizes)
    factor = torch.ones(len(params), dtype=torch.float64, device=ghat.device)
    if group["trust_ratio"] > 0:  # ||step|| <= trust_ratio ||w|| per tensor
        scale = C.trust_scale(update, [p.detach() for p in params], sizes, group["trust_ratio"])
        limited = [k for k, v in enumerate((scale != 1).tolist()) if v]  # x * 1 is x
        _scale_(update, scale, sizes, limited)
        if update is not ghat:
            _scale_(ghat, scale, sizes, limited)
        C.keep_trust_scale(states, scale, active)
        factor = scale
    lr = group.get("lr", 1.0)
    if lr != 1.0:  # a multiplier on the adapted step: schedulers compose with it
        update.mul_(lr)
        if update is not ghat:
            ghat.mul_(lr)
        factor = factor * lr
    if remember is not None:
        for s in states:
            if "secant" not in s:
                s["secant"] = torch.zeros(5, dtype=torch.float64, device=ghat.device)
        remember(b, update, ghat, gamma_used, factor, active, stored=True)
    commit_(b, update, active, all_active)
