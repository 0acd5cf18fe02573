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

# Table 2: (mean %, std %) over 10 seeds at N = 128 for the best grid setting of each tuned
# optimizer ("tuned") and for AutoOpt on the same preconditioner ("auto"), keyed by data set
# and preconditioner family (the registry's ``base``).
PAPER_TABLE2: dict[str, dict[str, dict[str, dict[str, object]]]] = {
    "mnist": {
        "sgd": {
            "tuned": {"train": (1.17, 0.14), "test": (1.21, 0.11),
                      "config": {"lr": 1e-2, "momentum": 0.0}},
            "auto": {"train": (1.10, 0.05), "test": (1.22, 0.16), "config": "AutoOpt"},
        },
        "adam": {
            "tuned": {"train": (1.05, 0.05), "test": (1.14, 0.04), "config": {"lr": 10**-3.5}},
            "auto": {"train": (1.34, 0.11), "test": (1.35, 0.12), "config": "AutoOpt"},
        },
        "adagrad": {
            "tuned": {"train": (1.75, 0.38), "test": (1.86, 0.18), "config": {"lr": 1e-2}},
            "auto": {"train": (1.15, 0.10), "test": (1.23, 0.12), "config": "AutoOpt"},
        },
    },
    "cifar10": {
        "sgd": {
            "tuned": {"train": (26.4, 1.39), "test": (36.4, 0.85),
                      "config": {"lr": 10**-1.5, "momentum": 0.99}},
            "auto": {"train": (30.0, 1.33), "test": (38.7, 1.56), "config": "AutoOpt"},
        },
        "adam": {
            "tuned": {"train": (27.2, 1.58), "test": (36.4, 1.03), "config": {"lr": 10**-3.5}},
            "auto": {"train": (42.6, 3.29), "test": (47.8, 2.69), "config": "AutoOpt"},
        },
        "adagrad": {
            "tuned": {"train": (31.4, 2.92), "test": (38.3, 1.31), "config": {"lr": 10**-1.5}},
            "auto": {"train": (27.3, 1.44), "test": (36.7, 0.82), "config": "AutoOpt"},
        },
    },
}
#: The data the paper's numbers come from (its Section 5).
PAPER_DATA: dict[str, str] = {
    "mnist": "MNIST (60,000 / 10,000), 10 epochs, 10 seeds",
    "cifar10": "CIFAR10 (50,000 / 10,000), 10 epochs, 10 seeds",
}


def paper_reference(dataset: str) -> dict[str, dict[str, dict[str, object]]] | None:
    """The paper's Table 2 block for ``dataset``, or None where the paper has no such data
    set (Fashion-MNIST): its values are reference marks only for the same data set.

    >>> paper_reference("fashion-mnist") is None, paper_reference("mnist")["sgd"]["auto"]["test"]
    (True, (1.22, 0.16))
    """
    return PAPER_TABLE2.get(dataset)


def paper_gap(dataset: str, base: str, split: str = "test") -> tuple[float, float] | None:
    """The paper's gap AutoOpt - tuned on ``dataset`` (points) and in units of the pooled
    seed std, or None.

    >>> [round(v, 2) for v in paper_gap("cifar10", "adam")]
    [11.4, 5.6]
    """
    ref = PAPER_TABLE2.get(dataset, {}).get(base)
    if ref is None:
        return None
    (ma, sa), (mt, st) = ref["auto"][split], ref["tuned"][split]  # type: ignore[misc]
    pooled = ((sa**2 + st**2) / 2) ** 0.5
    return ma - mt, (ma - mt) / pooled if pooled > 0 else float("nan")
