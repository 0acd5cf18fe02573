"""The loss of an online learner: a name (deep-river's names) or a callable ``loss(output, target)``.

Classifier (``output_is_logit=False``: the module returns log-probabilities; ``True``: logits,
turned into log-probabilities by ``log_softmax``):

* ``"cross_entropy"`` or ``"nll"`` (the default): the negative log-likelihood of the label;
* ``"binary_cross_entropy"``: one binary cross-entropy per output unit against the one-hot
  label (on the logits with ``output_is_logit=True``); ``"binary_cross_entropy_with_logits"``
  is the same name for a logit module;
* ``"mse"``: squared error of the probabilities against the one-hot label (Brier score);
* a callable: called as ``loss_fn(output, one_hot)`` with the module's raw output and float
  one-hot labels of the same shape (deep-river's convention for losses other than
  ``cross_entropy``; ``torch.nn.functional.cross_entropy`` takes them as they are).

Regressor: ``"mse"`` (the default), ``"l1"``, ``"huber"``, ``"smooth_l1"``, or a callable
``loss_fn(output, target)`` on two ``(batch,)`` tensors. A callable must be picklable (a
function of a module, not a lambda) for the learner to pickle.

>>> import torch
>>> out = torch.tensor([[2.0, 0.0]])
>>> loss = classifier_loss("cross_entropy", out, torch.tensor([0]), output_is_logit=True)
>>> round(float(loss), 4)
0.1269
>>> regressor_loss("l1", torch.tensor([1.0]), torch.tensor([3.0]))
tensor(2.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch.nn.functional as F
from torch import Tensor

__all__ = ["CLASSIFIER_LOSSES", "REGRESSOR_LOSSES", "check_loss", "classifier_loss",
           "regressor_loss"]

CLASSIFIER_LOSSES = ("cross_entropy", "nll", "binary_cross_entropy",
                     "binary_cross_entropy_with_logits", "mse")
REGRESSOR_LOSSES: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "mse": F.mse_loss, "l1": F.l1_loss, "huber": F.huber_loss, "smooth_l1": F.smooth_l1_loss,
}


def check_loss(loss_fn: Any, names: tuple[str, ...] | dict, output_is_logit: bool = True) -> None:
    """None, one of ``names``, or a callable; one clear error otherwise."""
    if loss_fn is None or (callable(loss_fn) and not isinstance(loss_fn, str)):
        return
    if not isinstance(loss_fn, str) or loss_fn not in names:
        raise ValueError(f"loss_fn must be None, a callable or one of {', '.join(names)}; "
                         f"got {loss_fn!r}")
    if loss_fn == "binary_cross_entropy_with_logits" and not output_is_logit:
        raise ValueError("loss_fn='binary_cross_entropy_with_logits' needs a module that "
                         "returns logits: pass output_is_logit=True")


def classifier_loss(loss_fn: Any, out: Tensor, labels: Tensor, *, output_is_logit: bool) -> Tensor:
    """The classifier's loss of the module output ``out`` for class indices ``labels``."""
    logp = F.log_softmax(out, dim=1) if output_is_logit else out
    if loss_fn in (None, "cross_entropy", "nll"):
        return F.nll_loss(logp, labels)
    one_hot = F.one_hot(labels, out.shape[1]).to(out.dtype)
    if callable(loss_fn):
        return loss_fn(out, one_hot)
    if loss_fn == "mse":
        return F.mse_loss(logp.exp(), one_hot)
    if output_is_logit:  # the binary cross-entropies
        return F.binary_cross_entropy_with_logits(out, one_hot)
    return F.binary_cross_entropy(logp.exp(), one_hot)


def regressor_loss(loss_fn: Any, out: Tensor, target: Tensor) -> Tensor:
    """The regressor's loss of ``out`` for ``target`` (both ``(batch,)``)."""
    if callable(loss_fn) and not isinstance(loss_fn, str):
        return loss_fn(out, target)
    return REGRESSOR_LOSSES[loss_fn or "mse"](out, target)
