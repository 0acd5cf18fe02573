"""A slow, literal float64 twin of the decoupled step (docs/decoupled.md), tensor by tensor.

It forms the gain's terms from explicit per-sample gradients (``V`` by eq. 22 from the
centred samples, not from ``S``) and applies the step as written, one tensor at a time.
Tests run it beside the fast optimizers step by step.

>>> import torch
>>> ref = ReferenceDecoupled([torch.zeros(2)], kind="sgd", adapt_momentum=False)
>>> ref.step([torch.tensor([[1.0, 0.0], [3.0, 0.0]])])  # g = (2, 0), V = 1, p = 0, mu = 0.9
>>> ref.params[0]  # kappa = (4 - 1) / (0.1 * 4) * (1 - 0.9): the step is kappa * 0.1 * g
tensor([-0.1500,  0.0000], dtype=torch.float64)
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from .twin import ReferenceAutoOpt


class ReferenceDecoupled(ReferenceAutoOpt):
    """Float64 ``step="decoupled"`` AutoSGD / AutoAdam / AutoAdaGrad on plain tensors."""

    def __init__(self, params: list[Tensor], *, momentum: float = 0.9,
                 momentum_batch: float = 16.0, **options) -> None:
        super().__init__(params, **options)
        self.mu, self.mu_batch = momentum, momentum_batch
        self.terms = [(0.0, 0.0) for _ in params]
        self.mus = [0.0 for _ in params]
        self.kappa = [0.0 for _ in params]
        self.initial = [float(p.norm()) for p in self.params]

    def step(
        self,
        per_sample: list[Tensor],
        hvp: Callable[[list[Tensor]], list[Tensor]] | None = None,
    ) -> None:
        """One step from per-sample gradients, ``(N, *shape)`` per tensor."""
        if self.curvature == "measured":
            grads = [gi.double().flatten(1).mean(0) + self.wd * self.params[k].flatten()
                     for k, gi in enumerate(per_sample)]
            if self.clock % self.every == 0:
                self._measure(grads, hvp)
            self.clock += 1
        v = self.v
        for k, gi in enumerate(per_sample):
            gi = gi.double().flatten(1) + self.wd * self.params[k].flatten()
            n = gi.shape[0]
            g = gi.mean(0)
            if n < 2 or not torch.isfinite(gi).all() or not (g != 0).any():
                continue
            d = self._inverse_hessian(k, g)
            centred = gi - g
            var = float((centred * d * centred).sum() / (n * (n - 1)))  # eq. (22)
            p = self.prev[k].flatten()
            agg = float(g @ (d * g))
            s_old, q_old = self.terms[k]
            # the momentum's memory 1 / (1 - mu) in proportion to the batch
            mu = min(self.mu, max(0.0, 1 - self.mu_batch / n)) if self.adapt else self.mu
            self.mus[k] = mu
            ghat = (1 - mu) * g + mu * p
            signal = (1 - mu) * (agg - var) + mu * float(g @ (d * p))
            quad = float(ghat @ (d * ghat))
            s_new = v * max(s_old, 0.0) + (1 - v) * signal  # no debt carried
            q_new = v * q_old + (1 - v) * quad
            self.terms[k] = (s_new, q_new)
            c = self.c[k] if self.curvature == "measured" else 1.0
            kappa = s_new / (c * q_new) if s_new > 0 and c * q_new > 0 else 0.0
            kappa *= 1 - v ** (self.t[k] + 1)
            self.kappa[k] = kappa
            step = kappa * d * ghat
            if self.trust > 0:  # ||step|| <= trust max(||w||, ||w_0||)
                scale_w = max(float(self.params[k].norm()), self.initial[k])
                limit = self.trust * scale_w
                norm = float(step.norm())
                scale = limit / norm if scale_w > 0 and norm > limit else 1.0
                step = step * scale
                self.trust_scale[k] = scale
            self.params[k] -= step.view_as(self.params[k])
            self.prev[k] = ghat.view_as(self.params[k])
            if self.kind != "sgd":
                self.second[k] = self._next_second
            self.t[k] += 1

    def hparams(self) -> list[tuple[float, float]]:
        """``(kappa (1 - mu), mu)`` per tensor: the heavy ball's lr and momentum."""
        return [(kap * self.trust_scale[k] * (1 - self.mus[k]), self.mus[k])
                for k, kap in enumerate(self.kappa)]
