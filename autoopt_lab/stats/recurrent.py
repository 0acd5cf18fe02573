"""LSTM and GRU in the hook engine: an unrolled forward that reports per-sample gradients.

``nn.LSTM``/``nn.GRU`` run the whole recurrence in one ATen call, so no hook sees a sample's
gradient. A tracked LSTM/GRU runs :func:`rnn_forward` instead: for each layer and direction,
the input projection of the whole sequence at once through
:func:`autoopt_lab.stats.linears.linears` (per-sample ``weight_ih``/``bias_ih``), then the
recurrence one time step at a time with the recurrent weights detached; a hook on each step's
recurrent projection keeps its output gradient, and one batched product per layer gives the
per-sample ``weight_hh``/``bias_hh`` gradients (and their sum, the parameter gradient) once the
backward has passed the first step. The outputs equal nn.LSTM's/nn.GRU's to float rounding.

Where :func:`autoopt_lab.stats.ghost.choose` finds it cheaper, a weight's statistic is the
ghost norm (0-dim ``Q``, no per-sample gradients) and its gradient one matmul.

Cost (forward + backward, CPU, one thread, N = 32, T = 32, hidden 128, plain and tracked
steps alternated on a shared machine, both weights on the ghost path): LSTM 1.8-1.9x
``nn.LSTM``, GRU 1.3x ``nn.GRU``; the unrolled recurrence alone (no statistics) is 1.5x.
With per-sample gradients (elementwise path) the LSTM was 2.0-2.3x.

Not covered: ``PackedSequence`` input and ``proj_size`` (refused with a message).

>>> import torch
>>> from autoopt_lab.stats import track
>>> lstm = torch.nn.LSTM(3, 4, batch_first=True)
>>> with track(lstm):
...     out, (h, c) = lstm(torch.randn(2, 5, 3))
...     h.sum().backward()
...     lstm.weight_hh_l0.autoopt_stats.sum_sq.shape
torch.Size([16, 4])
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable
from torch.nn.utils.rnn import PackedSequence

from . import ghost, record
from .linears import Report, linears, statistics_path
from .rules import UnsupportedModuleError, register_rule


def _check(m: nn.Module) -> str | None:
    if getattr(m, "proj_size", 0):
        return "proj_size > 0 is not supported by the hook engine"
    return None


def _param_names(layers: int = 64) -> tuple[str, ...]:
    names = []
    for layer in range(layers):
        for sfx in ("", "_reverse"):
            for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                names.append(f"{kind}_l{layer}{sfx}")
    return tuple(names)


@register_rule(nn.LSTM, nn.GRU, check=_check, params=_param_names())
def _rnn_per_sample(m: nn.Module, a: Tensor, dz: Tensor) -> dict[str, Tensor]:
    raise RuntimeError(  # never reached: the tracker replaces the forward (rnn_forward)
        "LSTM/GRU report their per-sample gradients from their tracked forward"
    )


class _Recurrent(torch.autograd.Function):
    """Identity on ``h0`` that owns the recurrent weights' gradients.

    The steps use the weights detached; each step's projection hands its output gradient to
    ``steps``. The backward of this node, which runs after every step's, turns them into the
    per-sample gradients and returns their sum as the weights' gradients.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, h0: Tensor, weight: Tensor, bias: Tensor | None, steps: dict, meta: tuple
    ) -> Tensor:
        ctx.steps, ctx.meta, ctx.has_bias = steps, meta, bias is not None
        ctx.save_for_backward(weight)
        return h0.clone()

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, dh0: Tensor) -> tuple:  # type: ignore[override]
        names, report = ctx.meta
        (weight,) = ctx.saved_tensors
        inputs, grads = ctx.steps["inputs"], ctx.steps["grads"]
        kept = [t for t in range(len(inputs)) if grads[t] is not None]
        grad_w = grad_b = None
        if kept:
            dz = torch.stack([grads[t] for t in kept]).to(weight.dtype)  # (T, N, G)
            h = torch.stack([inputs[t] for t in kept]).to(weight.dtype)  # (T, N, H)
            n, per_sample, sums = dz.shape[1], {}, {}
            if ctx.has_bias:
                per_sample[names[1]] = dz.sum(0)
            if statistics_path(report, names[0], weight, n, len(kept)) == "ghost":
                weights = record.published_weights(weight)
                sums[names[0]] = ghost.linear_ghost_norm(
                    h.transpose(0, 1), dz.transpose(0, 1), weights
                )
                if ctx.needs_input_grad[1]:
                    grad_w = dz.reshape(-1, dz.shape[-1]).t() @ h.reshape(-1, h.shape[-1])
            else:
                per_sample[names[0]] = torch.einsum("tng,tnh->ngh", dz, h)
                if ctx.needs_input_grad[1]:
                    grad_w = per_sample[names[0]].sum(0)
            if ctx.has_bias and ctx.needs_input_grad[2]:
                grad_b = per_sample[names[1]].sum(0)
            report(n, per_sample, sums)
        ctx.steps.clear()
        return dh0, grad_w, grad_b, None, None


def _keep(steps: dict, t: int) -> Callable[[Tensor], None]:
    def hook(grad: Tensor) -> None:
        steps["grads"][t] = grad.detach()

    return hook


def _lstm_step(gates: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
    """``gates`` = all four pre-activations (i, f, g, o), as ATen's LSTM cell orders them."""
    size = c.shape[1]
    act = torch.sigmoid(gates)  # the g quarter is wasted; one call instead of three
    i, f, o = act[:, :size], act[:, size : 2 * size], act[:, 3 * size :]
    c = torch.addcmul(f * c, i, torch.tanh(gates[:, 2 * size : 3 * size]))
    return o * torch.tanh(c), c


def _gru_step(gi: Tensor, gh: Tensor, h: Tensor) -> Tensor:
    size = h.shape[1]
    rz = torch.sigmoid(gi[:, : 2 * size] + gh[:, : 2 * size])
    n = torch.tanh(torch.addcmul(gi[:, 2 * size :], rz[:, :size], gh[:, 2 * size :]))
    return torch.lerp(n, h.to(n.dtype), rz[:, size:].to(n.dtype))  # (1 - z) n + z h


def _direction(
    m: nn.RNNBase, report: Report | None, x: Tensor, sfx: str, h: Tensor, c: Tensor | None
) -> tuple[Tensor, Tensor, Tensor | None]:
    """One layer in one direction over ``x`` ``(T, N, I)`` (already reversed if backward);
    ``report=None``: plain autograd operations only (for ``torch.func``)."""
    lstm = isinstance(m, nn.LSTM)
    names = [f"{k}{sfx}" for k in ("weight_ih", "bias_ih", "weight_hh", "bias_hh")]
    params = {n: getattr(m, n) for n in names if hasattr(m, n)}
    b_ih = names[1] if names[1] in params else None
    w_hh, b_hh = params[names[2]], params.get(names[3])
    steps: dict = {"inputs": [None] * x.shape[0], "grads": [None] * x.shape[0]}
    if report is None:
        gi = F.linear(x, params[names[0]], params.get(names[1]))
    else:
        (gi,) = linears([(x, names[0], None, b_ih, None)], params, report, batch_dim=1)
        if w_hh.requires_grad or (b_hh is not None and b_hh.requires_grad):
            h = _Recurrent.apply(h, w_hh, b_hh, steps, (names[2:], report))
        w_hh, b_hh = w_hh.detach(), None if b_hh is None else b_hh.detach()
    w_t = w_hh.t()
    if lstm and b_hh is not None:  # the recurrent bias joins the input gates (same gradient)
        gi = gi + b_hh
    outs = []
    for t, gi_t in enumerate(gi.unbind(0)):  # one backward for all steps (gi[t]: one each)
        if lstm:  # the hook on the gates sees the recurrent projection's output gradient
            gh = torch.addmm(gi_t, h, w_t)
        else:
            gh = h @ w_t if b_hh is None else torch.addmm(b_hh, h, w_t)
        if report is not None and gh.requires_grad:
            steps["inputs"][t] = h.detach()
            gh.register_hook(_keep(steps, t))
        if lstm:
            h, c = _lstm_step(gh, c)
        else:
            h = _gru_step(gi_t, gh, h)
        outs.append(h)
    return torch.stack(outs), h, c


def rnn_forward(m: nn.RNNBase, report: Report | None, input: Tensor, hx: Any = None):
    """``nn.LSTM.forward`` / ``nn.GRU.forward`` unrolled, with reporting projections
    (``report=None``: plain autograd operations, which ``torch.func.vmap`` can batch; the
    functional engine uses it, as ``vmap`` has no rule for ATen's GRU)."""
    if isinstance(input, PackedSequence):
        raise UnsupportedModuleError(
            f"{type(m).__name__}: PackedSequence input is not supported by the hook engine; "
            "pad the batch, or use autoopt_lab.stats.functional_backward"
        )
    problem = _check(m)
    if problem:
        raise UnsupportedModuleError(f"{type(m).__name__}: {problem}")
    lstm = isinstance(m, nn.LSTM)
    batched = input.dim() == 3
    x = input if batched else input.unsqueeze(1)
    if m.batch_first and batched:
        x = x.transpose(0, 1)
    n, dirs, size = x.shape[1], 2 if m.bidirectional else 1, m.hidden_size
    if hx is None:
        h0 = x.new_zeros(m.num_layers * dirs, n, size)
        c0 = h0 if lstm else None
    else:
        h0, c0 = hx if lstm else (hx, None)
        if not batched:
            h0 = h0.unsqueeze(1)
            c0 = None if c0 is None else c0.unsqueeze(1)
    h_n, c_n = [], []
    for layer in range(m.num_layers):
        outs = []
        for d in range(dirs):
            k = layer * dirs + d
            seq = x if d == 0 else x.flip(0)
            out, h, c = _direction(
                m, report, seq, f"_l{layer}" + ("_reverse" if d else ""), h0[k],
                None if c0 is None else c0[k],
            )
            outs.append(out if d == 0 else out.flip(0))
            h_n.append(h)
            c_n.append(c)
        x = outs[0] if dirs == 1 else torch.cat(outs, -1)
        if m.dropout and m.training and layer < m.num_layers - 1:
            x = F.dropout(x, m.dropout, training=True)
    out = x.transpose(0, 1) if m.batch_first and batched else x
    h_n = torch.stack(h_n)
    c_n = torch.stack(c_n) if lstm else None
    if not batched:
        out, h_n = out.squeeze(1), h_n.squeeze(1)
        c_n = None if c_n is None else c_n.squeeze(1)
    return (out, (h_n, c_n)) if lstm else (out, h_n)


def replacement(module: nn.Module) -> tuple[Callable, bool] | None:
    """``(tracked forward, owns its parameters)`` for an ``nn.LSTM``/``nn.GRU``."""
    if type(module) in (nn.LSTM, nn.GRU):
        return rnn_forward, True
    return None
