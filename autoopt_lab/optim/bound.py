"""An optimizer built over a model: what a training loop needs around a registry optimizer.

>>> from torch import nn
>>> bound = build("sgd", nn.Linear(2, 2), lr=0.1)
>>> bound.label, sorted(bound.hparams())
('SGD(lr=0.1)', ['bias', 'weight'])
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor, nn

from .registry import OptimizerSpec, get
from .spec_strings import parse_spec


class BoundOptimizer:
    """An optimizer built over a model, with what a training loop needs around it.

    * :meth:`step` passes a loss closure to optimizers that measure curvature with it and
      calls ``step()`` plainly for the others (``torch.optim`` optimizers would evaluate it);
    * :meth:`evaluating` puts Schedule-Free optimizers in eval mode for evaluation;
    * :meth:`hparams` reads ``{tensor name: tensor([lr, momentum])}`` without a host sync;
    * :meth:`close` removes the per-sample statistics hooks (also on ``with`` exit).

    >>> from torch import nn
    >>> import torch.nn.functional as F
    >>> model = nn.Linear(3, 2)
    >>> x, y = torch.randn(8, 3), torch.randint(0, 2, (8,))
    >>> with build("autosgd", model) as opt:
    ...     opt.zero_grad()
    ...     F.cross_entropy(model(x), y).backward()
    ...     opt.step(lambda: F.cross_entropy(model(x), y))
    ...     sorted(opt.hparams())
    ['bias', 'weight']
    """

    def __init__(
        self,
        spec: OptimizerSpec,
        optimizer: torch.optim.Optimizer,
        model: nn.Module,
        options: dict[str, Any],
        tracker: Any = None,
    ) -> None:
        self.spec = spec
        self.optimizer = optimizer
        self.model = model
        self.options = options
        self.tracker = tracker
        self._names = {id(p): n for n, p in model.named_parameters()}
        if spec.eval_switch:
            optimizer.train()

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def label(self) -> str:
        return self.spec.label(self.options)

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none=set_to_none)

    def step(self, closure: Callable[[], Tensor] | None = None) -> None:
        """One optimizer step; ``closure`` (the batch loss, no ``backward()``) feeds probes."""
        if self.spec.probe and closure is not None:
            self.optimizer.step(closure)
        else:
            self.optimizer.step()

    @contextlib.contextmanager
    def evaluating(self) -> Iterator[None]:
        """Evaluate the weights the optimizer means for evaluation (Schedule-Free's ``x``)."""
        if not self.spec.eval_switch:
            yield
            return
        self.optimizer.eval()
        try:
            yield
        finally:
            self.optimizer.train()

    def hparams(self) -> dict[str, Tensor]:
        """``{tensor name: tensor([lr, momentum])}`` on each parameter's device, no sync."""
        if self.spec.read_hparams is not None:
            return self.spec.read_hparams(self.optimizer, self._names)
        return group_hparams(self.optimizer, self._names)

    def state_dict(self) -> dict[str, Any]:
        return self.optimizer.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state)

    def close(self) -> None:
        """Remove per-sample statistics hooks (a no-op for other optimizers)."""
        if self.tracker is not None:
            self.tracker.remove()
            self.tracker = None

    def __enter__(self) -> BoundOptimizer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def build(name: str, model: nn.Module, **options: Any) -> BoundOptimizer:
    """Optimizer ``name`` (a name or spec string) over ``model``'s trainable parameters.

    ``options`` overlay the spec string's and the defaults; unknown options, a missing
    required one (``lr`` for the tuned optimizers) and an uninstalled package are clear
    errors.
    """
    key, from_text = parse_spec(name) if ":" in str(name) else (str(name), {})
    spec = get(key)
    spec.require_available()
    resolved = spec.resolve({**from_text, **options})
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not named:
        raise ValueError("the model has no trainable parameters")
    tracker = None
    if spec.per_sample_stats:
        from ..stats import track

        tracker = track(model)
    try:
        optimizer = spec.factory(named, resolved)
    except Exception:
        if tracker is not None:
            tracker.remove()
        raise
    return BoundOptimizer(spec, optimizer, model, resolved, tracker)


def group_hparams(optimizer: torch.optim.Optimizer, names: dict[int, str]) -> dict[str, Tensor]:
    """lr and momentum from the param groups: ``lr``, and ``momentum`` or ``betas[0]`` (else 0).

    Values that are tensors (D-Adaptation's ``d``, say) stay on their device.
    """
    out: dict[str, Tensor] = {}
    for group in optimizer.param_groups:
        mom = group.get("momentum", group.get("betas", (0.0,))[0] if "betas" in group else 0.0)
        for p in group["params"]:
            out[names.get(id(p), str(id(p)))] = hparam_pair(group["lr"], mom, p.device)
    return out


def hparam_pair(lr: Any, momentum: Any, device: torch.device) -> Tensor:
    """``tensor([lr, momentum])`` in float64 from floats or 0-d tensors, without a sync."""
    parts = [
        v.detach().reshape(()).to(device=device, dtype=torch.float64)
        if isinstance(v, Tensor)
        else torch.tensor(float(v), dtype=torch.float64, device=device)
        for v in (lr, momentum)
    ]
    return torch.stack(parts)


