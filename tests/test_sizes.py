"""Run sizes live in one table (autoopt_lab.sizes) with the values every front-end always had,
and a tuned baseline registered on an existing preconditioner family is tuned everywhere with
no other change."""

from __future__ import annotations

import pytest
import torch

from autoopt_lab import sizes
from autoopt_lab.arena import get_preset as arena_preset
from autoopt_lab.experiments.paper import PAPER_LRS, PAPER_MOMENTA
from autoopt_lab.experiments.presets import get_preset
from autoopt_lab.optim import registry
from autoopt_lab.optim.registry import OptimizerSpec, Option
from autoopt_lab.streams.baselines import grid_for
from autoopt_lab.streams.leaderboard import plan_leaderboard
from autoopt_lab.streams.modes import resolve_mode


def _exp(*exponents):
    return tuple(10.0**e for e in exponents)


def test_the_values_every_front_end_always_had():
    quick = get_preset("quick")
    assert (quick.lrs("sgd"), quick.lrs("adam"), quick.momenta) == (
        _exp(-2, -1.5, -1, -0.5), _exp(-3.5, -3, -2.5, -2), (0.0, 0.9))
    assert get_preset("full").lrs("adagrad") == PAPER_LRS
    assert get_preset("full").momenta == PAPER_MOMENTA
    assert get_preset("smoke").to_dict()["adagrad_lrs"] == _exp(-1)
    arena = arena_preset("full")
    assert arena.lr_grid == {"sgd": (0.01, 10**-1.5, 0.1), "adam": (1e-3, 10**-2.5, 1e-2),
                             "adagrad": (0.01, 10**-1.5, 0.1)}
    assert (arena.batch_sizes, arena.seeds, arena.epochs, arena.max_test_samples) == (
        (32, 128, 256), (0, 1, 2, 3, 4), 2, 5000)
    assert resolve_mode("quick").steps_scale == 0.25  # one stream
    assert plan_leaderboard("quick", scenarios=["fmnist-concept-swap"],
                            optimizers="autosgd").steps_scale == 0.15  # the whole board
    assert [g["lr"] for g in grid_for("sgd", "full")][:5] == [0.001, 0.003162, 0.01, 0.031623,
                                                              0.1]


def test_every_size_names_a_known_grid():
    for front_end, modes in sizes.SIZES.items():
        for mode, row in modes.items():
            for base in registry.BASES:
                assert sizes.lr_grid(front_end, row["grid"], base), (front_end, mode, base)
    with pytest.raises(ValueError, match="unknown mode 'medium'"):
        sizes.size("arena", "medium")


def test_a_tuned_baseline_on_a_known_family_is_tuned_everywhere():
    spec = OptimizerSpec(
        "toy-rms", "ToyRMS", "tuned", "adam",
        lambda named, o: torch.optim.RMSprop([p for _, p in named], lr=o["lr"]),
        options=(Option("lr", None, float),), required=("lr",))
    registry.register(spec)
    try:
        keys = [c.key for c in arena_preset("quick").contenders()]
        assert "toy-rms" in keys
        toy = next(c for c in arena_preset("quick").contenders() if c.key == "toy-rms")
        assert [s["lr"] for s in toy.settings] == list(sizes.lr_grid("arena", "arena", "adam"))
        assert [g["lr"] for g in grid_for("toy-rms", "quick")] == [0.0003, 0.001, 0.003]
        assert get_preset("quick").lrs(spec.base) == get_preset("quick").lrs("adam")
    finally:
        registry.unregister("toy-rms")
