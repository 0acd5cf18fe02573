"""Vectorised grid sweeps: train K fixed-hyper-parameter settings of one model at once.

The paper's sweep is 99% fixed-hyper-parameter runs (SGD, Adam, AdaGrad over a grid of
learning rates and momenta). Runs that share the data set, model, optimizer, batch size and
epochs differ only in their hyper-parameters and seed, so they can train as one program:

* :class:`StackedModel` copies a model and swaps each ``Linear``/``Conv2d`` for a layer whose
  parameters are stacked ``(K, *shape)``; activations run as one batch of ``K * N`` samples
  (member-major), convolutions as one grouped convolution, linear layers as one ``bmm``. The
  model's own ``forward`` runs unchanged. ``Dropout``/``Dropout2d`` draw each member's masks
  from that member's own generator, in the order its sequential run draws them.
* :class:`StackedOptimizer` applies SGD (momentum), Adam or AdaGrad per member with per-member
  learning rates and momenta, as ``torch.optim`` does.
* :func:`run_group` trains a group and returns one :class:`RunResult` per config, the same
  results (to float tolerance) that :func:`autoopt_lab.experiments.run` gives each config:
  each member is initialised with ``torch.manual_seed(seed)``, shuffles with its own
  ``Generator(seed)`` and draws dropout masks from the global stream its run would use.
* :class:`VectorizedExecutor` (executor name ``"vectorized"``) groups a sweep's configs and
  runs groups in worker processes; configs that cannot be grouped run as usual.

>>> from autoopt_lab.experiments import RunConfig
>>> cfgs = [RunConfig("mnist", "adam", lr=lr, batch_size=64, epochs=1, device="cpu",
...                   max_train_samples=256, max_test_samples=64) for lr in (1e-3, 1e-2)]
>>> [len(t) for t in plan_tasks(cfgs)]
[2]
>>> results = run_group(cfgs, progress=False)  # doctest: +SKIP
"""

from __future__ import annotations

import concurrent.futures as cf
import copy
import logging
import math
import multiprocessing
import os
import time
import traceback
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from autoopt_lab.data import shuffled_batches
from autoopt_lab.models import build_model

from .config import RunConfig
from .executors import (
    Executor,
    RunOutcome,
    _execute,
    _init_worker,
    bounded_unordered,
    register_executor,
)
from .run import (
    DIVERGED_LOSS,
    EVAL_BATCH,
    MAX_TRACE_ROWS,
    RunResult,
    _diverged,
    _load,
    _trace_frame,
    library_versions,
    resolve_device,
    run_metrics,
)

logger = logging.getLogger(__name__)

VECTORIZABLE_OPTIMIZERS: tuple[str, ...] = ("sgd", "adam", "adagrad")
# Config fields that may differ inside one group; all others must be equal.
_PER_MEMBER_FIELDS = frozenset({"lr", "momentum", "seed"})
# Groups share one seed by default: their members then see the same batches, and the first
# layer runs once, densely, for all of them (the main saving on CPU).
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


# -- stacked optimizers ---------------------------------------------------------------------


def _per_member(values: Sequence[float], p: Tensor) -> Tensor:
    return torch.tensor(values, dtype=p.dtype, device=p.device).view(-1, *([1] * (p.dim() - 1)))


class StackedOptimizer:
    """SGD with momentum, Adam or AdaGrad on stacked ``(K, ...)`` parameters, with member
    ``k`` using ``lrs[k]`` (and ``momenta[k]`` for SGD). Same maths as ``torch.optim``'s
    defaults (no weight decay, dampening, Nesterov, AMSGrad or lr decay).

    >>> p = torch.nn.Parameter(torch.ones(2, 3))
    >>> opt = StackedOptimizer([p], "sgd", lrs=[0.1, 0.2], momenta=[0.0, 0.9])
    >>> p.grad = torch.ones(2, 3); opt.step(); [round(v, 4) for v in p[:, 0].tolist()]
    [0.9, 0.8]
    """

    def __init__(
        self,
        params: Iterable[Tensor],
        kind: str,
        *,
        lrs: Sequence[float],
        momenta: Sequence[float] | None = None,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float | None = None,
    ) -> None:
        if kind not in VECTORIZABLE_OPTIMIZERS:
            raise ValueError(
                f"unknown optimizer {kind!r}; allowed: {', '.join(VECTORIZABLE_OPTIMIZERS)}"
            )
        self.params = list(params)
        self.kind = kind
        self.k = len(lrs)
        if kind == "sgd" and (momenta is None or len(momenta) != self.k):
            raise ValueError("sgd needs one momentum per learning rate")
        for p in self.params:
            if p.shape[0] != self.k:
                raise ValueError(f"parameter of shape {tuple(p.shape)} has no K={self.k} axis")
        self.betas = betas
        self.eps = eps if eps is not None else (1e-10 if kind == "adagrad" else 1e-8)
        self.lr = [_per_member(lrs, p) for p in self.params]
        self.momentum = [_per_member(momenta or [0.0] * self.k, p) for p in self.params]
        self.step_count = 0
        self.state: list[dict[str, Tensor]] = [{} for _ in self.params]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        self.step_count += 1
        t = self.step_count
        for p, lr, mom, st in zip(self.params, self.lr, self.momentum, self.state, strict=True):
            g = p.grad
            if g is None:
                continue
            if self.kind == "sgd":
                buf = st.get("momentum_buffer")
                if buf is None:
                    buf = st["momentum_buffer"] = g.clone()
                else:
                    buf.mul_(mom).add_(g)
                p.sub_(lr * buf)
            elif self.kind == "adam":
                b1, b2 = self.betas
                if not st:
                    st["exp_avg"] = torch.zeros_like(p)
                    st["exp_avg_sq"] = torch.zeros_like(p)
                m, v = st["exp_avg"], st["exp_avg_sq"]
                m.lerp_(g, 1 - b1)
                v.mul_(b2).addcmul_(g, g, value=1 - b2)
                bc1 = 1 - b1**t
                bc2_sqrt = math.sqrt(1 - b2**t)
                denom = (v.sqrt() / bc2_sqrt).add_(self.eps)
                p.sub_((lr / bc1) * m / denom)
            else:  # adagrad
                if not st:
                    st["sum"] = torch.zeros_like(p)
                s = st["sum"]
                s.addcmul_(g, g, value=1)
                p.sub_(lr * g / s.sqrt().add_(self.eps))


# -- grouping -------------------------------------------------------------------------------


def group_key(config: RunConfig) -> tuple | None:
    """Configs with equal keys can train together; ``None`` for configs that cannot."""
    if config.optimizer not in VECTORIZABLE_OPTIMIZERS:
        return None
    d = {k: v for k, v in config.to_dict().items() if k not in _PER_MEMBER_FIELDS}
    d["trace_every"] = config.trace_every
    return tuple(sorted((k, str(v)) for k, v in d.items()))


def plan_tasks(
    configs: Iterable[RunConfig],
    *,
    max_group: int = 64,
    max_samples_per_step: int = 16384,
    mix_seeds: bool = False,
) -> list[list[RunConfig]]:
    """Split configs into tasks: groups of at least two configs that :func:`run_group` trains
    together (at most ``max_group`` members and ``max_samples_per_step`` samples per step),
    and single configs. Order within a group follows the input order. Groups hold one seed
    unless ``mix_seeds`` (mixed-seed groups cannot share the first layer's work).

    >>> from autoopt_lab.experiments import RunConfig
    >>> cfgs = [RunConfig("mnist", "sgd", lr=lr, momentum=0.0, batch_size=n)
    ...         for n in (32, 64) for lr in (0.1, 0.01, 0.001)]
    >>> [len(t) for t in plan_tasks(cfgs, max_group=2)]
    [2, 1, 2, 1]
    """
    if max_group < 1:
        raise ValueError(f"max_group must be >= 1, got {max_group}")
    groups: dict[tuple, list[RunConfig]] = {}
    singles: list[list[RunConfig]] = []
    order: list[tuple] = []
    for c in configs:
        key = group_key(c)
        if key is not None and not mix_seeds:
            key = (*key, ("seed", str(c.seed)))
        if key is None:
            singles.append([c])
            continue
        if key not in groups:
            groups[key] = []
            order.append(key)
        groups[key].append(c)
    tasks: list[list[RunConfig]] = []
    for key in order:
        members = groups[key]
        size = max(1, min(max_group, max_samples_per_step // members[0].batch_size))
        tasks.extend(members[i : i + size] for i in range(0, len(members), size))
    return tasks + singles


# -- training -------------------------------------------------------------------------------


def _check_group(configs: Sequence[RunConfig]) -> None:
    if not configs:
        raise ValueError("run_group needs at least one config")
    keys = {group_key(c) for c in configs}
    if None in keys:
        bad = [c.optimizer for c in configs if group_key(c) is None]
        raise NotVectorizableError(
            f"optimizer(s) {sorted(set(bad))} cannot be vectorised; allowed: "
            f"{', '.join(VECTORIZABLE_OPTIMIZERS)}"
        )
    if len(keys) != 1:
        raise NotVectorizableError(
            "a group must share every config field except lr, momentum and seed"
        )


def _hparams(config: RunConfig) -> tuple[float, float]:
    if config.optimizer == "sgd":
        return float(config.lr), float(config.momentum)
    if config.optimizer == "adam":
        return float(config.lr), float(config.betas[0])
    return float(config.lr), 0.0


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


def run_group(
    configs: Sequence[RunConfig], *, data_root: str | None = None, progress: bool = True
) -> list[RunResult]:
    """Train every config of a group at once; one :class:`RunResult` per config, in order.

    Each result matches what :func:`autoopt_lab.experiments.run` returns for that config, up
    to float rounding (on CPU the data order, initial weights and dropout masks are the same;
    on CUDA dropout masks differ, as they differ between CUDA runs anyway). Metrics gain
    ``vectorized_group`` (K); ``wall_time_s`` is the group's wall time divided by K.
    """
    configs = list(configs)
    _check_group(configs)
    t0 = time.perf_counter()
    c0 = configs[0]
    k = len(configs)
    device = resolve_device(c0.device)
    x_train, y_train, train_info, n_train = _load(c0, True, device, data_root)
    x_test, y_test, test_info, n_test = _load(c0, False, device, data_root)

    members: list[nn.Module] = []
    dropout_gens: list[torch.Generator] = []
    for c in configs:  # the same seeding, in the same order, as run()
        torch.manual_seed(c.seed)
        if device.type == "cuda":
            torch.cuda.manual_seed_all(c.seed)
        members.append(
            build_model(
                c.model, in_channels=train_info.channels, num_classes=train_info.num_classes
            ).to(device)
        )
        gen = torch.Generator(device=device)
        if device.type == "cpu":
            gen.set_state(torch.get_rng_state())  # the stream run()'s dropout layers draw from
        else:
            gen.manual_seed(c.seed)
        dropout_gens.append(gen)
    model = StackedModel(members, dropout_gens).to(device)
    names = [n for n, p in members[0].named_parameters() if p.requires_grad]
    del members
    hps = [_hparams(c) for c in configs]
    optimizer = StackedOptimizer(
        model.parameters(),
        c0.optimizer,
        lrs=[c.lr for c in configs],
        momenta=[c.momentum or 0.0 for c in configs] if c0.optimizer == "sgd" else None,
        betas=c0.betas,
    )
    shuffle_gens = [torch.Generator().manual_seed(c.seed) for c in configs]
    shared = len({c.seed for c in configs}) == 1

    bs = c0.batch_size
    steps_per_epoch = sum(1 for s in range(0, n_train, bs) if min(bs, n_train - s) >= 1)
    total_steps = steps_per_epoch * c0.epochs
    every = c0.trace_every or max(1, math.ceil(total_steps / MAX_TRACE_ROWS))

    rows: list[list[tuple]] = [[] for _ in configs]
    per_epoch = [
        {"train_err_pct": [], "test_err_pct": [], "train_loss": [], "test_loss": []}
        for _ in configs
    ]
    hp_tensors = [torch.tensor(h, dtype=torch.float32, device=device) for h in hps]
    stop_step: list[int | None] = [None] * k  # step at which a member diverged
    finished = [False] * k
    snapshots: dict[int, dict[str, Tensor]] = {}
    step = 0
    bar = tqdm(
        total=total_steps,
        desc=f"{c0.optimizer} x{k} N={bs}",
        disable=not progress,
        leave=False,
        dynamic_ncols=True,
    )
    checked_rng = False
    model.train()
    for epoch in range(c0.epochs):
        window = torch.zeros(k, device=device)
        window_n = 0
        batches = zip(
            *(shuffled_batches(n_train, bs, g, min_batch=1) for g in shuffle_gens), strict=True
        )
        for idx_list in batches:
            n = len(idx_list[0])
            if shared:  # one seed: every member sees the same batch
                idx = idx_list[0].to(device)
                x, y = x_train[idx], y_train[idx].repeat(k)
            else:
                idx = torch.cat(idx_list).to(device)
                x, y = x_train[idx], y_train[idx]
            optimizer.zero_grad()
            rng_before = None if checked_rng else torch.get_rng_state()
            out = model(x, shared=shared)
            if rng_before is not None:
                checked_rng = True
                if not torch.equal(rng_before, torch.get_rng_state()):
                    raise NotVectorizableError(
                        f"model {c0.model!r} draws random numbers outside nn.Dropout/Dropout2d "
                        "modules, so its members cannot reproduce their sequential runs"
                    )
            losses = F.nll_loss(out, y, reduction="none").view(k, n).mean(1)
            losses.sum().backward()
            optimizer.step()
            step += 1
            window += losses.detach()
            window_n += 1
            if step % every == 0 or step == total_steps:
                lcopy, wmean = losses.detach().clone(), window / window_n
                for j in range(k):
                    if stop_step[j] is None and not finished[j]:
                        hp = dict.fromkeys(names, hp_tensors[j])
                        rows[j].append((step, epoch + 1, lcopy[j], wmean[j], hp))
                window = torch.zeros(k, device=device)
                window_n = 0
                if device.type == "cpu":
                    blown = ~torch.isfinite(lcopy) | (lcopy > DIVERGED_LOSS)  # as run() decides
                    bad = blown.nonzero().flatten().tolist()
                    for j in bad:
                        if stop_step[j] is None and not finished[j]:
                            stop_step[j] = step
                            snapshots[j] = model.member_state(j)
            bar.update(1)
            if all(s is not None or f for s, f in zip(stop_step, finished, strict=True)):
                break
        # members that diverged in this epoch are evaluated as they were when they stopped
        if snapshots:
            with torch.no_grad():
                params = model.stacked_parameters()
                for j, state in snapshots.items():
                    for name, value in state.items():
                        params[name][j].copy_(value)
        train_err, train_loss = evaluate_stacked(model, x_train, y_train)
        test_err, test_loss = evaluate_stacked(model, x_test, y_test)
        for j in range(k):
            if finished[j]:
                continue
            vals = (train_err[j], test_err[j], train_loss[j], test_loss[j])
            for key, v in zip(per_epoch[j], vals, strict=True):
                per_epoch[j][key].append(float(v))
            diverged = stop_step[j] is not None
            if not diverged and rows[j] and _diverged(float(rows[j][-1][2])):
                stop_step[j] = rows[j][-1][0]
                diverged = True
            if diverged:
                finished[j] = True
        snapshots.clear()
        if all(finished):
            break
    bar.close()

    wall = time.perf_counter() - t0
    versions = library_versions()
    results = []
    for j, c in enumerate(configs):
        pe = per_epoch[j]
        metrics = run_metrics(
            pe,
            diverged=stop_step[j] is not None,
            steps=stop_step[j] if stop_step[j] is not None else step,
            trace_every=every,
            wall_time_s=wall / k,
            device=device,
            train_info=train_info,
            test_info=test_info,
            n_train=n_train,
            n_test=n_test,
            versions=versions,
        )
        metrics["vectorized_group"] = k
        results.append(RunResult(c, metrics, _trace_frame(rows[j])))
    return results


# -- executing tasks ------------------------------------------------------------------------


def execute_task(
    task: Sequence[RunConfig], data_root: str | None = None, progress: bool = False
) -> list[RunOutcome]:
    """Run one task of :func:`plan_tasks`: a group through :func:`run_group` (falling back to
    one run per config if the group cannot be vectorised), a single config through ``run``."""
    task = list(task)
    if len(task) == 1:
        return [_execute(task[0], data_root, progress)]
    try:
        results = run_group(task, data_root=data_root, progress=progress)
    except NotVectorizableError as exc:
        logger.warning("running %d configs one by one: %s", len(task), exc)
        return [_execute(c, data_root, progress) for c in task]
    except Exception:  # noqa: BLE001 - recorded per run, the sweep goes on
        err = traceback.format_exc()
        return [RunOutcome(c, error=err) for c in task]
    return [RunOutcome(r.config, r) for r in results]


class VectorizedExecutor(Executor):
    """Groups configs with :func:`plan_tasks` and trains each group at once; ``workers``
    processes (spawned, ``threads_per_worker`` torch threads each) run the tasks; with
    ``workers=1`` they run in this process.

    >>> ex = VectorizedExecutor(workers=1, progress=False)
    >>> isinstance(ex, Executor)
    True
    """

    def __init__(
        self,
        workers: int | None = None,
        *,
        threads_per_worker: int = 1,
        data_root: str | None = None,
        progress: bool = False,
        max_group: int = 64,
        max_samples_per_step: int = 16384,
        mix_seeds: bool = False,
        **_: Any,
    ) -> None:
        self.mix_seeds = mix_seeds
        self.workers = max(1, int(workers or os.cpu_count() or 1))
        self.data_root = data_root
        self.progress = progress
        self.max_group = max_group
        self.max_samples_per_step = max_samples_per_step
        self._pool: cf.ProcessPoolExecutor | None = None
        if self.workers > 1:
            self._pool = cf.ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
                initargs=(max(1, int(threads_per_worker)), data_root),
            )

    def map_unordered(self, configs: Iterable[RunConfig]) -> Iterator[RunOutcome]:
        tasks = plan_tasks(
            configs,
            max_group=self.max_group,
            max_samples_per_step=self.max_samples_per_step,
            mix_seeds=self.mix_seeds,
        )
        logger.info(
            "vectorised sweep: %d tasks (%d groups) for %d configs",
            len(tasks),
            sum(len(t) > 1 for t in tasks),
            sum(map(len, tasks)),
        )
        if self._pool is None:
            for task in tasks:
                yield from execute_task(task, self.data_root, self.progress)
            return
        for outcomes in bounded_unordered(
            self._pool, execute_task, tasks, self.workers, self.data_root
        ):
            yield from outcomes

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)


register_executor("vectorized", VectorizedExecutor)
