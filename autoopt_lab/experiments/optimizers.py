"""Build the optimizer a :class:`RunConfig` names, and read every tensor's lr and momentum.

Grid optimizers are torch's own (SGD, Adam with ``betas``, AdaGrad). Auto optimizers come
from :mod:`autoopt_lab.optim` and need :func:`autoopt_lab.stats.track` hooks on the model.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .config import RunConfig

HparamReader = Callable[[], dict[str, torch.Tensor]]


@dataclass
class OptimizerBundle:
    """The optimizer, a context that keeps any per-sample hooks alive, and a reader that
    returns ``{tensor name: tensor([lr, momentum])}`` without a host sync."""

    optimizer: torch.optim.Optimizer
    hooks: contextlib.AbstractContextManager[Any]
    read_hparams: HparamReader


def _constant_reader(
    model: nn.Module, lr: float, momentum: float, device: torch.device
) -> HparamReader:
    value = torch.tensor([lr, momentum], dtype=torch.float32, device=device)
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    return lambda: {n: value for n in names}


def build_optimizer(config: RunConfig, model: nn.Module) -> OptimizerBundle:
    """The optimizer for ``config`` over ``model``'s parameters.

    For Adam the reported "momentum" is ``betas[0]``; AdaGrad has none (0).

    >>> from autoopt_lab.models import build_model
    >>> cfg = RunConfig("mnist", "sgd", lr=0.1, momentum=0.9)
    >>> bundle = build_optimizer(cfg, build_model("mnist_cnn"))
    >>> [round(v, 4) for v in bundle.read_hparams()["conv1.weight"].tolist()]
    [0.1, 0.9]
    """
    device = next(model.parameters()).device
    opt = config.optimizer
    if opt == "sgd":
        optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum)
        reader = _constant_reader(model, config.lr, config.momentum, device)
    elif opt == "adam":
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, betas=config.betas)
        reader = _constant_reader(model, config.lr, config.betas[0], device)
    elif opt == "adagrad":
        optimizer = torch.optim.Adagrad(model.parameters(), lr=config.lr)
        reader = _constant_reader(model, config.lr, 0.0, device)
    else:
        return _build_auto(config, model)
    return OptimizerBundle(optimizer, contextlib.nullcontext(), reader)


def _build_auto(config: RunConfig, model: nn.Module) -> OptimizerBundle:
    try:
        import autoopt_lab.optim as auto_optim
        from autoopt_lab.stats import track
    except ImportError as exc:  # the optimizer library is a separate part of the package
        raise ImportError(
            f"{config.optimizer} needs autoopt_lab.optim and autoopt_lab.stats: {exc}"
        ) from exc
    classes = {"autosgd": "AutoSGD", "autoadam": "AutoAdam", "autoadagrad": "AutoAdaGrad"}
    cls = getattr(auto_optim, classes[config.optimizer])
    kwargs: dict[str, Any] = {}
    if config.optimizer == "autoadam":
        kwargs["betas"] = config.betas
    optimizer = cls(model.named_parameters(), **kwargs)
    return OptimizerBundle(optimizer, track(model), optimizer.hparam_tensors)
