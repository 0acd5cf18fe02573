"""Measuring a model: error (%) and mean NLL on a split, in eval mode, in fixed-size batches.

>>> import torch
>>> net = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.LogSoftmax(1))
>>> err, nll = evaluate(net, torch.randn(5, 2), torch.tensor([0, 1, 2, 0, 1]))
>>> 0.0 <= err <= 100.0 and nll > 0
True
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["EVAL_BATCH", "evaluate"]

EVAL_BATCH = 256  # measured fastest for the MNIST CNN on CPU


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(error %, mean NLL) of ``model`` in eval mode; restores the previous mode."""
    was_training = model.training
    model.eval()
    wrong = torch.zeros((), device=x.device)
    loss = torch.zeros((), device=x.device, dtype=torch.float64)
    for start in range(0, len(y), EVAL_BATCH):
        out = model(x[start : start + EVAL_BATCH])
        target = y[start : start + EVAL_BATCH]
        wrong += (out.argmax(1) != target).sum()
        loss += F.nll_loss(out, target, reduction="sum").double()
    model.train(was_training)
    n = max(len(y), 1)
    return 100.0 * wrong.item() / n, loss.item() / n
