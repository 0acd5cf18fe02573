"""Issue 12: the stream leaderboard (plan, resumable store, table, figure, CLI, notebook)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from autoopt_lab.optim import registry
from autoopt_lab.streams import leaderboard as lb

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "stream_leaderboard.ipynb"


@pytest.fixture(scope="module")
def data(fmnist_train):
    x, y, info = fmnist_train
    return x[:2000], y[:2000], info


def test_the_default_plan_is_every_fashion_scenario_and_every_family():
    plan = lb.plan_leaderboard("full")
    assert len(plan.scenarios) == 8 and all(s.startswith("fmnist-") for s in plan.scenarios)
    assert plan.seeds == (0, 1, 2, 3, 4) and plan.steps_scale == 1.0 and plan.grid == "full"
    assert list(plan.optimizers) == registry.names(["auto", "peer", "tuned"], available=True)
    quick = lb.plan_leaderboard("quick", families=["auto"])
    assert set(quick.optimizers) == set(registry.names("auto", available=True))
    with pytest.raises(ValueError, match="unknown families"):
        lb.plan_leaderboard(families=["tuned-ish"])
    with pytest.raises(FileNotFoundError, match="no scenario named"):
        lb.plan_leaderboard(scenarios=["fmnist-nope"])


def test_a_toy_optimizer_joins_the_board():
    from autoopt_lab.optim.registry import OptimizerSpec

    registry.register(OptimizerSpec("toy-peer", "Toy", "peer", "sgd",
                                    lambda named, opts: torch.optim.SGD(
                                        [p for _, p in named], lr=0.01)))
    try:
        assert "toy-peer" in lb.plan_leaderboard().optimizers
    finally:
        registry.unregister("toy-peer")


def test_cells_go_to_the_store_once_and_a_killed_board_redoes_nothing(data, tmp_path):
    plan = lb.plan_leaderboard("quick", scenarios=["fmnist-concept-swap"],
                               optimizers="autosgd,sgd,prodigy", steps_scale=0.02)
    store = tmp_path / "lb.sqlite"
    stop_after = iter([False, True])
    first = lb.run_leaderboard(plan, store, device="cpu", data=data, progress=False,
                               should_stop=lambda: next(stop_after, True))
    assert first["ran"] == 1 and first["stopped"]
    rest = lb.run_leaderboard(plan, store, device="cpu", data=data, progress=False)
    assert rest["done_before"] == 1 and rest["ran"] == 2 and rest["failed"] == 0
    again = lb.run_leaderboard(plan, store, device="cpu", data=data, progress=False)
    assert again["ran"] == 0 and again["done_before"] == 3
    frame = lb.leaderboard_frame(store, plan)
    assert sorted(frame["optimizer"]) == ["autosgd", "prodigy", "sgd"]
    tuned = frame[frame["optimizer"] == "sgd"].iloc[0]
    assert tuned["lr"] in (0.01, 0.03, 0.1)  # tuned on the first segment, quick grid
    from autoopt_lab.experiments.store import ResultsStore

    runs = ResultsStore(store).runs()
    assert (runs["sweep"] == lb.TUNING_SWEEP).sum() == 7  # six grid points and the result
    # a cell's key follows the data actually used: other data reuses nothing
    from autoopt_lab.streams.identity import data_fingerprint

    x, y, _ = data
    sc = plan.scenario("fmnist-concept-swap", 0)
    dev = torch.device("cpu")
    assert (lb.cell_id(plan, sc, "sgd", data_fingerprint(x, y), dev)
            != lb.cell_id(plan, sc, "sgd", data_fingerprint(x.flip(0), y), dev))


def test_table_goal_and_figure(data, tmp_path):
    plan = lb.plan_leaderboard("quick", scenarios=["fmnist-prior-shift"],
                               optimizers="autosgd,sf-sgd,sgd:lr=10000", steps_scale=0.02,
                               seeds="0-1")
    store = tmp_path / "lb.sqlite"
    lb.run_leaderboard(plan, store, device="cpu", data=data, progress=False)
    frame = lb.leaderboard_frame(store, plan)
    table = lb.leaderboard_table(frame)
    assert len(table) == 3 and set(table["seeds"]) == {2}
    blown = table[table["optimizer"] == "sgd:lr=10000"].iloc[0]
    assert "diverged" in blown["flags"] and blown["flagged_seeds"] == 2
    goal = lb.goal_check(table)
    assert goal["of"] == 1 and set(goal["best_overall"]) == {"auto", "peer", "tuned"}
    record = lb.write_outputs(plan, frame, tmp_path / "out")
    assert (tmp_path / "out" / "leaderboard.png").stat().st_size > 20_000
    assert "| fmnist-prior-shift |" in record["markdown"]
    assert json.loads((tmp_path / "out" / "leaderboard.json").read_text())["cells_done"] == 6


def test_cli_leaderboard_quick_path(tmp_path, capsys):
    from autoopt_lab.cli import main

    out = tmp_path / "out"
    args = ["leaderboard", "--quick", "--scenarios", "fmnist-prior-shift", "--optimizer",
            "autosgd,sgd", "--steps-scale", "0.02", "--workers", "1", "--no-notebook",
            "--out", str(out)]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "2 cells" in text and "ran 2 cells" in text and "best Auto beats best peer" in text
    assert (out / "leaderboard.sqlite").is_file() and (out / "leaderboard.png").is_file()
    assert main(args) == 0
    assert "ran 0 cells, 2 were done before" in capsys.readouterr().out
    assert main(["leaderboard", "--families", "nope", "--out", str(out)]) == 2
    assert "unknown families" in capsys.readouterr().err


def test_notebook_is_built_from_cells_and_has_one_parameters_cell():
    import nbformat

    from autoopt_lab.notebooks import stale

    assert "stream_leaderboard.ipynb" not in stale()
    nb = nbformat.read(NOTEBOOK, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and "mode = " in tagged[0].source
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")


@pytest.mark.notebook
def test_notebook_runs_through_papermill(tmp_path):
    papermill = pytest.importorskip("papermill")
    papermill.execute_notebook(
        str(NOTEBOOK), str(tmp_path / "out.ipynb"), kernel_name="python3", cwd=str(tmp_path),
        parameters={"scenarios": "fmnist-concept-swap", "optimizers": "autosgd,prodigy",
                    "steps_scale": 0.02, "out_dir": str(tmp_path)})
    record = json.loads((tmp_path / "leaderboard.json").read_text())
    assert record["cells_done"] == 2 and record["goal"]["of"] == 1
    assert (tmp_path / "leaderboard.png").stat().st_size > 10_000
