"""Attention in the hook engine: ``nn.MultiheadAttention`` with a forward that reports.

``nn.MultiheadAttention`` hands its weights to ``F.multi_head_attention_forward``, so no module
hook sees its projections (``out_proj``'s hooks never fire). A tracked MHA runs
:func:`mha_forward` instead: the operations of torch's own forward in the same order (its
outputs are torch's), with the in- and out-projections through
:func:`autoopt_lab.stats.linears.linears`, whose backward reports the per-sample gradients of
``in_proj_weight``/``in_proj_bias`` (or ``q/k/v_proj_weight``) and ``out_proj.weight``/``.bias``.
Attention written with ``F.scaled_dot_product_attention`` between ``nn.Linear`` layers needs
nothing: the Linear hooks see it.

``nn.Transformer`` and its encoder/decoder stacks and layers with ``batch_first=False`` run
batch-first inside a tracked model (:func:`batch_first_forward`): the hook rules of their
Linear and LayerNorm layers take dimension 0 as the batch. (Other layers applied to
sequence-first tensors are not found: the hook engine takes dimension 0 as the batch.)

>>> import torch
>>> from autoopt_lab.stats import track
>>> mha = torch.nn.MultiheadAttention(8, 2, batch_first=True)
>>> x = torch.randn(3, 5, 8)
>>> with track(mha):
...     mha(x, x, x)[0].sum().backward()
...     mha.in_proj_weight.autoopt_stats.sum_sq.shape, mha.out_proj.weight.autoopt_stats.batch_size
(torch.Size([24, 8]), 3)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .linears import Report, linears
from .rules import UnsupportedModuleError, register_rule

_IN_PARAMS = ("in_proj_weight", "in_proj_bias", "q_proj_weight", "k_proj_weight", "v_proj_weight")


def _check(m: nn.MultiheadAttention) -> str | None:
    if m.add_zero_attn:
        return "add_zero_attn=True is not supported by the hook engine"
    if m.bias_k is not None and m.bias_k.requires_grad:
        return "add_bias_kv=True is not supported by the hook engine"
    return None


@register_rule(nn.MultiheadAttention, check=_check, params=_IN_PARAMS)
def _mha_per_sample(m: nn.Module, a: Tensor, dz: Tensor) -> dict[str, Tensor]:
    raise RuntimeError(  # never reached: the tracker replaces the forward (mha_forward)
        "MultiheadAttention reports its per-sample gradients from its tracked forward"
    )


def _in_projection(
    m: nn.MultiheadAttention, report: Report, query: Tensor, key: Tensor, value: Tensor
) -> tuple[Tensor, ...]:
    """torch's ``_in_projection_packed`` / ``_in_projection``, on inputs ``(L, N, E)``."""
    e = query.size(-1)
    params = {n: getattr(m, n) for n in _IN_PARAMS if getattr(m, n) is not None}
    b = "in_proj_bias" if m.in_proj_bias is not None else None
    third = [slice(i * e, (i + 1) * e) for i in range(3)]
    if not m._qkv_same_embed_dim:
        names = ("q_proj_weight", "k_proj_weight", "v_proj_weight")
        inputs = zip((query, key, value), names, third, strict=True)
        plan = [(x, w, None, b, r) for x, w, r in inputs]
        return linears(plan, params, report, batch_dim=1)
    w = "in_proj_weight"
    if key is value and query is key:  # self-attention: one packed projection
        (proj,) = linears([(query, w, None, b, None)], params, report, batch_dim=1)
        proj = proj.unflatten(-1, (3, e)).unsqueeze(0).transpose(0, -2).squeeze(-2).contiguous()
        return proj[0], proj[1], proj[2]
    if key is value:  # encoder-decoder attention: q, then k and v packed
        rows = [slice(0, e), slice(e, 3 * e)]
        plan = [(x, w, r, b, r) for x, r in zip((query, key), rows, strict=True)]
        q, kv = linears(plan, params, report, batch_dim=1)
        kv = kv.unflatten(-1, (2, e)).unsqueeze(0).transpose(0, -2).squeeze(-2).contiguous()
        return q, kv[0], kv[1]
    plan = [(x, w, r, b, r) for x, r in zip((query, key, value), third, strict=True)]
    return linears(plan, params, report, batch_dim=1)


def _canonical(key_padding_mask: Tensor | None, attn_mask: Tensor | None, dtype: torch.dtype):
    kpm = F._canonical_mask(
        mask=key_padding_mask, mask_name="key_padding_mask",
        other_type=F._none_or_dtype(attn_mask), other_name="attn_mask", target_type=dtype,
    )
    mask = F._canonical_mask(
        mask=attn_mask, mask_name="attn_mask", other_type=None, other_name="",
        target_type=dtype, check_other=False,
    )
    return kpm, mask


def mha_forward(
    m: nn.MultiheadAttention,
    report: Report,
    query: Tensor,
    key: Tensor,
    value: Tensor,
    key_padding_mask: Tensor | None = None,
    need_weights: bool = True,
    attn_mask: Tensor | None = None,
    average_attn_weights: bool = True,
    is_causal: bool = False,
) -> tuple[Tensor, Tensor | None]:
    """``nn.MultiheadAttention.forward`` (its slow path) with reporting projections."""
    problem = _check(m)
    if problem:
        raise UnsupportedModuleError(f"MultiheadAttention: {problem}")
    if query.is_nested or key.is_nested or value.is_nested:
        raise UnsupportedModuleError("MultiheadAttention: nested tensors are not supported")
    is_batched = query.dim() == 3
    key_padding_mask, attn_mask = _canonical(key_padding_mask, attn_mask, query.dtype)
    if m.batch_first and is_batched:  # keep the "is" relations, as torch does
        if key is value:
            if query is key:
                query = key = value = query.transpose(1, 0)
            else:
                query, key = (x.transpose(1, 0) for x in (query, key))
                value = key
        else:
            query, key, value = (x.transpose(1, 0) for x in (query, key, value))
    out, weights = _attention(
        m, report, query, key, value, key_padding_mask, need_weights, attn_mask,
        average_attn_weights, is_causal,
    )
    if m.batch_first and is_batched:
        return out.transpose(1, 0), weights
    return out, weights


def _attention(
    m: nn.MultiheadAttention,
    report: Report,
    query: Tensor,
    key: Tensor,
    value: Tensor,
    key_padding_mask: Tensor | None,
    need_weights: bool,
    attn_mask: Tensor | None,
    average_attn_weights: bool,
    is_causal: bool,
) -> tuple[Tensor, Tensor | None]:
    """``F.multi_head_attention_forward`` without ``bias_k``/``add_zero_attn``/static k, v."""
    num_heads = m.num_heads
    is_batched = F._mha_shape_check(query, key, value, key_padding_mask, attn_mask, num_heads)
    if not is_batched:
        query, key, value = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
        if key_padding_mask is not None:
            key_padding_mask = key_padding_mask.unsqueeze(0)
    tgt_len, bsz, embed_dim = query.shape
    key_padding_mask, _ = _canonical(key_padding_mask, attn_mask, query.dtype)
    if is_causal and attn_mask is None:
        raise RuntimeError("Need attn_mask if specifying the is_causal hint.")
    if is_causal and key_padding_mask is None and not need_weights:
        attn_mask = None
    else:
        _, attn_mask = _canonical(None, attn_mask, query.dtype)
        if key_padding_mask is not None:
            is_causal = False
    head_dim = embed_dim // num_heads
    q, k, v = _in_projection(m, report, query, key, value)
    if attn_mask is not None and attn_mask.dim() == 2:
        attn_mask = attn_mask.unsqueeze(0)
    q = q.view(tgt_len, bsz * num_heads, head_dim).transpose(0, 1)
    k = k.view(k.shape[0], bsz * num_heads, head_dim).transpose(0, 1)
    v = v.view(v.shape[0], bsz * num_heads, head_dim).transpose(0, 1)
    src_len = k.size(1)
    if key_padding_mask is not None:
        key_padding_mask = (
            key_padding_mask.view(bsz, 1, 1, src_len)
            .expand(-1, num_heads, -1, -1)
            .reshape(bsz * num_heads, 1, src_len)
        )
        attn_mask = key_padding_mask if attn_mask is None else attn_mask + key_padding_mask
    dropout_p = m.dropout if m.training else 0.0
    weights = None
    if need_weights:
        q_scaled = q * math.sqrt(1.0 / float(q.shape[-1]))
        if attn_mask is not None:
            weights = torch.baddbmm(attn_mask, q_scaled, k.transpose(-2, -1))
        else:
            weights = torch.bmm(q_scaled, k.transpose(-2, -1))
        weights = F.softmax(weights, dim=-1)
        if dropout_p > 0.0:
            weights = F.dropout(weights, p=dropout_p)
        attn = torch.bmm(weights, v).transpose(0, 1).reshape(tgt_len * bsz, embed_dim)
        weights = weights.view(bsz, num_heads, tgt_len, src_len)
        if average_attn_weights:
            weights = weights.mean(dim=1)
        if not is_batched:
            weights = weights.squeeze(0)
    else:
        if attn_mask is not None:
            if attn_mask.size(0) == 1 and attn_mask.dim() == 3:
                attn_mask = attn_mask.unsqueeze(0)
            else:
                attn_mask = attn_mask.view(bsz, num_heads, -1, src_len)
        q = q.view(bsz, num_heads, tgt_len, head_dim)
        k = k.view(bsz, num_heads, src_len, head_dim)
        v = v.view(bsz, num_heads, src_len, head_dim)
        attn = F.scaled_dot_product_attention(q, k, v, attn_mask, dropout_p, is_causal)
        attn = attn.permute(2, 0, 1, 3).reshape(bsz * tgt_len, embed_dim)
    params = {"out_proj.weight": m.out_proj.weight, "out_proj.bias": m.out_proj.bias}
    b = "out_proj.bias" if m.out_proj.bias is not None else None
    (out,) = linears(
        [(attn, "out_proj.weight", None, b, None)], params, report, batch_dim=1, n=bsz
    )
    out = out.view(tgt_len, bsz, out.size(1))
    if not is_batched:
        out = out.squeeze(1)
    return out, weights


# ----------------------------------------------------------------------------- layouts
_LAYOUTS = (
    nn.TransformerEncoderLayer,
    nn.TransformerDecoderLayer,
    nn.TransformerEncoder,
    nn.TransformerDecoder,
    nn.Transformer,
)
#: the second sequence argument, ``(S, N, E)`` too
_SECOND = {nn.TransformerDecoderLayer: "memory", nn.TransformerDecoder: "memory",
           nn.Transformer: "tgt"}


def _seq_first(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if getattr(m, "batch_first", None) is False]


def batch_first_forward(module: nn.Module, report: Report, x: Tensor, *args: Any, **kwargs: Any):
    """A ``batch_first=False`` transformer (layer or stack) run batch-first inside: every
    ``batch_first`` flag under it is True for the call, the sequences are transposed."""
    flags = _seq_first(module)
    if x.dim() != 3 or not flags:  # unbatched, or an enclosing stack already switched
        return type(module).forward(module, x, *args, **kwargs)
    second = _SECOND.get(type(module))
    if second is not None and args:
        args = (args[0].transpose(0, 1), *args[1:])
    elif second is not None:
        kwargs[second] = kwargs[second].transpose(0, 1)
    for m in flags:
        m.batch_first = True
    try:
        return type(module).forward(module, x.transpose(0, 1), *args, **kwargs).transpose(0, 1)
    finally:
        for m in flags:
            m.batch_first = False


def replacement(module: nn.Module) -> tuple[Callable, bool] | None:
    """``(tracked forward, owns its children's parameters)`` for a layer of this module."""
    if type(module) is nn.MultiheadAttention:
        return mha_forward, True
    if type(module) in _LAYOUTS and _seq_first(module):
        return batch_first_forward, False
    return None
