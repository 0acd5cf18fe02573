"""What the river classifier and regressor share: a torch module, a registry optimizer, a buffer.

:class:`TorchLearner` holds the river parameters (``module``, ``optimizer``, ``batch_size``,
``features``, ``device``, ``seed``) and the training machinery; the subclasses in
:mod:`~autoopt_lab.online.classifier` and :mod:`~autoopt_lab.online.regressor` add the targets,
the loss and river's prediction methods. How it works (``docs/online.md`` says more):

* ``learn_one(x, y)`` copies ``x`` (numbers only; None/NaN = missing) and ``y`` into a
  :class:`~autoopt_lab.online.buffer.SampleBuffer`. When ``batch_size`` samples wait, one
  optimizer step is taken on them, oldest first, and they are dropped. ``learn_many``
  pushes its rows through the same buffer, so it trains exactly as a ``learn_one`` loop.
* The module is built at the first step, by ``module(n_features, n_outputs)``, from the
  features (and classes) of the samples learned so far; later features and classes grow
  its input and output layers (:mod:`~autoopt_lab.online.growth`).
* Predictions use the weights after the last step: a buffered sample changes nothing a
  prediction computes until the step that trains on it.
* Every step follows the project's training loop: ``bound.step(closure)``, predictions
  inside ``bound.evaluating()`` (Schedule-Free's averaged weights).
* A diverged loss (the offline rule; squared errors in first-step units) sets ``diverged_at``.
* With a ``seed``, every random draw of the learner (initial weights, dropout) comes from its
  own generator state, so runs repeat exactly and other code's torch RNG is untouched; the
  learner's torch work runs on ``num_threads`` threads; pickles are byte-stable
  (:mod:`~autoopt_lab.online.state`).
"""

from __future__ import annotations

import abc
import copy
import inspect
import logging
import warnings
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import torch
from river import base
from torch import Tensor, nn

from ..devices import resolve_device
from ..health import DIVERGED_LOSS, is_diverged
from ..optim import registry
from .buffer import SampleBuffer
from .checks import check_names, check_optimizer
from .features import FeatureLayout
from .growth import (
    coordinate_keys,
    grow_linear,
    input_layer,
    output_layer,
    pad_state,
    trainable_shapes,
)
from .state import LearnerState, check_threads

__all__ = ["TorchLearner", "check_names", "check_optimizer"]

log = logging.getLogger(__name__)

ModuleFactory = Callable[..., nn.Module]


def _takes_outputs(factory: Callable[..., nn.Module]) -> bool:
    """Whether ``factory`` takes ``(n_features, n_outputs)``, not only ``n_features``."""
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):  # no signature to read: the two-argument convention
        return True
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2 or any(p.kind is p.VAR_POSITIONAL for p in params)


class TorchLearner(LearnerState, base.Base):
    """The shared machinery of :class:`TorchClassifier` and :class:`TorchRegressor`."""

    #: the subclass's module when ``module=None``
    _default_module: ModuleFactory
    _diverged_at: int | None = None  # also for learners pickled before it existed
    _divergence_hint = ""

    def __init__(
        self,
        module: nn.Module | ModuleFactory | None = None,
        optimizer: str = "autoadagrad-paper",
        optimizer_options: dict[str, Any] | None = None,
        batch_size: int = 8,
        features: Sequence[Hashable] | None = None,
        device: str = "cpu",
        seed: int | None = None,
        loss_fn: str | Callable[[Tensor, Tensor], Tensor] | None = None,
        num_threads: int | None = 1,
    ) -> None:
        self.module = module
        self.optimizer = optimizer
        self.optimizer_options = optimizer_options
        self.batch_size = batch_size
        self.features = features
        self.device = device
        self.seed = seed
        self.loss_fn = loss_fn
        self.num_threads = num_threads
        # validate everything before any work
        check_threads(num_threads)
        self._spec, _ = check_optimizer(optimizer, optimizer_options)
        self._buffer = SampleBuffer(batch_size)
        if self._spec.is_auto and batch_size < 2:
            raise ValueError(
                f"optimizer {self._spec.name!r} estimates the gradient noise of each step and "
                f"needs batch_size >= 2, got {batch_size}"
            )
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(f"seed must be an integer or None, got {seed!r}")
        check_names(features, "features")
        if not (module is None or isinstance(module, nn.Module) or callable(module)):
            raise ValueError(
                "module must be None, a torch.nn.Module, or a factory called as "
                f"module(n_features, n_outputs) or module(n_features); got {type(module).__name__}"
            )
        if isinstance(module, nn.Module) and features is None and input_layer(module) is None:
            raise ValueError(
                "a module instance without an nn.Linear input layer needs features=(...) "
                "to fix its input columns"
            )
        self._device = resolve_device(device)
        self._layout = FeatureLayout(features)
        self._net: nn.Module | None = None
        self._bound: registry.BoundOptimizer | None = None
        self._eval_net: nn.Module | None = None  # eval-switch optimizers: evaluation weights
        self._eval_fresh = False
        self._in_width = 0
        self._out_width: int | None = None
        self._rng: tuple[Tensor, Tensor | None] | None = None
        self._steps = 0
        self._warned_input = False
        self._coordinate_keys: frozenset[str] | None = None  # found at the first growth

    # -- public state ---------------------------------------------------------------------
    @property
    def module_(self) -> nn.Module | None:
        """The torch module being trained (None before the first step)."""
        return self._net

    @property
    def optimizer_(self) -> registry.BoundOptimizer | None:
        """The bound registry optimizer (``.hparams()``, ``.label``); None before the first step."""
        return self._bound

    @property
    def n_steps(self) -> int:
        """Optimizer steps taken so far."""
        return self._steps

    @property
    def diverged_at(self) -> int | None:
        """Index of the first step whose loss diverged (None: none did)."""
        return self._diverged_at

    @property
    def n_buffered(self) -> int:
        """Samples learned but not trained on yet (fewer than ``batch_size``)."""
        return len(self._buffer)

    @property
    def feature_names(self) -> list[Hashable]:
        """The input columns' feature names, in column order."""
        return list(self._layout.names)

    def flush(self) -> int:
        """Train on the buffered samples now, as one smaller step; returns how many.

        At the end of a stream, ``learn_one`` leaves up to ``batch_size - 1`` samples
        untrained. An Auto optimizer needs at least 2 of them (nothing happens with 1).
        """
        n = len(self._buffer)
        if n == 0 or (self._spec.is_auto and n < 2):
            return 0
        xs, ys = self._buffer.peek(n)
        self._train(xs, ys)
        self._buffer.discard(n)
        return n

    # -- what subclasses provide ------------------------------------------------------------
    @abc.abstractmethod
    def _n_outputs(self) -> int:
        """Provided by the classifier and the regressor."""

    @abc.abstractmethod
    def _targets(self, ys: list[Any]) -> Tensor:
        """Provided by the classifier and the regressor."""

    @abc.abstractmethod
    def _loss(self, out: Tensor, target: Tensor) -> Tensor:
        """Provided by the classifier and the regressor."""

    def _output(self, out: Tensor, *, first: bool = False) -> Tensor:
        """The module's output as the loss needs it (checked on the first batch)."""
        return out

    def _register(self, y: Any) -> None:
        """Note a target as it enters the buffer (the classifier's label set)."""

    def _after_step(self) -> None:
        """Called after each successful step."""

    def _snapshot(self) -> Any:
        return None

    def _restore(self, snapshot: Any) -> None:
        """Undo what :meth:`_register` did since :meth:`_snapshot` (a step failed)."""

    # -- learning -------------------------------------------------------------------------
    def _learn_rows(self, rows: list[dict[Hashable, float]], ys: list[Any]) -> None:
        """Push clean rows through the buffer, one step per full mini-batch.

        If a step raises, the samples of this call that are not trained yet are dropped
        again (and the subclass's :meth:`_restore` undoes what it registered), so the caller
        can fix the problem and learn them again.
        """
        before, trained = len(self._buffer), 0
        snapshot = self._snapshot()
        try:
            for x, y in zip(rows, ys, strict=True):
                self._register(y)
                if self._buffer.push(x, y):
                    xs, batch_ys = self._buffer.peek()
                    self._train(xs, batch_ys)
                    self._buffer.discard(len(xs))
                    trained += len(xs)
        except BaseException:
            self._buffer.truncate(max(0, before - trained))
            self._restore(snapshot)
            raise

    def _train(self, xs: list[dict[Hashable, float]], ys: list[Any]) -> None:
        """One optimizer step on ``xs, ys`` (the training-loop contract of the project)."""
        self._layout.extend(xs)
        with self._threads(), self._random():
            if self._net is None:
                self._build()
            else:
                self._grow()
            net, bound = self._net, self._bound
            X = self._layout.matrix(xs, width=self._in_width, device=self._device)
            target = self._targets(ys)
            first = self._steps == 0
            net.train()
            try:
                bound.zero_grad()
                out = self._output(net(X), first=first)
                loss = self._loss(out, target)
                loss.backward()
                bound.step(lambda: self._loss(self._output(net(X)), target))
            finally:
                net.eval()
        self._check_divergence(float(loss.detach()))
        self._steps += 1
        self._eval_fresh = False
        self._after_step()

    def _loss_scale(self, loss: float) -> float:
        """What the loss is measured in for the divergence rule (the regressor's targets)."""
        return 1.0

    def _check_divergence(self, loss: float) -> None:
        """Flag the first step whose loss, in :meth:`_loss_scale` units, is diverged."""
        scale = self._loss_scale(loss)
        if self._diverged_at is None and is_diverged(loss / scale):
            self._diverged_at = self._steps
            unit = f" x {scale:.3g}, the first step's loss" if scale != 1.0 else ""
            warnings.warn(f"{type(self).__name__} with {self.optimizer!r} diverged at step "
                          f"{self._steps}: its loss was {loss:.3g} (non-finite or above "
                          f"{DIVERGED_LOSS:g}{unit}); its predictions mean nothing"
                          f"{self._divergence_hint}", RuntimeWarning, stacklevel=5)

    def _build(self) -> None:
        """Build the module for the features and outputs known now, and its optimizer."""
        n_in, n_out = max(len(self._layout), 1), self._n_outputs()
        if isinstance(self.module, nn.Module):
            net = copy.deepcopy(self.module)
            layer = input_layer(net)
            self._in_width = len(self._layout) if self._layout.fixed else layer.in_features
            out_layer = output_layer(net)
            self._out_width = out_layer.out_features if out_layer is not None else None
        else:
            factory = self._default_module if self.module is None else self.module
            both = _takes_outputs(factory)
            net = factory(n_in, n_out) if both else factory(n_in)
            if not isinstance(net, nn.Module):
                call = f"module({n_in}, {n_out})" if both else f"module({n_in})"
                raise ValueError(f"{call} returned {type(net).__name__}, not a torch.nn.Module")
            self._in_width = n_in
            if both:
                self._out_width = n_out
            else:  # the factory chose its output width
                out_layer = output_layer(net)
                self._out_width = out_layer.out_features if out_layer is not None else None
        self._net = net.to(self._device).eval()
        try:
            self._bind()
        except BaseException:
            self._net = None  # e.g. a layer the per-sample statistics do not support
            raise
        self._grow()  # a module instance may be narrower than the data

    def _bind(self, state: dict[str, Any] | None = None, *, new_eval_net: bool = True) -> None:
        """(Re)build the registry optimizer over the module, with ``state`` if given."""
        if self._spec.eval_switch and new_eval_net:
            self._eval_net = copy.deepcopy(self._net)  # before any hooks: a clean copy
            self._eval_fresh = False
        bound = registry.build(self.optimizer, self._net, **(self.optimizer_options or {}))
        if state is not None:
            try:
                bound.load_state_dict(state)
            except Exception:
                bound.close()
                raise
        self._bound = bound

    def _grow(self) -> None:
        """Grow the input (new features) and output (new classes) layers if needed."""
        net = self._net
        grow_in = not self._layout.fixed and len(self._layout) > self._in_width
        if grow_in:
            layer = input_layer(net)
            if layer is None or layer.in_features != self._in_width:
                grow_in = False
                if not self._warned_input:
                    self._warned_input = True
                    log.warning(
                        "new features appeared but the module's input layer cannot grow (its "
                        "first nn.Linear does not take the %d input columns); features beyond "
                        "them are ignored",
                        self._in_width,
                    )
        n_out = self._n_outputs()
        grow_out = self._out_width is not None and n_out > self._out_width
        if not (grow_in or grow_out):
            return
        if grow_out and not self._output_can_grow():
            raise ValueError(
                f"there are {n_out} classes but the module's output layer cannot grow past "
                f"{self._out_width}; pass classes=(...) up front"
            )
        before = trainable_shapes(net)
        state = self._bound.state_dict()
        self._bound.close()
        if grow_in:
            grow_linear(input_layer(net), in_features=len(self._layout))
            self._in_width = len(self._layout)
        if grow_out:
            grow_linear(output_layer(net), out_features=n_out)
            self._out_width = n_out
        if self._coordinate_keys is None:
            self._coordinate_keys = coordinate_keys(
                lambda m: registry.build(self.optimizer, m, **(self.optimizer_options or {}))
            )
        self._bind(pad_state(state, before, trainable_shapes(net), self._coordinate_keys))

    def _output_can_grow(self) -> bool:
        """Whether a new class can get an output unit (the module's last layer is Linear)."""
        if self._net is None:
            if isinstance(self.module, nn.Module):
                return output_layer(self.module) is not None
            return True
        layer = output_layer(self._net)
        return layer is not None and layer.out_features == self._out_width

    # -- prediction -----------------------------------------------------------------------
    def _predict(self, X: Tensor) -> Tensor:
        """The module's output for ``X`` with the weights meant for evaluation, no grad."""
        net = self._net
        if self._spec.eval_switch:
            if not self._eval_fresh:
                with self._bound.evaluating():
                    self._eval_net.load_state_dict(self._net.state_dict())
                self._eval_net.eval()
                self._eval_fresh = True
            net = self._eval_net
        with self._threads(), torch.no_grad():
            return self._output(net(X))

    def _rows_matrix(self, rows: list[dict[Hashable, float]]) -> Tensor:
        return self._layout.matrix(rows, width=self._in_width, device=self._device)
