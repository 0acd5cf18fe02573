"""Issue 19: labels are checked against the data set's classes; the data's content is part of
a run's id."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from autoopt_lab.data import DataUnavailableError, clear_cache, load_arrays
from autoopt_lab.experiments import RunConfig, run


@pytest.fixture(autouse=True)
def _fresh_cache():
    clear_cache()
    yield
    clear_cache()


def _write_mnist(root: Path, *, seed: int = 0, labels: list[int] | None = None,
                 n: int = 24) -> Path:
    """A tiny MNIST in torchvision's unpacked layout (IDX files)."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for prefix, count in (("train", n), ("t10k", n // 2)):
        images = rng.integers(0, 256, (count, 28, 28), dtype=np.uint8)
        y = np.arange(count) % 10 if labels is None or prefix == "t10k" else np.array(labels)
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(
            struct.pack(">IIII", 0x803, count, 28, 28) + images.tobytes())
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(
            struct.pack(">II", 0x801, count) + y.astype(np.uint8).tobytes())
    return root


def test_labels_outside_the_classes_are_refused_naming_the_files(tmp_path):
    labels = [200 if i in (3, 7, 11) else i % 10 for i in range(24)]
    root = _write_mnist(tmp_path, labels=labels)
    with pytest.raises(DataUnavailableError) as err:
        load_arrays("mnist", root=root, download=False)
    text = str(err.value)
    assert "3 of 24 labels" in text and "classes 0-9" in text and "200" in text
    assert str(root) in text and "damaged" in text


def test_a_split_lacking_classes_still_has_the_data_sets_classes(tmp_path):
    root = _write_mnist(tmp_path, labels=[i % 5 for i in range(24)])
    assert load_arrays("mnist", root=root, download=False)[2].num_classes == 10


def test_the_run_id_follows_the_data_content(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOOPT_OFFLINE", "1")
    a, b = _write_mnist(tmp_path / "a", seed=0), _write_mnist(tmp_path / "b", seed=1)
    cfg = RunConfig("mnist", "sgd", lr=0.1, momentum=0.0, batch_size=8, epochs=1,
                    device="cpu")
    monkeypatch.setenv("AUTOOPT_DATA", str(a))
    id_a = cfg.run_id()
    monkeypatch.setenv("AUTOOPT_DATA", str(b))
    clear_cache()
    id_b = cfg.run_id()
    assert id_a != id_b and cfg.identity()["data"]
    # a run on an explicit root carries that root's data
    assert run(cfg, data_root=str(a), progress=False).run_id == id_a
