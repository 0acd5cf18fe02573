"""AutoAdaGrad: AdaGrad's Hessian estimate (eq. 12) with AutoOpt lr and momentum."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from torch import nn

from . import preconditioners as P
from .base import AutoOptimizer


class AutoAdaGrad(AutoOptimizer):
    """AdaGrad preconditioning, ``H = diag(sqrt(sum_s g_s^2) + eps)``, with AutoOpt.

    The paper's AdaGrad has no momentum (Table 1); AutoOpt adds one, as for SGD. Pass
    ``adapt_momentum=False`` for the momentum-free variant. Other options as
    :class:`~autoopt_lab.optim.AutoSGD`; ``eps`` as ``torch.optim.Adagrad``.

    Example:
        >>> import torch, torch.nn.functional as F, autoopt_lab
        >>> model = torch.nn.Linear(4, 3)
        >>> opt = AutoAdaGrad(model.parameters())
        >>> with autoopt_lab.track(model):
        ...     x, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
        ...     opt.zero_grad()
        ...     F.cross_entropy(model(x), y).backward()
        ...     opt.step(lambda: F.cross_entropy(model(x), y))
        >>> list(opt.hparams())
        [0, 1]
    """

    _init_state = staticmethod(P.adagrad_init)
    _inverse_hessian = staticmethod(P.adagrad_inverse_hessian)

    def __init__(
        self,
        params: Iterable[Any] | nn.Module,
        *,
        lr: float = 1.0,
        step: str = "decoupled",
        momentum: float = 0.9,
        momentum_batch: float = 16.0,
        eps: float = 1e-10,
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
            eps=eps,
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
