"""Hessian estimates of Table 1, as the diagonal ``D`` of their inverse.

Each preconditioner is a pair of pure functions: ``init(param) -> state``,
``inverse_hessian(state, g, step, options, expand) -> (D or None, new_state)``. ``step`` holds
each tensor's step count, ``(P,)``, and ``expand(x, a, b)`` computes ``x * a + b`` in place
with ``a``, ``b`` one value per tensor, segment by segment over the flat ``x``, so that
per-tensor factors are formed once per tensor (no per-element float64 work). ``new_state`` is only
committed by the optimizer when the step is accepted, so a rejected step leaves no trace.
An optional ``work`` gives reused vectors for ``D`` (``"inv_h"``) and the new state
(``"pre"``): the same operations, with no fresh allocation.

>>> import torch
>>> D, new = adagrad_inverse_hessian({"sum_sq_grad": torch.zeros(2)}, torch.tensor([3.0, 4.0]),
...                                  torch.tensor(0.0), {"eps": 0.0})
>>> D
tensor([0.3333, 0.2500])
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

State = dict[str, Tensor]
InverseHessian = Callable[..., tuple["Tensor | None", State]]
#: ``work(name)``: a flat vector of ``g``'s size reused across steps (contents undefined).
Work = Callable[[str], Tensor]


def _same(x: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """The default ``expand``: ``x * a + b`` for one tensor (``a``, ``b`` of one element)."""
    return x.mul_(a.reshape(())).add_(b.reshape(()))


def sgd_init(param: Tensor) -> State:
    """SGD keeps no preconditioner state."""
    return {}


def sgd_inverse_hessian(
    state: State, g: Tensor, step: Tensor, opt: dict, expand: Callable = _same, *,
    work: Work | None = None,
) -> tuple[None, State]:
    """SGD: ``H = I`` (returned as None, so no multiplications happen)."""
    return None, {}


def adagrad_init(param: Tensor) -> State:
    return {"sum_sq_grad": torch.zeros_like(param, memory_format=torch.preserve_format)}


def adagrad_inverse_hessian(
    state: State, g: Tensor, step: Tensor, opt: dict, expand: Callable = _same, *,
    work: Work | None = None,
) -> tuple[Tensor, State]:
    """Eq. (12): ``H = diag(sqrt(sum_s g_s^2) + eps)``, the sum including this step."""
    if work is None:
        total = state["sum_sq_grad"] + g * g
        return 1.0 / (total.sqrt() + opt["eps"]), {"sum_sq_grad": total}
    d = torch.mul(g, g, out=work("inv_h"))  # the same operations, into reused vectors
    total = torch.add(state["sum_sq_grad"], d, out=work("pre"))
    torch.sqrt(total, out=d).add_(opt["eps"])
    return torch.reciprocal(d, out=d), {"sum_sq_grad": total}


def adam_init(param: Tensor) -> State:
    return {"exp_avg_sq": torch.zeros_like(param, memory_format=torch.preserve_format)}


def _adam_factors(step: Tensor, opt: dict, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """Per tensor ``(a, b)`` with ``D = 1 / (a sqrt(v) + b)`` for the step count ``step``:
    ``a = c / sqrt(1 - beta2^t)``, ``b = c eps`` (``c`` as in eq. 11)."""
    beta1, beta2 = opt["betas"]
    t = step.to(torch.float64)
    if opt["bias_correction"] == "step":
        scale = 1 - beta1**t
    else:
        scale = torch.full_like(t, 1 - beta1)
    return (scale / (1 - beta2**t).sqrt()).to(dtype), (scale * opt["eps"]).to(dtype)


def adam_inverse_hessian(
    state: State, g: Tensor, step: Tensor, opt: dict, expand: Callable = _same, *,
    work: Work | None = None,
) -> tuple[Tensor, State]:
    """Eq. (11): ``H = c * diag(sqrt(v_hat) + eps)``.

    ``v_hat`` is Adam's bias-corrected second moment including this step. ``c`` is
    ``1 - beta1^t`` (``bias_correction="step"``, the paper) or the constant ``1 - beta1``
    (``"constant"``, the authors' code). Written ``1 / (a sqrt(v) + b)`` with per-tensor
    ``a``, ``b`` (:func:`_adam_factors`).
    """
    beta2 = opt["betas"][1]
    a, b = _adam_factors(step + 1, opt, g.dtype)
    if work is None:
        v = torch.addcmul(state["exp_avg_sq"] * beta2, g, g, value=1 - beta2)
        return expand(v.sqrt(), a, b).reciprocal_(), {"exp_avg_sq": v}
    v = torch.mul(state["exp_avg_sq"], beta2, out=work("pre"))  # the same operations,
    v.addcmul_(g, g, value=1 - beta2)  # into reused vectors
    return expand(torch.sqrt(v, out=work("inv_h")), a, b).reciprocal_(), {"exp_avg_sq": v}


for _f in (sgd_inverse_hessian, adagrad_inverse_hessian, adam_inverse_hessian):
    _f.takes_work = True  # type: ignore[attr-defined]  # accepts work= (see batch.py)
