"""A river regressor over a torch module trained by any registry optimizer.

The loss is the mean squared error on the raw target. Targets far from unit scale make the
squared error (and any learning rate) scale with them: wrap the learner in river's
``preprocessing.TargetStandardScaler`` as below.

>>> from river import datasets, evaluate, metrics, preprocessing
>>> model = preprocessing.StandardScaler() | preprocessing.TargetStandardScaler(
...     regressor=TorchRegressor(seed=0))
>>> metric = evaluate.progressive_val_score(datasets.TrumpApproval(), model, metrics.MAE())
>>> metric.get() < 2.0
True
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import pandas as pd
import torch
from river import base
from torch import Tensor, nn

from .features import check_frame, clean_features, frame_rows
from .learner import ModuleFactory, TorchLearner
from .losses import REGRESSOR_LOSSES, check_loss, regressor_loss
from .modules import Linear

__all__ = ["TARGET_SCALE_WARNING", "TorchRegressor"]

#: a batch of targets with a root mean square above this raises one warning
TARGET_SCALE_WARNING = 20.0


def _check_target(y: Any) -> float:
    if isinstance(y, bool) or not isinstance(y, numbers.Real) or not math.isfinite(float(y)):
        raise ValueError(f"a regression target must be a finite number, got {y!r}")
    return float(y)


class TorchRegressor(TorchLearner, base.MiniBatchRegressor):
    """Online regression with a torch module and any optimizer of the project's registry.

    Parameters
    ----------
    module
        None (linear regression: ``Linear(log_probabilities=False)``), a factory called once
        at the first step as ``module(n_features, 1)`` (e.g.
        ``MLP(hidden=(32,), log_probabilities=False)``) or, if it takes one argument, as
        ``module(n_features)`` (a deep-river module class), or an ``nn.Module`` instance
        (copied). It must return one value per sample, shape ``(batch,)`` or ``(batch, 1)``.
    optimizer
        A registry name or spec string. The default, ``"autoadagrad-paper"``, had the lowest
        error of the Auto optimizers on TrumpApproval and ChickWeights; AutoSGD with the
        paper's curvature model (``"autosgd-paper"``) diverges on squared errors
        (``docs/online.md``).
    optimizer_options, batch_size, features, device, seed, num_threads
        As for :class:`~autoopt_lab.online.TorchClassifier`.
    loss_fn
        None (``"mse"``), ``"l1"``, ``"huber"``, ``"smooth_l1"``, or a callable
        ``loss_fn(output, target)`` on two ``(batch,)`` tensors.

    Targets far from unit scale (a batch whose root-mean-square target is above
    ``TARGET_SCALE_WARNING``, 20) raise one ``RuntimeWarning`` that says to wrap the learner in
    river's ``preprocessing.TargetStandardScaler``: without it the squared error and every
    learning rate carry the targets' scale (progressive MAE 18.3-18.9 instead of 0.54-0.57 on
    TrumpApproval, ``docs/online.md``).

    ``predict_one`` is 0.0 until the first step, then the module's output with the weights
    after the last step (buffered samples are not used until they are trained on).

    Examples
    --------
    >>> from river import datasets, preprocessing
    >>> model = TorchRegressor(optimizer="adam:lr=0.01", batch_size=4, seed=1)
    >>> scaled = preprocessing.TargetStandardScaler(regressor=model)
    >>> for x, y in datasets.TrumpApproval().take(10):
    ...     scaled.learn_one(x, y)
    >>> model.n_steps, model.n_buffered, isinstance(scaled.predict_one(x), float)
    (2, 2, True)
    """

    _default_module = Linear(log_probabilities=False)
    _divergence_hint = "; standardise the targets (river's TargetStandardScaler)"
    _first_loss: float | None = None
    _warned_scale = False
    loss_fn = None  # also for learners pickled before it existed

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
        check_loss(loss_fn, REGRESSOR_LOSSES)
        super().__init__(
            module=module,
            optimizer=optimizer,
            optimizer_options=optimizer_options,
            batch_size=batch_size,
            features=features,
            device=device,
            seed=seed,
            loss_fn=loss_fn,
            num_threads=num_threads,
        )

    # -- learning -------------------------------------------------------------------------
    def learn_one(self, x: dict, y: base.typing.RegTarget, **kwargs: Any) -> None:
        """Buffer ``(x, y)``; take an optimizer step when ``batch_size`` samples wait."""
        row = clean_features(x)
        self._learn_rows([row], [_check_target(y)])

    def learn_many(self, X: pd.DataFrame, y: pd.Series, **kwargs: Any) -> None:
        """Push the rows of ``X`` through the buffer: exactly a ``learn_one`` loop."""
        rows = frame_rows(X)
        if isinstance(y, pd.Series) and not y.index.equals(X.index) and len(y) == len(X):
            if y.index.is_unique and set(y.index) == set(X.index):
                y = y.loc[X.index]
        ys = [_check_target(v) for v in y]
        if len(ys) != len(rows):
            raise ValueError(f"X has {len(rows)} rows but y has {len(ys)} values")
        self._learn_rows(rows, ys)

    def _n_outputs(self) -> int:
        return 1

    def _targets(self, ys: list[Any]) -> Tensor:
        if not self._warned_scale and math.sqrt(math.fsum(y * y for y in ys) / len(ys)) > (
                TARGET_SCALE_WARNING):
            self._warned_scale = True
            warnings.warn(
                f"{type(self).__name__}: regression targets far from unit scale (root mean "
                f"square above {TARGET_SCALE_WARNING:g}) make the loss and every step carry "
                "their scale; wrap the learner: preprocessing.TargetStandardScaler(regressor="
                "TorchRegressor(...))", RuntimeWarning, stacklevel=6)
        return torch.tensor(ys, dtype=torch.float32, device=self._device)

    def _loss(self, out: Tensor, target: Tensor) -> Tensor:
        return regressor_loss(self.loss_fn, out, target)

    def _loss_scale(self, loss: float) -> float:
        if self._first_loss is None and math.isfinite(loss):
            self._first_loss = loss
        return max(self._first_loss or 1.0, 1.0)

    def _output(self, out: Tensor, *, first: bool = False) -> Tensor:
        if out.dim() == 2 and out.shape[1] == 1:
            out = out[:, 0]
        if first and out.dim() != 1:
            raise ValueError(
                "the module must return one value per sample, shape (batch,) or (batch, 1); "
                f"got {tuple(out.shape)}"
            )
        return out

    # -- prediction -----------------------------------------------------------------------
    def predict_one(self, x: dict, **kwargs: Any) -> float:
        """The prediction for ``x`` from the weights after the last step (0.0 before it)."""
        if self._net is None:
            return 0.0
        return float(self._predict(self._rows_matrix([clean_features(x)]))[0])

    def predict_many(self, X: pd.DataFrame) -> pd.Series:
        """One prediction per row of ``X`` (same index)."""
        check_frame(X)
        if self._net is None:
            return pd.Series(0.0, index=X.index, dtype=float)
        rows = self._layout.frame_matrix(X, width=self._in_width, device=self._device)
        values = self._predict(rows).double().cpu().numpy()
        return pd.Series(values, index=X.index, dtype=float)
