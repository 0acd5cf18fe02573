"""Bookkeeping shared by the Auto optimizers: groups, state, validation, ``step()``.

The maths lives in :mod:`autoopt_lab.optim.gamma` and
:mod:`autoopt_lab.optim.preconditioners`; this class gathers each tensor's gradient and
per-sample statistics, calls them, and commits the results.
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

from ..stats import record
from . import curvature as C
from . import gamma as G
from .flat import flatten as _flatten
from .flat import unflatten as _unflatten
from .preconditioners import InverseHessian
from .probe import CurvatureProbe
from .validation import ADDED_OPTIONS
from .validation import check_state_dict as _check_state_dict
from .validation import validate as _validate

#: State kept in float64 whatever the parameter dtype (torch would cast it on load).
_EXACT_KEYS = ("gamma", "curvature", "probe_quad", "trust_scale")
#: Integer counters (torch would cast them to the parameter dtype on load).
_INT_KEYS = ("nonfinite_skips", "curvature_count")
#: State every Auto optimizer keeps; anything else belongs to the preconditioner.
_BASE_KEYS = (
    "step",
    "gamma",
    "momentum_buffer",
    "nonfinite_skips",
    "curvature",
    "curvature_count",
    "probe_direction",
    "probe_quad",
    "trust_scale",
)


class AutoOptimizer(CurvatureProbe, torch.optim.Optimizer):
    """Base class: AutoOpt learning rate and momentum per tensor on top of a preconditioner.

    Subclasses set ``_init_state`` and ``_inverse_hessian`` and add their own options.
    Needs per-sample statistics: call :func:`autoopt_lab.track` on the model (or use
    :func:`autoopt_lab.stats.functional_backward`) before training.
    """

    _init_state: Callable[[Tensor], dict[str, Tensor]]
    _inverse_hessian: InverseHessian
    _needs_step: bool = False  # does the preconditioner read the step count?

    def __init__(
        self,
        params: Iterable[Any],
        defaults: dict[str, Any],
    ) -> None:
        _validate(defaults)
        super().__init__(params, defaults)
        for group in self.param_groups:
            _validate(group)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        _validate(self.param_groups[-1])

    # -- naming ---------------------------------------------------------------------------
    def _names(self) -> list[tuple[Any, Tensor]]:
        """``(name, param)`` for every parameter: its name, or its global index."""
        out, index = [], 0
        for group in self.param_groups:
            names = group.get("param_names")
            for i, p in enumerate(group["params"]):
                out.append((names[i] if names else index, p))
                index += 1
        return out

    # -- torch.optim API -------------------------------------------------------------------
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Zero the gradients and forget recorded per-sample statistics."""
        super().zero_grad(set_to_none=set_to_none)
        for group in self.param_groups:
            for p in group["params"]:
                record.clear(p)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """As torch's, but checked first and exact: a state from another optimizer class or
        from differently named or shaped tensors is a ``ValueError`` naming the first
        mismatch (nothing is loaded), and float64 state (``gamma``, ``curvature``) stays
        float64 for a bit-for-bit resume."""
        _check_state_dict(self, state_dict)
        exact = {
            idx: {k: v.clone() for k, v in s.items() if k in _EXACT_KEYS or k in _INT_KEYS}
            for idx, s in state_dict["state"].items()
        }
        super().load_state_dict(state_dict)
        for group in self.param_groups:  # a state saved before an option existed
            for key, value in ADDED_OPTIONS.items():
                group.setdefault(key, value)
        params = [p for g in self.param_groups for p in g["params"]]
        for idx, values in exact.items():
            p = params[idx]
            for k, v in values.items():
                dtype = torch.int64 if k in _INT_KEYS else torch.float64
                self.state[p][k] = v.to(device=p.device, dtype=dtype)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One AutoOpt step (Algorithm 1) for every tensor that has a gradient.

        ``closure`` returns the batch loss *without* calling ``backward()``; with
        ``curvature="measured"`` it is called every ``curvature_every`` steps for one
        Hessian-vector product (and it is required then). If no gradients were computed
        before ``step()``, a torch-style closure (zero_grad, forward, backward, return the
        loss) is called first to compute them, as ``torch.optim`` does.
        """
        loss = None
        if closure is not None and not self._has_statistics():
            with torch.enable_grad():
                loss = closure()
            self._closure_computed_grads = True
        else:
            self._closure_computed_grads = False
        self._closure = closure
        entries = self._collect()
        if not entries:
            return loss
        small = sorted({st.batch_size for *_, st in entries if st.batch_size < 2})
        if small:
            warnings.warn(
                f"AutoOpt skipped a step: a batch of {small[0]} sample(s) has no variance "
                "estimate (eq. 22 needs N >= 2); parameters and state are unchanged",
                RuntimeWarning,
                stacklevel=2,
            )
        else:
            batches: dict[tuple, list] = defaultdict(list)
            for e in entries:
                batches[(e[1].device, e[1].dtype, id(e[0]))].append(e)
            self._step_batches(list(batches.values()))
        for _, p, _, _ in entries:
            record.clear(p)
        return loss

    # -- the step ---------------------------------------------------------------------------
    def _has_statistics(self) -> bool:
        return any(
            record.peek(p) is not None for g in self.param_groups for p in g["params"]
        )

    def _collect(self) -> list[tuple[dict, Tensor, Any, record.SampleStats]]:
        entries = []
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                st = record.peek(p)
                if st is not None and not st.stale and not p.grad.is_sparse:
                    entries.append((group, p, None, st))  # the common case: no name lookup
                    continue
                name = next(n for n, q in self._names() if q is p)
                if p.grad.is_sparse:
                    raise RuntimeError(f"{name}: AutoOpt does not support sparse gradients")
                if st is None:
                    raise RuntimeError(
                        f"parameter {name!r} has a gradient but no per-sample statistics: call "
                        "autoopt_lab.track(model) before the forward pass (or compute the "
                        "gradients with autoopt_lab.stats.functional_backward)"
                    )
                if st.stale:
                    raise RuntimeError(
                        f"parameter {name!r} received two backward passes since the last "
                        "step(): AutoOpt needs exactly one backward per step (gradient "
                        "accumulation is not supported); call opt.zero_grad() before each "
                        "forward pass"
                    )
        return entries

    def _segments(self, params: list[Tensor]) -> tuple[Tensor, list[int]]:
        """Element -> tensor index for a flat concatenation of ``params`` (cached)."""
        sizes = [p.numel() for p in params]
        key = (params[0].device, tuple(id(p) for p in params))
        cache = self.__dict__.setdefault("_segment_cache", {})
        if key not in cache:
            idx = torch.arange(len(params), device=params[0].device)
            cache[key] = idx.repeat_interleave(torch.tensor(sizes, device=params[0].device))
        return cache[key], sizes

    def _step_batches(self, batches: list[list]) -> None:
        """Every batch shares device, dtype and param group: it is handled as flat tensors."""
        prepared = []
        for entries in batches:
            group = entries[0][0]
            params = [p for _, p, _, _ in entries]
            states = []
            for p in params:
                state = self.state[p]
                if not state:
                    state["step"] = torch.zeros((), dtype=torch.float32, device=p.device)
                    state["gamma"] = torch.tensor(
                        [group["gamma0"], 0.0], dtype=torch.float64, device=p.device
                    )
                    state["momentum_buffer"] = torch.zeros_like(p)
                    state["nonfinite_skips"] = torch.zeros((), dtype=torch.int64, device=p.device)
                    if group["trust_ratio"] > 0:
                        state["trust_scale"] = torch.ones((), dtype=torch.float64, device=p.device)
                    if group.get("curvature", "paper") == "measured":
                        state["curvature"] = torch.ones((), dtype=torch.float64, device=p.device)
                        state["curvature_count"] = torch.zeros(
                            (), dtype=torch.int64, device=p.device
                        )
                    state.update(type(self)._init_state(p))
                states.append(state)
            seg, sizes = self._segments(params)
            scales = [st.grad_scale for *_, st in entries]
            flat = _flatten([p.grad for p in params])
            if any(sc != 1.0 for sc in scales):
                flat = flat * torch.tensor(scales, dtype=flat.dtype, device=flat.device)[seg]
            data_grad = flat
            if group["weight_decay"]:
                flat = flat + group["weight_decay"] * _flatten(params)
            steps = torch.stack([s["step"] for s in states])
            pre_keys = [k for k in states[0] if k not in _BASE_KEYS]
            pre_state = {k: _flatten([s[k] for s in states]) for k in pre_keys}
            step_e = steps[seg] if self._needs_step else steps
            inv_h, new_pre = type(self)._inverse_hessian(pre_state, flat, step_e, group)
            prev = _flatten([s["momentum_buffer"] for s in states])
            sizes_n = {st.batch_size for *_, st in entries}
            n = (
                float(sizes_n.pop())
                if len(sizes_n) == 1
                else torch.tensor(
                    [float(st.batch_size) for *_, st in entries],
                    dtype=torch.float64,
                    device=flat.device,
                )
            )
            m = G.segment_moments(
                flat,
                prev,
                _flatten([st.sum_sq for *_, st in entries]),
                n,
                seg,
                len(params),
                inv_h,
                data_grad=data_grad,
            )
            work = (group, params, states, seg, sizes, flat, prev, inv_h, pre_state, new_pre, steps)
            prepared.append((m, work, torch.isfinite(m).all()))
        due = self._probe_due()
        if due:
            self._measure_curvature(prepared, due)
        self._keep_directions(prepared)
        for group in self.param_groups:
            if group.get("curvature", "paper") == "measured":
                group["curvature_clock"] = group.get("curvature_clock", 0) + 1
        ok = prepared[0][2]
        for _, _, flag in prepared[1:]:
            ok = ok & flag.to(ok.device)
        for m, work, _ in prepared:
            self._apply(m, work, ok.to(m.device))

    def _apply(self, m: Tensor, work: tuple, ok: Tensor) -> None:
        group, params, states, seg, sizes, flat, prev, inv_h, pre_state, new_pre, steps = work
        momentum = (steps > 0) & bool(group["adapt_momentum"])
        m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
        solve = G.solve_gamma_authors if group["solver"] == "authors" else G.solve_gamma
        measured = group.get("curvature", "paper") == "measured"
        if measured:
            # H-bar = c H-hat: the paper's problem in units of the measured Newton step
            curv = torch.stack([s["curvature"] for s in states])
            # lr = (Newton fraction) / c <= max_lr, and the fraction stays in [0, 1]
            gamma_o = solve(m, momentum, max_lr=(curv * group["max_lr"]).clamp(max=1.0))
        else:
            gamma_o = solve(m, momentum, max_lr=group["max_lr"])
        gamma_prev = torch.stack([s["gamma"] for s in states])
        active = ok & (m[:, G.AGG] > 0)  # a zero gradient carries no information: skip it
        gamma_state = torch.where(
            active.unsqueeze(-1), G.ewma(gamma_o, gamma_prev, group["ewma"]), gamma_prev
        )
        gamma_e = C.scale_gamma(gamma_state, curv, group["max_lr"]) if measured else gamma_state
        # eq. (14) per tensor; an inactive tensor keeps prev (gamma = (0, 1)) and does not move
        keep = torch.tensor([0.0, 1.0], dtype=gamma_e.dtype, device=gamma_e.device)
        ghat = G.estimator(flat, prev, torch.where(active.unsqueeze(-1), gamma_e, keep), seg)
        act = active.to(flat.dtype)[seg]
        update = (ghat if inv_h is None else inv_h * ghat) * act
        if group["trust_ratio"] > 0:  # ||step|| <= trust_ratio ||w|| per tensor
            scale = C.trust_scale(update, _flatten(params), seg, len(params), group["trust_ratio"])
            scale_e = scale.to(flat.dtype)[seg]
            update, ghat = update * scale_e, ghat * scale_e
            old = torch.stack([s["trust_scale"] for s in states])
            kept = torch.where(active & ok, scale, old)
            torch._foreach_copy_([s["trust_scale"] for s in states], list(kept.unbind()))
        # a non-finite batch skips the whole step: select, since NaN * 0 is NaN
        update = torch.where(ok, update, torch.zeros((), dtype=flat.dtype, device=flat.device))
        ghat = torch.where(ok, ghat, prev)
        torch._foreach_sub_(params, _unflatten(update, params, sizes))
        buffers = [s["momentum_buffer"] for s in states]
        torch._foreach_copy_(buffers, _unflatten(ghat, params, sizes))
        if new_pre:
            act_e = active[seg]
            for key, value in new_pre.items():
                kept = torch.where(act_e, value, pre_state[key])  # flattened once, above
                torch._foreach_copy_([s[key] for s in states], _unflatten(kept, params, sizes))
        new_steps = steps + active.to(steps.dtype)
        skipped = (~ok).to(torch.int64)
        for k, s in enumerate(states):
            s["gamma"].copy_(gamma_state[k])
            s["step"].copy_(new_steps[k])
            s["nonfinite_skips"].add_(skipped)

    # -- reporting --------------------------------------------------------------------------
    def hparam_tensors(self) -> dict[Any, Tensor]:
        """``name -> tensor([lr, momentum])`` on the parameter's device; no host sync.

        Tensors that have not taken a step yet report the warm start ``gamma0``.
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

    def _index(self, param: Tensor) -> int:
        for i, (_, p) in enumerate(self._names()):
            if p is param:
                return i
        raise KeyError("parameter not in this optimizer")

