"""Build the optimizer a :class:`RunConfig` names, and read every tensor's lr and momentum.

A thin layer over :mod:`autoopt_lab.optim.factory` (the one place optimizers are built by
name): it maps a config's fields to the factory's options and keeps the tracker alive.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..optim.factory import build_optimizer as _build
from ..optim.factory import hparam_tensors
from .config import RunConfig

HparamReader = Callable[[], dict[str, torch.Tensor]]


@dataclass
class OptimizerBundle:
    """The optimizer, a context that keeps any per-sample hooks alive, and a reader that
    returns ``{tensor name: tensor([lr, momentum])}`` without a host sync."""

    optimizer: torch.optim.Optimizer
    hooks: contextlib.AbstractContextManager[Any]
    read_hparams: HparamReader


def build_optimizer(config: RunConfig, model: nn.Module) -> OptimizerBundle:
    """The optimizer for ``config`` over ``model``'s parameters.

    For Adam the reported "momentum" is ``betas[0]``; AdaGrad has none (0).

    >>> from autoopt_lab.models import build_model
    >>> cfg = RunConfig("mnist", "sgd", lr=0.1, momentum=0.9)
    >>> bundle = build_optimizer(cfg, build_model("mnist_cnn"))
    >>> [round(v, 4) for v in bundle.read_hparams()["conv1.weight"].tolist()]
    [0.1, 0.9]
    """
    name = config.optimizer
    options: dict[str, Any] = {}
    if name in ("sgd", "adam", "adagrad"):
        options["lr"] = config.lr
    if name == "sgd":
        options["momentum"] = config.momentum
    if name in ("adam", "autoadam"):
        options["betas"] = config.betas
    optimizer, tracker = _build(name, model, **options)
    hooks = tracker if tracker is not None else contextlib.nullcontext()
    return OptimizerBundle(optimizer, hooks, lambda: hparam_tensors(optimizer, model))
