"""What the hook engine leans on besides the tracker: the loss reduction's scale, the check
that a model's layers are covered, the square-sum of per-sample gradients, half precision
in float32, and running eagerly under ``torch.compile``.

>>> loss_scale("mean", 8)
(8.0, 1.0)
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import torch
from torch import Tensor, nn

from .rules import UnsupportedModuleError, rule_for, supported_types


class eager:  # noqa: N801 - used as a decorator-like wrapper
    """``fn``, run eagerly under ``torch.compile`` (dynamo breaks the graph there).

    ``torch._dynamo`` (1.6 s to import) is only touched once something imported it, that is
    once ``torch.compile`` was called.
    """

    def __init__(self, fn: Callable) -> None:
        self.fn = fn
        self.disabled = _disabled(fn)

    def __call__(self, *args: object, **kwargs: object) -> object:
        if self.disabled is None:
            self.disabled = _disabled(self.fn)
        if self.disabled is not None:
            return self.disabled(*args, **kwargs)
        return self.fn(*args, **kwargs)


def _disabled(fn: Callable) -> Callable | None:
    if "torch._dynamo" not in sys.modules:
        return None
    return torch._dynamo.disable(fn, recursive=True)


def square_sum(per_sample: Tensor) -> Tensor:
    """``sum_i g_i * g_i`` of per-sample gradients ``(N, *shape)``.

    A large per-sample tensor is accumulated sample by sample (``addcmul_``): no second
    tensor of its size, which on CPU cost more than the arithmetic (0.3 ms against 0.55 ms
    for ``(x * x).sum(0)`` and 0.6-1.2 ms for ``square().sum(0)`` at ``(32, 512, 128)``).
    """
    if per_sample[0].numel() < 4096 or per_sample.shape[0] > 1024:
        return (per_sample * per_sample).sum(0)
    out = per_sample[0].square()
    for g in per_sample[1:]:
        out.addcmul_(g, g)
    return out


def float32(t: Tensor) -> Tensor:
    """A half-precision tensor (autocast's bf16/fp16) in float32; anything else as it is."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


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
    """Raise :class:`UnsupportedModuleError` for a module no rule covers; map id(param) -> name.

    A parameter shared by several modules (tied weights) is supported: the tracker adds its
    per-sample gradients over all its uses in one forward pass before squaring.
    """
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
        for n, p in direct:  # a tied parameter keeps its first name
            owners.setdefault(id(p), f"{mod_name}.{n}" if mod_name else n)
    return owners
