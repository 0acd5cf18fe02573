"""Read an optimizer's per-tensor learning rate and momentum, Auto or manual alike.

Auto optimizers report their adapted values; for the stock ``torch.optim`` classes the
reported "momentum" is SGD's ``momentum``, Adam's ``beta1`` and 0 for AdaGrad, so one plot
shows both kinds (see :func:`autoopt_lab.optim.hparam_tensors`).

>>> import torch
>>> net = torch.nn.Linear(3, 2)
>>> opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.5)
>>> read_hparams(opt, net)
{'weight': (0.1, 0.5), 'bias': (0.1, 0.5)}
"""

from __future__ import annotations

import torch

from autoopt_lab.optim import hparam_tensors


def read_hparams(
    optimizer: torch.optim.Optimizer, model: torch.nn.Module
) -> dict[str, tuple[float, float]]:
    """``{tensor name: (lr, momentum)}`` for every trainable tensor of ``model`` (one sync)."""
    values = hparam_tensors(optimizer, model)
    if not values:
        return {}
    rows = torch.stack([v.detach().double().cpu() for v in values.values()]).tolist()
    return {name: (lr, mom) for name, (lr, mom) in zip(values, rows, strict=True)}
