"""Issue 19: the leaderboard trains each scenario on its own data set."""

from __future__ import annotations

import pytest

from autoopt_lab.data import DataUnavailableError
from autoopt_lab.streams import leaderboard as lb


def _recording_loader(monkeypatch, available):
    """Replace the data loader; returns the list of data sets asked for."""
    import autoopt_lab.data as data

    asked = []

    def fake(name, train=True, root=None, **_):
        asked.append(name)
        if name not in available:
            raise DataUnavailableError(name, [("files under root", "no files")],
                                       f"get {name} somehow")
        return available[name]

    monkeypatch.setattr(data, "load_arrays", fake)
    return asked


def test_an_mnist_scenario_trains_on_mnist(monkeypatch, tmp_path, fmnist_train):
    from autoopt_lab.data import load_arrays

    x, y, info = load_arrays("mnist", train=True)
    asked = _recording_loader(monkeypatch, {"mnist": (x[:600], y[:600], info)})
    plan = lb.plan_leaderboard("quick", scenarios=["mnist-batch-size"],
                               optimizers="sgd:lr=0.05", steps_scale=0.01)
    report = lb.run_leaderboard(plan, tmp_path / "lb.sqlite", device="cpu", progress=False)
    assert asked == ["mnist"] and report["ran"] == 1 and report["failed"] == 0
    frame = lb.leaderboard_frame(tmp_path / "lb.sqlite", plan)
    assert frame["dataset"].tolist() == ["mnist"]


def test_data_given_for_another_data_set_is_refused(tmp_path, fmnist_train):
    x, y, info = fmnist_train
    plan = lb.plan_leaderboard("quick", scenarios=["mnist-batch-size"],
                               optimizers="sgd:lr=0.05", steps_scale=0.01)
    with pytest.raises(ValueError, match="mnist-batch-size.*'mnist'.*fashion-mnist"):
        lb.run_leaderboard(plan, tmp_path / "lb.sqlite", device="cpu", progress=False,
                           data=(x[:100], y[:100], info))


def test_a_scenario_without_its_data_is_one_line_naming_it_and_the_fix(monkeypatch, tmp_path):
    _recording_loader(monkeypatch, {})
    plan = lb.plan_leaderboard("quick", scenarios=["cifar10-concept-swap"],
                               optimizers="sgd:lr=0.05", steps_scale=0.01)
    with pytest.raises(DataUnavailableError) as err:
        lb.run_leaderboard(plan, tmp_path / "lb.sqlite", device="cpu", progress=False)
    text = str(err.value)
    assert "\n" not in text and "cifar10-concept-swap" in text and "'cifar10'" in text
    assert "get cifar10 somehow" in text
    assert not (tmp_path / "lb.sqlite").exists() or lb.leaderboard_frame(
        tmp_path / "lb.sqlite").empty


def test_the_cli_says_it_in_one_line(monkeypatch, tmp_path, capsys):
    from autoopt_lab.cli import main

    _recording_loader(monkeypatch, {})
    args = ["leaderboard", "--scenarios", "cifar10-concept-swap", "--optimizer", "sgd:lr=0.05",
            "--workers", "1", "--no-notebook", "--out", str(tmp_path / "out")]
    assert main(args) == 3
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "'cifar10'" in err and "Traceback" not in err


def test_a_board_whose_cells_all_failed_says_so(tmp_path, fmnist_train):
    from autoopt_lab.optim import registry

    def broken(named, opts):
        raise RuntimeError("this optimizer cannot be built")

    registry.register(registry.OptimizerSpec("broken-peer", "Broken", "peer", "sgd", broken))
    try:
        x, y, info = fmnist_train
        plan = lb.plan_leaderboard("quick", scenarios=["fmnist-prior-shift"],
                                   optimizers="broken-peer", steps_scale=0.01)
        report = lb.run_leaderboard(plan, tmp_path / "lb.sqlite", device="cpu", progress=False,
                                    data=(x[:200], y[:200], info))
        assert report["failed"] == 1
        frame = lb.leaderboard_frame(tmp_path / "lb.sqlite", plan)
        assert frame.empty and lb.leaderboard_table(frame).empty
        with pytest.raises(ValueError, match="no finished leaderboard cells"):
            lb.write_outputs(plan, frame, tmp_path / "out")
        with pytest.raises(ValueError, match="1 failed"):
            lb.write_outputs(plan, frame, tmp_path / "out", report)
    finally:
        registry.unregister("broken-peer")
