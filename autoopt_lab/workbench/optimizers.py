"""Read an optimizer's per-tensor learning rate and momentum, Auto or manual alike.

Auto optimizers report their adapted values; for the stock ``torch.optim`` classes the
reported "momentum" is SGD's ``momentum``, Adam's ``beta1`` and 0 for AdaGrad, so one plot
shows both kinds.

>>> import torch
>>> net = torch.nn.Linear(3, 2)
>>> opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.5)
>>> read_hparams(opt, net)
{'weight': (0.1, 0.5), 'bias': (0.1, 0.5)}
"""

from __future__ import annotations

import torch


def read_hparams(
    optimizer: torch.optim.Optimizer, model: torch.nn.Module
) -> dict[str, tuple[float, float]]:
    """``{tensor name: (lr, momentum)}`` for every trainable tensor of ``model``.

    Auto optimizers report their adapted values (one host sync); manual ones their fixed
    settings.
    """
    if hasattr(optimizer, "hparams"):
        return {
            name: (float(h["lr"]), float(h["momentum"])) for name, h in optimizer.hparams().items()
        }
    by_param: dict[int, tuple[float, float]] = {}
    for group in optimizer.param_groups:
        if "momentum" in group:
            mom = float(group["momentum"])
        elif "betas" in group:
            mom = float(group["betas"][0])
        else:
            mom = 0.0
        for p in group["params"]:
            by_param[id(p)] = (float(group["lr"]), mom)
    return {name: by_param[id(p)] for name, p in model.named_parameters() if id(p) in by_param}
