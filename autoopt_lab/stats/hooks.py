"""The hook engine: ``track(model)`` records per-sample statistics on every ``backward()``.

Forward hooks keep each supported layer's input; a tensor hook on the layer's output receives
the gradient that reaches it, and the layer's rule (:mod:`autoopt_lab.stats.rules`) turns the
pair into ``sum_i g_i * g_i`` for each parameter, which is attached to the parameter.

Layers whose own forward bypasses module hooks run a tracked forward that reports per-sample
gradients itself: ``nn.MultiheadAttention`` (:mod:`.attention`), ``nn.LSTM``/``nn.GRU``
(:mod:`.recurrent`), Conv1d/Conv2d fused (:mod:`.fused`). A parameter used several times in
one forward (a reused layer, tied weights) adds up its per-sample gradients before squaring.
Rules compute in float32 under autocast; under ``torch.compile`` the hooks run eagerly
(graph breaks), whether the model was compiled before or after ``track``.

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
import weakref
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Literal

import torch
from torch import Tensor, nn

from . import attention, batchnorm, ghost, record, recurrent
from .fused import fusable, fused_forward
from .hook_support import check_supported, eager, float32, loss_scale, square_sum
from .rules import LayerRule, UnsupportedModuleError, rule_for

Reduction = Literal["mean", "sum"]
BATCHNORM_CHOICES = batchnorm.CHOICES
_TRACKED = "_autoopt_tracker"
_generations = itertools.count(1)
_live: weakref.WeakSet[Tracker] = weakref.WeakSet()  # for explain_missing
_suspended = 0  # > 0 while :func:`suspended` is active: trackers record nothing


def _in_functorch() -> bool:
    return torch._C._functorch.peek_interpreter_stack() is not None


def _replacement(module: nn.Module) -> tuple[Callable, bool] | None:
    """A tracked forward for a layer whose own forward bypasses the hooks, and whether it
    reports all its children's parameters itself (:mod:`.attention`, :mod:`.recurrent`)."""
    return attention.replacement(module) or recurrent.replacement(module)


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


class Tracker:
    """Handle returned by :func:`track`: call :meth:`remove` (or use ``with``) to stop."""

    def __init__(
        self,
        model: nn.Module,
        *,
        loss_reduction: Reduction = "mean",
        fused: bool = True,
        batchnorm: str = "refuse",
    ) -> None:
        loss_scale(loss_reduction, 1)  # validates
        if batchnorm not in BATCHNORM_CHOICES:
            raise ValueError(f"batchnorm must be one of {BATCHNORM_CHOICES}, got {batchnorm!r}")
        if getattr(model, _TRACKED, None) is not None:
            raise RuntimeError("this model is already tracked; remove() the first handle first")
        check_supported(model)
        self.model = model
        self.loss_reduction = loss_reduction
        self.batchnorm = batchnorm
        self._generation = 0
        self._depth = 0  # > 0 inside the tracked model's forward
        self._open = False  # the current generation still takes calls made outside it
        self._calls: dict[tuple[int, int], int] = {}
        self._pending: dict[tuple[int, int], dict] = {}
        #: id(param) -> ids of the modules whose calls report it (several: tied weights)
        self._reporters: dict[int, list[int]] = defaultdict(list)
        self._handles = [
            model.register_forward_pre_hook(eager(self._enter)),
            model.register_forward_hook(eager(self._exit), always_call=True),
        ]
        self._fused: list[nn.Module] = []
        covered: set[int] = set()
        for module in model.modules():
            if id(module) in covered:
                continue
            replaced = _replacement(module)
            if replaced is not None:  # its own forward bypasses the hooks of its children
                forward, owns = replaced
                module.forward = functools.partial(eager(self._replaced_forward), module, forward)
                self._fused.append(module)
                if owns:
                    covered.update(id(m) for m in module.modules())
                    for p in module.parameters():
                        if p.requires_grad:
                            self._reporters[id(p)].append(id(module))
                    continue
            direct = [p for p in module.parameters(recurse=False) if p.requires_grad]
            if not direct:
                continue
            for p in direct:
                self._reporters[id(p)].append(id(module))
            if fused and fusable(module):
                module.forward = functools.partial(eager(self._fused_forward), module)
                self._fused.append(module)
            else:
                self._handles.append(module.register_forward_hook(eager(self._on_forward)))
        setattr(model, _TRACKED, self)
        _live.add(self)

    # -- bookkeeping ----------------------------------------------------------------------
    def _enter(self, module: nn.Module, args: tuple) -> None:
        self._depth += 1
        if self._depth == 1:
            self._new_generation()

    def _exit(self, module: nn.Module, args: tuple, output: object) -> None:
        self._depth = max(self._depth - 1, 0)
        if self._depth == 0:
            self._open = False

    def _new_generation(self) -> None:
        if _suspended:
            return
        self._generation = next(_generations)
        self._open = True
        stale = [k for k in self._calls if k[1] < self._generation - 8]
        for k in stale:
            self._calls.pop(k, None)
        for k in [k for k in self._pending if k[1] < self._generation - 8]:
            self._pending.pop(k, None)

    def _key(self, module: nn.Module) -> tuple[int, int]:
        """Count a call of ``module`` in the current forward pass.

        A layer called outside the tracked model's forward (``model.encoder(x)`` then
        ``model.head(h)``) joins the calls made since the last backward reached a tracked
        layer: one forward pass per backward.
        """
        if self._depth == 0 and not self._open:
            self._new_generation()
        key = (id(module), self._generation)
        self._calls[key] = self._calls.get(key, 0) + 1
        return key

    def _uses(self, param: Tensor, generation: int) -> int:
        """Calls in one forward pass of the modules that report ``param``."""
        return sum(self._calls.get((m, generation), 0) for m in self._reporters[id(param)])

    def _rule(self, module: nn.Module) -> LayerRule:
        if self.batchnorm == "contributions" and batchnorm.uses_batch_statistics(module):
            return batchnorm.CONTRIBUTIONS
        return rule_for(module)

    def _on_forward(self, module: nn.Module, inputs: tuple, output: object) -> None:
        if _suspended or not torch.is_grad_enabled() or not isinstance(output, Tensor):
            return
        if _in_functorch():
            return
        if not output.requires_grad:
            return
        rule = self._rule(module)
        problem = rule.check(module) if rule.check else None
        if problem and batchnorm.uses_batch_statistics(module):
            problem += (
                "; or track(model, batchnorm='contributions') for each sample's contribution "
                "to the batch gradient (autoopt_lab.stats.batchnorm)"
            )
        if problem:
            raise UnsupportedModuleError(f"{type(module).__name__}: {problem}")
        key = self._key(module)
        hook = functools.partial(self._on_grad, module, rule, inputs[0].detach(), key)
        output.register_hook(hook)

    def _fused_forward(self, module: nn.Module, x: Tensor) -> Tensor:
        # inside a torch.func transform (vmap, grad, jvp) the fused function cannot run
        if _suspended or not torch.is_grad_enabled() or _in_functorch():
            return type(module).forward(module, x)
        if torch.is_autocast_enabled(x.device.type):  # the plain layer casts; the hook follows
            out = type(module).forward(module, x)
            self._on_forward(module, (x,), out)
            return out
        key = self._key(module)
        report = functools.partial(self._on_per_sample, module, key)
        on_grad = functools.partial(self._on_grad, module, rule_for(module), x.detach(), key)
        return fused_forward(module, x, report, on_grad)

    def _replaced_forward(
        self, module: nn.Module, forward: Callable, *args: object, **kwargs: object
    ) -> object:
        if _suspended or not torch.is_grad_enabled() or _in_functorch():
            return type(module).forward(module, *args, **kwargs)
        return forward(module, _Reporter(self, module, self._key(module)), *args, **kwargs)

    def _on_per_sample(
        self, module: nn.Module, key: tuple[int, int], a: Tensor, grads: dict[str, Tensor]
    ) -> None:
        self._finish(module, key, a.shape[0], per_sample=grads)

    def _on_grad(
        self, module: nn.Module, rule: LayerRule, a: Tensor, key: tuple[int, int], dz: Tensor
    ) -> None:
        a, dz = float32(a), float32(dz.detach())
        params = [p for p in module.parameters(recurse=False) if p.requires_grad]
        if all(self._uses(p, key[1]) == 1 for p in params):
            sums = rule.sum_of_squares(module, a, dz)
            self._finish(module, key, a.shape[0], sums=sums)
        else:
            self._finish(module, key, a.shape[0], per_sample=rule.per_sample(module, a, dz))

    def _finish(
        self,
        module: nn.Module,
        key: tuple[int, int],
        n: int,
        *,
        sums: dict[str, Tensor] | None = None,
        per_sample: dict[str, Tensor] | None = None,
    ) -> None:
        """Turn one call's gradients into ``sum_sq``; a parameter used several times in one
        forward pass (a reused module, tied weights) adds up its per-sample gradients first."""
        if self._depth == 0:
            self._open = False  # a backward reached the layers: the next call is a new pass
        if sums is None:
            sums = {}
            for name, value in per_sample.items():
                total = self._add_use(module, key, n, name, float32(value))
                if total is not None:
                    sums[name] = square_sum(total)
        self._attach(module, key, n, sums)

    def _attach(self, module: nn.Module, key: tuple[int, int], n: int, sums: dict) -> None:
        factor, grad_scale = loss_scale(self.loss_reduction, n)
        for name, value in sums.items():
            record.attach(
                module.get_parameter(name),
                float32(value).mul_(factor * factor),
                batch_size=n,
                grad_scale=grad_scale,
                generation=key[1],
                reduction=self.loss_reduction,
            )

    def _add_use(
        self, module: nn.Module, key: tuple[int, int], n: int, name: str, value: Tensor
    ) -> Tensor | None:
        """Add one use's per-sample gradients of ``module.name``; the sum once all are in.

        A use whose output never reaches the loss gets no backward call; its per-sample
        gradients are zero, so what has arrived is attached when the backward ends.
        """
        param = module.get_parameter(name)
        uses = self._uses(param, key[1])
        if uses <= 1:
            return value
        pkey = (id(param), key[1])
        pending = self._pending.get(pkey)
        if pending is None:
            pending = self._pending[pkey] = {"seen": 0, "grad": None}
            flush = functools.partial(self._flush, module, key, n, name, pkey)
            torch.autograd.Variable._execution_engine.queue_callback(flush)
        acc = pending["grad"]
        if acc is not None and acc.shape != value.shape:
            raise RuntimeError(
                f"{type(module).__name__}.{name} was used {uses} times in one forward pass "
                "with different batch sizes; per-sample statistics are undefined"
            )
        pending["grad"] = value if acc is None else acc + value
        pending["seen"] += 1
        if pending["seen"] < uses:
            return None
        return self._pending.pop(pkey)["grad"]

    def _flush(
        self, module: nn.Module, key: tuple[int, int], n: int, name: str, pkey: tuple
    ) -> None:
        pending = self._pending.pop(pkey, None)
        if pending is not None:  # some uses did not reach the loss: their gradients are 0
            self._attach(module, key, n, {name: square_sum(pending["grad"])})

    def explain(self, param: Tensor) -> str:
        """Why ``param`` (tracked here) got a gradient but no statistics (see explain_missing)."""
        names = {id(m): n or "<root>" for n, m in self.model.named_modules()}
        layers = self._reporters[id(param)]
        label = ", ".join(repr(names.get(m, "?")) for m in layers)
        last = max((g for (m, g) in self._calls if m in layers), default=None)
        route = (
            "its gradient came another way: the weight used outside its module (e.g. "
            "F.linear(x, layer.weight)), or through a layer the engine does not see"
        )
        if last is None:
            return (
                f"track() was called, but its layer {label} never ran in a tracked forward "
                "with gradients enabled (not under torch.no_grad(), suspended() or torch.func); "
                + route
            )
        if last != self._generation:
            return (
                f"its layer {label} did not run in the last tracked forward pass; " + route
            )
        return (
            f"its layer {label} ran in the last forward pass, but the backward did not reach "
            "the layer's output; " + route
        )

    def remove(self) -> None:
        """Remove every hook and forget recorded statistics."""
        _live.discard(self)
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


class _Reporter:
    """Where a replaced forward's backward reports (:data:`autoopt_lab.stats.linears.Report`)."""

    def __init__(self, tracker: Tracker, module: nn.Module, key: tuple[int, int]) -> None:
        self.tracker, self.module, self.key = tracker, module, key

    def __call__(self, n: int, per_sample: dict[str, Tensor], sums: dict | None = None) -> None:
        self.tracker._finish(self.module, self.key, n, per_sample=per_sample)
        if sums:
            self.tracker._attach(self.module, self.key, n, sums)

    def path(self, name: str, n: int, out: int, in_: int, positions: int) -> str:
        """The ghost norm where :func:`ghost.choose` finds it cheaper, unless the parameter
        is used more than once in this forward (its per-sample gradients add up first)."""
        if self.tracker._uses(self.module.get_parameter(name), self.key[1]) > 1:
            return "elementwise"
        return ghost.choose(n, out, in_, positions)


def explain_missing(param: Tensor) -> str:
    """One sentence on why ``param`` has a gradient but no per-sample statistics.

    For the optimizers' errors: the tracker that holds ``param`` says whether its layer ran
    in the last tracked forward and whether the backward reached it.

    >>> import torch
    >>> lin = torch.nn.Linear(2, 1)
    >>> with track(lin):
    ...     torch.nn.functional.linear(torch.randn(3, 2), lin.weight).sum().backward()
    ...     explain_missing(lin.weight)[:50]
    "track() was called, but its layer '<root>' never r"
    """
    for tracker in list(_live):
        if id(param) in tracker._reporters:
            return tracker.explain(param)
    return (
        "no tracked model holds it: call autoopt_lab.track(model) on the model that owns it "
        "(or pass that model to the optimizer), before the forward pass"
    )


def track(
    model: nn.Module,
    *,
    loss_reduction: Reduction = "mean",
    fused: bool = True,
    batchnorm: str = "refuse",
) -> Tracker:
    """Record per-sample gradient statistics of ``model`` on every ``backward()``.

    ``loss_reduction`` declares how the training loss reduces over the batch: ``"mean"``
    (the default, e.g. ``F.nll_loss(out, y)``) or ``"sum"``. With ``fused=True`` (default)
    Conv1d/Conv2d layers compute their weight gradient from the per-sample gradients instead
    of a second time (:mod:`autoopt_lab.stats.fused`); ``fused=False`` uses plain hooks only.
    ``batchnorm`` says what BatchNorm in training mode gets: ``"refuse"`` (an error) or
    ``"contributions"`` (each sample's contribution to the batch gradient,
    :mod:`autoopt_lab.stats.batchnorm`).

    >>> import torch
    >>> handle = track(torch.nn.Linear(2, 1))
    >>> handle.remove()
    """
    return Tracker(model, loss_reduction=loss_reduction, fused=fused, batchnorm=batchnorm)
