"""Training-side helpers on whole-data-set tensors: normalisation and shuffled batches.

The data sets fit in memory, so there is no per-sample PIL path: normalise once, then index.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from .info import DatasetInfo


def normalize(
    x: torch.Tensor, info: DatasetInfo, device: torch.device | str | None = None
) -> torch.Tensor:
    """uint8 ``(N, C, H, W)`` -> float32, scaled to [0, 1] then standardised per channel.

    >>> info = DatasetInfo("t", "s", "train", 2, False, 2, 2, 1, 1, 1, (0.5,), (0.5,))
    >>> normalize(torch.tensor([[[[0]]], [[[255]]]], dtype=torch.uint8), info).flatten().tolist()
    [-1.0, 1.0]
    """
    if x.dtype != torch.uint8 or x.ndim != 4:
        raise ValueError(f"expected a uint8 (N, C, H, W) tensor, got {x.dtype} {tuple(x.shape)}")
    if x.shape[1] != len(info.mean):
        raise ValueError(f"x has {x.shape[1]} channels but info has {len(info.mean)}")
    x = x.to(device=device, dtype=torch.float32).div_(255.0)
    mean = torch.tensor(info.mean, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
    std = torch.tensor(info.std, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
    return x.sub_(mean).div_(std)


def shuffled_batches(
    num_samples: int,
    batch_size: int,
    generator: torch.Generator,
    *,
    min_batch: int = 1,
) -> Iterator[torch.Tensor]:
    """Index tensors for one epoch: a permutation from ``generator`` cut into batches.

    The last, short batch is kept unless it has fewer than ``min_batch`` samples.

    >>> g = torch.Generator().manual_seed(0)
    >>> [len(b) for b in shuffled_batches(10, 4, g)]
    [4, 4, 2]
    >>> [len(b) for b in shuffled_batches(9, 4, g, min_batch=2)]
    [4, 4]
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    perm = torch.randperm(num_samples, generator=generator)
    for start in range(0, num_samples, batch_size):
        idx = perm[start : start + batch_size]
        if len(idx) >= min_batch:
            yield idx
