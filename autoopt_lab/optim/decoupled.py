"""The maths of the decoupled step: a momentum that does not depend on the gain.

The paper's estimator, eq. (10), ``ghat_t = alpha ((1 - beta) g_t + beta ghat_{t-1})``, puts
``alpha`` inside the momentum: the weight of the previous step is ``mu = alpha beta`` and
the steady-state gain on the gradient ``kappa = alpha (1 - beta) / (1 - alpha beta)``, so a
small measured lr removes the momentum with it (docs/decoupled.md). The decoupled step keeps
them apart, per tensor::

    ghat_t = (1 - mu) g_t + mu ghat_{t-1}        (mu fixed: the momentum)
    w_{t+1} = w_t - kappa_t D_t ghat_t           (kappa_t adapted: the gain)

With ``kappa`` and ``D`` constant this is the heavy ball ``w_{t+1} = w_t - alpha D g_t +
mu (w_t - w_{t-1})`` with ``alpha = kappa (1 - mu)``.

The gain is the quadratic model's optimum along the step actually taken, ``D ghat``, with the
curvature ``H-bar = c D^-1`` (``c`` measured, :mod:`.curvature`) and the per-sample noise
``V`` (eq. 22): ``kappa = E[grad^T D ghat] / (c ghat^T D ghat)``. The numerator is estimated
without bias as ``(1 - mu)(<g,Dg> - V) + mu <g,Dp>`` (the batch noise enters ``ghat`` with
weight ``1 - mu``; ``p = ghat_{t-1}`` is independent of it). The denominator is the
realised ``ghat^T D ghat``: it carries the noise of the momentum-averaged estimator, about
``V (1 - mu) / (1 + mu)`` at steady state rather than one batch's ``V``, so the gain grows
as the averaging removes noise and as the batch grows (the horizon the greedy one-step
optimum does not see).

>>> import torch
>>> m = torch.tensor([[4.0, 0.0, 0.0, 1.0]], dtype=torch.float64)  # first step: p = 0
>>> signal, quad = directional_moments(m, 0.9)
>>> gain(signal, quad, torch.tensor([2.0], dtype=torch.float64))  # (4 - 1) / (0.1 * 4 * 2)
tensor([3.7500], dtype=torch.float64)
"""

from __future__ import annotations

import torch
from torch import Tensor

from .gamma import AGG, AGP, APP, VAR


def directional_moments(m: Tensor, momentum: float | Tensor) -> tuple[Tensor, Tensor]:
    """``(E[grad^T D ghat], ghat^T D ghat)`` per tensor for ``ghat = (1 - mu) g + mu p``,
    from the ``(P, 4)`` moments ``[<g,Dg>, <g,Dp>, <p,Dp>, V]``.

    >>> m = torch.tensor([[4.0, 1.0, 2.0, 1.0]], dtype=torch.float64)
    >>> directional_moments(m, 0.5)
    (tensor([2.], dtype=torch.float64), tensor([2.], dtype=torch.float64))
    """
    agg, agp, app, var = m[:, AGG], m[:, AGP], m[:, APP], m[:, VAR]
    mu = momentum
    signal = (1 - mu) * (agg - var) + mu * agp
    quad = (1 - mu) ** 2 * agg + 2 * mu * (1 - mu) * agp + mu**2 * app
    return signal, quad


def gain(signal: Tensor, quad: Tensor, curvature: Tensor) -> Tensor:
    """``kappa = max(signal, 0) / (c quad)`` per tensor, ``(P,)``, from the running means of
    :func:`directional_moments` (:func:`running_terms`).

    Zero where the step direction carries no expected descent or is zero, or ``c`` is not
    positive.

    >>> gain(torch.tensor([0.3, -1.0]), torch.tensor([0.04, 1.0]), torch.tensor([2.0, 1.0]))
    tensor([3.7500, 0.0000])
    """
    c = curvature.to(quad.dtype)
    den = c * quad
    ok = (signal > 0) & (den > 0) & torch.isfinite(signal) & torch.isfinite(den)
    return torch.where(ok, signal / torch.where(ok, den, torch.ones_like(den)),
                       torch.zeros_like(den))


def batch_momentum(samples: Tensor, momentum: float, momentum_batch: float) -> Tensor:
    """``mu = min(momentum, max(0, 1 - momentum_batch / N))`` per tensor: the momentum's
    memory ``1 / (1 - mu)`` grows in proportion to the batch size ``N``.

    With the gain a line search along the step, a long memory pays at large batches (the
    average sees past the sharp directions that dominate one gradient, and the gain grows
    with it) and is unstable at small ones (the average of noisy gradients points along flat
    directions, the gain grows, and the heavy ball oscillates in the sharp ones): measured
    in docs/decoupled.md.

    >>> batch_momentum(torch.tensor([8.0, 32.0, 128.0, 1024.0]), 0.9, 16.0)
    tensor([0.0000, 0.5000, 0.8750, 0.9000])
    """
    return (1 - momentum_batch / samples).clamp(0.0, momentum)


def running_terms(m: Tensor, momentum: float | Tensor, old: Tensor, decay: float) -> Tensor:
    """Running means of the gain's numerator and denominator, ``(P, 2)``: eq. (26)'s
    smoothing applied to each term, not to the ratio.

    One step's numerator is noisy and often negative at small batches; clipping it at zero
    before averaging would bias the gain upwards (the noise would pass for signal), so the
    unbiased terms are averaged as they come and the gain is their ratio. A running
    numerator below zero is carried as zero: it is evidence against the directions the
    momentum has since left (at the first steps, against Adam's first ``D``, built from one
    mean gradient), and a debt of it held the gain at zero for tens of steps.

    >>> m = torch.tensor([[4.0, 0.0, 0.0, 1.0]], dtype=torch.float64)
    >>> running_terms(m, 0.9, torch.zeros(1, 2, dtype=torch.float64), 0.5)
    tensor([[0.1500, 0.0200]], dtype=torch.float64)
    """
    signal, quad = directional_moments(m, momentum)
    kept = torch.stack([old[:, 0].clamp_min(0.0), old[:, 1]], -1)  # no debt carried
    return decay * kept + (1 - decay) * torch.stack([signal, quad], -1)


def warmup(steps: Tensor, decay: float) -> Tensor:
    """The gain's ramp ``1 - v^(t+1)`` over the first steps (``t`` steps taken): the running
    terms start from one step's evidence, so the first steps are damped as eq. (26)'s
    warm start damps the paper's.

    >>> warmup(torch.tensor([0.0, 9.0]), 0.9)
    tensor([0.1000, 0.6513])
    """
    return 1 - decay ** (steps + 1)


def effective(lr: Tensor, momentum: Tensor) -> tuple[Tensor, Tensor]:
    """The paper's ``(alpha, beta)`` as the heavy ball sees them: the weight of the previous
    step ``mu = alpha beta`` and the steady-state gain ``kappa = alpha (1 - beta) /
    (1 - alpha beta)`` (0 where ``alpha beta = 1``, a step that never forgets).

    >>> effective(torch.tensor([0.01]), torch.tensor([0.9]))
    (tensor([0.0090]), tensor([0.0010]))
    """
    mu = lr * momentum
    den = 1 - mu
    kappa = torch.where(den > 0, lr * (1 - momentum) / torch.where(den > 0, den, 1.0), 0.0)
    return mu, kappa


def heavy_ball(kappa: Tensor, momentum: float | Tensor) -> tuple[Tensor, Tensor]:
    """The decoupled step's ``(alpha, beta)`` in the heavy-ball form: the lr ``kappa (1 -
    mu)`` on ``D g`` and the momentum ``mu`` on the previous step.

    >>> heavy_ball(torch.tensor([0.5]), 0.9)
    (tensor([0.0500]), tensor([0.9000]))
    """
    mu = torch.as_tensor(momentum, dtype=kappa.dtype, device=kappa.device).expand_as(kappa)
    return kappa * (1 - mu), mu


def trust_limit(weight_sq: Tensor, initial_sq: Tensor, ratio: float) -> Tensor:
    """The trust region's bound on ``||step||`` per tensor: ``ratio * max(||w||, ||w_0||)``.

    The floor at the initial norm keeps a tensor whose weights shrank (or that started small
    and must grow) from being held to ever smaller steps; a tensor that is zero now and was
    zero at the start is not limited (``inf``), as LAMB's trust ratio.

    >>> trust_limit(torch.tensor([1.0, 0.0]), torch.tensor([4.0, 0.0]), 0.1)
    tensor([0.2000,    inf])
    """
    scale = torch.maximum(weight_sq, initial_sq).sqrt()
    return torch.where(scale > 0, ratio * scale, torch.full_like(scale, float("inf")))
