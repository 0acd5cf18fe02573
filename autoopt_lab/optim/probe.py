"""When and along what the Auto optimizers measure curvature: the bookkeeping around
:mod:`autoopt_lab.optim.curvature` (which holds the maths).

:class:`CurvatureProbe` is a mixin of :class:`~autoopt_lab.optim.base.AutoOptimizer`: every
``curvature_every`` steps (a host-side clock in the param group, no sync) it runs one
Hessian-vector product of the user's loss closure along an independent direction and
updates each tensor's smoothed ratio ``c`` (docs/curvature.md).
"""

from __future__ import annotations

import torch

from . import curvature as C
from . import gamma as G
from .flat import flatten


class CurvatureProbe:
    """Mixin: the measurement schedule, the probe direction and the state it keeps."""

    param_groups: list[dict]
    _closure: object
    _closure_computed_grads: bool

    def _probe_due(self) -> list[dict]:
        """Param groups that measure curvature at this step (host-side clock, no sync)."""
        return [
            g
            for g in self.param_groups
            if g.get("curvature", "paper") == "measured"
            and g.setdefault("curvature_clock", 0) % g["curvature_every"] == 0
        ]

    def _measure_curvature(self, prepared: list, due: list[dict]) -> None:
        """One Hessian-vector product for every due tensor; update each tensor's ``c``.

        The direction is the previous step's ``D p`` (``p`` the momentum buffer), which does
        not depend on this batch, so this batch's Hessian is independent of it; the first
        measurement, with no earlier step, uses this step's ``u1 = D g``.
        """
        closure = self._closure
        if closure is None or self._closure_computed_grads:
            why = (
                "no closure was given"
                if closure is None
                else "the closure computed the gradients itself (it called backward())"
            )
            raise C.ClosureError(
                f"curvature='measured' needs the batch loss for a Hessian-vector product every "
                f"curvature_every steps, but {why}. After loss.backward(), call "
                "opt.step(lambda: loss_fn(model(x), y)) (the closure must not call backward), "
                "or construct the optimizer with curvature='paper'"
            )
        due_ids = {id(g) for g in due}
        chosen = [(m, work) for m, work, _ in prepared if id(work[0]) in due_ids]
        params, vectors, directions, quads = [], [], [], []
        for m, (group, ps, states, _, sizes, flat, prev, inv_h, *_) in chosen:
            kept = [s.get("probe_direction") for s in states]
            if group["curvature_clock"] > 0 and group["curvature_probe"] == "gradient" and all(
                k is not None for k in kept
            ):  # the previous step's u1 = D g, kept by _keep_directions
                vectors.extend(kept)
                directions.append(flatten(kept))
                quads.append(torch.stack([s["probe_quad"] for s in states]))
            else:
                first = group["curvature_clock"] == 0
                v = flat if first else prev  # g now, else the previous estimator p
                u = v if inv_h is None else inv_h * v
                vectors.extend(x.view_as(p) for x, p in zip(u.split(sizes), ps, strict=True))
                directions.append(u)
                quads.append(m[:, G.AGG] if first else m[:, G.APP])  # v^T D v
            params.extend(ps)
        hv = C.hessian_vector_product(closure, params, vectors)
        start = 0
        for (_, (group, ps, states, seg, *_)), u, quad in zip(chosen, directions, quads,
                                                              strict=True):
            hflat = flatten(hv[start : start + len(ps)]).to(u.dtype)
            start += len(ps)
            if group["weight_decay"]:
                hflat = hflat + group["weight_decay"] * u
            share = torch.zeros(len(ps), dtype=torch.float64, device=u.device)
            share.index_add_(0, seg, (u * hflat).to(torch.float64))
            ratio = C.curvature_ratio(share, quad)
            old = torch.stack([s["curvature"] for s in states])
            count = torch.stack([s["curvature_count"] for s in states])
            new, count = C.smooth_curvature(old, count, ratio, group["curvature_ewma"])
            for k, s in enumerate(states):
                s["curvature"].copy_(new[k])
                s["curvature_count"].copy_(count[k])

    def _keep_directions(self, prepared: list) -> None:
        """``curvature_probe="gradient"``: keep ``u1 = D g`` and ``g^T D g`` of the step
        before each measurement, to measure along it with the next batch's Hessian."""
        for m, (group, ps, states, _, sizes, flat, _, inv_h, *_), _ in prepared:
            if (
                group.get("curvature") != "measured"
                or group["curvature_probe"] != "gradient"
                or (group["curvature_clock"] + 1) % group["curvature_every"] != 0
            ):
                continue
            u1 = flat if inv_h is None else inv_h * flat
            for k, (s, v, p) in enumerate(zip(states, u1.split(sizes), ps, strict=True)):
                if "probe_direction" not in s:
                    s["probe_direction"] = torch.empty_like(p)
                    s["probe_quad"] = torch.zeros((), dtype=torch.float64, device=p.device)
                s["probe_direction"].copy_(v.view_as(p))
                s["probe_quad"].copy_(m[k, G.AGG])

