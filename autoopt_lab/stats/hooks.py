"""The hook engine: ``track(model)`` records per-sample statistics on every ``backward()``.

Forward hooks keep each supported layer's input; a tensor hook on the layer's output receives
the gradient that reaches it, and the layer's rule (:mod:`autoopt_lab.stats.rules`) turns the
pair into ``sum_i g_i * g_i`` for each parameter, which is attached to the parameter.

>>> import torch, torch.nn.functional as F
>>> model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
>>> x, y = torch.randn(8, 4), torch.randint(0, 2, (8,))
>>> with track(model):
...     F.cross_entropy(model(x), y).backward()
...     model[0].weight.autoopt_stats.sum_sq.shape
torch.Size([3, 4])
"""

from __future__ import annotations

import contextlib
import functools
import itertools
from collections.abc import Iterator
from typing import Literal

import torch
from torch import Tensor, nn

from . import record
from .fused import fusable, fused_forward
from .rules import LayerRule, UnsupportedModuleError, rule_for, supported_types

Reduction = Literal["mean", "sum"]
_TRACKED = "_autoopt_tracker"
_generations = itertools.count(1)
_suspended = 0  # > 0 while :func:`suspended` is active: trackers record nothing


def _in_functorch() -> bool:
    return torch._C._functorch.peek_interpreter_stack() is not None


@contextlib.contextmanager
def suspended() -> Iterator[None]:
    """Within this block no tracker records anything and fused layers run their plain forward.

    The Auto optimizers use it to evaluate a loss closure for a Hessian-vector product
    without disturbing the statistics of the step (and with double-differentiable layers).

    >>> import torch
    >>> lin = torch.nn.Linear(2, 1)
    >>> with track(lin), suspended():
    ...     lin(torch.randn(3, 2)).sum().backward()
    ...     hasattr(lin.weight, "autoopt_stats")
    False
    """
    global _suspended
    _suspended += 1
    try:
        yield
    finally:
        _suspended -= 1


def loss_scale(reduction: str, batch_size: int) -> tuple[float, float]:
    """``(grad_factor, grad_scale)`` for a loss reduction.

    ``grad_factor`` turns a gradient the hooks see into the gradient of one sample's own loss;
    ``grad_scale`` turns ``param.grad`` into the mean per-sample gradient.
    """
    if reduction == "mean":
        return float(batch_size), 1.0
    if reduction == "sum":
        return 1.0, 1.0 / batch_size
    raise ValueError(f"loss_reduction must be 'mean' or 'sum', got {reduction!r}")


def check_supported(model: nn.Module, *, engine_hint: bool = True) -> dict[int, str]:
    """Raise :class:`UnsupportedModuleError` for a module no rule covers; map id(param) -> name."""
    owners: dict[int, str] = {}
    for mod_name, module in model.named_modules():
        direct = [(n, p) for n, p in module.named_parameters(recurse=False) if p.requires_grad]
        if not direct:
            continue
        label = mod_name or "<root>"
        rule = rule_for(module)
        extra = [n for n, _ in direct if rule is None or n not in rule.params]
        if rule is None or extra:
            hint = (
                " Use autoopt_lab.stats.functional_backward(model, loss_fn, x, y) (the torch.func "
                "engine, which supports any model), freeze those parameters, or register a rule "
                "with autoopt_lab.stats.register_rule."
                if engine_hint
                else ""
            )
            raise UnsupportedModuleError(
                f"module {label!r} ({type(module).__name__}) has trainable parameters "
                f"{[n for n, _ in direct]} that the hook engine cannot compute per-sample "
                f"gradients for (supported layer types: {', '.join(supported_types())}).{hint}"
            )
        for n, p in direct:
            full = f"{mod_name}.{n}" if mod_name else n
            if id(p) in owners:
                raise UnsupportedModuleError(
                    f"parameter {full!r} is shared with {owners[id(p)]!r}; per-sample statistics "
                    "of tied weights need the functional engine "
                    "(autoopt_lab.stats.functional_backward)"
                )
            owners[id(p)] = full
    return owners


class Tracker:
    """Handle returned by :func:`track`: call :meth:`remove` (or use ``with``) to stop."""

    def __init__(
        self, model: nn.Module, *, loss_reduction: Reduction = "mean", fused: bool = True
    ) -> None:
        loss_scale(loss_reduction, 1)  # validates
        if getattr(model, _TRACKED, None) is not None:
            raise RuntimeError("this model is already tracked; remove() the first handle first")
        check_supported(model)
        self.model = model
        self.loss_reduction = loss_reduction
        self._generation = 0
        self._calls: dict[tuple[int, int], int] = {}
        self._pending: dict[tuple[int, int], dict] = {}
        self._handles = [model.register_forward_pre_hook(self._new_generation)]
        self._fused: list[nn.Module] = []
        for module in model.modules():
            if not any(p.requires_grad for p in module.parameters(recurse=False)):
                continue
            if fused and fusable(module):
                module.forward = functools.partial(self._fused_forward, module)
                self._fused.append(module)
            else:
                self._handles.append(module.register_forward_hook(self._on_forward))
        setattr(model, _TRACKED, self)

    # -- bookkeeping ----------------------------------------------------------------------
    def _new_generation(self, module: nn.Module, args: tuple) -> None:
        if _suspended:
            return
        self._generation = next(_generations)
        stale = [k for k in self._calls if k[1] < self._generation - 8]
        for k in stale:
            self._calls.pop(k, None)
            self._pending.pop(k, None)

    def _on_forward(self, module: nn.Module, inputs: tuple, output: object) -> None:
        if _suspended or not torch.is_grad_enabled() or not isinstance(output, Tensor):
            return
        if _in_functorch():
            return
        if not output.requires_grad:
            return
        rule = rule_for(module)
        problem = rule.check(module) if rule.check else None
        if problem:
            raise UnsupportedModuleError(f"{type(module).__name__}: {problem}")
        key = (id(module), self._generation)
        self._calls[key] = self._calls.get(key, 0) + 1
        hook = functools.partial(self._on_grad, module, rule, inputs[0].detach(), key)
        output.register_hook(hook)

    def _fused_forward(self, module: nn.Module, x: Tensor) -> Tensor:
        # inside a torch.func transform (vmap, grad, jvp) the fused function cannot run
        if _suspended or not torch.is_grad_enabled() or _in_functorch():
            return type(module).forward(module, x)
        key = (id(module), self._generation)
        self._calls[key] = self._calls.get(key, 0) + 1
        return fused_forward(module, x, functools.partial(self._on_per_sample, module, key))

    def _on_per_sample(
        self, module: nn.Module, key: tuple[int, int], a: Tensor, grads: dict[str, Tensor]
    ) -> None:
        self._finish(module, key, a.shape[0], per_sample=grads)

    def _on_grad(
        self, module: nn.Module, rule: LayerRule, a: Tensor, key: tuple[int, int], dz: Tensor
    ) -> None:
        if self._calls.get(key, 1) == 1:
            sums = rule.sum_of_squares(module, a, dz.detach())
            self._finish(module, key, a.shape[0], sums=sums)
        else:
            self._finish(
                module, key, a.shape[0], per_sample=rule.per_sample(module, a, dz.detach())
            )

    def _finish(
        self,
        module: nn.Module,
        key: tuple[int, int],
        n: int,
        *,
        sums: dict[str, Tensor] | None = None,
        per_sample: dict[str, Tensor] | None = None,
    ) -> None:
        """Turn one call's gradients into ``sum_sq``; add up calls of a reused module first."""
        factor, grad_scale = loss_scale(self.loss_reduction, n)
        total = self._calls.get(key, 1)
        if sums is None and total == 1:
            sums = {k: v.square().sum(0) for k, v in per_sample.items()}
        elif sums is None:
            pending = self._pending.setdefault(key, {"seen": 0, "grads": {}})
            for name, value in per_sample.items():
                acc = pending["grads"].get(name)
                if acc is not None and acc.shape != value.shape:
                    raise RuntimeError(
                        f"{type(module).__name__} was called {total} times in one forward "
                        "pass with different batch sizes; per-sample statistics are undefined"
                    )
                pending["grads"][name] = value if acc is None else acc + value
            pending["seen"] += 1
            if pending["seen"] < total:
                return
            sums = {k: v.square().sum(0) for k, v in self._pending.pop(key)["grads"].items()}
        for name, value in sums.items():
            record.attach(
                getattr(module, name),
                value.mul_(factor * factor),
                batch_size=n,
                grad_scale=grad_scale,
                generation=key[1],
            )

    def remove(self) -> None:
        """Remove every hook and forget recorded statistics."""
        for h in self._handles:
            h.remove()
        self._handles.clear()
        for module in self._fused:
            if "forward" in module.__dict__:
                del module.forward
        self._fused.clear()
        for p in self.model.parameters():
            record.clear(p)
        if getattr(self.model, _TRACKED, None) is self:
            delattr(self.model, _TRACKED)

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def track(model: nn.Module, *, loss_reduction: Reduction = "mean", fused: bool = True) -> Tracker:
    """Record per-sample gradient statistics of ``model`` on every ``backward()``.

    ``loss_reduction`` declares how the training loss reduces over the batch: ``"mean"``
    (the default, e.g. ``F.nll_loss(out, y)``) or ``"sum"``. With ``fused=True`` (default)
    Conv1d/Conv2d layers compute their weight gradient from the per-sample gradients instead
    of a second time (:mod:`autoopt_lab.stats.fused`); ``fused=False`` uses plain hooks only.

    >>> import torch
    >>> handle = track(torch.nn.Linear(2, 1))
    >>> handle.remove()
    """
    return Tracker(model, loss_reduction=loss_reduction, fused=fused)
