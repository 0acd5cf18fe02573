"""A slow, literal float64 twin of the Auto optimizers, written straight from the equations.

It takes explicit per-sample gradients, forms ``G``, ``A`` and ``b`` as matrices (eqs. 15,
22-24), solves the constrained problem by enumerating the KKT systems of every face of the
triangle (an algorithm independent of the closed form in :mod:`.gamma`), and applies eqs.
(26), (14) and (9). With ``curvature="measured"`` it also takes a function returning
Hessian-vector products (the tests build it with ``torch.func``, an algorithm independent of
the fast path's double backward) and applies ``docs/curvature.md`` literally, tensor by
tensor. Tests run it beside the fast optimizers step by step.

>>> import torch
>>> ref = ReferenceAutoOpt([torch.zeros(2)], kind="sgd")
>>> ref.step([torch.tensor([[1.0, 0.0], [3.0, 0.0]])])
>>> ref.params[0]   # g = (2, 0), V = 1, A00 = 4: gamma1 = .25, lr = 1 - (.9 * .999 + .1 * .25)
tensor([-0.1518,  0.0000], dtype=torch.float64)
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor


def kkt_minimum(a: np.ndarray, b: np.ndarray, tol: float = 1e-9, max_lr: float = 1.0) -> np.ndarray:
    """Minimise ``-b.gamma + 1/2 gamma.A.gamma`` over the triangle by active-set enumeration.

    The triangle is ``gamma1 >= 1 - max_lr, gamma2 >= 0, gamma1 + gamma2 <= 1``; each face is
    an active constraint ``c.gamma = d``.
    """
    lo = 1.0 - max_lr
    _CONSTRAINTS = {
        "g1=lo": ([1.0, 0.0], lo),
        "g2=0": ([0.0, 1.0], 0.0),
        "sum=1": ([1.0, 1.0], 1.0),
    }
    best, best_q = None, np.inf
    for k in range(3):
        for active in itertools.combinations(_CONSTRAINTS, k):
            rows = [_CONSTRAINTS[c][0] for c in active]
            vals = [_CONSTRAINTS[c][1] for c in active]
            kkt = np.zeros((2 + k, 2 + k))
            kkt[:2, :2] = a
            rhs = np.zeros(2 + k)
            rhs[:2] = b
            for i, (r, v) in enumerate(zip(rows, vals, strict=True)):
                kkt[:2, 2 + i] = r
                kkt[2 + i, :2] = r
                rhs[2 + i] = v
            sol, *_ = np.linalg.lstsq(kkt, rhs, rcond=None)
            gam = sol[:2]
            if gam[0] < lo - tol or gam[1] < -tol or gam.sum() > 1 + tol:
                continue
            q = -b @ gam + 0.5 * gam @ a @ gam
            if q < best_q - 1e-15:
                best, best_q = gam, q
    return np.array([np.clip(best[0], lo, 1.0), np.clip(best[1], 0.0, 1.0)])


class ReferenceAutoOpt:
    """Float64 AutoSGD / AutoAdam / AutoAdaGrad on plain tensors, one tensor at a time."""

    def __init__(
        self,
        params: list[Tensor],
        *,
        kind: str = "sgd",
        ewma: float = 0.9,
        gamma0: float = 0.999,
        adapt_momentum: bool = True,
        weight_decay: float = 0.0,
        betas: tuple[float, float] = (0.9, 0.99),
        eps: float = 1e-8,
        bias_correction: str = "step",
        max_lr: float = 1.0,
        curvature: str = "paper",
        curvature_every: int = 10,
        curvature_ewma: float = 0.5,
        curvature_probe: str = "momentum",
        trust_ratio: float = 0.0,
    ) -> None:
        self.max_lr = max_lr
        self.trust = trust_ratio
        self.trust_scale = [1.0 for _ in params]
        self.probe = curvature_probe
        self.kept: list[tuple[Tensor, float]] | None = None
        self.curvature, self.every, self.c_decay = curvature, curvature_every, curvature_ewma
        self.c = [1.0 for _ in params]
        self.c_count = [0 for _ in params]
        self.clock = 0
        self.params = [p.detach().double().clone() for p in params]
        self.kind, self.v, self.adapt = kind, ewma, adapt_momentum
        self.wd, self.betas, self.eps, self.bc = weight_decay, betas, eps, bias_correction
        self.gamma = [np.array([gamma0, 0.0]) for _ in params]
        self.prev = [torch.zeros_like(p) for p in self.params]
        self.second = [torch.zeros_like(p).flatten() for p in self.params]
        self.t = [0 for _ in params]
        self.history: list[list[np.ndarray]] = []

    def _inverse_hessian(self, k: int, g: Tensor) -> Tensor:
        t = self.t[k] + 1
        if self.kind == "sgd":
            return torch.ones_like(g)
        if self.kind == "adagrad":
            self._next_second = self.second[k] + g**2
            return 1.0 / (self._next_second.sqrt() + self.eps)
        b1, b2 = self.betas
        self._next_second = b2 * self.second[k] + (1 - b2) * g**2
        v_hat = self._next_second / (1 - b2**t)
        c = (1 - b1**t) if self.bc == "step" else (1 - b1)
        return 1.0 / (c * (v_hat.sqrt() + self.eps))

    def _measure(self, grads: list[Tensor], hvp: Callable[[list[Tensor]], list[Tensor]]) -> None:
        """Update every tensor's ``c`` from one Hessian-vector product (docs/curvature.md)."""
        first = self.clock == 0
        dirs, quads = [], []
        if not first and self.probe == "gradient":  # the previous step's u1 = D g
            dirs = [u.view_as(p) for (u, _), p in zip(self.kept, self.params, strict=True)]
            quads = [q for _, q in self.kept]
        else:
            for k, g in enumerate(grads):
                d = self._inverse_hessian(k, g)
                v = g if first else self.prev[k].flatten()  # g, else the momentum p
                dirs.append((d * v).view_as(self.params[k]))
                quads.append(float(v @ (d * v)))
        hv = hvp(dirs)
        for k, (u, h, quad) in enumerate(zip(dirs, hv, quads, strict=True)):
            share = float((u * (h + self.wd * u)).sum())
            if not (share > 0 and quad > 0 and np.isfinite(share) and np.isfinite(quad)):
                continue
            ratio = share / quad
            if self.c_count[k] == 0:
                self.c[k] = ratio
            else:
                self.c[k] = float(np.exp(self.c_decay * np.log(self.c[k])
                                         + (1 - self.c_decay) * np.log(ratio)))
            self.c_count[k] += 1

    def step(
        self,
        per_sample: list[Tensor],
        hvp: Callable[[list[Tensor]], list[Tensor]] | None = None,
    ) -> None:
        """One step from per-sample gradients of each sample's own loss, ``(N, *shape)``.

        ``hvp(vectors) -> [H v]`` (one vector per tensor, the loss of this batch) is needed
        with ``curvature="measured"``.
        """
        measured = self.curvature == "measured"
        if measured:
            grads = [
                gi.double().flatten(1).mean(0) + self.wd * self.params[k].flatten()
                for k, gi in enumerate(per_sample)
            ]
            if self.clock % self.every == 0:
                self._measure(grads, hvp)
            if self.probe == "gradient" and (self.clock + 1) % self.every == 0:
                self.kept = []
                for k, g in enumerate(grads):
                    d = self._inverse_hessian(k, g)
                    self.kept.append((d * g, float(g @ (d * g))))
            self.clock += 1
        gammas = []
        for k, gi in enumerate(per_sample):
            gi = gi.double().flatten(1) + self.wd * self.params[k].flatten()
            n = gi.shape[0]
            if n < 2 or not torch.isfinite(gi).all():
                gammas.append(self.gamma[k])
                continue
            g = gi.mean(0)
            if not (g != 0).any():
                gammas.append(self.gamma[k])
                continue
            d = self._inverse_hessian(k, g)
            centred = gi - g
            var = float((centred * d * centred).sum() / (n * (n - 1)))  # eq. (22)
            prev = self.prev[k].flatten()
            gmat = torch.stack([g, g - prev], 1).numpy()  # eq. (15)
            a = gmat.T @ (d.numpy()[:, None] * gmat)  # eq. (24)
            b = np.array([var, var])  # eq. (23)
            # measured: the paper's problem on the Newton-step scale, lr_p <= c max_lr
            cap = min(1.0, self.c[k] * self.max_lr) if measured else self.max_lr
            if self.t[k] == 0 or not self.adapt:
                lo = 1.0 - cap
                g1 = 1.0 if a[0, 0] == 0 else min(max(var / a[0, 0], lo), 1.0)
                gamma_o = np.array([g1, 0.0])
            else:
                gamma_o = kkt_minimum(a, b, max_lr=cap)
            self.gamma[k] = (1 - self.v) * gamma_o + self.v * self.gamma[k]  # eq. (26)
            gamma = self.gamma[k]
            if measured:  # lr = lr_p / c (at most max_lr), momentum unchanged
                frac = 1 - gamma[0]
                c = max(self.c[k], frac / self.max_lr)
                gamma = np.array([1 - frac / c, gamma[1] / c])
            ghat = g - torch.from_numpy(gmat @ gamma)  # eq. (14)
            if self.trust > 0:  # the trust region: ||D ghat|| <= trust ||w||
                w_norm = float(self.params[k].norm())
                step_norm = float((d * ghat).norm())
                limit = self.trust * w_norm
                scale = limit / step_norm if w_norm > 0 and step_norm > limit else 1.0
                ghat = ghat * scale
                self.trust_scale[k] = scale
            self.params[k] -= (d * ghat).view_as(self.params[k])  # eq. (9)
            self.prev[k] = ghat.view_as(self.params[k])
            if self.kind != "sgd":
                self.second[k] = self._next_second
            self.t[k] += 1
            gammas.append(self.gamma[k])
        self.history.append([gm.copy() for gm in gammas])

    def hparams(self) -> list[tuple[float, float]]:
        """``(lr, momentum)`` per tensor."""
        out = []
        for k, (g1, g2) in enumerate(self.gamma):
            lr = 1 - g1
            mom = g2 / lr if lr > 0 else 0.0
            if self.curvature == "measured":
                lr = lr / max(self.c[k], lr / self.max_lr)
            out.append((lr * self.trust_scale[k], mom))
        return out
