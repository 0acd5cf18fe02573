"""The built-in optimizers: AutoOpt variants, the tuned baselines, and the tuning-free peers.

Each entry is one :func:`~autoopt_lab.optim.registry.register` call; see
:mod:`autoopt_lab.optim.registry` for what an entry holds. The peers come from their own
packages (the ``peers`` extra) and are built at their published defaults.

>>> from autoopt_lab.optim import registry
>>> registry.names("auto")
['autosgd', 'autoadam', 'autoadagrad', 'autosgd-paper', 'autoadam-paper', 'autoadagrad-paper', 'autoadam-authors']
>>> registry.get("prodigy").family, registry.get("prodigy").package
('peer', 'prodigyopt')
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any

import torch
from torch import Tensor

from .autoadagrad import AutoAdaGrad
from .autoadam import AUTHORS_AUTOADAM, AutoAdam
from .autosgd import AutoSGD
from .bound import group_hparams, hparam_pair
from .registry import OptimizerSpec, Option, options_from_signature, register
from .validation import CHOICES, validate

#: Adam's betas in the paper's experiments (Section 5).
PAPER_BETAS = (0.9, 0.99)
#: The paper's method exactly as written: unit-free curvature (H-bar = H-hat), lr in [0, 1].
PAPER_METHOD: dict[str, Any] = {}


def _auto_hparams(optimizer: Any, names: dict[int, str]) -> dict[str, Tensor]:
    out = optimizer.hparam_tensors()
    by_index = {i: p for i, p in enumerate(p for g in optimizer.param_groups for p in g["params"])}
    fixed = {}
    for key, value in out.items():
        if isinstance(key, int):  # unnamed parameters: name them from the model
            key = names.get(id(by_index[key]), str(key))
        fixed[key] = value
    return fixed


def _auto_options(cls: type) -> tuple[Option, ...]:
    """The class's options, string ones with their allowed values (checked by the spec, so
    a bad value is an error when a run is configured, not when it starts)."""
    return tuple(
        dataclasses.replace(o, choices=tuple(CHOICES[o.name])) if o.name in CHOICES else o
        for o in options_from_signature(cls)
    )


def _auto(name: str, display: str, cls: type, base: str, description: str, **preset: Any) -> None:
    register(
        OptimizerSpec(
            name=name,
            display=display,
            family="auto",
            base=base,
            factory=lambda named, opts, cls=cls: cls(named, **opts),
            options=_auto_options(cls),
            preset=preset,
            description=description,
            per_sample_stats=True,
            probe=True,
            read_hparams=_auto_hparams,
            check=validate,
        )
    )


_AUTO = (("sgd", "SGD", AutoSGD), ("adam", "Adam", AutoAdam), ("adagrad", "AdaGrad", AutoAdaGrad))
for _base, _display, _cls in _AUTO:
    _auto(
        f"auto{_base}", f"Auto{_display}", _cls, _base,
        f"AutoOpt on {_display}'s preconditioner, library defaults: the decoupled step "
        "(momentum apart from the gain, its memory growing with the batch; the gain a line "
        "search along the step with the measured curvature; docs/decoupled.md)",
    )
for _base, _display, _cls in _AUTO:
    _auto(
        f"auto{_base}-paper", f"Auto{_display} (paper)", _cls, _base,
        f"AutoOpt on {_display} exactly as the paper writes it: H-bar = H-hat, lr in [0, 1]",
        curvature="paper",
        trust_ratio=0.0,
        step="paper",
    )
_auto(
    "autoadam-authors",
    "AutoAdam (authors)",
    AutoAdam,
    "adam",
    "AutoAdam with the authors' published settings (eps=1e-3, constant bias correction, "
    "ewma=0.99999; the paper's curvature)",
    **AUTHORS_AUTOADAM,
)


# -- tuned baselines (torch.optim), the grids of the paper ----------------------------------


def _sgd(named: list, opts: dict) -> torch.optim.Optimizer:
    return torch.optim.SGD([p for _, p in named], lr=opts["lr"], momentum=opts["momentum"])


def _adam(named: list, opts: dict) -> torch.optim.Optimizer:
    return torch.optim.Adam([p for _, p in named], lr=opts["lr"], betas=tuple(opts["betas"]))


def _adagrad(named: list, opts: dict) -> torch.optim.Optimizer:
    return torch.optim.Adagrad([p for _, p in named], lr=opts["lr"])


_LR = Option("lr", None, float, help="learning rate (required)")
register(
    OptimizerSpec(
        "sgd", "SGD", "tuned", "sgd", _sgd,
        options=(_LR, Option("momentum", 0.0, float, help="heavy-ball momentum")),
        required=("lr",), description="torch.optim.SGD with momentum", vectorized="sgd",
    )
)
register(
    OptimizerSpec(
        "adam", "Adam", "tuned", "adam", _adam,
        options=(_LR, Option("betas", PAPER_BETAS, tuple, help="(beta1, beta2)")),
        required=("lr",), description="torch.optim.Adam, the paper's betas (0.9, 0.99)",
        vectorized="adam",
    )
)
register(
    OptimizerSpec(
        "adagrad", "AdaGrad", "tuned", "adagrad", _adagrad, options=(_LR,),
        required=("lr",), description="torch.optim.Adagrad", vectorized="adagrad",
    )
)


# -- tuning-free peers, from their own packages, at their published defaults ----------------


def _peer_factory(module: str, cls_name: str):
    def factory(named: list, opts: dict) -> torch.optim.Optimizer:
        cls = getattr(importlib.import_module(module), cls_name)
        return cls([p for _, p in named], **{k: v for k, v in opts.items() if v is not None})

    return factory


def _constructor_check(name: str, module: str, cls_name: str):
    """The peer's own checks of its options (its constructor, on one parameter)."""

    def check(options: dict[str, Any]) -> None:
        try:
            cls = getattr(importlib.import_module(module), cls_name)
        except ImportError:
            return  # not installed: building it says so
        try:
            cls([torch.zeros(1, requires_grad=True)],
                **{k: v for k, v in options.items() if v is not None})
        except ValueError as exc:
            raise ValueError(f"optimizer {name!r}: {exc}") from None

    return check


def _peer_options(module: str, cls_name: str, skip: tuple[str, ...] = ()) -> tuple[Option, ...]:
    try:
        cls = getattr(importlib.import_module(module), cls_name)
    except ImportError:
        return ()
    return options_from_signature(cls, skip=("params", "fsdp_in_use", "foreach", *skip))


def _scaled_lr_hparams(optimizer: Any, names: dict[int, str]) -> dict[str, Tensor]:
    """D-Adaptation and Prodigy: the step size is ``d * lr``."""
    out = group_hparams(optimizer, names)
    for group in optimizer.param_groups:
        d = group.get("d", 1.0)
        for p in group["params"]:
            key = names.get(id(p), str(id(p)))
            out[key] = out[key] * torch.tensor([float(d), 1.0], dtype=torch.float64, device=p.device)
    return out


def _dog_hparams(optimizer: Any, names: dict[int, str]) -> dict[str, Tensor]:
    """DoG: one step size ``eta`` per tensor (or group), no momentum."""
    out = {}
    for group in optimizer.param_groups:
        etas = group.get("eta") or [group.get("init_eta") or 0.0] * len(group["params"])
        for p, eta in zip(group["params"], etas, strict=False):
            out[names.get(id(p), str(id(p)))] = hparam_pair(eta, 0.0, p.device)
    return out


def _peer(
    name: str, display: str, base: str, package: str, module: str, cls_name: str,
    description: str, *, reader: Any = None, eval_switch: bool = False,
) -> None:
    register(
        OptimizerSpec(
            name=name, display=display, family="peer", base=base,
            factory=_peer_factory(module, cls_name), options=_peer_options(module, cls_name),
            description=description, package=package, module=module,
            read_hparams=reader, eval_switch=eval_switch,
            check=_constructor_check(name, module, cls_name),
        )
    )


_peer("prodigy", "Prodigy", "adam", "prodigyopt", "prodigyopt", "Prodigy",
      "Prodigy (Mishchenko & Defazio, 2023), lr=1", reader=_scaled_lr_hparams)
_peer("dadapt-sgd", "D-Adapt SGD", "sgd", "dadaptation", "dadaptation", "DAdaptSGD",
      "D-Adaptation SGD (Defazio & Mishchenko, 2023), lr=1", reader=_scaled_lr_hparams)
_peer("dadapt-adam", "D-Adapt Adam", "adam", "dadaptation", "dadaptation", "DAdaptAdam",
      "D-Adaptation Adam, lr=1", reader=_scaled_lr_hparams)
_peer("dadapt-adagrad", "D-Adapt AdaGrad", "adagrad", "dadaptation", "dadaptation",
      "DAdaptAdaGrad", "D-Adaptation AdaGrad, lr=1", reader=_scaled_lr_hparams)
_peer("sf-sgd", "Schedule-Free SGD", "sgd", "schedulefree", "schedulefree", "SGDScheduleFree",
      "Schedule-Free SGD (Defazio et al., 2024), lr=1, momentum 0.9", eval_switch=True)
_peer("sf-adamw", "Schedule-Free AdamW", "adam", "schedulefree", "schedulefree",
      "AdamWScheduleFree", "Schedule-Free AdamW, lr=0.0025", eval_switch=True)
_peer("dog", "DoG", "sgd", "dog-optimizer", "dog", "DoG",
      "DoG (Ivgi et al., 2023), distance over gradients, no averaging", reader=_dog_hparams)
