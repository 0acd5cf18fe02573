"""``RunConfig``: everything that fixes one training run, and its stable identity."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

OPTIMIZERS: tuple[str, ...] = ("sgd", "adam", "adagrad", "autosgd", "autoadam", "autoadagrad")
AUTO_OPTIMIZERS: tuple[str, ...] = ("autosgd", "autoadam", "autoadagrad")
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")

# Fields that do not change a run's result, so they stay out of its identity.
_NOT_IN_KEY = frozenset({"trace_every"})


@dataclass(frozen=True)
class RunConfig:
    """One run: data set, model, optimizer, lr, momentum (or Auto), batch size, epochs, seed
    and device, plus the quick-mode data limits.

    ``lr`` and ``momentum`` are required for SGD, ``lr`` for Adam and AdaGrad (Adam's first
    moment is ``betas[0]``; pass ``momentum=None``), and both must be ``None`` for the Auto
    optimizers. ``model=None`` picks the paper's model for the data set.
    ``max_train_samples`` / ``max_test_samples`` cut fixed, seed-independent subsets.
    ``trace_every=None`` thins the per-step trace to at most ~2,000 rows.

    >>> cfg = RunConfig("fashion-mnist", "sgd", lr=0.01, momentum=0.0, batch_size=128)
    >>> cfg.model, len(cfg.run_id())
    ('mnist_cnn', 16)
    """

    dataset: str
    optimizer: str
    lr: float | None = None
    momentum: float | None = None
    batch_size: int = 128
    epochs: int = 10
    seed: int = 0
    device: str = "auto"
    model: str | None = None
    betas: tuple[float, float] = (0.9, 0.99)
    max_train_samples: int | None = None
    max_test_samples: int | None = None
    trace_every: int | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        from autoopt_lab.data import canonical_name
        from autoopt_lab.models import MODELS, model_name_for

        object.__setattr__(self, "dataset", canonical_name(self.dataset))
        opt = str(self.optimizer).lower()
        if opt not in OPTIMIZERS:
            raise ValueError(
                f"unknown optimizer {self.optimizer!r}; allowed: {', '.join(OPTIMIZERS)}"
            )
        object.__setattr__(self, "optimizer", opt)
        if self.model is None:
            object.__setattr__(self, "model", model_name_for(self.dataset))
        elif self.model not in MODELS:
            raise ValueError(f"unknown model {self.model!r}; allowed: {', '.join(MODELS)}")
        if self.device not in DEVICES and not str(self.device).startswith("cuda:"):
            raise ValueError(
                f"device must be one of {', '.join(DEVICES)} or cuda:N, got {self.device!r}"
            )
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        self._check_hparams()
        for name in ("batch_size", "epochs"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.optimizer in AUTO_OPTIMIZERS and self.batch_size < 2:
            raise ValueError("the Auto optimizers need batch_size >= 2 (a variance estimate)")
        for name in ("max_train_samples", "max_test_samples", "trace_every"):
            value = getattr(self, name)
            if value is not None and int(value) < 1:
                raise ValueError(f"{name} must be None or >= 1, got {value}")

    def _check_hparams(self) -> None:
        opt = self.optimizer
        if opt in AUTO_OPTIMIZERS:
            if self.lr is not None or self.momentum is not None:
                raise ValueError(f"{opt} sets lr and momentum itself; pass lr=None, momentum=None")
            return
        if self.lr is None or not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"{opt} needs a finite lr > 0, got {self.lr!r}")
        if opt == "sgd":
            if self.momentum is None or not 0.0 <= self.momentum < 1.0:
                raise ValueError(f"sgd needs momentum in [0, 1), got {self.momentum!r}")
        elif self.momentum is not None:
            raise ValueError(
                f"{opt} takes no momentum (Adam's first moment is betas[0]); pass momentum=None"
            )

    @property
    def is_auto(self) -> bool:
        """True for AutoSGD, AutoAdam and AutoAdaGrad."""
        return self.optimizer in AUTO_OPTIMIZERS

    def to_dict(self) -> dict[str, Any]:
        """All fields as plain JSON types."""
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown RunConfig keys {sorted(unknown)}; allowed: {sorted(names)}")
        d = dict(d)
        if "betas" in d:
            d["betas"] = tuple(d["betas"])
        return cls(**d)

    def run_id(self) -> str:
        """A stable 16-hex-digit hash of every field that changes the result."""
        return config_key({k: v for k, v in self.to_dict().items() if k not in _NOT_IN_KEY})

    def label(self) -> str:
        """A short human label, e.g. ``sgd lr=0.01 m=0.9 N=128 seed=0``."""
        parts = [self.optimizer]
        if self.lr is not None:
            parts.append(f"lr={self.lr:.3g}")
        if self.momentum is not None:
            parts.append(f"m={self.momentum:g}")
        parts += [f"N={self.batch_size}", f"seed={self.seed}"]
        return " ".join(parts)


def config_key(config: dict[str, Any]) -> str:
    """Hash of a JSON-able dict, independent of key order (floats by their repr).

    >>> config_key({"a": 1, "b": 0.5}) == config_key({"b": 0.5, "a": 1})
    True
    """
    blob = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
