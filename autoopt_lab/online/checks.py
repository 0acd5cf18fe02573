"""What a learner checks at construction: its optimizer (name, options, the optimizer's own
checks on a trial build) and its feature or class names.

>>> check_optimizer("sf-sgd:momentum=1.5", None)
Traceback (most recent call last):
...
ValueError: optimizer 'sf-sgd': Momentum must be between 0 and 1 exclusive: 1.5
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

from torch import nn
from torch.nn.utils import skip_init

from ..optim import build, registry
from ..optim.spec_strings import Choice

__all__ = ["check_names", "check_optimizer"]


def check_optimizer(
    optimizer: str, options: Mapping[str, Any] | None
) -> tuple[registry.OptimizerSpec, dict[str, Any]]:
    """The registry spec of ``optimizer`` (a name or spec string) with its resolved options."""
    if not isinstance(optimizer, str):
        raise ValueError(
            f"optimizer must be a registry name or spec string, got {type(optimizer).__name__}; "
            f"known: {', '.join(registry.names())}"
        )
    if options is not None and not isinstance(options, Mapping):
        raise ValueError(f"optimizer_options must be a dict, got {type(options).__name__}")
    choice = Choice.parse(optimizer, options, require=True).require_available()
    spec = choice.spec
    resolved = spec.resolve(choice.options)
    try:  # the optimizer's own checks (a peer's betas...) on a layer that draws no random number
        build(spec.name, skip_init(nn.Linear, 1, 1), **resolved).close()
    except ValueError as exc:
        raise ValueError(f"optimizer {optimizer!r}: {exc}") from None
    return spec, resolved


def check_names(values: Sequence[Hashable] | None, what: str) -> None:
    """``features=``/``classes=``: None, or a non-empty sequence of distinct hashables."""
    if values is None:
        return
    if isinstance(values, str | bytes) or not isinstance(values, Sequence) or not values:
        raise ValueError(f"{what} must be a non-empty tuple or list, got {values!r}")
    try:
        distinct = len(set(values)) == len(values)
    except TypeError:
        raise ValueError(f"{what} must hold hashable values, got {values!r}") from None
    if not distinct:
        raise ValueError(f"{what} holds a value twice: {values!r}")
    if any(v is None for v in values):
        raise ValueError(f"{what} must not hold None")
