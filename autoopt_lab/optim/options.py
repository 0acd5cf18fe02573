"""Validation of the Auto optimizers' options: one clear ``ValueError`` per bad value.

>>> validate({"ewma": 0.9, "curvature": "measured", "max_lr": 3.0})
>>> validate({"ewma": 1.0})
Traceback (most recent call last):
...
ValueError: invalid ewma=1.0: expected a float in [0, 1)
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from .curvature import CURVATURE_MODELS as _CURVATURE_MODELS


def validate(options: dict[str, Any]) -> None:
    """Check option values; raise ValueError naming the option and what is allowed."""
    measured = options.get("curvature", "paper") == "measured"
    checks = {
        "curvature_ewma": lambda v: 0.0 <= v < 1.0,
        "curvature_every": lambda v: isinstance(v, int) and v >= 1,
        "ewma": lambda v: 0.0 <= v < 1.0,
        "gamma0": lambda v: 0.0 <= v <= 1.0,
        "weight_decay": lambda v: v >= 0.0,
        "eps": lambda v: v > 0.0,
        "max_lr": (lambda v: v > 0.0) if measured else (lambda v: 0.0 < v <= 1.0),
    }
    allowed = {
        "ewma": "a float in [0, 1)",
        "gamma0": "a float in [0, 1] (the warm start lr is 1 - gamma0)",
        "weight_decay": "a float >= 0",
        "eps": "a float > 0",
        "max_lr": "a float > 0 (a cap on the measured lr)"
        if measured
        else "a float in (0, 1] (1 = the paper's triangle)",
        "curvature_ewma": "a float in [0, 1)",
        "curvature_every": "an integer >= 1 (steps between Hessian-vector products)",
    }
    for key, ok in checks.items():
        if key in options:
            value = options[key]
            if isinstance(value, Tensor) or not isinstance(value, (int, float)) or not ok(value):
                raise ValueError(f"invalid {key}={value!r}: expected {allowed[key]}")
    if "adapt_momentum" in options and not isinstance(options["adapt_momentum"], bool):
        raise ValueError(f"invalid adapt_momentum={options['adapt_momentum']!r}: expected a bool")
    if "betas" in options:
        betas = options["betas"]
        if (
            not isinstance(betas, (tuple, list))
            or len(betas) != 2
            or not all(isinstance(b, (int, float)) and 0.0 <= b < 1.0 for b in betas)
        ):
            raise ValueError(f"invalid betas={betas!r}: expected two floats in [0, 1)")
    if "curvature" in options and options["curvature"] not in _CURVATURE_MODELS:
        raise ValueError(
            f"invalid curvature={options['curvature']!r}: expected 'paper' (the paper's "
            "H-bar = H-hat) or 'measured' (H-bar measured by Hessian-vector products)"
        )
    if "solver" in options and options["solver"] not in ("triangle", "authors"):
        raise ValueError(
            f"invalid solver={options['solver']!r}: expected 'triangle' (minimise over the "
            "feasible triangle) or 'authors' (the published code's fallback rule)"
        )
    if "bias_correction" in options and options["bias_correction"] not in ("step", "constant"):
        raise ValueError(
            f"invalid bias_correction={options['bias_correction']!r}: expected 'step' "
            "(the paper's 1 - beta1^t) or 'constant' (the authors' code, 1 - beta1)"
        )
