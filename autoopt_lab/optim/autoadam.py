"""AutoAdam: Adam's Hessian estimate (eq. 11) with AutoOpt lr and momentum."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from torch import nn

from . import preconditioners as P
from .base import AutoOptimizer

#: The settings of the authors' published AutoAdam, for a faithful comparison.
AUTHORS_AUTOADAM = {
    "eps": 1e-3,
    "bias_correction": "constant",
    "ewma": 0.99999,
    "curvature": "paper",
    "trust_ratio": 0.0,
    "step": "paper",
}


class AutoAdam(AutoOptimizer):
    """Adam preconditioning with AutoOpt learning rate and momentum.

    ``H = c * diag(sqrt(v_hat) + eps)`` with Adam's bias-corrected second moment ``v_hat``
    (``betas[1]``), and ``c = 1 - beta1^t`` (``bias_correction="step"``, eq. 11 of the
    paper, the default) or ``c = 1 - beta1`` (``"constant"``, as in the authors' code). The
    momentum is AutoOpt's; ``betas[0]`` only enters ``c``. A constant factor on ``D`` leaves
    gamma unchanged at a given point but changes the step length.

    The authors' code also uses ``eps=1e-3`` and ``ewma=0.99999`` (which freezes the lr near
    its warm start): ``AutoAdam(params, **AUTHORS_AUTOADAM)`` reproduces
    those settings. The paper's assumption ``H-bar = H-hat`` makes AutoAdam's steps 50-300
    times too long on our CNNs; the default ``curvature="measured"`` measures the curvature
    instead (options as :class:`~autoopt_lab.optim.AutoSGD`, docs/curvature.md).

    Example:
        >>> import torch, torch.nn.functional as F, autoopt_lab
        >>> model = torch.nn.Linear(4, 3)
        >>> opt = AutoAdam(model.named_parameters(), betas=(0.9, 0.99))
        >>> with autoopt_lab.track(model):
        ...     x, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
        ...     opt.zero_grad()
        ...     F.cross_entropy(model(x), y).backward()
        ...     opt.step(lambda: F.cross_entropy(model(x), y))
        >>> 0.0 <= opt.hparams()["bias"]["lr"] <= 1.0
        True
    """

    _init_state = staticmethod(P.adam_init)
    _inverse_hessian = staticmethod(P.adam_inverse_hessian)

    def __init__(
        self,
        params: Iterable[Any] | nn.Module,
        *,
        lr: float = 1.0,
        step: str = "decoupled",
        momentum: float = 0.9,
        momentum_batch: float = 16.0,
        betas: tuple[float, float] = (0.9, 0.99),
        eps: float = 1e-8,
        bias_correction: str = "step",
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
            betas=tuple(betas),
            eps=eps,
            bias_correction=bias_correction,
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
