"""Growing a network when a stream brings new features or new classes.

A new feature gets a new input column of the network's *input layer* (its first
``nn.Linear``), a new class a new output row of its *output layer* (its last ``nn.Linear``).
The new weights (and bias entries) start at zero, and so does every per-coordinate state the
optimizer keeps for them (momentum buffers, Adam moments, AutoOpt's previous step, ...):
:func:`pad_state` pads those state tensors with zeros. Which state entries are
per-coordinate is not guessed from their shape (AutoOpt's per-tensor ``gamma`` has the shape
of a 2-vector bias): :func:`coordinate_keys` finds them with a probe step of the same
optimizer on a small network.

For a new feature this is exact: a feature that was absent was 0 in its column, so the
weights of that column had zero gradient and, starting at zero, would have stayed at zero;
the grown network and its optimizer state are those of a network that had the column all
along (checked in the tests for every registry optimizer). A new output row is not
equivalent to a row that existed from the start (softmax pushes an unseen class down); it
starts at logit 0.

>>> from torch import nn
>>> net = nn.Sequential(nn.Linear(2, 3), nn.LogSoftmax(dim=1))
>>> grow_linear(input_layer(net), in_features=4)
>>> net[0].weight.shape, float(net[0].weight.detach()[:, 2:].abs().sum())
(torch.Size([3, 4]), 0.0)
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "coordinate_keys",
    "grow_linear",
    "input_layer",
    "output_layer",
    "pad_state",
    "trainable_shapes",
]


def _linears(module: nn.Module) -> list[nn.Linear]:
    return [m for m in module.modules() if isinstance(m, nn.Linear)]


def input_layer(module: nn.Module) -> nn.Linear | None:
    """The first ``nn.Linear`` of ``module`` (registration order), or None."""
    layers = _linears(module)
    return layers[0] if layers else None


def output_layer(module: nn.Module) -> nn.Linear | None:
    """The last ``nn.Linear`` of ``module`` (registration order), or None."""
    layers = _linears(module)
    return layers[-1] if layers else None


def _padded(value: Tensor, shape: torch.Size) -> Tensor:
    out = value.new_zeros(shape)
    out[tuple(slice(0, s) for s in value.shape)] = value
    return out


@torch.no_grad()
def grow_linear(
    layer: nn.Linear, *, in_features: int | None = None, out_features: int | None = None
) -> None:
    """Append zero input columns / output rows to ``layer`` (new ``nn.Parameter`` objects)."""
    n_in = layer.in_features if in_features is None else in_features
    n_out = layer.out_features if out_features is None else out_features
    if n_in < layer.in_features or n_out < layer.out_features:
        raise ValueError("a layer can only grow")
    if (n_in, n_out) == (layer.in_features, layer.out_features):
        return
    weight = layer.weight
    layer.weight = nn.Parameter(
        _padded(weight.detach(), torch.Size((n_out, n_in))), requires_grad=weight.requires_grad
    )
    if layer.bias is not None and n_out != layer.out_features:
        bias = layer.bias
        layer.bias = nn.Parameter(
            _padded(bias.detach(), torch.Size((n_out,))), requires_grad=bias.requires_grad
        )
    layer.in_features, layer.out_features = n_in, n_out


def trainable_shapes(module: nn.Module) -> list[torch.Size]:
    """Shapes of the trainable parameters, in the order an optimizer built over them holds."""
    return [p.shape for p in module.parameters() if p.requires_grad]


def _like(value: Any, shape: torch.Size) -> bool:
    """Whether ``value`` holds one entry per coordinate of a parameter of ``shape``."""
    if not isinstance(value, Tensor) or value.dim() == 0:
        return False
    if value.shape == shape:
        return True
    # Prodigy keeps some state flattened
    return value.dim() == 1 and len(shape) > 1 and value.numel() == shape.numel()


def coordinate_keys(build: Callable[[nn.Module], Any], steps: int = 3) -> frozenset[str]:
    """State keys (and param-group keys) an optimizer keeps per parameter coordinate.

    ``build(module)`` returns a :class:`~autoopt_lab.optim.registry.BoundOptimizer`; a few
    steps on a 3 -> 5 linear classifier (shapes no per-tensor state shares) show which
    entries follow the parameters' shapes. The global RNG is left as it was.

    >>> from autoopt_lab.optim import registry
    >>> sorted(coordinate_keys(lambda m: registry.build("adam", m, lr=0.1)))
    ['exp_avg', 'exp_avg_sq']
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = nn.Sequential(nn.Linear(3, 5), nn.LogSoftmax(dim=1))
        x, y = torch.randn(8, 3), torch.arange(8) % 5
        bound = build(net)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for _ in range(steps):
                    bound.zero_grad()
                    F.nll_loss(net(x), y).backward()
                    bound.step(lambda: F.nll_loss(net(x), y))
            state = bound.state_dict()
        finally:
            bound.close()
    shapes = trainable_shapes(net)
    keys = set()
    for idx, entry in state["state"].items():
        if isinstance(idx, int):
            keys.update(k for k, v in entry.items() if _like(v, shapes[idx]))
    for group in state["param_groups"]:
        ids = group["params"]
        for key, value in group.items():
            # per-parameter lists in a param group (DoG keeps its initial point there)
            if key != "params" and isinstance(value, list | tuple) and len(value) == len(ids):
                if any(_like(v, shapes[i]) for v, i in zip(value, ids, strict=True)):
                    keys.add(key)
    return frozenset(keys)


def pad_state(
    state_dict: dict[str, Any],
    before: list[torch.Size],
    after: list[torch.Size],
    keys: frozenset[str],
) -> dict[str, Any]:
    """An optimizer ``state_dict`` whose per-coordinate entries follow grown parameters.

    ``before``/``after`` are :func:`trainable_shapes` around the growth, ``keys`` the
    :func:`coordinate_keys` of the optimizer. For each parameter whose shape changed, those
    entries are zero-padded to the new shape, in the per-parameter state and in per-parameter
    lists of the param groups; everything else (step counts, per-tensor learning rates, ...)
    is kept.
    """
    if len(before) != len(after):
        raise ValueError("growing must not add or remove parameters")

    def pad(key: str, value: Any, i: int) -> Any:
        if key not in keys or before[i] == after[i] or not _like(value, before[i]):
            return value
        if value.shape == before[i]:
            return _padded(value, after[i])
        return _padded(value.reshape(before[i]), after[i]).flatten()

    state = {
        idx: ({k: pad(k, v, idx) for k, v in entry.items()} if isinstance(idx, int) else entry)
        for idx, entry in state_dict["state"].items()
    }
    groups = []
    for group in state_dict["param_groups"]:
        ids, out = group["params"], dict(group)
        for key, value in group.items():
            if key in keys and isinstance(value, list | tuple) and len(value) == len(ids):
                out[key] = type(value)(pad(key, v, i) for v, i in zip(value, ids, strict=True))
        groups.append(out)
    return {**state_dict, "state": state, "param_groups": groups}
