"""Optimizers a stream can run: the Auto family and the fixed-hyper-parameter baselines.

A thin layer over :func:`autoopt_lab.optim.build_optimizer` (the one place optimizers are
built by name) that takes the hyper-parameters as a dict, as scenario files and tuning grids
hold them. Adam runs with the paper's betas (0.9, 0.99).

>>> from torch import nn
>>> opt, handle = make_optimizer("sgd", nn.Linear(2, 2), {"lr": 0.1, "momentum": 0.9})
>>> type(opt).__name__, handle is None
('SGD', True)
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from autoopt_lab.optim.factory import AUTO_OPTIMIZERS as _AUTO
from autoopt_lab.optim.factory import FIXED_OPTIMIZERS, build_optimizer

__all__ = ["AUTO_OPTIMIZERS", "BASELINES", "OPTIMIZERS", "make_optimizer"]

AUTO_OPTIMIZERS = tuple(_AUTO)
BASELINES = FIXED_OPTIMIZERS
OPTIMIZERS = AUTO_OPTIMIZERS + BASELINES

_BASELINE_KEYS = {"sgd": {"lr", "momentum"}, "adam": {"lr"}, "adagrad": {"lr"}}


def make_optimizer(
    name: str, model: nn.Module, hparams: dict[str, Any] | None = None
) -> tuple[torch.optim.Optimizer, Any]:
    """Build optimizer ``name`` for ``model``; returns ``(optimizer, tracking handle or None)``.

    Auto optimizers get ``hparams`` as keyword options (``ewma``, ``gamma0``, ...) and a
    per-sample statistics handle from ``autoopt_lab.track``; remove it with ``handle.remove()``.
    Baselines need ``lr`` (and SGD ``momentum``, default 0).
    """
    hparams = dict(hparams or {})
    if name in BASELINES:
        extra = set(hparams) - _BASELINE_KEYS[name]
        if extra or "lr" not in hparams:
            raise ValueError(
                f"optimizer {name!r} takes hyper-parameters "
                f"{sorted(_BASELINE_KEYS[name])} (lr required), got {sorted(hparams)}"
            )
    return build_optimizer(name, model, **hparams)
