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
paper's setting. The values are rows of :data:`autoopt_lab.sizes.SIZES` (one table for every
front-end's sizes); the grids are keyed by the registry's preconditioner family.

>>> get_preset("quick").epochs, len(get_preset("quick").table_seeds)
(10, 3)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from autoopt_lab import sizes
from autoopt_lab.optim.registry import BASES

from .paper import TABLE2_BATCH_SIZE


@dataclass(frozen=True)
class Preset:
    """The sizes of one reproduction mode (a row of :data:`autoopt_lab.sizes.SIZES`).

    ``figure_datasets`` is how many of the given data sets (the first ones) get the
    multi-batch-size Figures 2-3 (None: all). ``peers`` is ``"first"`` (the first available
    tuning-free peer of each preconditioner family) or ``"all"``. ``train_eval="final"``
    measures the train error after the last epoch only (see :class:`RunConfig`).
    ``lr_grid`` is the tuned optimizers' learning rates by preconditioner family (the
    registry's ``base``); ``momenta`` those of the optimizers with a momentum option.
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
    lr_grid: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    momenta: tuple[float, ...] = ()
    table_batch_size: int = TABLE2_BATCH_SIZE
    figure_datasets: int | None = None
    peers: str = "all"
    train_eval: str = "epoch"

    def to_dict(self) -> dict[str, Any]:
        """The preset as recorded in outputs (``<base>_lrs`` per family, as it always was)."""
        d = dataclasses.asdict(self)
        grid = d.pop("lr_grid")
        out: dict[str, Any] = {}
        for key, value in d.items():
            if key == "momenta":
                out["sgd_lrs"] = grid.get("sgd")
                out["momenta"] = value
                out.update({f"{b}_lrs": v for b, v in grid.items() if b != "sgd"})
            else:
                out[key] = value
        return out

    def lrs(self, base: str) -> tuple[float, ...]:
        """The learning-rate grid of the tuned optimizers on ``base``."""
        if base not in self.lr_grid:
            raise ValueError(f"preset {self.name!r} has no learning rates for the {base!r} "
                             "family; add them to autoopt_lab.sizes.LR_GRIDS")
        return self.lr_grid[base]

    @property
    def sgd_lrs(self) -> tuple[float, ...]:
        """The SGD family's grid (Figures 2-3 are SGD's)."""
        return self.lrs("sgd")

    def setting_text(self, n_train: int | None = None, n_test: int | None = None) -> str:
        """``"10 epochs, 3 seeds, 4,000 train / 1,000 test images"`` for titles."""
        seeds = len(self.table_seeds)
        sizes_text = (
            f", {n_train:,} train / {n_test:,} test images"
            if n_train is not None and n_test is not None
            else ""
        )
        epochs = f"{self.epochs} epoch{'s' if self.epochs != 1 else ''}"
        return f"{epochs}, {seeds} seed{'s' if seeds != 1 else ''}{sizes_text}"


def _preset(mode: str) -> Preset:
    row = sizes.size("reproduce", mode)
    grid = row.pop("grid")
    return Preset(name=mode, lr_grid={b: sizes.lr_grid("reproduce", grid, b) for b in BASES},
                  momenta=sizes.momenta("reproduce", grid), **row)


#: The reproduction's modes, from :data:`autoopt_lab.sizes.SIZES` (``full``, ``quick``, ``smoke``).
PRESETS: dict[str, Preset] = {mode: _preset(mode) for mode in sizes.SIZES["reproduce"]}


def get_preset(mode: str | Preset) -> Preset:
    """A preset by name (``quick``, ``full``, ``smoke``)."""
    if isinstance(mode, Preset):
        return mode
    if mode not in PRESETS:
        raise ValueError(f"unknown mode {mode!r}; allowed: {', '.join(PRESETS)}")
    return PRESETS[mode]
