"""The sizes of each reproduction mode: data, epochs, seeds, grids, batch sizes, variants.

* ``quick`` (``make demo``): the paper's protocol as far as the offline data and a 2-core
  CPU allow: 10 epochs, 3 seeds, fixed 4,000 / 1,000 train / test images (MNIST's real 5k
  subset is exactly that; Fashion-MNIST is cut to the same size), the paper's grids thinned
  to 4 learning rates (SGD momentum {0, 0.9}), N = 128 for Table 2 and Figure 4 on every
  data set, N in {32, 128, 256} for Figures 2-3 on the first data set, the first available
  tuning-free peer of each preconditioner family, the train error measured after the last
  epoch only (test error after every epoch).
* ``full``: the paper's setting: whole data sets, 9 learning rates x 6 momenta x 6 batch
  sizes, 10 seeds, 10 epochs, every peer.
* ``smoke``: seconds; for tests of the plumbing only. Its numbers mean nothing.

Every output records the mode and the preset, so a quick result is never mistaken for the
paper's setting.

>>> get_preset("quick").epochs, len(get_preset("quick").table_seeds)
(10, 3)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from .paper import (
    PAPER_BATCH_SIZES,
    PAPER_EPOCHS,
    PAPER_LRS,
    PAPER_MOMENTA,
    PAPER_SEEDS,
    TABLE2_BATCH_SIZE,
)


def _exp(*exponents: float) -> tuple[float, ...]:
    return tuple(10.0**e for e in exponents)


@dataclass(frozen=True)
class Preset:
    """The sizes of one reproduction mode.

    ``figure_datasets`` is how many of the given data sets (the first ones) get the
    multi-batch-size Figures 2-3 (None: all). ``peers`` is ``"first"`` (the first available
    tuning-free peer of each preconditioner family) or ``"all"``. ``train_eval="final"``
    measures the train error after the last epoch only (see :class:`RunConfig`).
    """

    name: str
    description: str
    epochs: int
    max_train_samples: int | None
    max_test_samples: int | None
    table_seeds: tuple[int, ...]
    figure_seeds: tuple[int, ...]
    fig2_batch_sizes: tuple[int, ...]
    fig3_batch_sizes: tuple[int, ...]
    sgd_lrs: tuple[float, ...]
    momenta: tuple[float, ...]
    adam_lrs: tuple[float, ...]
    adagrad_lrs: tuple[float, ...]
    table_batch_size: int = TABLE2_BATCH_SIZE
    figure_datasets: int | None = None
    peers: str = "all"
    train_eval: str = "epoch"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def lrs(self, base: str) -> tuple[float, ...]:
        """The learning-rate grid of the tuned optimizer on ``base``."""
        return {"sgd": self.sgd_lrs, "adam": self.adam_lrs, "adagrad": self.adagrad_lrs}[base]

    def setting_text(self, n_train: int | None = None, n_test: int | None = None) -> str:
        """``"10 epochs, 3 seeds, 4,000 train / 1,000 test images"`` for titles."""
        seeds = len(self.table_seeds)
        sizes = (
            f", {n_train:,} train / {n_test:,} test images"
            if n_train is not None and n_test is not None
            else ""
        )
        epochs = f"{self.epochs} epoch{'s' if self.epochs != 1 else ''}"
        return f"{epochs}, {seeds} seed{'s' if seeds != 1 else ''}{sizes}"


PRESETS: dict[str, Preset] = {
    "full": Preset(
        name="full",
        description="the paper's setting: full data, 10 epochs, 10 seeds, the whole grid, "
        "every tuning-free peer",
        epochs=PAPER_EPOCHS,
        max_train_samples=None,
        max_test_samples=None,
        table_seeds=PAPER_SEEDS,
        figure_seeds=PAPER_SEEDS,
        fig2_batch_sizes=PAPER_BATCH_SIZES,
        fig3_batch_sizes=PAPER_BATCH_SIZES,
        sgd_lrs=PAPER_LRS,
        momenta=PAPER_MOMENTA,
        adam_lrs=PAPER_LRS,
        adagrad_lrs=PAPER_LRS,
    ),
    "quick": Preset(
        name="quick",
        description=(
            "reduced: fixed 4,000 train / 1,000 test images (MNIST: its real 5k subset), "
            "10 epochs, 3 seeds, 4 learning rates per grid (SGD momentum {0, 0.9}), N = 128 "
            "for Table 2 and Figure 4, N in {32, 128, 256} for Figures 2-3 on the first data "
            "set, one tuning-free peer per preconditioner family; train error after the last "
            "epoch"
        ),
        epochs=10,
        max_train_samples=4000,
        max_test_samples=1000,
        table_seeds=(0, 1, 2),
        figure_seeds=(0, 1, 2),
        fig2_batch_sizes=(32, 128, 256),
        fig3_batch_sizes=(32, 128, 256),
        sgd_lrs=_exp(-2, -1.5, -1, -0.5),
        momenta=(0.0, 0.9),
        adam_lrs=_exp(-3.5, -3, -2.5, -2),
        adagrad_lrs=_exp(-2, -1.5, -1, -0.5),
        figure_datasets=1,
        peers="first",
        train_eval="final",
    ),
    "smoke": Preset(
        name="smoke",
        description="plumbing test only: 256 / 256 images, 1 epoch, 2 seeds; numbers are "
        "meaningless",
        epochs=1,
        max_train_samples=256,
        max_test_samples=256,
        table_seeds=(0, 1),
        figure_seeds=(0, 1),
        fig2_batch_sizes=(64, 128),
        fig3_batch_sizes=(64, 128),
        sgd_lrs=_exp(-1.5, -1),
        momenta=(0.9,),
        adam_lrs=_exp(-2.5),
        adagrad_lrs=_exp(-1),
        figure_datasets=1,
        peers="first",
    ),
}


def get_preset(mode: str | Preset) -> Preset:
    """A preset by name (``quick``, ``full``, ``smoke``)."""
    if isinstance(mode, Preset):
        return mode
    if mode not in PRESETS:
        raise ValueError(f"unknown mode {mode!r}; allowed: {', '.join(PRESETS)}")
    return PRESETS[mode]
