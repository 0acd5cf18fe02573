"""Real data sets as tensors: MNIST, Fashion-MNIST and CIFAR10, online or offline.

>>> from autoopt_lab.data import load_arrays
>>> x, y, info = load_arrays("fashion-mnist", train=True)  # doctest: +SKIP
>>> info.source, info.num_samples  # doctest: +SKIP
('debian:dataset-fashion-mnist', 60000)
"""

from .errors import DataUnavailableError, SubsetOnlyError
from .info import DatasetInfo
from .loading import DATASETS, canonical_name, clear_cache, download_command, load_arrays
from .root import data_root, downloads_allowed
from .tensors import normalize, shuffled_batches

__all__ = [
    "DATASETS",
    "DataUnavailableError",
    "DatasetInfo",
    "SubsetOnlyError",
    "canonical_name",
    "clear_cache",
    "data_root",
    "download_command",
    "downloads_allowed",
    "load_arrays",
    "normalize",
    "shuffled_batches",
]
