"""Optimizers a stream can run: the Auto family and the fixed-hyper-parameter baselines.

>>> from torch import nn
>>> opt, handle = make_optimizer("sgd", nn.Linear(2, 2), {"lr": 0.1, "momentum": 0.9})
>>> type(opt).__name__, handle is None
('SGD', True)
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["AUTO_OPTIMIZERS", "BASELINES", "OPTIMIZERS", "make_optimizer"]

AUTO_OPTIMIZERS = ("autosgd", "autoadam", "autoadagrad")
BASELINES = ("sgd", "adam", "adagrad")
OPTIMIZERS = AUTO_OPTIMIZERS + BASELINES

_BASELINE_KEYS = {"sgd": {"lr", "momentum"}, "adam": {"lr"}, "adagrad": {"lr"}}


def make_optimizer(name: str, model: nn.Module,
                   hparams: dict[str, Any] | None = None) -> tuple[torch.optim.Optimizer, Any]:
    """Build optimizer ``name`` for ``model``; returns ``(optimizer, tracking handle or None)``.

    Auto optimizers get ``hparams`` as keyword options (``ewma``, ``gamma0``, ...) and a
    per-sample statistics handle from ``autoopt_lab.track``; remove it with ``handle.remove()``.
    Baselines need ``lr`` (and SGD ``momentum``, default 0); Adam uses betas (0.9, 0.99) as in
    the paper.
    """
    hparams = dict(hparams or {})
    if name in AUTO_OPTIMIZERS:
        import autoopt_lab

        cls = {"autosgd": "AutoSGD", "autoadam": "AutoAdam", "autoadagrad": "AutoAdaGrad"}[name]
        opt = getattr(autoopt_lab, cls)(model.named_parameters(), **hparams)
        return opt, autoopt_lab.track(model)
    if name not in BASELINES:
        raise ValueError(f"unknown optimizer {name!r}; allowed: {', '.join(OPTIMIZERS)}")
    extra = set(hparams) - _BASELINE_KEYS[name]
    if extra or "lr" not in hparams:
        raise ValueError(f"optimizer {name!r} takes hyper-parameters "
                         f"{sorted(_BASELINE_KEYS[name])} (lr required), got {sorted(hparams)}")
    lr = float(hparams["lr"])
    if name == "sgd":
        return torch.optim.SGD(model.parameters(), lr=lr,
                               momentum=float(hparams.get("momentum", 0.0))), None
    if name == "adam":
        return torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.99)), None
    return torch.optim.Adagrad(model.parameters(), lr=lr), None
