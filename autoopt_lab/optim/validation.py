"""Validation of what reaches an Auto optimizer: its options and a state to load.

One clear ``ValueError`` per bad value, raised before anything changes.

>>> validate({"ewma": 0.9, "curvature": "measured", "max_lr": 3.0})
>>> validate({"ewma": 1.0})
Traceback (most recent call last):
...
ValueError: invalid ewma=1.0: expected a float in [0, 1)
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

#: The string options of the Auto optimizers: each allowed value and what it means (the
#: registry's option choices come from here too).
CHOICES: dict[str, dict[str, str]] = {
    "step": {
        "paper": "eq. (10): the lr alpha and momentum beta from the 2x2 solve (mu = alpha beta)",
        "decoupled": "a fixed momentum mu and an adapted gain kappa (docs/decoupled.md)",
    },
    "curvature": {
        "paper": "the paper's H-bar = H-hat",
        "measured": "H-bar measured by Hessian-vector products",
    },
    "curvature_source": {
        "auto": "a Hessian-vector product when step() gets a closure, else the secant",
        "hvp": "a Hessian-vector product of the closure every curvature_every steps",
        "secant": "the gradient change along the last step (no closure)",
    },
    "curvature_probe": {
        "momentum": "along the previous step D p",
        "gradient": "along the previous step's D g",
    },
    "solver": {
        "triangle": "minimise over the feasible triangle",
        "authors": "the published code's fallback rule",
    },
    "bias_correction": {
        "step": "the paper's 1 - beta1^t",
        "constant": "the authors' code, 1 - beta1",
    },
}


def measures_curvature(group: dict[str, Any]) -> bool:
    """Whether a param group measures its curvature (``curvature="measured"``).

    >>> measures_curvature({"curvature": "measured"}), measures_curvature({})
    (True, False)
    """
    return group.get("curvature", "paper") == "measured"


def takes_decoupled_step(group: dict[str, Any]) -> bool:
    """Whether a param group takes the decoupled step (``step="decoupled"``; a group saved
    before the option existed took the paper's).

    >>> takes_decoupled_step({"step": "decoupled"}), takes_decoupled_step({})
    (True, False)
    """
    return group.get("step", "paper") == "decoupled"


def validate(options: dict[str, Any]) -> None:
    """Check option values; raise ValueError naming the option and what is allowed."""
    measured = measures_curvature(options)
    checks = {
        "curvature_ewma": lambda v: 0.0 <= v < 1.0,
        "trust_ratio": lambda v: v >= 0.0,
        "curvature_every": lambda v: isinstance(v, int) and v >= 1,
        "ewma": lambda v: 0.0 <= v < 1.0,
        "momentum": lambda v: 0.0 <= v < 1.0,
        "momentum_batch": lambda v: v > 0.0,
        "gamma0": lambda v: 0.0 <= v <= 1.0,
        "weight_decay": lambda v: v >= 0.0,
        "eps": lambda v: v > 0.0,
        "lr": lambda v: v >= 0.0 and v == v and v != float("inf"),
        "max_lr": (lambda v: v > 0.0) if measured else (lambda v: 0.0 < v <= 1.0),
    }
    allowed = {
        "ewma": "a float in [0, 1)",
        "momentum": "a float in [0, 1) (the decoupled step's weight on the previous step)",
        "momentum_batch": "a float > 0 (the batch size at which the momentum is 0)",
        "gamma0": "a float in [0, 1] (the warm start lr is 1 - gamma0)",
        "weight_decay": "a float >= 0",
        "eps": "a float > 0",
        "lr": "a finite float >= 0 (a multiplier on the adapted step; 1 = as adapted)",
        "max_lr": "a float > 0 (a cap on the measured lr)"
        if measured
        else "a float in (0, 1] (1 = the paper's triangle)",
        "curvature_ewma": "a float in [0, 1)",
        "trust_ratio": "a float >= 0 (0: no trust region)",
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
    for key, meanings in CHOICES.items():
        if key in options and options[key] not in meanings:
            said = " or ".join(f"{v!r} ({m})" for v, m in meanings.items())
            raise ValueError(f"invalid {key}={options[key]!r}: expected {said}")


#: Options added after the first release, with the value that reproduces the method a state
#: saved before them ran (the paper's curvature, no trust region): such a state loads and
#: resumes as it ran.
ADDED_OPTIONS: dict[str, Any] = {
    "curvature": "paper",
    "curvature_every": 10,
    "curvature_ewma": 0.5,
    "curvature_probe": "momentum",
    "trust_ratio": 0.0,
    "lr": 1.0,
    "curvature_source": "hvp",
    "step": "paper",
    "momentum": 0.9,
    "momentum_batch": 16.0,
}


def check_state_dict(opt: Any, state_dict: dict[str, Any]) -> None:
    """Refuse a state that does not belong to ``opt``, naming the first difference."""
    if not isinstance(state_dict, dict) or not {"state", "param_groups"} <= set(state_dict):
        raise ValueError("not an optimizer state_dict: it needs 'state' and 'param_groups'")
    saved, ours = state_dict["param_groups"], opt.param_groups
    cls = type(opt).__name__
    if len(saved) != len(ours):
        raise ValueError(f"the state has {len(saved)} param groups, this {cls} has {len(ours)}")
    own_options = set(opt.defaults)
    for i, (sg, og) in enumerate(zip(saved, ours, strict=True)):
        missing = sorted(own_options - set(sg) - set(ADDED_OPTIONS))
        extra = sorted(set(sg) - own_options - {"params", "param_names", "curvature_clock", "initial_lr"})
        if missing or extra:
            raise ValueError(
                f"the state is not from a {cls} (group {i} lacks {missing} and has {extra}); "
                "load it into the optimizer class that saved it"
            )
        if len(sg["params"]) != len(og["params"]):
            raise ValueError(
                f"group {i}: the state holds {len(sg['params'])} tensors, this {cls} has "
                f"{len(og['params'])}"
            )
        names_saved, names_ours = sg.get("param_names"), og.get("param_names")
        if names_saved and names_ours and list(names_saved) != list(names_ours):
            first = next(
                (a, b) for a, b in zip(names_saved, names_ours, strict=True) if a != b
            )
            raise ValueError(f"group {i}: the state's tensor {first[0]!r} is {first[1]!r} here")
    names = dict(opt._names())
    by_index = list(names.items())
    for idx, st in state_dict["state"].items():
        if not isinstance(idx, int) or not 0 <= idx < len(by_index):
            raise ValueError(f"the state refers to tensor {idx!r}, which this {cls} does not have")
        name, p = by_index[idx]
        for key in ("momentum_buffer", "exp_avg_sq", "sum_sq_grad", "last_update"):
            value = st.get(key)
            if isinstance(value, Tensor) and value.shape != p.shape:
                raise ValueError(
                    f"tensor {name!r}: the state's {key} has shape {tuple(value.shape)}, the "
                    f"parameter has {tuple(p.shape)}; the state is from another model"
                )
