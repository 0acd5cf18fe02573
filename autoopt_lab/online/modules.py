"""Module factories for the online learners: ``factory(n_features, n_outputs) -> nn.Module``.

A learner calls its factory once, at its first training step, with the number of features
(and, for a classifier, of classes) seen so far. Factories here are small frozen dataclasses
so that learners holding them clone, compare and pickle (a lambda would not pickle).

>>> import torch
>>> net = MLP(hidden=(16,))(4, 3)
>>> bool(torch.allclose(net(torch.zeros(2, 4)).exp().sum(dim=1), torch.ones(2)))
True
>>> Linear(log_probabilities=False)(4, 1)
Sequential(
  (0): Linear(in_features=4, out_features=1, bias=True)
)
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

__all__ = ["MLP", "Linear"]

_ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}


def _head(layers: list[nn.Module], log_probabilities: bool) -> nn.Sequential:
    if log_probabilities:
        layers.append(nn.LogSoftmax(dim=1))
    return nn.Sequential(*layers)


@dataclass(frozen=True)
class Linear:
    """One linear layer: multinomial logistic regression (``log_probabilities=True``, the
    classifier's default module) or linear regression (``False``, the regressor's)."""

    log_probabilities: bool = True

    def __call__(self, n_features: int, n_outputs: int) -> nn.Sequential:
        return _head([nn.Linear(n_features, n_outputs)], self.log_probabilities)


@dataclass(frozen=True)
class MLP:
    """A multi-layer perceptron: ``hidden`` widths, one ``activation`` (relu, tanh, gelu)."""

    hidden: tuple[int, ...] = (32,)
    activation: str = "relu"
    log_probabilities: bool = True

    def __post_init__(self) -> None:
        if self.activation not in _ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {sorted(_ACTIVATIONS)}, got {self.activation!r}"
            )
        if not self.hidden or any(int(h) < 1 for h in self.hidden):
            raise ValueError(f"hidden must be one or more positive widths, got {self.hidden!r}")

    def __call__(self, n_features: int, n_outputs: int) -> nn.Sequential:
        layers: list[nn.Module] = []
        width = n_features
        for h in self.hidden:
            layers += [nn.Linear(width, int(h)), _ACTIVATIONS[self.activation]()]
            width = int(h)
        layers.append(nn.Linear(width, n_outputs))
        return _head(layers, self.log_probabilities)
