"""BatchNorm in training mode: per-sample *contributions* (``track(model, batchnorm=...)``).

In training mode BatchNorm normalises with the batch's mean and variance, so a sample's output
depends on the whole batch and a per-sample gradient is not defined. With
``batchnorm="contributions"`` the hook engine records, for every parameter, the contribution
of each sample position to the batch gradient instead:

* BatchNorm's ``weight``/``bias``: ``dz_i * xhat_i`` and ``dz_i`` (summed over positions), with
  ``xhat`` normalised by the batch statistics, as the layer computed it;
* a layer before a BatchNorm: its usual rule applied to the gradient that reached sample
  ``i``'s position, which includes the terms of the batch mean and variance.

These sum exactly to the batch gradient, but their spread is not the spread of independent
per-sample gradients. Measured on a small CNN with two BatchNorm2d layers (Fashion-MNIST,
N = 64; the truth is the variance of the batch gradient over 300 batches), eq. (22)'s ``V``
from contributions was 1.41x the truth at initialisation and 1.69x after 300 SGD steps
(mean of 30 batches); 8 micro-batch splits, each its own forward, gave 1.06x and 1.10x with
3-6x the batch-to-batch spread and 8 forwards. So ``"refuse"`` stays the default (an
:class:`~autoopt_lab.stats.rules.UnsupportedModuleError` naming this option); with
``"contributions"`` the Auto optimizers see a noise about 1.5x too large.

>>> import torch
>>> from autoopt_lab.stats import track
>>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
>>> with track(model, batchnorm="contributions"):
...     model(torch.randn(6, 3)).pow(2).mean().backward()
...     model[1].weight.autoopt_stats.batch_size
6
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from .rules import LayerRule

CHOICES = ("refuse", "contributions")


def uses_batch_statistics(m: nn.Module) -> bool:
    """True for a BatchNorm layer that normalises with the batch's own statistics."""
    return isinstance(m, nn.modules.batchnorm._BatchNorm) and (
        m.training or m.running_mean is None
    )


def _contributions(m: nn.Module, a: Tensor, dz: Tensor) -> dict[str, Tensor]:
    xhat = F.batch_norm(a, None, None, training=True, momentum=0.0, eps=m.eps)
    n, c = a.shape[:2]
    out = {
        "weight": (dz * xhat).reshape(n, c, -1).sum(2),
        "bias": dz.reshape(n, c, -1).sum(2),
    }
    return {k: v for k, v in out.items() if getattr(m, k) is not None and getattr(m, k).requires_grad}


#: The rule the tracker uses for a BatchNorm layer in training mode with ``"contributions"``.
CONTRIBUTIONS = LayerRule(per_sample=_contributions)
