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

#: Segment views of flat vectors that live across steps (see :func:`segments`), by id.
_KNOWN: dict[int, tuple[Tensor, list[Tensor]]] = {}


def remember_segments(flat: Tensor, sizes: list[int]) -> None:
    """Keep ``flat``'s segment views for :func:`segments` (a vector reused across steps);
    :func:`forget_segments` drops them."""
    _KNOWN[id(flat)] = (flat, list(flat.split(sizes)))


def forget_segments(flat_id: int) -> None:
    _KNOWN.pop(flat_id, None)


def segments(flat: Tensor, sizes: list[int]) -> list[Tensor]:
    """``list(flat.split(sizes))``, the views made once for a remembered vector.

    >>> segments(torch.arange(3.0), [2, 1])
    [tensor([0., 1.]), tensor([2.])]
    """
    known = _KNOWN.get(id(flat))
    if known is not None and known[0] is flat and len(known[1]) == len(sizes):
        return known[1]
    return list(flat.split(sizes))


def flatten(tensors: list[Tensor]) -> Tensor:
    """The tensors' elements in one vector, in order (a copy)."""
    return torch.cat([t.reshape(-1) for t in tensors])


def unflatten(flat: Tensor, like: list[Tensor], sizes: list[int]) -> list[Tensor]:
    """Views of ``flat`` shaped as ``like`` (``sizes`` their element counts)."""
    return [v.view_as(t) for v, t in zip(flat.split(sizes), like, strict=True)]


def mul_segments_(flat: Tensor, values: Tensor, sizes: list[int]) -> Tensor:
    """``flat *= values`` segment by segment, in place (``values`` one per segment).

    A multi-tensor op over views of ``flat``: about the cost of one elementwise pass, where
    expanding ``values`` to one per element (a gather) costs several.

    >>> mul_segments_(torch.ones(3), torch.tensor([2.0, 3.0]), [2, 1])
    tensor([2., 2., 3.])
    """
    torch._foreach_mul_(segments(flat, sizes), list(values.to(flat.dtype).unbind()))
    return flat


def add_segments_(flat: Tensor, values: Tensor, sizes: list[int]) -> Tensor:
    """``flat += values`` segment by segment, in place.

    >>> add_segments_(torch.ones(3), torch.tensor([2.0, 3.0]), [2, 1])
    tensor([3., 3., 4.])
    """
    torch._foreach_add_(segments(flat, sizes), list(values.to(flat.dtype).unbind()))
    return flat


def combine_segments(
    a: Tensor, ca: Tensor, b: Tensor, cb: Tensor, sizes: list[int]
) -> Tensor:
    """``ca * a + cb * b`` with one coefficient pair per segment (a new flat tensor).

    >>> combine_segments(torch.ones(3), torch.tensor([1.0, 2.0]), torch.ones(3),
    ...                  torch.tensor([0.5, 0.0]), [2, 1])
    tensor([1.5000, 1.5000, 2.0000])
    """
    out = a.clone()
    views, others = list(out.split(sizes)), list(b.split(sizes))
    torch._foreach_mul_(views, list(ca.to(a.dtype).unbind()))
    torch._foreach_add_(views, torch._foreach_mul(others, list(cb.to(a.dtype).unbind())))
    return out


def segment_dots(a: Tensor, b: Tensor, sizes: list[int]) -> Tensor:
    """``<a_k, b_k>`` for every segment ``k`` of two flat tensors, ``(P,)`` float64; no
    temporary of the full size.

    >>> segment_dots(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([4.0, 5.0, 6.0]), [2, 1])
    tensor([14., 18.], dtype=torch.float64)
    """
    dots = [torch.dot(x, y) for x, y in zip(segments(a, sizes), segments(b, sizes),
                                            strict=True)]
    return torch.stack(dots).to(torch.float64)


def sq_norms(tensors: list[Tensor]) -> Tensor:
    """``||t||^2`` of each tensor, ``(P,)`` float64, by one multi-tensor norm.

    >>> sq_norms([torch.tensor([3.0, 4.0]), torch.ones(4)])
    tensor([25.,  4.], dtype=torch.float64)
    """
    return torch.stack(torch._foreach_norm(tensors)).to(torch.float64).square()
