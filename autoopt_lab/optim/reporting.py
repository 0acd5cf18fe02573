"""What the Auto optimizers report: the lr and momentum each tensor used in its last step."""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import Tensor

from . import curvature as C
from . import gamma as G


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
        """The lr and momentum each tensor used in the last step, as Python floats.

        One host sync. Warns if steps were skipped because of non-finite gradients.

        >>> import torch, autoopt_lab
        >>> opt = autoopt_lab.AutoSGD(torch.nn.Linear(2, 1).named_parameters())
        >>> opt.hparams()["weight"]
        {'lr': 0.0010000000000000009, 'momentum': 0.0}
        """
        tensors = self.hparam_tensors()
        if not tensors:
            return {}
        values = torch.stack([t.cpu() for t in tensors.values()]).tolist()
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
        return {k: {"lr": v[0], "momentum": v[1]} for k, v in zip(tensors, values, strict=True)}
