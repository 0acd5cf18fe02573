"""The peer benchmark's engines agree with the loop, and its table is well formed."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import per_sample_peers as peers  # noqa: E402

AVAILABLE = ["hooks", "functional"] + [
    name
    for name, module in (("backpack", "backpack"), ("opacus", "opacus"))
    if importlib.util.find_spec(module) is not None
]


@pytest.mark.parametrize("model_name", list(peers.MODELS))
def test_engines_agree_with_loop_in_float64(model_name):
    torch.manual_seed(0)
    factory, shape = peers.MODELS[model_name]
    base = factory()
    x, y = torch.randn(5, *shape), torch.randint(0, 10, (5,))
    results = dict(peers.check_agreement(base, x, y, AVAILABLE, 1e-8))
    assert set(results) == set(AVAILABLE)
    for name, problem in results.items():
        if name == "backpack" and model_name == "resnet_gn":
            assert problem is not None  # BackPACK has no SumGradSquared rule for GroupNorm
        else:
            assert problem is None, (name, problem)


def test_engine_steps_return_the_statistic_and_plain_returns_none():
    torch.manual_seed(0)
    base = peers.build_model("mnist_cnn")
    x, y = torch.randn(4, 1, 28, 28), torch.randint(0, 10, (4,))
    plain, _ = peers.make_engine("plain", base, x, y)
    assert plain() is None
    hooks, close = peers.make_engine("hooks", base, x, y)
    loop, _ = peers.make_engine("loop", base, x, y)
    got, ref = hooks(), loop()
    close()
    assert set(got) == set(ref) == {n for n, _ in base.named_parameters()}
    for k in ref:
        torch.testing.assert_close(got[k].double(), ref[k], rtol=1e-3, atol=1e-6)
    with pytest.raises(ValueError, match="unknown engine"):
        peers.make_engine("jax", base, x, y)


def test_markdown_table_lists_ratios_memory_and_problems():
    rows = [
        {
            "model": "m",
            "n": 8,
            "time_ms": {"plain": 10.0, "hooks": 12.0},
            "ratio_to_plain": {"plain": 1.0, "hooks": 1.2},
            "peak_mib": {"plain": 3.0, "hooks": 5.0},
            "problems": {"backpack": "cannot run: no rule"},
        }
    ]
    table = peers.markdown(rows, ["plain", "hooks", "backpack"])
    assert "| m | 8 | 10.0 ms, 3 MiB | 12.0 ms (1.20x), 5 MiB | n/a |" in table
    assert "- m N=8 backpack: cannot run: no rule" in table
