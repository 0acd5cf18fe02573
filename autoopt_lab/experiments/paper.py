"""The paper's experimental grid (Section 5) and its Table 2, as data.

>>> len(PAPER_LRS), len(PAPER_MOMENTA), len(PAPER_BATCH_SIZES)
(9, 6, 6)
>>> round(PAPER_LRS[0], 6), PAPER_LRS[-1]
(0.0001, 1.0)
"""

from __future__ import annotations

# lr in {1e-4, 10^-3.5, ..., 1}: exponents -4, -3.5, ..., 0
PAPER_LR_EXPONENTS: tuple[float, ...] = tuple(-4.0 + 0.5 * k for k in range(9))
PAPER_LRS: tuple[float, ...] = tuple(10.0**e for e in PAPER_LR_EXPONENTS)
PAPER_MOMENTA: tuple[float, ...] = (0.0, 0.3, 0.8, 0.9, 0.95, 0.99)
PAPER_BATCH_SIZES: tuple[int, ...] = (8, 16, 32, 64, 128, 256)
PAPER_SEEDS: tuple[int, ...] = tuple(range(10))
PAPER_EPOCHS = 10
PAPER_ADAM_BETAS = (0.9, 0.99)
TABLE2_BATCH_SIZE = 128

# Table 2: (mean %, std %) over 10 seeds at N = 128, and the best grid configuration.
PAPER_TABLE2: dict[str, dict[str, dict[str, object]]] = {
    "mnist": {
        "sgd": {
            "train": (1.17, 0.14),
            "test": (1.21, 0.11),
            "config": {"lr": 1e-2, "momentum": 0.0},
        },
        "autosgd": {"train": (1.10, 0.05), "test": (1.22, 0.16), "config": "AutoOpt"},
        "adam": {"train": (1.05, 0.05), "test": (1.14, 0.04), "config": {"lr": 10**-3.5}},
        "autoadam": {"train": (1.34, 0.11), "test": (1.35, 0.12), "config": "AutoOpt"},
        "adagrad": {"train": (1.75, 0.38), "test": (1.86, 0.18), "config": {"lr": 1e-2}},
        "autoadagrad": {"train": (1.15, 0.10), "test": (1.23, 0.12), "config": "AutoOpt"},
    },
    "cifar10": {
        "sgd": {
            "train": (26.4, 1.39),
            "test": (36.4, 0.85),
            "config": {"lr": 10**-1.5, "momentum": 0.99},
        },
        "autosgd": {"train": (30.0, 1.33), "test": (38.7, 1.56), "config": "AutoOpt"},
        "adam": {"train": (27.2, 1.58), "test": (36.4, 1.03), "config": {"lr": 10**-3.5}},
        "autoadam": {"train": (42.6, 3.29), "test": (47.8, 2.69), "config": "AutoOpt"},
        "adagrad": {"train": (31.4, 2.92), "test": (38.3, 1.31), "config": {"lr": 10**-1.5}},
        "autoadagrad": {"train": (27.3, 1.44), "test": (36.7, 0.82), "config": "AutoOpt"},
    },
}


def paper_reference(dataset: str) -> tuple[str, dict[str, dict[str, object]]] | tuple[None, None]:
    """The paper's Table 2 block to compare a data set against, and its name.

    The paper has no Fashion-MNIST column; Fashion-MNIST runs the MNIST architecture, so it
    is compared with the MNIST block, and callers must say so (the returned name).

    >>> paper_reference("fashion-mnist")[0]
    'mnist'
    """
    ref = {"mnist": "mnist", "fashion-mnist": "mnist", "cifar10": "cifar10"}.get(dataset)
    if ref is None:
        return None, None
    return ref, PAPER_TABLE2[ref]
