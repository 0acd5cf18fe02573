"""When and how the Auto optimizers measure curvature: the bookkeeping around
:mod:`autoopt_lab.optim.curvature` (which holds the maths).

:class:`CurvatureProbe` is a mixin of :class:`~autoopt_lab.optim.base.AutoOptimizer`. A group
with ``curvature="measured"`` takes its curvature from one of two sources
(``curvature_source``; docs/curvature.md):

* ``"hvp"``: every ``curvature_every`` steps (a host-side clock in the param group, no sync)
  one Hessian-vector product of the closure given to ``step()``, of either kind
  (:mod:`.closures`), along an independent direction;
* ``"secant"``: every step, from the gradient change along the last step, corrected for the
  previous batch's noise (needs no closure: the plain ``backward(); step()`` loop);
* ``"auto"`` (the default): ``"hvp"`` when a closure is given, ``"secant"`` otherwise.
"""

from __future__ import annotations

import warnings

import torch

from . import curvature as C
from . import gamma as G
from .batch import Batch
from .closures import closure_products
from .flat import flatten, segment_dots, segments
from .validation import measures_curvature


class CurvatureProbe:
    """Mixin: the measurement schedule, the probe direction and the state it keeps."""

    param_groups: list[dict]
    _closure: object

    def _source(self, group: dict) -> str:
        """The curvature source of a group at this step: "hvp", "secant" or "" (paper)."""
        if not measures_curvature(group):
            return ""
        source = group.get("curvature_source", "hvp")
        if source == "auto":
            return "hvp" if self._closure is not None else "secant"
        return source

    def _probe_due(self) -> list[dict]:
        """Groups that take a Hessian-vector product at this step (host-side clock)."""
        return [
            g
            for g in self.param_groups
            if self._source(g) == "hvp"
            and g.setdefault("curvature_clock", 0) % g["curvature_every"] == 0
        ]

    def _measure_curvature(self, prepared: list[Batch], due: list[dict]) -> None:
        """One Hessian-vector product for every due tensor; update each tensor's ``c``.

        The direction is the previous step's ``D p`` (``p`` the momentum buffer), which does
        not depend on this batch, so this batch's Hessian is independent of it; the first
        measurement, with no earlier step, uses this step's ``u1 = D g``.
        """
        if self._closure is None:
            raise C.ClosureError(
                "curvature_source='hvp' needs the batch loss for a Hessian-vector product "
                "every curvature_every steps, but no closure was given: call "
                "opt.step(closure) with a torch-style closure (zero_grad, forward, backward, "
                "return the loss) or opt.step(lambda: loss_fn(model(x), y)) after "
                "loss.backward(); or use curvature_source='secant' (or 'auto'), which needs "
                "no closure"
            )
        due_ids = {id(g) for g in due}
        chosen = [b for b in prepared if id(b.group) in due_ids]
        params, vectors, directions, quads = [], [], [], []
        for b in chosen:
            kept = [s.get("probe_direction") for s in b.states]
            if b.group["curvature_clock"] > 0 and b.group["curvature_probe"] == "gradient" and all(
                k is not None for k in kept
            ):  # the previous step's u1 = D g, kept by _keep_directions
                vectors.extend(kept)
                directions.append(flatten(kept))
                quads.append(torch.stack([s["probe_quad"] for s in b.states]))
            else:
                first = b.group["curvature_clock"] == 0
                v = b.flat if first else b.prev  # g now, else the previous estimator p
                u = v if b.inv_h is None else b.inv_h * v
                vectors.extend(
                    x.view_as(p) for x, p in zip(u.split(b.sizes), b.params, strict=True)
                )
                directions.append(u)
                quads.append(b.m[:, G.AGG] if first else b.m[:, G.APP])  # v^T D v
            params.extend(b.params)
        others = [p for g in self.param_groups for p in g["params"]]
        hv = closure_products(self._closure, params, [vectors], others=others)[0]
        start = 0
        for b, u, quad in zip(chosen, directions, quads, strict=True):
            hflat = flatten(hv[start : start + len(b.params)]).to(u.dtype)
            start += len(b.params)
            if b.group["weight_decay"]:
                hflat = hflat + b.group["weight_decay"] * u
            share = segment_dots(u, hflat, b.sizes)
            self._count_unusable(b, share)
            self._update_curvature(b, C.curvature_ratio(share, quad), b.group["curvature_ewma"])

    def _count_unusable(self, b: Batch, share: torch.Tensor) -> None:
        """A non-finite probe (a NaN loss from the closure) is counted as a skipped step and
        warned about once; the tensor keeps its previous ``c``."""
        bad = ~torch.isfinite(share)
        torch._foreach_add_([s["nonfinite_skips"] for s in b.states],
                            list(bad.to(torch.int64).unbind()))
        if not getattr(self, "_warned_probe", False) and bool(bad.any()):  # one sync per probe
            self._warned_probe = True
            warnings.warn(
                "AutoOpt: the closure's loss gave a non-finite Hessian-vector product; that "
                "curvature measurement was skipped (counted in the skipped steps) and each "
                "tensor keeps its previous curvature",
                RuntimeWarning,
                stacklevel=4,
            )

    def _measure_secant(self, prepared: list[Batch]) -> None:
        """Groups with the secant source: ``c`` from the gradient change along the last step."""
        for b in prepared:
            if self._source(b.group) != "secant":
                continue
            if not all("secant" in s for s in b.states):
                continue  # no step remembered yet (the first step, or a new tensor)
            # the last step was -last_update: s^T g_t tensor by tensor, no flat copy of it
            moved = -torch.stack([
                torch.dot(s["last_update"].reshape(-1), g)
                for s, g in zip(b.states, segments(b.flat, b.sizes), strict=True)
            ]).to(torch.float64)
            memory = torch.stack([s["secant"] for s in b.states])
            # each secant is one measurement, smoothed as one product is (curvature_ewma); a
            # longer memory (the same in steps as one product every curvature_every steps)
            # lagged the curvature: 1.2-1.6 points worse on Fashion-MNIST (docs/curvature.md)
            decay = b.group["curvature_ewma"]
            num, den, ratio = C.secant_means(
                moved, memory[:, 0], memory[:, 1], memory[:, 2], memory[:, 3], memory[:, 4],
                decay,
            )
            torch._foreach_copy_([s["secant"][3:] for s in b.states],
                                 list(torch.stack([num, den], 1).unbind()))
            old = torch.stack([s["curvature"] for s in b.states])
            count = torch.stack([s["curvature_count"] for s in b.states])
            valid = torch.isfinite(ratio)
            torch._foreach_copy_([s["curvature"] for s in b.states],
                                 list(torch.where(valid, ratio, old).unbind()))
            torch._foreach_copy_([s["curvature_count"] for s in b.states],
                                 list((count + valid.to(count.dtype)).unbind()))

    def _update_curvature(self, b: Batch, ratio: torch.Tensor, decay: float) -> None:
        """Fold one measurement into each tensor's smoothed ``c`` (NaN: no measurement)."""
        old = torch.stack([s["curvature"] for s in b.states])
        count = torch.stack([s["curvature_count"] for s in b.states])
        new, count = C.smooth_curvature(old, count, ratio, decay)
        torch._foreach_copy_([s["curvature"] for s in b.states], list(new.unbind()))
        torch._foreach_copy_([s["curvature_count"] for s in b.states], list(count.unbind()))

    def _keep_directions(self, prepared: list[Batch]) -> None:
        """``curvature_probe="gradient"``: keep ``u1 = D g`` and ``g^T D g`` of the step
        before each measurement, to measure along it with the next batch's Hessian."""
        for b in prepared:
            group = b.group
            if (
                self._source(group) != "hvp"
                or group["curvature_probe"] != "gradient"
                or (group["curvature_clock"] + 1) % group["curvature_every"] != 0
            ):
                continue
            u1 = b.flat if b.inv_h is None else b.inv_h * b.flat
            for k, (s, v, p) in enumerate(zip(b.states, u1.split(b.sizes), b.params,
                                              strict=True)):
                if "probe_direction" not in s:
                    s["probe_direction"] = torch.empty_like(p)
                    s["probe_quad"] = torch.zeros((), dtype=torch.float64, device=p.device)
                s["probe_direction"].copy_(v.view_as(p))
                s["probe_quad"].copy_(b.m[k, G.AGG])

