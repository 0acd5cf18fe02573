"""Fused convolutions: one per-sample computation gives both ``weight.grad`` and ``S``.

With plain hooks, autograd computes a convolution's weight gradient and the rule computes the
per-sample weight gradients again; the batch gradient is just their sum. For tracked
``Conv1d``/``Conv2d`` layers with the standard forward, :class:`FusedConv` replaces the
convolution in the graph: its backward computes the input gradient with ATen's
``convolution_backward`` (input only) and takes the weight and bias gradients from the
per-sample tensors, which the tracker also turns into statistics.

Fusing pays only on the elementwise path. Where :func:`autoopt_lab.stats.rules.conv_path`
picks the ghost norm (no per-sample gradients), the backward computes all three gradients
with ATen and hands ``dz`` to ``on_grad``: the tracker's ordinary hook path.

>>> import torch, torch.nn.functional as F
>>> from autoopt_lab.stats import track
>>> conv = torch.nn.Conv2d(1, 2, 3)
>>> with track(conv):
...     conv(torch.randn(4, 1, 5, 5)).sum().backward()
...     conv.weight.autoopt_stats.batch_size
4
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from .rules import conv_path, conv_per_sample

_CONV = {nn.Conv1d: F.conv1d, nn.Conv2d: F.conv2d}


def fusable(module: nn.Module) -> bool:
    """True for a Conv1d/Conv2d whose forward is the standard one."""
    for cls in _CONV:
        if isinstance(module, cls) and type(module).forward is cls.forward:
            return True
    return False


def _aten_backward(ctx: Any, dz: Tensor, x: Tensor, weight: Tensor, mask: list[bool]) -> tuple:
    """ATen's convolution backward for the gradients ``mask`` asks (input, weight, bias)."""
    m = ctx.module
    return torch.ops.aten.convolution_backward(
        dz, x, weight, [weight.shape[0]] if mask[2] else None, m.stride, ctx.padding,
        m.dilation, False, [0] * len(ctx.padding), m.groups, mask,
    )


class FusedConv(torch.autograd.Function):
    """``conv(x, weight, bias)`` whose backward also reports per-sample gradients."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        x: Tensor,
        weight: Tensor,
        bias: Tensor | None,
        module: nn.Module,
        padding: tuple[int, ...],
        report: Callable[[Tensor, dict[str, Tensor]], None],
        on_grad: Callable[[Tensor], None] | None = None,
    ) -> Tensor:
        conv = _CONV[nn.Conv1d] if isinstance(module, nn.Conv1d) else _CONV[nn.Conv2d]
        ctx.save_for_backward(x, weight)
        ctx.module, ctx.padding, ctx.report, ctx.on_grad, ctx.has_bias = (
            module,
            padding,
            report,
            on_grad,
            bias is not None,
        )
        return conv(x, weight, bias, module.stride, padding, module.dilation, module.groups)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, dz: Tensor) -> tuple:  # type: ignore[override]
        x, weight = ctx.saved_tensors
        m = ctx.module
        need_b = ctx.has_bias and ctx.needs_input_grad[2]
        if (
            ctx.on_grad is not None
            and ctx.needs_input_grad[1]
            and conv_path(m, x.shape[0], dz) == "ghost"
        ):
            grads = _aten_backward(ctx, dz, x, weight, [ctx.needs_input_grad[0], True, need_b])
            ctx.on_grad(dz)
            return (*grads, None, None, None, None)
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_x = _aten_backward(ctx, dz, x, weight, [True, False, False])[0]
        per_sample = conv_per_sample(
            x, dz, weight.shape, m.stride, ctx.padding, m.dilation, m.groups
        )
        grad_w = per_sample["weight"].sum(0) if ctx.needs_input_grad[1] else None
        grad_b = per_sample["bias"].sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        keep = {}
        if ctx.needs_input_grad[1]:
            keep["weight"] = per_sample["weight"]
        if grad_b is not None:
            keep["bias"] = per_sample["bias"]
        ctx.report(x, keep)
        return grad_x, grad_w, grad_b, None, None, None, None


def fused_forward(
    module: nn.Module,
    x: Tensor,
    report: Callable[[Tensor, dict[str, Tensor]], None],
    on_grad: Callable[[Tensor], None] | None = None,
) -> Tensor:
    """The module's forward, with the convolution as a :class:`FusedConv`.

    ``report(x, per_sample)`` receives the per-sample gradients on the elementwise path;
    ``on_grad(dz)`` (if given) receives the output gradient on the ghost path.
    """
    padding = module.padding
    if module.padding_mode != "zeros" or isinstance(padding, str):
        mode = "constant" if module.padding_mode == "zeros" else module.padding_mode
        x = F.pad(x, module._reversed_padding_repeated_twice, mode=mode)
        padding = (0,) * len(module.kernel_size)
    return FusedConv.apply(x, module.weight, module.bias, module, tuple(padding), report, on_grad)
