"""Model names, and which model the paper pairs with each data set."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from .cifar_lenet import CifarLeNet
from .mnist_cnn import MnistCNN

MODELS: dict[str, Callable[..., nn.Module]] = {
    "mnist_cnn": MnistCNN,
    "cifar_lenet": CifarLeNet,
}

_MODEL_FOR_DATASET = {
    "mnist": "mnist_cnn",
    "fashion-mnist": "mnist_cnn",
    "cifar10": "cifar_lenet",
}


def build_model(name: str, **kwargs: int) -> nn.Module:
    """A fresh model by name (``in_channels`` and ``num_classes`` may be overridden).

    >>> type(build_model("mnist_cnn")).__name__
    'MnistCNN'
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; allowed: {', '.join(MODELS)}")
    return MODELS[name](**kwargs)


def model_name_for(dataset: str) -> str:
    """The paper's model for a data set (Fashion-MNIST uses the MNIST CNN).

    >>> model_name_for("fashion-mnist")
    'mnist_cnn'
    """
    from autoopt_lab.data import canonical_name

    return _MODEL_FOR_DATASET[canonical_name(dataset)]
