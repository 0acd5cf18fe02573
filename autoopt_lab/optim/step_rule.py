"""The order of one AutoOpt step, as one readable function over a prepared batch.

1. solve eqs. (23)-(25) for ``gamma`` over the feasible triangle (:mod:`.gamma`), with the
   measured curvature's cap on the lr;
2. smooth it, eq. (26);
3. measured curvature: ``lr -> lr / c``, the momentum unchanged (:mod:`.curvature`);
4. the estimator, eq. (14), and the update ``D ghat``, eq. (9);
5. the trust region ``||D ghat|| <= trust_ratio ||w||``;
6. the group's ``lr``, a multiplier a scheduler may change (1 by default);
7. commit: parameters, momentum buffer, preconditioner state, counters; and what the next
   step needs (the secant memory, the weights published for scalar statistics).

A non-finite batch anywhere skips the whole step; a tensor with a zero gradient keeps its
state and does not move.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..stats import record
from . import curvature as C
from . import gamma as G
from .batch import Batch
from .flat import mul_segments_, segment_dots, unflatten
from .step_in_place import apply_in_place, in_place_ready
from .validation import measures_curvature


def _solve(b: Batch, ok: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Steps 1-3: the smoothed gamma kept in the state, the one the step uses, and which
    tensors are active (finite step, non-zero gradient)."""
    group, states, m = b.group, b.states, b.m
    momentum = (b.steps > 0) & bool(group["adapt_momentum"])
    solve = G.solve_gamma_authors if group["solver"] == "authors" else G.solve_gamma
    measured = measures_curvature(group)
    if measured:  # H-bar = c H-hat: the paper's problem in units of the measured Newton step
        curv = torch.stack([s["curvature"] for s in states])
        gamma_o = solve(m, momentum, max_lr=(curv * group["max_lr"]).clamp(max=1.0))
    else:
        gamma_o = solve(m, momentum, max_lr=group["max_lr"])
    gamma_prev = torch.stack([s["gamma"] for s in states])
    active = ok & (m[:, G.AGG] > 0)  # a zero gradient carries no information: skip it
    gamma_state = torch.where(
        active.unsqueeze(-1), G.ewma(gamma_o, gamma_prev, group["ewma"]), gamma_prev
    )
    gamma_e = C.scale_gamma(gamma_state, curv, group["max_lr"]) if measured else gamma_state
    return gamma_state, gamma_e, active


def apply_batch(b: Batch, ok: Tensor, *, secant: bool = False) -> None:
    """Steps 1-7 for one batch; ``ok`` is False when any batch of the step was non-finite.

    On CPU, where reading ``ok`` costs nothing, an accepted step is written in place into
    the flat state (:func:`apply_in_place`); elsewhere every value is selected by ``ok``
    without a host sync.
    """
    group, params, states, sizes = b.group, b.params, b.states, b.sizes
    b.m = torch.where(torch.isfinite(b.m), b.m, torch.zeros_like(b.m))
    gamma_state, gamma_e, active = _solve(b, ok)
    keep = torch.tensor([0.0, 1.0], dtype=gamma_e.dtype, device=gamma_e.device)
    gamma_used = torch.where(active.unsqueeze(-1), gamma_e, keep)  # inactive: ghat = p
    if in_place_ready(b) and bool(ok):
        apply_in_place(b, gamma_used, active, remember=_remember_step if secant else None)
        _commit_counters(b, gamma_state, active, ok)
        return
    ghat = G.estimator(b.flat, b.prev, gamma_used, None, sizes)
    update = mul_segments_(ghat.clone() if b.inv_h is None else b.inv_h * ghat,
                           active.to(torch.float64), sizes)
    factor = torch.ones(len(params), dtype=torch.float64, device=b.flat.device)
    if group["trust_ratio"] > 0:  # ||step|| <= trust_ratio ||w|| per tensor
        scale = C.trust_scale(update, [p.detach() for p in params], sizes, group["trust_ratio"])
        update, ghat = mul_segments_(update, scale, sizes), mul_segments_(ghat, scale, sizes)
        C.keep_trust_scale(states, scale, active)
        factor = scale
    lr = group.get("lr", 1.0)
    if lr != 1.0:  # a multiplier on the adapted step: schedulers compose with it
        update, ghat = update.mul_(lr), ghat.mul_(lr)
        factor = factor * lr
    # a non-finite batch skips the whole step: select, since NaN * 0 is NaN
    update = torch.where(ok, update, torch.zeros((), dtype=b.flat.dtype, device=b.flat.device))
    ghat = torch.where(ok, ghat, b.prev)
    if secant:
        _remember_step(b, update, ghat, gamma_used, factor, active)
    torch._foreach_sub_(params, unflatten(update, params, sizes))
    torch._foreach_copy_([s["momentum_buffer"] for s in states], unflatten(ghat, params, sizes))
    if b.new_pre:  # the preconditioner moves for active tensors only
        weight = active.to(torch.float64)
        for key, value in b.new_pre.items():
            value = torch.where(ok, value, b.pre_state[key])  # NaN * 0 is NaN: select first
            torch._foreach_lerp_([s[key] for s in states], unflatten(value, params, sizes),
                                 list(weight.to(value.dtype).unbind()))
    _commit_counters(b, gamma_state, active, ok)


def _commit_counters(b: Batch, gamma_state: Tensor, active: Tensor, ok: Tensor) -> None:
    """The weights for scalar statistics, ``gamma``, the step and skip counters."""
    states = b.states
    if b.scalar and b.inv_h is not None:
        _publish_weights(b)
    torch._foreach_copy_([s["gamma"] for s in states], list(gamma_state.unbind()))
    new_steps = b.steps + active.to(b.steps.dtype)
    torch._foreach_copy_([s["step"] for s in states], list(new_steps.unbind()))
    skipped = (~ok).to(torch.int64)
    torch._foreach_add_([s["nonfinite_skips"] for s in states], skipped)


def _remember_step(
    b: Batch, update: Tensor, ghat: Tensor, gamma_used: Tensor, factor: Tensor, active: Tensor,
    *, stored: bool = False,
) -> None:
    """What the next step's secant needs: ``s^T g_t``, ``a V_t`` and ``s^T D^-1 s`` for the
    step ``s = -update`` (docs/curvature.md, section 9)."""
    before = -segment_dots(update, b.flat, b.sizes)
    quad = segment_dots(ghat, update, b.sizes)
    coef = (1 - gamma_used[:, 0] - gamma_used[:, 1]) * factor  # a: the weight of g_t in s
    memory = torch.stack([before, coef * b.m[:, G.VAR], quad], 1)
    memory = torch.where(active.unsqueeze(-1), memory, torch.zeros_like(memory))
    for s, p in zip(b.states, b.params, strict=True):
        if "secant" not in s:  # [s^T g_t, a V_t, s^T D^-1 s, then the two running means]
            s["secant"] = torch.zeros(5, dtype=torch.float64, device=memory.device)
            s["last_update"] = torch.zeros_like(p)
    torch._foreach_copy_([s["secant"][:3] for s in b.states], list(memory.unbind()))
    if not stored:  # else ``update`` is the flat last_update itself
        torch._foreach_copy_([s["last_update"] for s in b.states], unflatten(update, b.params,
                                                                             b.sizes))


def _publish_weights(b: Batch) -> None:
    """For tensors with a scalar statistic, the rank-1 ``row col^T`` closest in the
    Adafactor sense to this step's ``D``: the engine weights the next statistic by it."""
    parts = b.inv_h.split(b.sizes)
    for k in b.scalar:
        d = parts[k].view(b.params[k].shape[0], -1)
        row, col = d.mean(1), d.mean(0)
        record.publish_weights(b.params[k], (row, col / d.mean().clamp_min(1e-30)))
