"""Per-sample gradients, one rule per layer type (the Opacus / BackPACK layout).

A rule turns what the hook engine saw for one call of a module — its input ``a`` and the
gradient ``dz`` that reached its output — into per-sample gradients of the module's own
parameters. Each rule gives the general ``per_sample`` form (``name -> (N, *shape)``) and may
give a cheaper ``sum_sq`` form (``name -> sum_i g_i * g_i``) that never materialises the
per-sample tensors. Both work on the gradients as the hook sees them: the caller rescales.
A ``sum_sq`` form may return a 0-dim ``Q = sum_i g_i^T W g_i`` instead, with ``W`` the
weights published on the parameter (:func:`autoopt_lab.stats.record.published_weights`):
the Linear (with a sequence dimension) and Conv rules do so where
:func:`autoopt_lab.stats.ghost.choose` finds the ghost norm cheaper.

Register a rule for a new layer type with :func:`register_rule`:

>>> import torch
>>> class Scale(torch.nn.Module):
...     def __init__(self):
...         super().__init__()
...         self.weight = torch.nn.Parameter(torch.ones(3))
...     def forward(self, x):
...         return x * self.weight
>>> @register_rule(Scale, params=("weight",))
... def _scale(module, a, dz):
...     return {"weight": a * dz}
>>> rule_for(Scale()).params
('weight',)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import ghost, record

PerSampleFn = Callable[[nn.Module, Tensor, Tensor], dict[str, Tensor]]
CheckFn = Callable[[nn.Module], "str | None"]


class UnsupportedModuleError(TypeError):
    """A module holds trainable parameters whose per-sample gradients no rule computes."""


@dataclass(frozen=True)
class LayerRule:
    """How to get per-sample gradients for one layer type."""

    per_sample: PerSampleFn
    sum_sq: PerSampleFn | None = None
    check: CheckFn | None = None
    params: tuple[str, ...] = ("weight", "bias")

    def sum_of_squares(self, module: nn.Module, a: Tensor, dz: Tensor) -> dict[str, Tensor]:
        """``sum_i g_i * g_i`` (or the 0-dim ``sum_i g_i^T W g_i``) for each parameter."""
        if self.sum_sq is not None:
            return self.sum_sq(module, a, dz)
        return {k: v.square().sum(0) for k, v in self.per_sample(module, a, dz).items()}


_RULES: dict[type, LayerRule] = {}


def register_rule(
    *types: type,
    sum_sq: PerSampleFn | None = None,
    check: CheckFn | None = None,
    params: tuple[str, ...] = ("weight", "bias"),
) -> Callable[[PerSampleFn], PerSampleFn]:
    """Decorator: register ``fn(module, a, dz) -> {name: (N, *shape)}`` for ``types``."""

    def deco(fn: PerSampleFn) -> PerSampleFn:
        for t in types:
            _RULES[t] = LayerRule(per_sample=fn, sum_sq=sum_sq, check=check, params=params)
        return fn

    return deco


def rule_for(module: nn.Module) -> LayerRule | None:
    """The rule for ``module``'s type (or its nearest registered base class), or None."""
    for t in type(module).__mro__:
        if t in _RULES:
            return _RULES[t]
    return None


def supported_types() -> list[str]:
    """Names of the layer types that have a rule."""
    return sorted(t.__name__ for t in _RULES)


def _present(module: nn.Module, out: dict[str, Tensor]) -> dict[str, Tensor]:
    """Keep only entries for parameters the module has and trains."""
    keep = {}
    for name, value in out.items():
        p = getattr(module, name, None)
        if isinstance(p, Tensor) and p.requires_grad:
            keep[name] = value
    return keep


# ----------------------------------------------------------------------------- Linear
def _linear_per_sample(m: nn.Module, a: Tensor, dz: Tensor) -> dict[str, Tensor]:
    if a.dim() == 2:
        w = torch.einsum("no,ni->noi", dz, a)
        b = dz
    else:  # (N, ..., in): sum over the middle dimensions
        w = torch.einsum("n...o,n...i->noi", dz, a)
        b = dz.flatten(1, -2).sum(1)
    return _present(m, {"weight": w, "bias": b})


def linear_path(a: Tensor, dz: Tensor) -> str:
    """The statistics path (:func:`autoopt_lab.stats.ghost.choose`) for one Linear call.

    Without a sequence dimension ``S`` is one matmul and no per-sample tensor: elementwise
    unless the ghost path is forced.
    """
    if a.dim() == 2 and ghost.STATISTICS != "ghost":
        return "elementwise"
    return ghost.choose(a.shape[0], dz.shape[-1], a.shape[-1], a[:1].numel() // a.shape[-1])


def _linear_sum_sq(m: nn.Module, a: Tensor, dz: Tensor) -> dict[str, Tensor]:
    if m.weight.requires_grad and linear_path(a, dz) == "ghost":
        q = ghost.linear_ghost_norm(a, dz, record.published_weights(m.weight))
        bias = dz.reshape(a.shape[0], -1, dz.shape[-1]).sum(1).square().sum(0)
        return _present(m, {"weight": q, "bias": bias})
    if a.dim() != 2:
        return {k: v.square().sum(0) for k, v in _linear_per_sample(m, a, dz).items()}
    dz2 = dz.square()
    return _present(m, {"weight": dz2.t() @ a.square(), "bias": dz2.sum(0)})


# ----------------------------------------------------------------------------- Conv1d/2d
def conv_patches(
    a: Tensor,
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    dilation: tuple[int, ...],
) -> Tensor:
    """Patches of an (already padded) ``(N, C, *spatial)`` input as ``(N, C * prod(k), L)``.

    The same layout as ``F.unfold``, built from strided views and one contiguous copy, which
    is several times faster than ``im2col`` on CPU.
    """
    n, c = a.shape[:2]
    view = a
    for d, (k, s, dil) in enumerate(zip(kernel, stride, dilation, strict=True)):
        view = view.unfold(2 + d, dil * (k - 1) + 1, s)
        if dil > 1:
            view = view[..., ::dil]
    nd = len(kernel)
    perm = (0, 1, *range(2 + nd, 2 + 2 * nd), *range(2, 2 + nd))
    return view.permute(perm).reshape(n, c * math.prod(kernel), -1)


#: Per-group input channels from which the grouped weight-gradient path is used.
GROUPED_MIN_CHANNELS = 4


def conv_per_sample(
    a: Tensor,
    dz: Tensor,
    weight_shape: torch.Size,
    stride: tuple[int, ...],
    padding: tuple[int, ...],
    dilation: tuple[int, ...],
    groups: int,
    *,
    method: str = "auto",
) -> dict[str, Tensor]:
    """Per-sample ``weight`` and ``bias`` gradients of a convolution with zero ``padding``.

    ``method="patches"`` multiplies ``dz`` with the patch matrix (best for few input
    channels); ``"grouped"`` runs one weight-gradient convolution with the batch folded into
    the channels (``groups = N * groups``), as cheap as the batch weight gradient when the
    layer has many input channels; ``"auto"`` picks by ``GROUPED_MIN_CHANNELS``.
    """
    n, c_in = a.shape[:2]
    c_out = weight_shape[0]
    if method == "auto":
        method = "grouped" if c_in // groups >= GROUPED_MIN_CHANNELS else "patches"
    if method == "grouped":
        wshape = (n * c_out, *weight_shape[1:])
        w = torch.ops.aten.convolution_backward(
            dz.reshape(1, n * c_out, *dz.shape[2:]),
            a.reshape(1, n * c_in, *a.shape[2:]),
            dz.new_empty(1).expand(wshape),
            None,
            stride,
            padding,
            dilation,
            False,
            [0] * len(padding),
            n * groups,
            [False, True, False],
        )[1].reshape(n, *weight_shape)
        return {"weight": w, "bias": dz.flatten(2).sum(2)}
    if any(padding):
        a = F.pad(a, [q for p in reversed(padding) for q in (p, p)])
    cols = conv_patches(a, tuple(weight_shape[2:]), stride, dilation)
    cols = cols.reshape(n, groups, cols.shape[1] // groups, cols.shape[-1])
    dzg = dz.reshape(n, groups, c_out // groups, -1)
    w = torch.matmul(dzg, cols.transpose(-1, -2)).reshape(n, *weight_shape)
    return {"weight": w, "bias": dz.flatten(2).sum(2)}


def _conv_input(m: nn.Module, a: Tensor) -> tuple[Tensor, tuple[int, ...]]:
    """The input with a non-zero (or string) padding applied, and the padding left to do."""
    if m.padding_mode != "zeros" or isinstance(m.padding, str):
        mode = "constant" if m.padding_mode == "zeros" else m.padding_mode
        a = F.pad(a, m._reversed_padding_repeated_twice, mode=mode)
        return a, (0,) * len(m.kernel_size)
    return a, tuple(m.padding)


def conv_path(m: nn.Module, n: int, dz: Tensor) -> str:
    """The statistics path (:func:`autoopt_lab.stats.ghost.choose`) for one call of conv ``m``."""
    w = m.weight
    return ghost.choose(n, w.shape[0], w[0].numel(), dz[0, 0].numel(), m.groups)


def _conv_per_sample(m: nn.Module, a: Tensor, dz: Tensor) -> dict[str, Tensor]:
    a, padding = _conv_input(m, a)
    out = conv_per_sample(a, dz, m.weight.shape, m.stride, padding, m.dilation, m.groups)
    return _present(m, out)


def _conv_sum_sq(m: nn.Module, a: Tensor, dz: Tensor) -> dict[str, Tensor]:
    if not m.weight.requires_grad or conv_path(m, a.shape[0], dz) != "ghost":
        return {k: v.square().sum(0) for k, v in _conv_per_sample(m, a, dz).items()}
    a, padding = _conv_input(m, a)
    if any(padding):
        a = F.pad(a, [q for p in reversed(padding) for q in (p, p)])
    cols = conv_patches(a, tuple(m.kernel_size), m.stride, m.dilation)
    q = ghost.conv_ghost_norm(cols, dz, m.groups, record.published_weights(m.weight))
    return _present(m, {"weight": q, "bias": dz.flatten(2).sum(2).square().sum(0)})


# ----------------------------------------------------------------------------- Embedding
def _embedding_per_sample(m: nn.Module, idx: Tensor, dz: Tensor) -> dict[str, Tensor]:
    n = idx.shape[0]
    vocab, dim = m.weight.shape
    out = dz.new_zeros(n, vocab, dim)
    rows = torch.arange(n, device=idx.device).view(n, *[1] * (idx.dim() - 1)).expand_as(idx)
    out.index_put_((rows.reshape(-1), idx.reshape(-1)), dz.reshape(-1, dim), accumulate=True)
    if m.padding_idx is not None:
        out[:, m.padding_idx] = 0
    return {"weight": out}


def _embedding_sum_sq(m: nn.Module, idx: Tensor, dz: Tensor) -> dict[str, Tensor]:
    n = idx.shape[0]
    vocab, dim = m.weight.shape
    rows = torch.arange(n, device=idx.device).view(n, *[1] * (idx.dim() - 1))
    keys = (rows * vocab + idx).reshape(-1)
    uniq, inverse = torch.unique(keys, return_inverse=True)
    per_pair = dz.new_zeros(uniq.numel(), dim).index_add_(0, inverse, dz.reshape(-1, dim))
    out = dz.new_zeros(vocab, dim).index_add_(0, uniq % vocab, per_pair.square())
    if m.padding_idx is not None:
        out[m.padding_idx] = 0
    return {"weight": out}


def _embedding_check(m: nn.Module) -> str | None:
    if m.sparse:
        return "sparse gradients are not supported; build it with sparse=False"
    return None


# ----------------------------------------------------------------------------- Norm layers
def _affine_per_sample(
    m: nn.Module, xhat: Tensor, dz: Tensor, trailing: int | None
) -> dict[str, Tensor]:
    """Per-sample grads of ``y = xhat * weight + bias``.

    ``trailing=None``: channel layout ``(N, C, *)``, parameters per channel. Otherwise the
    parameters cover the last ``trailing`` dimensions (LayerNorm layout ``(N, ..., *shape)``).
    """
    prod = dz * xhat
    if trailing is None:  # (N, C) or (N, C, *spatial): sum over the spatial positions
        n, c = prod.shape[:2]
        return _present(
            m, {"weight": prod.reshape(n, c, -1).sum(2), "bias": dz.reshape(n, c, -1).sum(2)}
        )
    middle = tuple(range(1, prod.dim() - trailing))
    if middle:
        prod, dz = prod.sum(middle), dz.sum(middle)
    return _present(m, {"weight": prod, "bias": dz})


def _layer_norm_per_sample(m: nn.Module, a: Tensor, dz: Tensor) -> dict[str, Tensor]:
    xhat = F.layer_norm(a, m.normalized_shape, eps=m.eps)
    return _affine_per_sample(m, xhat, dz, trailing=len(m.normalized_shape))


def _group_norm_per_sample(m: nn.Module, a: Tensor, dz: Tensor) -> dict[str, Tensor]:
    xhat = F.group_norm(a, m.num_groups, eps=m.eps)
    return _affine_per_sample(m, xhat, dz, trailing=None)


def _batch_norm_per_sample(m: nn.Module, a: Tensor, dz: Tensor) -> dict[str, Tensor]:
    shape = (1, -1) + (1,) * (a.dim() - 2)
    xhat = (a - m.running_mean.view(shape)) * torch.rsqrt(m.running_var.view(shape) + m.eps)
    return _affine_per_sample(m, xhat, dz, trailing=None)


def _batch_norm_check(m: nn.Module) -> str | None:
    if m.training or not m.track_running_stats:
        return (
            "BatchNorm in training mode mixes the samples of a batch, so per-sample gradients "
            "are undefined; use GroupNorm or LayerNorm, or put the layer in eval mode "
            "(module.eval()) to train its affine parameters with running statistics"
        )
    return None


# The built-in rules go through the same public registration as a user's own.
register_rule(nn.Linear, sum_sq=_linear_sum_sq)(_linear_per_sample)
register_rule(nn.Conv1d, nn.Conv2d, sum_sq=_conv_sum_sq)(_conv_per_sample)
register_rule(nn.Embedding, sum_sq=_embedding_sum_sq, check=_embedding_check, params=("weight",))(
    _embedding_per_sample
)
register_rule(nn.LayerNorm)(_layer_norm_per_sample)
register_rule(nn.GroupNorm)(_group_norm_per_sample)
register_rule(nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, check=_batch_norm_check)(
    _batch_norm_per_sample
)
