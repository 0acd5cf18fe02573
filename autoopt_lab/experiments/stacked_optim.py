"""Stacked optimizers: SGD (momentum), Adam or AdaGrad on ``(K, ...)`` parameters, one set of
hyper-parameters per member, with ``torch.optim``'s maths (the vectorised sweep).

Which registered optimizers can be stacked, and as which kind, is the registry's
``OptimizerSpec.vectorized`` (``"sgd"``, ``"adam"`` or ``"adagrad"``).

>>> p = torch.nn.Parameter(torch.ones(2, 3))
>>> opt = StackedOptimizer([p], "sgd", lrs=[0.1, 0.2], momenta=[0.0, 0.9])
>>> p.grad = torch.ones(2, 3); opt.step(); [round(v, 4) for v in p[:, 0].tolist()]
[0.9, 0.8]
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch
from torch import Tensor

#: The kinds of stacked optimizer (values of ``OptimizerSpec.vectorized``).
STACKED_KINDS: tuple[str, ...] = ("sgd", "adam", "adagrad")


def _per_member(values: Sequence[float], p: Tensor) -> Tensor:
    return torch.tensor(values, dtype=p.dtype, device=p.device).view(-1, *([1] * (p.dim() - 1)))


class StackedOptimizer:
    """SGD with momentum, Adam or AdaGrad on stacked ``(K, ...)`` parameters, with member
    ``k`` using ``lrs[k]`` (and ``momenta[k]`` for SGD). Same maths as ``torch.optim``'s
    defaults (no weight decay, dampening, Nesterov, AMSGrad or lr decay).

    >>> p = torch.nn.Parameter(torch.ones(2, 3))
    >>> opt = StackedOptimizer([p], "sgd", lrs=[0.1, 0.2], momenta=[0.0, 0.9])
    >>> p.grad = torch.ones(2, 3); opt.step(); [round(v, 4) for v in p[:, 0].tolist()]
    [0.9, 0.8]
    """

    def __init__(
        self,
        params: Iterable[Tensor],
        kind: str,
        *,
        lrs: Sequence[float],
        momenta: Sequence[float] | None = None,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float | None = None,
    ) -> None:
        if kind not in STACKED_KINDS:
            raise ValueError(
                f"unknown stacked optimizer {kind!r}; allowed: {', '.join(STACKED_KINDS)}"
            )
        self.params = list(params)
        self.kind = kind
        self.k = len(lrs)
        if kind == "sgd" and (momenta is None or len(momenta) != self.k):
            raise ValueError("sgd needs one momentum per learning rate")
        for p in self.params:
            if p.shape[0] != self.k:
                raise ValueError(f"parameter of shape {tuple(p.shape)} has no K={self.k} axis")
        self.betas = betas
        self.eps = eps if eps is not None else (1e-10 if kind == "adagrad" else 1e-8)
        self.lr = [_per_member(lrs, p) for p in self.params]
        self.momentum = [_per_member(momenta or [0.0] * self.k, p) for p in self.params]
        self.step_count = 0
        self.state: list[dict[str, Tensor]] = [{} for _ in self.params]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        self.step_count += 1
        t = self.step_count
        for p, lr, mom, st in zip(self.params, self.lr, self.momentum, self.state, strict=True):
            g = p.grad
            if g is None:
                continue
            if self.kind == "sgd":
                buf = st.get("momentum_buffer")
                if buf is None:
                    buf = st["momentum_buffer"] = g.clone()
                else:
                    buf.mul_(mom).add_(g)
                p.sub_(lr * buf)
            elif self.kind == "adam":
                b1, b2 = self.betas
                if not st:
                    st["exp_avg"] = torch.zeros_like(p)
                    st["exp_avg_sq"] = torch.zeros_like(p)
                m, v = st["exp_avg"], st["exp_avg_sq"]
                m.lerp_(g, 1 - b1)
                v.mul_(b2).addcmul_(g, g, value=1 - b2)
                bc1 = 1 - b1**t
                bc2_sqrt = math.sqrt(1 - b2**t)
                denom = (v.sqrt() / bc2_sqrt).add_(self.eps)
                p.sub_((lr / bc1) * m / denom)
            else:  # adagrad
                if not st:
                    st["sum"] = torch.zeros_like(p)
                s = st["sum"]
                s.addcmul_(g, g, value=1)
                p.sub_(lr * g / s.sqrt().add_(self.eps))

