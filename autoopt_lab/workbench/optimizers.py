"""Build the optimizer a :class:`~autoopt_lab.workbench.config.RunConfig` names, and read
its per-tensor learning rate and momentum.

Auto optimizers come from :mod:`autoopt_lab.optim`; manual ones are the stock
``torch.optim`` classes with the lr/momentum from the config. For the manual optimizers the
reported "momentum" is SGD's ``momentum``, Adam's ``beta1`` and 0 for AdaGrad, so the same
plot shows both kinds.

>>> import torch
>>> from autoopt_lab.workbench.config import RunConfig
>>> net = torch.nn.Linear(3, 2)
>>> opt = build_optimizer(RunConfig(optimizer="SGD", lr=0.1, momentum=0.5), net)
>>> read_hparams(opt, net)
{'weight': (0.1, 0.5), 'bias': (0.1, 0.5)}
"""

from __future__ import annotations

import torch

from autoopt_lab.workbench.config import RunConfig


def build_optimizer(config: RunConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    """The optimizer for ``model`` that ``config.optimizer`` names."""
    if config.is_auto:
        from autoopt_lab import optim as auto_optim

        cls = getattr(auto_optim, config.optimizer)
        return cls(model.named_parameters())
    params = model.parameters()
    if config.family == "SGD":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum)
    if config.family == "Adam":
        return torch.optim.Adam(params, lr=config.lr, betas=(config.momentum, 0.99))
    if config.family == "AdaGrad":
        return torch.optim.Adagrad(params, lr=config.lr)
    raise ValueError(f"optimizer={config.optimizer!r} has no builder")  # pragma: no cover


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
