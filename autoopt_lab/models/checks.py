"""Checks on what a model returns, run once before training starts.

The project's training loops use the NLL loss, which expects log-probabilities. A model that
returns logits trains into losses of -1e36 without a word; :func:`check_log_probabilities`
turns that into one clear error before the first step.

>>> import torch
>>> check_log_probabilities(torch.log_softmax(torch.randn(4, 3), 1))
>>> check_log_probabilities(torch.randn(4, 3), where="model 'net'")
Traceback (most recent call last):
...
ValueError: model 'net' must return log-probabilities ...
"""

from __future__ import annotations

import torch
from torch import Tensor


def check_log_probabilities(output: Tensor, *, where: str = "the model", atol: float = 1e-3) -> None:
    """Raise ``ValueError`` unless ``output`` is ``(N, classes)`` rows of log-probabilities.

    One host sync; call it on the first batch only. Rows must satisfy
    ``logsumexp(row) == 0`` (to ``atol``) and have no entry above 0.
    """
    if output.dim() != 2:
        raise ValueError(
            f"{where} must return a (batch, classes) tensor of log-probabilities, "
            f"got shape {tuple(output.shape)}"
        )
    out = output.detach().double()
    if not torch.isfinite(out).all():
        raise ValueError(f"{where} returned non-finite values on the first batch")
    lse = torch.logsumexp(out, dim=1)
    worst = float(lse.abs().max())
    if worst > atol or float(out.max()) > atol:
        raise ValueError(
            f"{where} must return log-probabilities (end it with "
            "torch.nn.LogSoftmax(dim=1) / F.log_softmax(x, dim=1)); the NLL loss on logits "
            f"is unbounded below. Its rows' logsumexp is up to {worst:.3g} away from 0."
        )
