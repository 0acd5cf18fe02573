"""Hessian estimates of Table 1, as the diagonal ``D`` of their inverse.

Each preconditioner is a pair of pure functions: ``init(param) -> state`` and
``inverse_hessian(state, g, step, options) -> (D or None, new_state)``. ``new_state`` is only
committed by the optimizer when the step is accepted, so a rejected step leaves no trace.

>>> import torch
>>> D, new = adagrad_inverse_hessian({"sum_sq_grad": torch.zeros(2)}, torch.tensor([3.0, 4.0]),
...                                  torch.tensor(0.0), {"eps": 0.0})
>>> D
tensor([0.3333, 0.2500])
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

State = dict[str, Tensor]
InverseHessian = Callable[[State, Tensor, Tensor, dict[str, Any]], tuple["Tensor | None", State]]


def sgd_init(param: Tensor) -> State:
    """SGD keeps no preconditioner state."""
    return {}


def sgd_inverse_hessian(state: State, g: Tensor, step: Tensor, opt: dict) -> tuple[None, State]:
    """SGD: ``H = I`` (returned as None, so no multiplications happen)."""
    return None, {}


def adagrad_init(param: Tensor) -> State:
    return {"sum_sq_grad": torch.zeros_like(param, memory_format=torch.preserve_format)}


def adagrad_inverse_hessian(
    state: State, g: Tensor, step: Tensor, opt: dict
) -> tuple[Tensor, State]:
    """Eq. (12): ``H = diag(sqrt(sum_s g_s^2) + eps)``, the sum including this step."""
    total = state["sum_sq_grad"] + g * g
    return 1.0 / (total.sqrt() + opt["eps"]), {"sum_sq_grad": total}


def adam_init(param: Tensor) -> State:
    return {"exp_avg_sq": torch.zeros_like(param, memory_format=torch.preserve_format)}


def adam_inverse_hessian(state: State, g: Tensor, step: Tensor, opt: dict) -> tuple[Tensor, State]:
    """Eq. (11): ``H = c * diag(sqrt(v_hat) + eps)``.

    ``v_hat`` is Adam's bias-corrected second moment including this step. ``c`` is
    ``1 - beta1^t`` (``bias_correction="step"``, the paper) or the constant ``1 - beta1``
    (``"constant"``, the authors' code).
    """
    beta1, beta2 = opt["betas"]
    t = step.to(torch.float64) + 1
    v = state["exp_avg_sq"] * beta2 + g * g * (1 - beta2)
    v_hat = v / (1 - beta2**t).to(g.dtype)
    scale = (1 - beta1**t).to(g.dtype) if opt["bias_correction"] == "step" else (1 - beta1)
    return 1.0 / (scale * (v_hat.sqrt() + opt["eps"])), {"exp_avg_sq": v}


def sgd_current(state: State, step: Tensor, opt: dict) -> None:
    """SGD's ``D`` as the last step used it: the identity."""
    return None


def adagrad_current(state: State, step: Tensor, opt: dict) -> Tensor:
    """AdaGrad's ``D`` as the last step used it (the stored sum includes that step)."""
    return 1.0 / (state["sum_sq_grad"].sqrt() + opt["eps"])


def adam_current(state: State, step: Tensor, opt: dict) -> Tensor:
    """Adam's ``D`` as the last step used it: eq. (11) with the stored second moment and
    ``step`` (the count of steps taken, per element)."""
    beta1, beta2 = opt["betas"]
    t = step.to(torch.float64).clamp_min(1)
    v_hat = state["exp_avg_sq"] / (1 - beta2**t).to(state["exp_avg_sq"].dtype)
    g = state["exp_avg_sq"]
    scale = (1 - beta1**t).to(g.dtype) if opt["bias_correction"] == "step" else (1 - beta1)
    return 1.0 / (scale * (v_hat.sqrt() + opt["eps"]))
