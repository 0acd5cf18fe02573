"""One vector for a list of tensors and back: how a step handles a param group at once.

>>> import torch
>>> ts = [torch.ones(2, 2), torch.zeros(3)]
>>> v = flatten(ts)
>>> v.shape, [t.shape for t in unflatten(v, ts, [4, 3])]
(torch.Size([7]), [torch.Size([2, 2]), torch.Size([3])])
"""

from __future__ import annotations

import torch
from torch import Tensor


def flatten(tensors: list[Tensor]) -> Tensor:
    """The tensors' elements in one vector, in order (a copy)."""
    return torch.cat([t.reshape(-1) for t in tensors])


def unflatten(flat: Tensor, like: list[Tensor], sizes: list[int]) -> list[Tensor]:
    """Views of ``flat`` shaped as ``like`` (``sizes`` their element counts)."""
    return [v.view_as(t) for v, t in zip(flat.split(sizes), like, strict=True)]
