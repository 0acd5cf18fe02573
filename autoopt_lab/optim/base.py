"""Bookkeeping shared by the Auto optimizers: groups, state, validation, ``step()``.

The maths lives in :mod:`autoopt_lab.optim.gamma`, :mod:`autoopt_lab.optim.curvature` and
:mod:`autoopt_lab.optim.preconditioners`; the order of one step is
:func:`autoopt_lab.optim.step_rule.step_direction`. This class gathers each tensor's
gradient and per-sample statistics, calls them, and commits the results.
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor, nn

from ..stats import explain_missing, record, track
from .batch import Batch, prepare_batch
from .decoupled_step import apply_decoupled
from .preconditioners import InverseHessian
from .probe import CurvatureProbe
from .reporting import HparamReport
from .step_rule import apply_batch
from .validation import ADDED_OPTIONS, measures_curvature, takes_decoupled_step
from .validation import check_state_dict as _check_state_dict
from .validation import validate as _validate

#: State kept in float64 whatever the parameter dtype (torch would cast it on load).
_EXACT_KEYS = ("gamma", "curvature", "probe_quad", "trust_scale", "secant", "gain",
               "gain_terms", "initial_norm", "momentum")
#: Integer counters (torch would cast them to the parameter dtype on load).
_INT_KEYS = ("nonfinite_skips", "curvature_count")


class AutoOptimizer(CurvatureProbe, HparamReport, torch.optim.Optimizer):
    """Base class: AutoOpt learning rate and momentum per tensor on top of a preconditioner.

    Subclasses set ``_init_state`` and ``_inverse_hessian`` and add their own options. Needs per-sample statistics: pass the model itself as ``params``
    (it is tracked for you), or call :func:`autoopt_lab.track` on it, or compute gradients
    with :func:`autoopt_lab.stats.functional_backward`.
    """

    _init_state: Callable[[Tensor], dict[str, Tensor]]
    _inverse_hessian: InverseHessian

    def __init__(
        self,
        params: Iterable[Any] | nn.Module,
        defaults: dict[str, Any],
    ) -> None:
        self.tracker = None
        self._grad_hooks: dict[int, Any] = {}
        if isinstance(params, nn.Module):  # the drop-in form: AutoAdam(model)
            model = params
            if getattr(model, "_autoopt_tracker", None) is None:
                self.tracker = track(model)
            params = list(model.named_parameters())
        _validate(defaults)
        super().__init__(params, defaults)
        for group in self.param_groups:
            _validate(group)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        _validate(self.param_groups[-1])
        for p in self.param_groups[-1]["params"]:
            if p.requires_grad and id(p) not in self._grad_hooks:
                # ||grad||^2 as the backward left it: clipping after it is seen in step()
                self._grad_hooks[id(p)] = p.register_post_accumulate_grad_hook(record.note_grad)

    def close(self) -> None:
        """Remove the hooks this optimizer added (and the tracker it made, if any)."""
        for handle in self._grad_hooks.values():
            handle.remove()
        self._grad_hooks.clear()
        if self.tracker is not None:
            self.tracker.remove()
            self.tracker = None

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

        Works in the three loops people write (docs/training-loops.md): ``backward();
        step()``; ``step(closure)`` with a torch-style closure that zeroes, runs backward and
        returns the loss (called first when no gradients exist, as ``torch.optim`` does); and
        ``step(lambda: loss_fn(model(x), y))`` after ``backward()``. With
        ``curvature="measured"`` a closure of either kind serves a Hessian-vector product
        every ``curvature_every`` steps; without one the curvature comes from consecutive
        gradients (``curvature_source``).
        """
        loss = None
        if closure is not None and not self._has_statistics():
            with torch.enable_grad():
                loss = closure()
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
                        f"parameter {name!r} has a gradient but no per-sample statistics: "
                        + self._why_missing(p)
                        + "Pass the model itself to the optimizer (AutoAdam(model)), or call "
                        "autoopt_lab.track(model) before the forward pass (or compute the "
                        "gradients with autoopt_lab.stats.functional_backward)"
                    )
                raise RuntimeError(
                    f"parameter {name!r}: its per-sample statistics cannot be used: one "
                    "forward pass reached it twice by a route the engine does not combine, "
                    "or micro-batches of one step used different loss reductions; call "
                    "opt.zero_grad() before each step"
                )
        return entries

    @staticmethod
    def _why_missing(p: Tensor) -> str:
        """What the tracker holding ``p`` says about its missing statistics ("" if none)."""
        try:
            why = explain_missing(p)
        except Exception:  # an explanation must never hide the real error
            return ""
        return "" if why.startswith("no tracked model") else why + " "

    def _new_state(self, p: Tensor, group: dict) -> dict[str, Tensor]:
        state = self.state[p]
        if not state:
            dev = p.device
            state["step"] = torch.zeros((), dtype=torch.float32, device=dev)
            state["gamma"] = torch.tensor(
                [group["gamma0"], 0.0], dtype=torch.float64, device=dev
            )
            state["momentum_buffer"] = torch.zeros_like(p)
            state["nonfinite_skips"] = torch.zeros((), dtype=torch.int64, device=dev)
            if group["trust_ratio"] > 0:
                state["trust_scale"] = torch.ones((), dtype=torch.float64, device=dev)
            if takes_decoupled_step(group):  # kappa, its running terms, ||w_0||^2
                state["gain"] = torch.zeros((), dtype=torch.float64, device=dev)
                state["gain_terms"] = torch.zeros(2, dtype=torch.float64, device=dev)
                state["momentum"] = torch.zeros((), dtype=torch.float64, device=dev)
                state["initial_norm"] = p.detach().double().square().sum()
            if measures_curvature(group):
                state["curvature"] = torch.ones((), dtype=torch.float64, device=dev)
                state["curvature_count"] = torch.zeros((), dtype=torch.int64, device=dev)
            state.update(type(self)._init_state(p))
        return state

    def _step_batches(self, batches: list[list]) -> None:
        """Every batch shares device, dtype and param group: it is handled as flat tensors."""
        prepared: list[Batch] = []
        for entries in batches:
            group = entries[0][0]
            params = [p for _, p, _, _ in entries]
            states = [self._new_state(p, group) for p in params]
            sizes = [p.numel() for p in params]
            prepared.append(
                prepare_batch(
                    group, params, states, [st for *_, st in entries], sizes,
                    type(self)._inverse_hessian,
                )
            )
            prepared[-1].samples = torch.tensor(
                [float(st.batch_size) for *_, st in entries], dtype=torch.float64,
                device=params[0].device,
            )
        due = self._probe_due()
        if due:
            self._measure_curvature(prepared, due)
        self._measure_secant(prepared)
        self._keep_directions(prepared)
        for group in self.param_groups:
            if measures_curvature(group):
                group["curvature_clock"] = group.get("curvature_clock", 0) + 1
        ok = prepared[0].finite
        for b in prepared[1:]:
            ok = ok & b.finite.to(ok.device)
        for b in prepared:
            rule = apply_decoupled if takes_decoupled_step(b.group) else apply_batch
            rule(b, ok.to(b.m.device), secant=self._source(b.group) == "secant")

    def _index(self, param: Tensor) -> int:
        for i, (_, p) in enumerate(self._names()):
            if p is param:
                return i
        raise KeyError("parameter not in this optimizer")

