"""Ghost norms: ``Q = sum_i g_i^T W g_i`` without per-sample gradients (docs/statistics.md).

For a layer whose per-sample weight gradient is a sum over positions ``t`` (the tokens of a
sequence, the spatial positions of a convolution), ``g_i = sum_t dz_it a_it^T``, and for a
rank-1 diagonal weight ``W = row col^T`` (the identity: ``row = col = 1``)

    Q = sum_i sum_{t,s} (dz_it^T diag(row) dz_is) (a_it^T diag(col) a_is),

two per-sample Gram matrices of ``T x T`` instead of one ``out x in`` gradient per sample.
:func:`choose` picks the cheaper of this and the elementwise path with :func:`path_costs`;
``STATISTICS`` (or :func:`forced`) overrides it.

>>> import torch
>>> a, dz = torch.randn(3, 5, 4), torch.randn(3, 5, 2)        # (N, T, in), (N, T, out)
>>> g = torch.einsum("nto,nti->noi", dz, a)                   # per-sample gradients
>>> torch.allclose(gram_norm(a, dz), g.square().sum(), rtol=1e-4)
True
>>> choose(32, 512, 512 * 9, 16), choose(128, 10, 25, 576)  # late ResNet conv, paper's conv1
('ghost', 'elementwise')
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

#: The path the rules take: ``"auto"`` (the cost model), ``"elementwise"`` or ``"ghost"``.
STATISTICS = "auto"
PATHS = ("auto", "elementwise", "ghost")

#: One element of memory in multiply-adds. The per-sample tensors are allocated, written,
#: squared into a copy and summed: measured on one CPU thread (ResNet-18's convolutions,
#: docs/statistics.md) that costs ~10 ns per element against ~0.05 ns per multiply-add of a
#: matmul; 64 keeps every measured choice and leans towards the elementwise form.
MEMORY_COST = 64.0
#: Below this many per-sample elements (``N x`` the weight's size) the elementwise path is
#: kept: both paths cost little there and ``S`` serves any diagonal ``D``, not only rank 1.
ELEMENTWISE_BELOW = 1 << 18
#: Gram matrices are built for at most this many elements at a time (chunks of samples).
GRAM_CHUNK = 1 << 24


@dataclass(frozen=True)
class PathCost:
    """Multiply-adds and elements of memory of one statistics path for one layer call."""

    flops: float
    memory: float

    @property
    def total(self) -> float:
        """``flops + MEMORY_COST * memory``: the number :func:`choose` compares."""
        return self.flops + MEMORY_COST * self.memory


def path_costs(
    n: int, out: int, in_: int, positions: int, groups: int = 1
) -> tuple[PathCost, PathCost]:
    """``(elementwise, ghost)`` costs for a layer with ``positions`` (``L``) positions.

    ``out`` is the weight's ``shape[0]``, ``in_`` its other dimensions' size per group (a
    convolution's ``in_channels / groups * prod(kernel)``). Elementwise: the per-sample
    gradients, ``N out in L`` multiply-adds and ``N out in`` elements. Ghost: two Gram
    matrices per sample and group, ``N L^2 (groups in + out)`` multiply-adds, over the
    ``N L^2 groups`` Gram elements and the ``N groups in L`` unfolded patches.

    >>> e, g = path_costs(8, 4, 3, 10)
    >>> e.flops, e.memory, g.flops, g.memory
    (960, 96, 5600, 1040)
    """
    elementwise = PathCost(n * out * in_ * positions, n * out * in_)
    ghost = PathCost(
        n * positions**2 * (groups * in_ + out),
        n * groups * positions * (positions + in_),
    )
    return elementwise, ghost


def choose(
    n: int, out: int, in_: int, positions: int, groups: int = 1, *, mode: str | None = None
) -> str:
    """``"ghost"`` or ``"elementwise"`` for one layer call (arguments of :func:`path_costs`).

    ``mode`` (default :data:`STATISTICS`) other than ``"auto"`` is returned as is.

    >>> choose(8, 4, 3, 10), choose(8, 4, 3, 10, mode="ghost")
    ('elementwise', 'ghost')
    """
    mode = STATISTICS if mode is None else mode
    if mode not in PATHS:
        raise ValueError(f"statistics path must be one of {PATHS}, got {mode!r}")
    if mode != "auto":
        return mode
    if n * out * in_ < ELEMENTWISE_BELOW:
        return "elementwise"
    elementwise, ghost = path_costs(n, out, in_, positions, groups)
    return "ghost" if ghost.total < elementwise.total else "elementwise"


@contextlib.contextmanager
def forced(path: str) -> Iterator[None]:
    """Set :data:`STATISTICS` within a block (``"auto"``, ``"elementwise"`` or ``"ghost"``).

    >>> with forced("ghost"):
    ...     choose(128, 10, 25, 576)
    'ghost'
    """
    global STATISTICS
    if path not in PATHS:
        raise ValueError(f"statistics path must be one of {PATHS}, got {path!r}")
    old, STATISTICS = STATISTICS, path
    try:
        yield
    finally:
        STATISTICS = old


def _work_dtype(t: Tensor) -> torch.dtype:
    return t.dtype if t.dtype in (torch.float32, torch.float64) else torch.float32


def gram_norm(
    a: Tensor,
    dz: Tensor,
    row: Tensor | None = None,
    col: Tensor | None = None,
) -> Tensor:
    """``sum_b sum_{t,s} (dz_bt^T diag(row) dz_bs)(a_bt^T diag(col) a_bs)``, 0-dim.

    ``a`` is ``(B..., T, in)`` and ``dz`` ``(B..., T, out)`` over the same batch dimensions
    ``B...``; ``row`` and ``col`` broadcast against ``dz`` and ``a`` (None: ones). Half
    precision is computed in float32. Samples are processed in chunks of about
    :data:`GRAM_CHUNK` Gram elements.

    >>> a, dz = torch.ones(2, 3, 1), torch.ones(2, 3, 1)   # g_i = 3 for both samples
    >>> gram_norm(a, dz), gram_norm(a, dz, torch.tensor([2.0]), None)
    (tensor(18.), tensor(36.))
    """
    dtype = _work_dtype(dz)
    t = a.shape[-2]
    per_sample = max(1, a[:1].numel() // max(1, a.shape[-1]) * t)  # Gram elements per sample
    chunk = max(1, GRAM_CHUNK // per_sample)
    total = torch.zeros((), dtype=dtype, device=dz.device)
    for i in range(0, a.shape[0], chunk):
        ai, di = a[i : i + chunk].to(dtype), dz[i : i + chunk].to(dtype)
        wa = ai if col is None else ai * col.to(dtype)
        wd = di if row is None else di * row.to(dtype)
        ga = torch.matmul(wa, ai.transpose(-1, -2))
        gd = torch.matmul(wd, di.transpose(-1, -2))
        total = total + torch.dot(ga.reshape(-1), gd.reshape(-1))
    return total


def _check_weights(
    weights: tuple[Tensor, Tensor] | None, out: int, in_: int
) -> tuple[Tensor | None, Tensor | None]:
    if weights is None:
        return None, None
    row, col = weights
    if row.numel() != out or col.numel() != in_:
        raise ValueError(
            f"published weights (row, col) have {row.numel()} and {col.numel()} elements; "
            f"the weight viewed as (shape[0], -1) is ({out}, {in_})"
        )
    return row.reshape(-1), col.reshape(-1)


def linear_ghost_norm(
    a: Tensor, dz: Tensor, weights: tuple[Tensor, Tensor] | None = None
) -> Tensor:
    """``Q`` of a Linear weight from its input ``(N, ..., in)`` and output gradient.

    >>> a, dz = torch.randn(2, 3, 4), torch.randn(2, 3, 5)
    >>> row, col = torch.rand(5), torch.rand(4)
    >>> g = torch.einsum("nto,nti->noi", dz, a)
    >>> q = (g.square() * row[:, None] * col).sum()
    >>> torch.allclose(linear_ghost_norm(a, dz, (row, col)), q, rtol=1e-4)
    True
    """
    n, in_, out = a.shape[0], a.shape[-1], dz.shape[-1]
    row, col = _check_weights(weights, out, in_)
    return gram_norm(a.reshape(n, -1, in_), dz.reshape(n, -1, out), row, col)


def conv_ghost_norm(
    cols: Tensor, dz: Tensor, groups: int = 1, weights: tuple[Tensor, Tensor] | None = None
) -> Tensor:
    """``Q`` of a convolution weight from its input patches and output gradient.

    ``cols`` is the ``(N, in_channels * prod(kernel), L)`` patch matrix of the padded input
    (``F.unfold``'s layout) and ``dz`` the ``(N, out_channels, *spatial)`` output gradient;
    each group's Gram matrices use its block of ``row`` and all of ``col`` (the weight is
    ``(out, in_channels / groups, *kernel)``).

    >>> import torch.nn.functional as F
    >>> x, w = torch.randn(2, 4, 6, 6), torch.randn(6, 2, 3, 3)
    >>> cols, dz = F.unfold(x, 3), torch.randn(2, 6, 4, 4)
    >>> g = torch.einsum("ngol,ngil->ngoi", dz.reshape(2, 2, 3, 16), cols.reshape(2, 2, 18, 16))
    >>> torch.allclose(conv_ghost_norm(cols, dz, groups=2), g.square().sum(), rtol=1e-4)
    True
    """
    n, c_out = dz.shape[:2]
    positions = cols.shape[-1]
    in_g = cols.shape[1] // groups
    row, col = _check_weights(weights, c_out, in_g)
    a = cols.reshape(n, groups, in_g, positions).transpose(-1, -2)  # (N, G, L, in_g)
    d = dz.reshape(n, groups, c_out // groups, positions).transpose(-1, -2)  # (N, G, L, out_g)
    if row is not None:
        row = row.reshape(groups, 1, c_out // groups)
    return gram_norm(a, d, row, col)
