"""The order of one decoupled step (``step="decoupled"``) over a prepared batch.

1. the gain ``kappa`` per tensor along this step's direction (:func:`.decoupled.gain`), with
   the measured curvature, from running means of its terms (``ewma``), ramped in over the
   first steps;
2. the momentum ``mu``: its memory in proportion to the batch (``adapt_momentum=True``;
   :func:`.decoupled.batch_momentum`), or ``momentum`` itself; the estimator ``ghat =
   (1 - mu) g + mu p``;
3. the update ``kappa D ghat``;
4. the trust region ``||update|| <= trust_ratio max(||w||, ||w_0||)``: it scales the step,
   never the momentum buffer (which is an average of gradients, not of steps);
5. the group's ``lr`` multiplier (schedulers);
6. commit, as the paper's step does (:mod:`.step_rule`).

A non-finite batch skips the whole step; a tensor with a zero gradient keeps its state.

On CPU, where reading the finiteness flag costs nothing, an accepted step is written in
place (:mod:`.step_in_place`): the estimator over the momentum buffer, the update in the
secant's ``last_update`` (or over the gradient's copy), with the general path's operations
in the same order, so the parameters and state come out with the same bits
(tests/test_optim_speedpaths.py); elsewhere every value is selected by the flag without a
host sync.
"""

from __future__ import annotations

import torch
from torch import Tensor

from . import curvature as C
from . import decoupled as DC
from . import gamma as G
from .batch import Batch
from .flat import combine_segments, mul_segments_, segment_dots, segments, sq_norms, unflatten
from .step_in_place import _scale_, commit_, estimator_, in_place_ready, update_into
from .step_rule import _publish_weights
from .validation import measures_curvature


def apply_decoupled(b: Batch, ok: Tensor, *, secant: bool = False) -> None:
    """Steps 1-6 for one batch; ``ok`` is False when any batch of the step was non-finite."""
    group, states = b.group, b.states
    b.m = torch.where(torch.isfinite(b.m), b.m, torch.zeros_like(b.m))
    measured = measures_curvature(group)
    curv = (torch.stack([s["curvature"] for s in states]) if measured
            else torch.ones(len(states), dtype=torch.float64, device=b.m.device))
    active = ok & (b.m[:, G.AGG] > 0)
    terms_old = torch.stack([s["gain_terms"] for s in states])
    if group["adapt_momentum"]:
        mu = DC.batch_momentum(b.samples.to(b.m), group["momentum"], group["momentum_batch"])
    else:
        mu = torch.full_like(b.m[:, 0], float(group["momentum"]))
    terms = DC.running_terms(b.m, mu, terms_old, group["ewma"])
    terms = torch.where(active.unsqueeze(-1), terms, terms_old)
    new = DC.gain(terms[:, 0], terms[:, 1], curv) * DC.warmup(b.steps.double(), group["ewma"])
    kappa = torch.where(active, new, torch.stack([s["gain"] for s in states]))
    zero = torch.zeros_like(kappa)
    ca, cb = torch.where(active, 1 - mu, zero), torch.where(active, mu, zero + 1)
    factor = torch.where(active, kappa, zero)
    if in_place_ready(b) and bool(ok):
        _step_in_place(b, ca, cb, factor, mu, active, secant)
    else:
        _step_general(b, ok, ca, cb, factor, mu, active, secant)
    _commit_counters(b, kappa, terms, mu, active, ok)


def _trust_scale(b: Batch, update: Tensor, factor: Tensor, active: Tensor) -> Tensor:
    """The trust region's factor per tensor for the step ``factor D ghat`` (``update`` is
    ``D ghat``: ``||kappa u|| = kappa ||u||``, so the vector is scaled once, afterwards),
    kept in the state for the active tensors."""
    states = b.states
    limit = DC.trust_limit(sq_norms([p.detach() for p in b.params]),
                           torch.stack([s["initial_norm"] for s in states]),
                           b.group["trust_ratio"])
    norm = sq_norms(segments(update, b.sizes)).sqrt() * factor
    scale = torch.where(norm > limit, limit / norm.clamp_min(1e-300), torch.ones_like(norm))
    C.keep_trust_scale(states, scale, active)
    return scale


def _step_general(b: Batch, ok: Tensor, ca: Tensor, cb: Tensor, factor: Tensor, mu: Tensor,
                  active: Tensor, secant: bool) -> None:
    """Steps 2-6 with every value selected by ``ok`` (no host sync)."""
    group, params, states, sizes = b.group, b.params, b.states, b.sizes
    lr = group.get("lr", 1.0)
    ghat = combine_segments(b.flat, ca, b.prev, cb, sizes)
    update = ghat.clone() if b.inv_h is None else b.inv_h * ghat
    if group["trust_ratio"] > 0:
        factor = factor * _trust_scale(b, update, factor, active)
    factor = factor * lr
    mul_segments_(update, factor, sizes)
    update = torch.where(ok, update, torch.zeros((), dtype=update.dtype, device=update.device))
    ghat = torch.where(ok, ghat, b.prev)
    if secant:
        _remember(b, update, ghat, factor * (1 - mu), factor, active)
    torch._foreach_sub_(params, unflatten(update, params, sizes))
    torch._foreach_copy_([s["momentum_buffer"] for s in states], unflatten(ghat, params, sizes))
    if b.new_pre:  # the preconditioner moves for active tensors only
        weight = active.to(torch.float64)
        for key, value in b.new_pre.items():
            value = torch.where(ok, value, b.pre_state[key])
            torch._foreach_lerp_([s[key] for s in states], unflatten(value, params, sizes),
                                 list(weight.to(value.dtype).unbind()))


def _step_in_place(b: Batch, ca: Tensor, cb: Tensor, factor: Tensor, mu: Tensor,
                   active: Tensor, secant: bool) -> None:
    """Steps 2-6 of an accepted step, written into the flat state: the operations of
    :func:`_step_general` in its order."""
    group, sizes = b.group, b.sizes
    lr = group.get("lr", 1.0)
    ghat = estimator_(b, ca, cb)  # over the momentum buffer: it holds ghat, unscaled
    if secant:
        for s in b.states:
            if "secant" not in s:
                s["secant"] = torch.zeros(5, dtype=torch.float64, device=ghat.device)
    update = update_into(b, ghat, keep=secant)  # in last_update, or over the gradient's copy
    if group["trust_ratio"] > 0:
        factor = factor * _trust_scale(b, update, factor, active)
    factor = factor * lr
    _scale_(update, factor, sizes)
    if secant:
        _remember(b, update, ghat, factor * (1 - mu), factor, active, stored=True)
    commit_(b, update, active, bool(active.all()))


def _commit_counters(b: Batch, kappa: Tensor, terms: Tensor, mu: Tensor, active: Tensor,
                     ok: Tensor) -> None:
    """The weights for scalar statistics, the gain, its terms, the momentum, the step and
    skip counters."""
    states = b.states
    if b.scalar and b.inv_h is not None:
        _publish_weights(b)
    torch._foreach_copy_([s["gain"] for s in states], list(kappa.unbind()))
    torch._foreach_copy_([s["gain_terms"] for s in states], list(terms.unbind()))
    old_mu = torch.stack([s["momentum"] for s in states])
    torch._foreach_copy_([s["momentum"] for s in states],
                         list(torch.where(active, mu, old_mu).unbind()))
    new_steps = b.steps + active.to(b.steps.dtype)
    torch._foreach_copy_([s["step"] for s in states], list(new_steps.unbind()))
    torch._foreach_add_([s["nonfinite_skips"] for s in states], (~ok).to(torch.int64))


def _remember(
    b: Batch, update: Tensor, ghat: Tensor, coef: Tensor, factor: Tensor, active: Tensor,
    *, stored: bool = False,
) -> None:
    """The secant's memory for the step ``s = -update = -factor D ghat``: ``s^T g_t``, the
    noise term ``a V_t`` (``a = factor (1 - mu)``, the weight of ``g_t`` in ``s``) and
    ``s^T D^-1 s = factor <ghat, update>`` (docs/curvature.md, section 9); ``stored``:
    ``update`` is the flat ``last_update`` itself."""
    before = -segment_dots(update, b.flat, b.sizes)
    quad = segment_dots(ghat, update, b.sizes) * factor
    memory = torch.stack([before, coef * b.m[:, G.VAR], quad], 1)
    memory = torch.where(active.unsqueeze(-1), memory, torch.zeros_like(memory))
    for s, p in zip(b.states, b.params, strict=True):
        if "secant" not in s:
            s["secant"] = torch.zeros(5, dtype=torch.float64, device=memory.device)
            s["last_update"] = torch.zeros_like(p)
    torch._foreach_copy_([s["secant"][:3] for s in b.states], list(memory.unbind()))
    if not stored:
        torch._foreach_copy_([s["last_update"] for s in b.states],
                             unflatten(update, b.params, b.sizes))
