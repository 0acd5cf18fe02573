"""AutoSGD: SGD (``H = I``) with AutoOpt learning rate and momentum per tensor."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from torch import nn

from . import preconditioners as P
from .base import AutoOptimizer


class AutoSGD(AutoOptimizer):
    """SGD whose learning rate and momentum are set every step from per-sample statistics.

    Args:
        params: the model itself (tracked for you: the drop-in form ``AutoSGD(model)``),
            ``model.named_parameters()``, ``model.parameters()`` or param groups.
        lr: a multiplier on the adapted step (1 by default), so that a ``torch.optim``
            scheduler (warm-up, cosine decay) composes with it; ``hparams()`` reports the lr
            actually used.
        step: ``"paper"`` (eq. 10: lr ``alpha`` and momentum ``beta`` from the 2x2 solve,
            so the weight on the previous step is ``alpha beta``) or ``"decoupled"`` (a
            momentum ``mu`` apart from the gain ``kappa``, the gain a line search along the
            step taken: docs/decoupled.md).
        momentum: the decoupled step's largest ``mu`` (unused by ``"paper"``).
        momentum_batch: with ``adapt_momentum``, the decoupled step's ``mu = min(momentum,
            1 - momentum_batch / N)`` for a batch of ``N``: its memory grows with the batch.
        ewma: the EMA factor ``v`` of eq. (26) smoothing gamma across steps.
        gamma0: warm start of ``gamma1``; the first lr is ``1 - gamma0`` (0.001 by default,
            as in the authors' code) and the EMA pulls it to the estimated optimum.
        adapt_momentum: False adapts the learning rate only (momentum stays 0; with
            ``step="decoupled"``, ``mu = momentum`` whatever the batch).
        weight_decay: L2 penalty added to the gradient, as in ``torch.optim.SGD``.
        solver: ``"triangle"`` (minimise eq. 16 over lr, momentum in [0, 1]) or
            ``"authors"`` (the published code's fallback to no momentum).
        max_lr: a cap on the learning rate (1.0 by default; with ``curvature="paper"`` the
            paper's triangle, lr in [0, 1]).
        curvature: ``"measured"`` (the default): the Hessian is measured, not assumed, by
            a Hessian-vector product of the batch loss every ``curvature_every`` steps (or
            the secant, ``curvature_source``): ``c`` is the curvature relative to the
            preconditioner (docs/curvature.md); the paper's step takes lr = (its lr) / c,
            the decoupled step a gain in units of ``1 / c``. ``"paper"``: the paper's
            assumption ``H-bar = H-hat`` (for SGD, unit curvature).
        curvature_source: where ``"measured"`` takes the curvature from: ``"hvp"``, a
            Hessian-vector product of the closure given to ``step()`` (either kind) every
            ``curvature_every`` steps; ``"secant"``, the gradient change along the last
            step, corrected for the batch noise (no closure needed); ``"auto"`` (default),
            ``"hvp"`` when a closure is given and ``"secant"`` otherwise.
        curvature_every: steps between Hessian-vector products (``"measured"``).
        curvature_ewma: EMA factor of ``log c`` across measurements (``"measured"``); the
            secant (one measurement per step) averages its numerator and denominator with it.
        curvature_probe: the direction of the product: ``"momentum"`` (the previous step,
            default) or ``"gradient"`` (the previous step's preconditioned gradient).
        trust_ratio: a trust region: each tensor's step is at most this fraction of the
            tensor's norm (the lr is scaled down, the momentum kept); 0 turns it off. The
            quadratic model is local, and a ReLU network only piecewise quadratic.

    Example:
        >>> import torch, torch.nn.functional as F, autoopt_lab
        >>> model = torch.nn.Linear(4, 3)
        >>> opt = AutoSGD(model.named_parameters())
        >>> with autoopt_lab.track(model):
        ...     for _ in range(3):
        ...         x, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
        ...         opt.zero_grad()
        ...         F.cross_entropy(model(x), y).backward()
        ...         opt.step(lambda: F.cross_entropy(model(x), y))  # the loss, no backward
        >>> sorted(opt.hparams()["weight"])
        ['effective_momentum', 'gain', 'lr', 'momentum']
    """

    _init_state = staticmethod(P.sgd_init)
    _inverse_hessian = staticmethod(P.sgd_inverse_hessian)

    def __init__(
        self,
        params: Iterable[Any] | nn.Module,
        *,
        lr: float = 1.0,
        step: str = "decoupled",
        momentum: float = 0.9,
        momentum_batch: float = 16.0,
        ewma: float = 0.9,
        gamma0: float = 0.999,
        adapt_momentum: bool = True,
        weight_decay: float = 0.0,
        solver: str = "triangle",
        max_lr: float = 1.0,
        curvature: str = "measured",
        curvature_every: int = 10,
        curvature_ewma: float = 0.5,
        curvature_probe: str = "momentum",
        curvature_source: str = "auto",
        trust_ratio: float = 0.03,
    ) -> None:
        defaults = dict(
            lr=lr,
            step=step,
            momentum=momentum,
            momentum_batch=momentum_batch,
            ewma=ewma,
            gamma0=gamma0,
            adapt_momentum=adapt_momentum,
            weight_decay=weight_decay,
            solver=solver,
            max_lr=max_lr,
            curvature=curvature,
            curvature_every=curvature_every,
            curvature_ewma=curvature_ewma,
            curvature_probe=curvature_probe,
            curvature_source=curvature_source,
            trust_ratio=trust_ratio,
        )
        super().__init__(params, defaults)
