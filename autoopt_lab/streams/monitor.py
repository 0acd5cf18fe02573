"""Prequential monitoring with river: rolling accuracy, loss normalisation, drift detectors.

The loss signal given to the detectors is a running z-score: ``z_t = (l_t - m) / s`` where
``m`` and ``s^2`` are exponentially weighted mean and variance of the *previous* batch losses
(weight ``alpha`` per step, default 0.02, i.e. a memory of about 50 steps), clipped to
``[-10, 10]``. It makes ADWIN and Page-Hinkley (both scale-sensitive) see the same signal on
every data set and model. Detectors see nothing during the first ``warmup`` steps, while the
model is still learning from scratch and the loss falls fast.

>>> m = Monitor(window=4, warmup=2, seed=0)
>>> rec = m.update(loss=0.7, y_true=[1, 2], y_pred=[1, 0])
>>> rec["rolling_accuracy"], rec["detected"]
(0.5, {'ADWIN': False, 'PageHinkley': False, 'KSWIN': False})
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from river import drift, metrics, utils

__all__ = ["DETECTORS", "LossNormalizer", "Monitor", "make_detectors"]

DETECTORS = ("ADWIN", "PageHinkley", "KSWIN")


def make_detectors(seed: int) -> dict[str, Any]:
    """Fresh river detectors, tuned for a z-scored loss (documented in ``streams/README.md``)."""
    return {
        "ADWIN": drift.ADWIN(delta=0.002),
        "PageHinkley": drift.PageHinkley(min_instances=30, delta=0.5, threshold=25.0,
                                         mode="up"),
        "KSWIN": drift.KSWIN(alpha=0.0005, window_size=100, stat_size=30, seed=seed),
    }


class LossNormalizer:
    """Running z-score of a scalar signal against its exponentially weighted past.

    >>> n = LossNormalizer(alpha=0.5)
    >>> [round(n(v), 2) for v in (1.0, 1.0, 3.0)]
    [0.0, 0.0, 10.0]
    """

    def __init__(self, alpha: float = 0.02, clip: float = 10.0, eps: float = 1e-3) -> None:
        if not 0 < alpha <= 1:
            raise ValueError(f"alpha must be in (0, 1], got {alpha}")
        self.alpha, self.clip, self.eps = alpha, clip, eps
        self.mean: float | None = None
        self.var = 0.0

    def __call__(self, value: float) -> float:
        if self.mean is None:
            self.mean = value
            return 0.0
        z = (value - self.mean) / math.sqrt(self.var + self.eps**2)
        d = value - self.mean
        self.mean += self.alpha * d
        self.var = (1 - self.alpha) * (self.var + self.alpha * d * d)
        return max(-self.clip, min(self.clip, z))


class Monitor:
    """River state of one prequential run: rolling accuracy, normaliser and detectors.

    :meth:`state_dict` gives it as plain data and :meth:`load_state_dict` replays that into
    a fresh monitor, so a checkpoint can save it and a resumed run continues identically.
    """

    def __init__(self, window: int = 1000, warmup: int = 100, seed: int = 0,
                 alpha: float = 0.02) -> None:
        self.rolling = utils.Rolling(metrics.Accuracy, window_size=window)
        self.normalizer = LossNormalizer(alpha=alpha)
        self.detectors = make_detectors(seed)
        self.warmup = warmup
        self.steps = 0

    def update(self, loss: float, y_true: Sequence[int], y_pred: Sequence[int]) -> dict[str, Any]:
        """Feed one batch; returns rolling accuracy, normalised loss and detections."""
        for yt, yp in zip(y_true, y_pred, strict=True):
            self.rolling.update(yt, yp)
        z = self.normalizer(loss)
        detected = dict.fromkeys(self.detectors, False)
        if self.steps >= self.warmup and math.isfinite(z):
            for name, det in self.detectors.items():
                det.update(z)
                detected[name] = bool(det.drift_detected)
        self.steps += 1
        return {"rolling_accuracy": float(self.rolling.get()), "loss_z": z, "detected": detected}

    def state_dict(self) -> dict[str, Any]:
        """The monitor as plain data: normaliser, step count and the rolling window's
        ``(y_true, y_pred)`` pairs (the detectors' inputs are the records' ``loss_z``)."""
        norm = self.normalizer
        return {"norm_mean": norm.mean, "norm_var": norm.var, "steps": self.steps,
                "pairs": [list(args) for args, _ in self.rolling.window]}

    def load_state_dict(self, data: dict[str, Any], records: Sequence[dict[str, Any]]) -> None:
        """Bring this fresh monitor to the state :meth:`state_dict` saved: the window and
        the detectors' inputs (each step's finite ``loss_z`` in ``records`` after the
        warm-up) are replayed."""
        for yt, yp in data["pairs"]:
            self.rolling.update(int(yt), int(yp))
        for rec in records[self.warmup:]:
            z = float(rec["loss_z"])
            if math.isfinite(z):
                for det in self.detectors.values():
                    det.update(z)
        self.normalizer.mean, self.normalizer.var = data["norm_mean"], float(data["norm_var"])
        self.steps = int(data["steps"])
