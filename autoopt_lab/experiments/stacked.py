"""Stacked models: K copies of one architecture trained as one module (the vectorised sweep).

:class:`StackedModel` copies a model and swaps each ``Linear``/``Conv2d`` for a layer whose
parameters are stacked ``(K, *shape)``; activations run as one batch of ``K * N`` samples
(member-major), convolutions as one grouped convolution, linear layers as one ``bmm``. The
model's own ``forward`` runs unchanged. ``Dropout``/``Dropout2d`` draw each member's masks
from that member's own generator, in the order its sequential run draws them.

>>> import torch
>>> nets = [torch.nn.Sequential(torch.nn.Linear(3, 2)) for _ in range(4)]
>>> sm = StackedModel(nets, [torch.Generator() for _ in nets])
>>> sm(torch.randn(4 * 5, 3)).shape
torch.Size([20, 2])
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .evaluation import EVAL_BATCH

EVAL_SAMPLES_PER_CHUNK = 8192  # K * eval batch is capped at this many samples


class NotVectorizableError(ValueError):
    """A model or config group that the vectorised trainer cannot run."""


# -- stacked layers -------------------------------------------------------------------------
#
# Activations take one of three layouts, tracked by a small shared ``_Layout`` per forward:
# * shared        ``(N, ...)``: the input, identical for every member (no member split yet);
# * member-major  ``(K*N, ...)``: member k's samples are rows k*N .. k*N + N - 1;
# * channel-stacked ``(N, K*C, H, W)``: member k's channels are k*C .. k*C + C - 1 (what a
#   grouped convolution eats and makes; per-channel layers such as pooling run on it as is).


@dataclass
class _Layout:
    k: int
    n: int = 0  # samples per member in this forward
    split: bool = True  # False while activations are still the shared input

    def member_major(self, x: Tensor) -> bool:
        return self.k > 1 and x.shape[0] == self.k * self.n


class StackedLinear(nn.Module):
    """K ``nn.Linear`` layers; input in any layout (channel-stacked only as ``(N, K*F)``),
    output member-major."""

    def __init__(self, layers: Sequence[nn.Linear], layout: _Layout) -> None:
        super().__init__()
        self.layout = layout
        self.k = len(layers)
        self.weight = nn.Parameter(torch.stack([m.weight.detach() for m in layers]))
        has_bias = layers[0].bias is not None
        self.bias = (
            nn.Parameter(torch.stack([m.bias.detach() for m in layers])) if has_bias else None
        )

    def forward(self, x: Tensor) -> Tensor:
        lay, k = self.layout, self.k
        out_f, in_f = self.weight.shape[1], self.weight.shape[2]
        if not lay.split:  # shared input: one dense matmul for all members
            w = self.weight.reshape(k * out_f, in_f)
            b = None if self.bias is None else self.bias.reshape(-1)
            out = F.linear(x, w, b).unflatten(-1, (k, out_f)).movedim(-2, 0)
            lay.split = True
            return out.reshape(-1, *out.shape[2:])
        if lay.member_major(x):
            xk = x.reshape(k, -1, in_f)
        elif x.dim() == 2 and x.shape == (lay.n, k * in_f):  # flattened channel-stacked
            xk = x.view(lay.n, k, in_f).transpose(0, 1)
        else:
            raise NotVectorizableError(
                f"Linear({in_f}, {out_f}) got an input of shape {tuple(x.shape)} that is "
                f"neither member-major (K*N={k * lay.n} rows) nor a flattened grouped activation"
            )
        wt = self.weight.transpose(1, 2)
        out = torch.bmm(xk, wt) if self.bias is None else torch.baddbmm(self.bias[:, None], xk, wt)
        return (
            out.reshape(-1, *x.shape[1:-1], out_f)
            if lay.member_major(x)
            else out.reshape(-1, out_f)
        )


class StackedConv2d(nn.Module):
    """K ``nn.Conv2d`` layers: one dense convolution on the shared input, one grouped
    convolution otherwise; output channel-stacked (channels-last on CPU, where pooling and
    grouped convolutions are much faster in that format)."""

    def __init__(self, layers: Sequence[nn.Conv2d], layout: _Layout) -> None:
        super().__init__()
        m = layers[0]
        if m.padding_mode != "zeros":
            raise NotVectorizableError(f"Conv2d padding_mode {m.padding_mode!r} (only 'zeros')")
        self.layout = layout
        self.k = len(layers)
        self.in_channels = m.in_channels
        self.stride, self.padding, self.dilation, self.groups = (
            m.stride,
            m.padding,
            m.dilation,
            m.groups,
        )
        self.weight = nn.Parameter(torch.stack([c.weight.detach() for c in layers]))
        self.bias = (
            nn.Parameter(torch.stack([c.bias.detach() for c in layers]))
            if m.bias is not None
            else None
        )

    def forward(self, x: Tensor) -> Tensor:
        lay, k, c = self.layout, self.k, self.in_channels
        if x.dim() != 4:
            raise NotVectorizableError(f"Conv2d on a {x.dim()}-D input (only batched 4-D)")
        weight = self.weight.reshape(-1, *self.weight.shape[2:])
        bias = None if self.bias is None else self.bias.reshape(-1)
        args = (self.stride, self.padding, self.dilation)
        if x.device.type == "cpu" and x.shape[1] == 1 and x.is_contiguous():
            # one channel: NCHW and channels-last coincide; say channels-last to oneDNN
            x = x.as_strided(x.shape, (x.shape[2] * x.shape[3], 1, x.shape[3], 1))
        if not lay.split and self.groups == 1:  # shared input: one dense convolution
            lay.split = True
            return self._format(F.conv2d(x, weight, bias, *args, 1))
        if not lay.split:
            x = x.repeat(1, k, 1, 1)
            lay.split = True
        elif lay.member_major(x):
            _, _, h, w = x.shape
            x = x.reshape(k, lay.n, c, h, w).transpose(0, 1).reshape(lay.n, k * c, h, w)
        elif x.shape[:2] != (lay.n, k * c):
            raise NotVectorizableError(
                f"Conv2d({c}, ...) got an input of shape {tuple(x.shape)} in no known layout"
            )
        return self._format(F.conv2d(x, weight, bias, *args, k * self.groups))

    @staticmethod
    def _format(out: Tensor) -> Tensor:
        # CPU pooling is ~8x faster on channels-last activations with many channels
        if out.device.type == "cpu":
            return out.contiguous(memory_format=torch.channels_last)
        return out


class StackedDropout(nn.Module):
    """Dropout (or Dropout2d) whose member ``k`` draws its masks from ``generators[k]``,
    exactly as ``F.dropout`` / ``F.dropout2d`` draw them on CPU (``bernoulli_(1 - p)``
    on a tensor of the member's shape, then ``div_(1 - p)``)."""

    def __init__(
        self, p: float, generators: Sequence[torch.Generator], layout: _Layout, *, feature: bool
    ) -> None:
        super().__init__()
        self.p = float(p)
        self.generators = list(generators)
        self.layout = layout
        self.feature = feature

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        lay, k = self.layout, len(self.generators)
        if self.feature and x.dim() != 4:
            raise NotVectorizableError(f"Dropout2d on a {x.dim()}-D input (only 4-D)")
        if not lay.split:  # members part ways here
            x = x.repeat(k, *([1] * (x.dim() - 1)))
            lay.split = True
        if lay.member_major(x):
            shape, dim = (lay.n, *x.shape[1:]), 0
        elif x.dim() >= 2 and x.shape[0] == lay.n and x.shape[1] % k == 0:  # channel-stacked
            shape, dim = (lay.n, x.shape[1] // k, *x.shape[2:]), 1
        else:
            raise NotVectorizableError(
                f"dropout input of shape {tuple(x.shape)} in no known layout"
            )
        if self.feature:
            shape = (*shape[:2], 1, 1)
        if self.p == 1.0:
            return x * torch.zeros((), dtype=x.dtype, device=x.device)
        masks = [
            torch.empty(shape, dtype=x.dtype, device=x.device).bernoulli_(1 - self.p, generator=g)
            for g in self.generators
        ]
        return x * torch.cat(masks, dim).div_(1 - self.p)


class StackedModel(nn.Module):
    """K copies of one architecture (``models``: same type, different weights) as one module.

    ``generators[k]`` supplies member k's dropout masks. The input is a member-major batch
    ``(K*N, ...)``, or with ``shared=True`` one batch ``(N, ...)`` that all members see; the
    output is member-major. Parameters keep the original names, with a leading K axis.
    Supported: ``Linear``, ``Conv2d``, ``Dropout``, ``Dropout2d`` and parameter-free layers
    that treat samples and channels independently (ReLU, pooling, flatten, log-softmax).

    >>> import torch
    >>> nets = [torch.nn.Sequential(torch.nn.Linear(3, 2)) for _ in range(4)]
    >>> sm = StackedModel(nets, [torch.Generator() for _ in nets])
    >>> sm(torch.randn(4 * 5, 3)).shape, sm.stacked_parameters()["0.weight"].shape
    (torch.Size([20, 2]), torch.Size([4, 2, 3]))
    """

    def __init__(self, models: Sequence[nn.Module], generators: Sequence[torch.Generator]) -> None:
        super().__init__()
        if not models:
            raise ValueError("StackedModel needs at least one model")
        if len(generators) != len(models):
            raise ValueError(f"{len(models)} models but {len(generators)} generators")
        if len({type(m) for m in models}) != 1:
            raise NotVectorizableError("all members must be the same model class")
        self.k = len(models)
        self._layout = _Layout(self.k)
        self.net = copy.deepcopy(models[0])
        tables = [dict(m.named_modules()) for m in models]
        for name, module in list(self.net.named_modules()):
            if not name:
                if list(module.parameters(recurse=False)) or list(module.buffers(recurse=False)):
                    raise NotVectorizableError("the root module holds parameters or buffers")
                continue
            new = self._stacked(name, module, [t[name] for t in tables], generators)
            if new is not None:
                self.net.set_submodule(name, new)

    def _stacked(
        self,
        name: str,
        module: nn.Module,
        members: list[nn.Module],
        gens: Sequence[torch.Generator],
    ) -> nn.Module | None:
        lay = self._layout
        if type(module) is nn.Linear:
            return StackedLinear(members, lay)
        if type(module) is nn.Conv2d:
            return StackedConv2d(members, lay)
        if type(module) in (nn.Dropout, nn.Dropout2d):
            return StackedDropout(module.p, gens, lay, feature=type(module) is nn.Dropout2d)
        own = list(module.parameters(recurse=False)) + list(module.buffers(recurse=False))
        if own:
            raise NotVectorizableError(
                f"module {name!r} ({type(module).__name__}) has parameters or buffers; the "
                "vectorised trainer supports Linear, Conv2d, Dropout, Dropout2d and "
                "parameter-free layers"
            )
        if isinstance(module, nn.modules.dropout._DropoutNd):
            raise NotVectorizableError(
                f"module {name!r} ({type(module).__name__}): only Dropout and Dropout2d"
            )
        return None

    def forward(self, x: Tensor, *, shared: bool = False) -> Tensor:
        lay = self._layout
        lay.n = x.shape[0] if shared else x.shape[0] // self.k
        lay.split = not shared or self.k == 1
        if not shared and x.shape[0] != self.k * lay.n:
            raise ValueError(f"a member-major batch needs K*N rows (K={self.k}), got {x.shape[0]}")
        out = self.net(x)
        if not lay.split:  # no layer told the members apart
            out = out.repeat(self.k, *([1] * (out.dim() - 1)))
        if not lay.member_major(out) and self.k > 1:
            raise NotVectorizableError(
                f"the model's output of shape {tuple(out.shape)} is not member-major; its last "
                "layer must be Linear (or followed only by per-sample layers)"
            )
        return out

    def stacked_parameters(self) -> dict[str, nn.Parameter]:
        """``{original parameter name: stacked (K, *shape) parameter}``."""
        return {n.removeprefix("net."): p for n, p in self.named_parameters()}

    def member_state(self, k: int) -> dict[str, Tensor]:
        """Member ``k``'s parameters under the original names (detached copies)."""
        return {n: p.detach()[k].clone() for n, p in self.stacked_parameters().items()}




@torch.no_grad()
def evaluate_stacked(model: StackedModel, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """Per-member (error %, mean NLL) as two ``(K,)`` CPU tensors, in eval mode."""
    was_training = model.training
    model.eval()
    k = model.k
    wrong = torch.zeros(k, device=x.device)
    loss = torch.zeros(k, device=x.device, dtype=torch.float64)
    chunk = max(1, min(EVAL_BATCH, EVAL_SAMPLES_PER_CHUNK // k))
    for start in range(0, len(y), chunk):
        xb, yb = x[start : start + chunk], y[start : start + chunk]
        b = len(yb)
        out = model(xb, shared=True).view(k, b, -1)
        wrong += (out.argmax(2) != yb).sum(1)
        loss += F.nll_loss(out.transpose(1, 2), yb.expand(k, b), reduction="none").sum(1).double()
    model.train(was_training)
    n = max(len(y), 1)
    return (100.0 * wrong / n).cpu(), (loss / n).cpu()


@functools.lru_cache(maxsize=32)
def stackable_model(name: str) -> bool:
    """True when :class:`StackedModel` can stack the registered model ``name`` (its layers
    are all supported). A model that draws random numbers outside dropout modules is only
    found out when it runs (:class:`NotVectorizableError`).

    >>> stackable_model("mnist_cnn")
    True
    """
    from autoopt_lab.models import build_model

    try:
        StackedModel([build_model(name), build_model(name)], [torch.Generator()] * 2)
    except NotVectorizableError:
        return False
    return True
