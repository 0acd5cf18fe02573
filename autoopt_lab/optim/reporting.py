"""What the Auto optimizers report: the lr and momentum each tensor used in its last step."""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import Tensor

from . import curvature as C
from . import decoupled as DC
from . import gamma as G
from .validation import takes_decoupled_step


class HparamReport:
    """Mixin of :class:`~autoopt_lab.optim.base.AutoOptimizer`: ``hparams()`` and friends."""

    param_groups: list[dict]
    state: dict

    def hparam_tensors(self) -> dict[Any, Tensor]:
        """``name -> tensor([lr, momentum])`` on the parameter's device; no host sync.

        The lr is the one the step used: the measured curvature, the trust region and the
        group's ``lr`` multiplier included. Tensors that have not taken a step yet report
        the warm start ``gamma0``.
        """
        out = {}
        for group in self.param_groups:
            names = group.get("param_names")
            for i, p in enumerate(group["params"]):
                key = names[i] if names else self._index(p)
                state = self.state.get(p)
                if takes_decoupled_step(group):
                    out[key] = _decoupled_hparams(group, state, p)
                    continue
                if state and "gamma" in state:
                    gam = state["gamma"]
                else:
                    gam = torch.tensor([group["gamma0"], 0.0], dtype=torch.float64, device=p.device)
                if state and "curvature" in state:
                    curv = state["curvature"].reshape(1)
                    gam = C.scale_gamma(gam.unsqueeze(0), curv, group["max_lr"])[0]
                if state and "trust_scale" in state:  # the step the trust region let through
                    gam = C.scale_gamma(gam.unsqueeze(0), 1 / state["trust_scale"].reshape(1))[0]
                lr = group.get("lr", 1.0)
                if lr != 1.0:
                    c = torch.full((1,), float("inf") if lr == 0 else 1 / lr,
                                   dtype=torch.float64, device=gam.device)
                    gam = C.scale_gamma(gam.unsqueeze(0), c)[0]
                out[key] = G.to_hparams(gam)
        return out

    def hparams(self) -> dict[Any, dict[str, float]]:
        """The lr and momentum each tensor used in the last step, as Python floats, and what
        they mean as a heavy ball: ``effective_momentum`` (``mu``, the weight of the previous
        step) and ``gain`` (``kappa``, the steady-state step per unit of ``D g``).

        ``lr`` and ``momentum`` are the step's own parameters: the paper's ``alpha`` and
        ``beta`` (eq. 10; ``mu = alpha beta``) or, for ``step="decoupled"``, the heavy ball's
        ``kappa (1 - mu)`` and ``mu`` (docs/decoupled.md).

        One host sync. Warns if steps were skipped because of non-finite gradients.

        >>> import torch, autoopt_lab
        >>> opt = autoopt_lab.AutoSGD(torch.nn.Linear(2, 1).named_parameters())
        >>> opt.hparams()["weight"]  # no step yet
        {'lr': 0.0, 'momentum': 0.0, 'effective_momentum': 0.0, 'gain': 0.0}
        """
        tensors = self.hparam_tensors()
        if not tensors:
            return {}
        both = torch.stack([t.cpu() for t in tensors.values()])
        mu, kappa = DC.effective(both[:, 0], both[:, 1])
        decoupled = torch.tensor([self._is_decoupled(k) for k in tensors])
        mu = torch.where(decoupled, both[:, 1], mu)
        kappa = torch.where(decoupled, both[:, 0] / (1 - both[:, 1]), kappa)
        values = torch.cat([both, mu.unsqueeze(1), kappa.unsqueeze(1)], 1).tolist()
        skips = [s["nonfinite_skips"].cpu() for s in self.state.values() if "nonfinite_skips" in s]
        if skips:
            n = int(torch.stack(skips).max())
            if n > getattr(self, "_warned_skips", 0):
                warnings.warn(
                    f"AutoOpt skipped {n} step(s) because of non-finite gradients or statistics",
                    RuntimeWarning,
                    stacklevel=2,
                )
                self._warned_skips = n
        return {
            k: {"lr": v[0], "momentum": v[1], "effective_momentum": v[2], "gain": v[3]}
            for k, v in zip(tensors, values, strict=True)
        }

    def _is_decoupled(self, key: Any) -> bool:
        """Whether the tensor reported as ``key`` takes the decoupled step."""
        index = 0
        for group in self.param_groups:
            names = group.get("param_names")
            for i in range(len(group["params"])):
                if (names[i] if names else index) == key:
                    return takes_decoupled_step(group)
                index += 1
        return False


def _decoupled_hparams(group: dict, state: dict | None, p: Tensor) -> Tensor:
    """``[kappa (1 - mu), mu]`` of the last decoupled step: the trust region and the group's
    ``lr`` included (0 before the first step)."""
    if not state or "gain" not in state:
        return torch.zeros(2, dtype=torch.float64, device=p.device)
    kappa = state["gain"] * group.get("lr", 1.0)
    if "trust_scale" in state:
        kappa = kappa * state["trust_scale"]
    alpha, beta = DC.heavy_ball(kappa.reshape(1).double(), state["momentum"].reshape(1))
    return torch.cat([alpha, beta])
