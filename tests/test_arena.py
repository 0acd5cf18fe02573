"""The arena: its plan, its pipeline on a tiny plan (store, resume, table, targets, figure,
JSON), the CLI's errors, and its notebook under papermill."""

from __future__ import annotations

import json

import pytest

from autoopt_lab.arena import get_preset, run_arena
from autoopt_lab.arena.plan import AUTO_VARIANTS
from autoopt_lab.arena.table import gaps, summarise
from autoopt_lab.cli import main as cli
from autoopt_lab.experiments import ResultsStore
from autoopt_lab.optim import registry

TINY = dict(
    max_train_samples=256, max_test_samples=128, epochs=1, seeds=(0,), batch_sizes=(64,),
    sgd_lrs=(0.1,), sgd_momenta=(0.9,), adam_lrs=(1e-3,), adagrad_lrs=(0.01,),
    auto=("autosgd", "autoadam-paper"), peers=("sf-sgd",),
)


def test_full_plan_is_the_issues_protocol():
    plan = get_preset("full")
    assert plan.dataset == "fashion-mnist" and plan.batch_sizes == (32, 128, 256)
    assert plan.seeds == (0, 1, 2, 3, 4) and plan.epochs == 2
    keys = [c.key for c in plan.contenders()]
    assert keys[:3] == ["sgd", "adam", "adagrad"]
    assert set(AUTO_VARIANTS) <= set(keys)
    assert set(registry.names("peer", available=True)) <= set(keys)
    grids = {c.key: len(c.settings) for c in plan.contenders() if c.is_grid}
    assert grids == {"sgd": 6, "adam": 3, "adagrad": 3}


def test_a_contender_listed_twice_is_refused():
    with pytest.raises(ValueError, match="twice"):
        get_preset("quick", auto=("autosgd", "autosgd")).contenders()


def test_the_tuned_grids_can_be_left_out_or_chosen():
    plan = get_preset("full", tuned=(), peers=(), auto=("autosgd", "autoadam"))
    assert [c.key for c in plan.contenders()] == ["autosgd", "autoadam"]
    assert len(plan.configs()) == 2 * 3 * 5
    assert [c.key for c in get_preset("full", tuned=("adam",)).contenders() if c.is_grid] == ["adam"]
    with pytest.raises(ValueError, match="'prodigy' is not a tuned optimizer"):
        get_preset("full", tuned=("prodigy",)).contenders()


def test_a_grid_reports_its_best_setting_per_batch_size():
    import pandas as pd

    runs = pd.DataFrame(
        {
            "contender": ["sgd"] * 4, "setting": ["lr=0.1", "lr=0.1", "lr=0.01", "lr=0.01"],
            "batch_size": [128] * 4, "final_test_err_pct": [20.0, 22.0, 15.0, 17.0],
            "final_train_err_pct": [19.0, 21.0, 14.0, 16.0], "diverged": [False] * 4,
            "at_chance": [False] * 4, "nonfinite_skips": [0] * 4,
        }
    )
    table = summarise(runs)
    assert table["setting"].tolist() == ["lr=0.01"] and table["test_mean"].tolist() == [16.0]


def test_an_lr_between_zero_and_a_value_moves():
    import pandas as pd

    from autoopt_lab.arena.table import hparam_ranges

    traces = {
        "still": pd.DataFrame({"lr/a": [0.1] * 8, "momentum/a": [0.9] * 8}),
        "zero-and-back": pd.DataFrame({"lr/a": [0.1, 0.2, 0.0, 0.3, 0.0, 0.2, 0.0, 0.1]}),
        "never": pd.DataFrame({"lr/a": [0.0] * 8}),
    }

    class Store:
        def trace(self, run_id):
            return traces[run_id]

    runs = pd.DataFrame({"run_id": list(traces)})
    got = hparam_ranges(Store(), runs).set_index("run_id")["lr_moves"].to_dict()
    assert got == {"still": False, "zero-and-back": True, "never": False}


def test_tiny_arena_end_to_end_and_resume(tmp_path):
    plan = get_preset("quick", **TINY)
    result = run_arena(plan, tmp_path, workers=1, timing=False, progress=False)
    assert len(result.runs) == len(plan.configs()) == 6
    table = result.table
    assert set(table["contender"]) == {"sgd", "adam", "adagrad", "autosgd", "autoadam-paper", "sf-sgd"}
    assert {"lr_min", "lr_max", "lr_moves", "test_std"} <= set(table.columns)
    auto = table[table["contender"] == "autosgd"].iloc[0]
    assert auto["lr_max"] > auto["lr_min"] >= 0  # the adapted lr moved (0: no signal yet)
    assert [t["optimizer"] for t in result.targets] == ["autosgd"]
    summary = json.loads((tmp_path / "arena.json").read_text())
    assert summary["runs_finished"] == 6 and summary["plan"]["dataset"] == "fashion-mnist"
    assert (tmp_path / "arena.png").stat().st_size > 10_000
    assert "AutoSGD" in (tmp_path / "arena_table.md").read_text()
    assert not gaps(table).empty
    again = run_arena(plan, tmp_path, workers=1, timing=False, progress=False)
    assert json.loads((tmp_path / "arena.json").read_text())["sweep"]["skipped"] == 6
    assert len(again.runs) == 6
    assert len(ResultsStore(tmp_path / "arena.sqlite").runs()) == 6


@pytest.mark.parametrize(
    "argv,code,message",
    [
        (["--quick", "--auto", "autosgd:foo=1"], 2, "has no option(s) ['foo']"),
        (["--quick", "--peers", "adamw9"], 2, "unknown optimizer 'adamw9'"),
        (["--quick", "--tuned", "autosgd"], 2, "'autosgd' is not a tuned optimizer"),
        (["--quick", "--batch-sizes", "1"], 2, "--batch-sizes must be >= 2"),
        (["--quick", "--device", "cuda:9"], 2, "cuda:9"),
    ],
)
def test_cli_errors_are_one_line(tmp_path, capsys, argv, code, message):
    import torch

    if "cuda:9" in argv and torch.cuda.device_count() > 9:
        pytest.skip("this machine has ten GPUs")
    assert cli(["arena", "--out", str(tmp_path / "o"), *argv]) == code
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_cli_dry_run_counts_runs(tmp_path, capsys):
    assert cli(["arena", "--out", str(tmp_path), "--dry-run"]) == 0
    assert "420 runs in the arena" in capsys.readouterr().out
    argv = ["arena", "--out", str(tmp_path), "--dry-run", "--tuned", "none", "--peers", "none",
            "--auto", "autosgd,autoadam,autoadagrad", "--batch-sizes", "128"]
    assert cli(argv) == 0
    assert "15 runs in the arena (3 contenders)" in capsys.readouterr().out


@pytest.mark.notebook
def test_arena_notebook_runs_under_papermill(tmp_path):
    import papermill as pm

    from autoopt_lab.notebooks import notebook_dir

    # papermill passes lists (not tuples) into the notebook
    overrides = {k: list(v) if isinstance(v, tuple) else v for k, v in TINY.items()}
    params = {"preset": "quick", "out_dir": str(tmp_path), "timing": False,
              "overrides": overrides}
    pm.execute_notebook(
        str(notebook_dir() / "arena.ipynb"), str(tmp_path / "arena.out.ipynb"),
        parameters=params, kernel_name="python3", progress_bar=False,
    )
    assert (tmp_path / "arena.png").exists() and (tmp_path / "arena.json").exists()
