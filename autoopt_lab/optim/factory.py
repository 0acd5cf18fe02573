"""Optimizers by name, Auto or fixed, and their per-tensor lr and momentum.

The one place the project turns a name like ``"autosgd"`` or ``"adam"`` into an optimizer;
runs, sweeps, streams and the workbench all call it.

>>> from torch import nn
>>> model = nn.Linear(2, 2)
>>> opt, handle = build_optimizer("sgd", model, lr=0.1, momentum=0.9)
>>> type(opt).__name__, handle is None
('SGD', True)
>>> [round(v, 2) for v in hparam_tensors(opt, model)["weight"].tolist()]
[0.1, 0.9]
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..stats import Tracker, track
from .autoadagrad import AutoAdaGrad
from .autoadam import AutoAdam
from .autosgd import AutoSGD
from .base import AutoOptimizer
from .gamma import to_hparams

AUTO_OPTIMIZERS = {"autosgd": AutoSGD, "autoadam": AutoAdam, "autoadagrad": AutoAdaGrad}
FIXED_OPTIMIZERS = ("sgd", "adam", "adagrad")
OPTIMIZERS = (*AUTO_OPTIMIZERS, *FIXED_OPTIMIZERS)
#: Adam's betas in the paper's experiments (Section 5).
PAPER_BETAS = (0.9, 0.99)
_FIXED_KEYS = {"sgd": {"lr", "momentum"}, "adam": {"lr", "betas"}, "adagrad": {"lr"}}


def build_optimizer(
    name: str, model: nn.Module, **hparams: Any
) -> tuple[torch.optim.Optimizer, Tracker | None]:
    """Optimizer ``name`` over ``model``'s trainable parameters, and its tracker (or None).

    Auto optimizers take their keyword options (``ewma``, ``gamma0``, ``betas``, ...) and get
    per-sample statistics hooks from :func:`autoopt_lab.track` (``handle.remove()`` ends them).
    Fixed optimizers need ``lr``; SGD takes ``momentum`` (default 0); Adam ``betas`` (default
    the paper's (0.9, 0.99)).
    """
    key = name.lower()
    if key in AUTO_OPTIMIZERS:
        return AUTO_OPTIMIZERS[key](model.named_parameters(), **hparams), track(model)
    if key not in FIXED_OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; allowed: {', '.join(OPTIMIZERS)}")
    extra = set(hparams) - _FIXED_KEYS[key]
    if extra or "lr" not in hparams:
        raise ValueError(
            f"optimizer {name!r} takes {sorted(_FIXED_KEYS[key])} (lr required), "
            f"got {sorted(hparams)}"
        )
    params = [p for p in model.parameters() if p.requires_grad]
    lr = float(hparams["lr"])
    if key == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=float(hparams.get("momentum", 0.0))), None
    if key == "adam":
        return torch.optim.Adam(params, lr=lr, betas=tuple(hparams.get("betas", PAPER_BETAS))), None
    return torch.optim.Adagrad(params, lr=lr), None


def hparam_tensors(optimizer: torch.optim.Optimizer, model: nn.Module) -> dict[str, torch.Tensor]:
    """``{tensor name: tensor([lr, momentum])}`` for any optimizer, without a host sync.

    Auto optimizers report their adapted values. For torch's optimizers the "momentum" is
    SGD's ``momentum``, Adam's ``betas[0]``, and 0 for AdaGrad, so one plot shows both kinds.
    """
    names = {id(p): n for n, p in model.named_parameters()}
    if isinstance(optimizer, AutoOptimizer):
        out = {}
        for group in optimizer.param_groups:
            for p in group["params"]:
                state = optimizer.state.get(p, {})
                gamma = state.get("gamma")
                if gamma is None:
                    gamma = torch.tensor([group["gamma0"], 0.0], dtype=torch.float64)
                out[names.get(id(p), str(id(p)))] = to_hparams(gamma)
        return out
    out = {}
    for group in optimizer.param_groups:
        if "momentum" in group:
            mom = float(group["momentum"])
        elif "betas" in group:
            mom = float(group["betas"][0])
        else:
            mom = 0.0
        for p in group["params"]:
            value = torch.tensor([float(group["lr"]), mom], dtype=torch.float64, device=p.device)
            out[names.get(id(p), str(id(p)))] = value
    return out
