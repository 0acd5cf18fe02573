"""A river classifier over a torch module trained by any registry optimizer.

>>> from river import datasets, evaluate, metrics, preprocessing
>>> model = preprocessing.StandardScaler() | TorchClassifier(seed=0)
>>> metric = evaluate.progressive_val_score(datasets.Phishing(), model, metrics.Accuracy())
>>> metric.get() > 0.8
True
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from river import base
from torch import Tensor, nn

from ..models import check_log_probabilities
from .checks import check_names
from .features import check_frame, clean_features, frame_rows
from .learner import ModuleFactory, TorchLearner
from .losses import CLASSIFIER_LOSSES, check_loss, classifier_loss
from .modules import Linear

__all__ = ["TorchClassifier"]


def _check_label(y: Any) -> None:
    if y is None:
        raise ValueError("a label must not be None (river's 'no prediction')")
    try:
        hash(y)
    except TypeError:
        raise ValueError(f"a label must be hashable, got {type(y).__name__} {y!r}") from None


def _missing(y: Any) -> bool:
    """A missing label: NaN (of any float type) or pandas' NA."""
    if y is pd.NA:
        return True
    return isinstance(y, numbers.Real) and not isinstance(y, numbers.Integral) and math.isnan(y)


def _skip_missing(rows: list[Any], ys: list[Any]) -> tuple[list[Any], list[Any]]:
    """Leave out the samples without a label, with a warning. pandas stores a column of
    whole numbers with missing values as floats: its labels are kept as ints."""
    keep = [i for i, y in enumerate(ys) if not _missing(y)]
    if len(keep) == len(ys):
        return rows, ys
    warnings.warn(f"{len(ys) - len(keep)} sample(s) with a missing label (NaN) skipped: a "
                  "classifier learns from labelled samples only", RuntimeWarning, stacklevel=3)
    ys = [ys[i] for i in keep]
    if all(isinstance(y, float) and y.is_integer() for y in ys):
        ys = [int(y) for y in ys]
    return [rows[i] for i in keep], ys


def _targets_of(X: pd.DataFrame, y: Any) -> list[Any]:
    """``y`` as a list in ``X``'s row order (a Series is aligned on the index)."""
    if isinstance(y, pd.Series) and not y.index.equals(X.index):
        if y.index.is_unique and len(y) == len(X) and set(y.index) == set(X.index):
            y = y.loc[X.index]
    values = list(y)
    if len(values) != len(X):
        raise ValueError(f"X has {len(X)} rows but y has {len(values)} values")
    return values


class TorchClassifier(TorchLearner, base.MiniBatchClassifier):
    """Online classification with a torch module and any optimizer of the project's registry.

    Parameters
    ----------
    module
        None (multinomial logistic regression: ``Linear()``), a factory called once at the
        first step as ``module(n_features, n_classes)`` (e.g. ``MLP(hidden=(32,))``) or, if
        it takes one argument, ``module(n_features)`` (a deep-river module class), or an
        ``nn.Module`` instance (copied; the copy is trained). It returns log-probabilities
        (ends with ``nn.LogSoftmax(dim=1)``), or logits with ``output_is_logit=True``.
    optimizer
        A registry name or spec string (``"autosgd"``, ``"sgd:lr=0.05:momentum=0.9"``). The
        default, ``"autoadagrad-paper"`` (AutoAdaGrad with the paper's curvature model), was
        the best Auto optimizer on every binary stream of ``benchmarks/online_river.py``
        (``docs/online.md``).
    optimizer_options
        Options added to the spec string's.
    batch_size
        Samples per optimizer step (>= 2 for Auto optimizers, which estimate the gradient
        noise of each step). ``learn_one`` buffers samples until a batch is full.
    classes
        None: the class set grows as labels arrive (a new output unit, starting at zero, at
        the step that first trains on the label). A tuple: the classes, fixed up front; any
        other label is an error.
    features
        None: new features get new input columns as they arrive. A tuple: the input columns,
        fixed; other features are ignored.
    device
        ``"cpu"`` (the default: one-sample steps of small models are faster there, as in
        deep-river), ``"auto"`` (CUDA when available), ``"cuda"``...
    seed
        Seeds the module's initial weights and every other random draw of the learner.
    loss_fn
        None (the NLL of the label: cross-entropy), a name (``"cross_entropy"``, ``"nll"``,
        ``"binary_cross_entropy"``, ``"mse"``) or a callable ``loss_fn(output, one_hot)``
        (:mod:`~autoopt_lab.online.losses`).
    output_is_logit
        False: the module returns log-probabilities (checked at the first step). True: it
        returns logits (deep-river's convention); the learner applies the softmax.
    num_threads
        Torch intra-op threads for the learner's own work (default 1: faster for small
        models), restored afterwards; None leaves torch's setting alone.

    Labels can be of any hashable type but None; a sample whose label is missing (NaN) is
    skipped with a warning. ``predict_proba_one`` reports every label
    learned so far; before the first step it is uniform over them, and a label that is only
    in the buffer has probability 0 until the step that trains on it.

    Examples
    --------
    >>> from river import datasets
    >>> model = TorchClassifier(optimizer="autosgd", batch_size=4, seed=1)
    >>> for x, y in datasets.Phishing().take(12):
    ...     model.learn_one(x, y)
    >>> model.n_steps, model.n_buffered, sorted(model.predict_proba_one(x))
    (3, 0, [False, True])
    """

    _default_module = Linear(log_probabilities=True)
    output_is_logit = False  # also for learners pickled before it existed
    loss_fn = None

    def __init__(
        self,
        module: nn.Module | ModuleFactory | None = None,
        optimizer: str = "autoadagrad-paper",
        optimizer_options: dict[str, Any] | None = None,
        batch_size: int = 8,
        classes: Sequence[Hashable] | None = None,
        features: Sequence[Hashable] | None = None,
        device: str = "cpu",
        seed: int | None = None,
        loss_fn: str | Callable[[Tensor, Tensor], Tensor] | None = None,
        output_is_logit: bool = False,
        num_threads: int | None = 1,
    ) -> None:
        check_names(classes, "classes")
        if not isinstance(output_is_logit, bool):
            raise ValueError(f"output_is_logit must be True or False, got {output_is_logit!r}")
        check_loss(loss_fn, CLASSIFIER_LOSSES, output_is_logit)
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
        self.output_is_logit = output_is_logit
        self.classes = classes
        self._labels: list[Hashable] = list(classes or ())
        self._label_index: dict[Hashable, int] = {c: i for i, c in enumerate(self._labels)}
        # labels with an output unit that training has used; the rest wait in the buffer
        self._trained = len(self._labels)

    @property
    def _multiclass(self) -> bool:
        return True

    @property
    def labels(self) -> list[Hashable]:
        """Every label learned so far (or ``classes``), in output-unit order."""
        return list(self._labels)

    # -- learning -------------------------------------------------------------------------
    def _check_targets(self, ys: list[Any]) -> None:
        """A clear error for a bad label before anything changes."""
        new: list[Hashable] = []
        for y in ys:
            _check_label(y)
            if y in self._label_index or y in new:
                continue
            if self.classes is not None:
                raise ValueError(f"label {y!r} is not one of classes={tuple(self.classes)!r}")
            new.append(y)
        if new and not self._output_can_grow():
            raise ValueError(
                f"new label(s) {new!r}: the module's output layer cannot grow (its last layer "
                "is not an nn.Linear with one unit per class); pass classes=(...) up front"
            )

    def _register(self, y: Any) -> None:
        if y not in self._label_index:
            self._label_index[y] = len(self._labels)
            self._labels.append(y)

    def _snapshot(self) -> Any:
        return len(self._labels)

    def _restore(self, snapshot: Any) -> None:
        keep = max(snapshot, self._trained)
        for y in self._labels[keep:]:
            del self._label_index[y]
        del self._labels[keep:]

    def _after_step(self) -> None:
        self._trained = len(self._labels)

    def learn_one(self, x: dict, y: base.typing.ClfTarget, **kwargs: Any) -> None:
        """Buffer ``(x, y)``; take an optimizer step when ``batch_size`` samples wait."""
        rows, ys = _skip_missing([clean_features(x)], [y])
        if ys:
            self._check_targets(ys)
            self._learn_rows(rows, ys)

    def learn_many(self, X: pd.DataFrame, y: pd.Series, **kwargs: Any) -> None:
        """Push the rows of ``X`` through the buffer: exactly a ``learn_one`` loop."""
        rows, ys = _skip_missing(frame_rows(X), _targets_of(X, y))
        self._check_targets(ys)
        self._learn_rows(rows, ys)

    def _n_outputs(self) -> int:
        return max(len(self._labels), 1)

    def _targets(self, ys: list[Any]) -> Tensor:
        idx = [self._label_index[y] for y in ys]
        return torch.tensor(idx, dtype=torch.long, device=self._device)

    def _loss(self, out: Tensor, target: Tensor) -> Tensor:
        return classifier_loss(self.loss_fn, out, target, output_is_logit=self.output_is_logit)

    def _output(self, out: Tensor, *, first: bool = False) -> Tensor:
        if first:
            what = "logits" if self.output_is_logit else "log-probabilities"
            if self.output_is_logit:
                if out.dim() != 2:
                    raise ValueError(f"the module must return (batch, classes) logits; got "
                                     f"shape {tuple(out.shape)}")
            else:
                try:
                    check_log_probabilities(out, where="the module")
                except ValueError as exc:
                    raise ValueError(f"{exc} (a module that returns logits needs "
                                     "output_is_logit=True)") from None
            if out.shape[1] < len(self._labels):
                raise ValueError(
                    f"the module returns {out.shape[1]} {what} per sample but there "
                    f"are {len(self._labels)} classes"
                )
        return out

    # -- prediction -----------------------------------------------------------------------
    def _probabilities(self, rows: Tensor | None, n: int) -> np.ndarray:
        """``(n, len(labels))`` probabilities (float64) for the rows of a feature matrix."""
        k = len(self._labels)
        if self._net is None or rows is None:
            return np.full((n, k), 1.0 / k)
        logp = self._predict(rows)[:, : self._trained].double()
        out = np.zeros((n, k))
        out[:, : self._trained] = torch.softmax(logp, dim=1).cpu().numpy()
        return out

    def predict_proba_one(self, x: dict, **kwargs: Any) -> dict[base.typing.ClfTarget, float]:
        """Probabilities of every label learned so far, from the weights after the last step."""
        if not self._labels:
            return {}
        rows = self._rows_matrix([clean_features(x)]) if self._net is not None else None
        proba = self._probabilities(rows, 1)[0]
        return dict(zip(self._labels, proba.tolist(), strict=True))

    def predict_proba_many(self, X: pd.DataFrame) -> pd.DataFrame:
        """One row of label probabilities per row of ``X`` (same index)."""
        check_frame(X)
        if not self._labels:
            return pd.DataFrame(index=X.index)
        rows = None
        if self._net is not None:
            rows = self._layout.frame_matrix(X, width=self._in_width, device=self._device)
        proba = self._probabilities(rows, len(X))
        return pd.DataFrame(proba, index=X.index, columns=pd.Index(self._labels, dtype=object))

    def predict_many(self, X: pd.DataFrame) -> pd.Series:
        """The most probable label per row of ``X`` (None before any label was learned)."""
        proba = self.predict_proba_many(X)
        if proba.shape[1] == 0:
            return pd.Series([None] * len(X), index=X.index, dtype=object)
        return proba.idxmax(axis="columns")
