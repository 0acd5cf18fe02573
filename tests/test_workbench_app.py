"""The workbench app as a person uses it: menus from the registry, each optimizer's own
settings, scenarios, Start/Stop, and what is left behind (issue 13's cases, one test each),
driven from the kernel side through the widgets' own values and clicks."""

from __future__ import annotations

import logging

import pandas as pd
import pytest
import torch
from test_workbench import SlowSource

from autoopt_lab.experiments import ResultsStore
from autoopt_lab.optim import registry
from autoopt_lab.workbench import BackgroundRunner, Workbench, WorkbenchSettings, choices
from autoopt_lab.workbench import app as app_module


@pytest.fixture
def fake_runs(monkeypatch):
    """Start builds fast fake lanes (``steps`` steps of 5 ms) instead of StreamRuns."""
    made: list[dict] = []

    def build(settings: WorkbenchSettings):
        lanes = {label: SlowSource(settings.steps, delay=0.005) for label in settings.lanes()}
        made.append(lanes)
        return lanes

    monkeypatch.setattr(app_module, "build_sources", build)
    return made


def _toy_spec(name="toy-sgd"):
    return registry.OptimizerSpec(
        name, "Toy SGD", "peer", "sgd",
        factory=lambda named, opts: torch.optim.SGD([p for _, p in named], lr=opts["lr"],
                                                    momentum=opts["momentum"]),
        options=(registry.Option("lr", 0.05, float, help="step size"),
                 registry.Option("momentum", 0.0, float),
                 registry.Option("nesterov_like", False, bool)),
        description="a toy optimizer registered by a test",
    )


# ----------------------------------------------------------------------------- the registry
def test_the_registry_is_the_only_source_of_optimizer_names(tmp_path):
    registry.register(_toy_spec())
    try:
        app = Workbench(output_dir=tmp_path)
        for panel in (app.optimizer_panel, app.compare_panel):
            values = [v for _, v in panel.menu.options]
            assert "toy-sgd" in values
            assert [v for v in values if v != "none"] == registry.names()
        labels = dict((v, lbl) for lbl, v in app.optimizer_panel.menu.options)
        assert labels["toy-sgd"] == "Toy SGD · peer"
        app.optimizer_panel.menu.value = "toy-sgd"
        assert set(app.optimizer_panel.fields) == {"lr", "momentum", "nesterov_like"}
        app.optimizer_panel.fields["lr"].value = "0.2"
        s = app.read_settings()
        assert (s.optimizer, s.options) == ("toy-sgd", {"lr": 0.2})
        assert list(s.lanes()) == ["Toy SGD(lr=0.2)"]
    finally:
        registry.unregister("toy-sgd")
    assert "toy-sgd" not in [v for _, v in Workbench(output_dir=tmp_path).optimizer_panel.menu.options]


def test_every_registered_optimizer_is_offered_unavailable_ones_marked(tmp_path):
    app = Workbench(output_dir=tmp_path)
    offered = {v: lbl for lbl, v in app.optimizer_panel.menu.options}
    assert list(offered) == registry.names()
    for family in ("auto", "tuned", "peer"):
        assert set(registry.names(family)) <= set(offered)
    for name in registry.names(available=False):
        assert "not installed" in offered[name]


def test_an_uninstalled_optimizer_fails_at_start_with_the_install_command(tmp_path, fake_runs):
    registry.register(registry.OptimizerSpec(
        "toy-missing", "Toy Missing", "peer", "sgd", factory=lambda named, opts: None,
        package="toy-missing-pkg", module="toy_missing_module_that_does_not_exist",
    ))
    try:
        app = Workbench(output_dir=tmp_path)
        app.optimizer_panel.menu.value = "toy-missing"
        assert "not installed" in app.optimizer_panel.note.value
        from autoopt_lab.workbench.streaming import build_sources

        with pytest.raises(registry.MissingPackageError, match="pip install 'toy-missing-pkg'"):
            build_sources(app.read_settings())
    finally:
        registry.unregister("toy-missing")


# ----------------------------------------------------------------------------- each case of issue 13
def test_each_optimizer_has_its_own_labelled_settings(tmp_path):
    app = Workbench(
        WorkbenchSettings(optimizer="sgd:lr=0.1:momentum=0.9", compare="adam:lr=0.001"),
        output_dir=tmp_path,
    )
    main, other = app.optimizer_panel, app.compare_panel
    assert main.menu.description == "optimizer" and other.menu.description == "compare with"
    assert main.fields["lr"] is not other.fields["lr"]
    assert (main.fields["lr"].value, main.fields["momentum"].value) == ("0.1", "0.9")
    assert other.fields["lr"].value == "0.001" and "momentum" not in other.fields  # Adam has none
    assert main.fields["lr"].description == "lr *"  # required for the tuned optimizers
    other.fields["lr"].value = "0.003"
    s = app.read_settings()
    assert s.options == {"lr": 0.1, "momentum": 0.9} and s.compare_options == {"lr": 0.003}
    main.menu.value = "autosgd"  # an Auto optimizer: its own options (lr is a multiplier)
    assert "nesterov" not in main.fields and "max_lr" in main.fields
    assert main.fields["momentum"].value == ""  # its own momentum (a cap), not SGD's 0.9
    assert main.fields["lr"].description == "lr"  # optional here
    assert main.read() == ("autosgd", {})
    main.menu.value = "sgd"  # back: what was typed is kept
    assert main.fields["lr"].value == "0.1"
    main.fields["lr"].value = ""
    with pytest.raises(ValueError, match="needs lr"):
        app.read_settings()


def test_choosing_a_scenario_keeps_the_steps_and_describes_the_rescaled_run(tmp_path):
    app = Workbench(WorkbenchSettings(steps=300), output_dir=tmp_path)
    c = app.controls
    c["scenario"].value = "fmnist-rotation-incremental"
    assert c["steps"].value == 300  # not silently replaced by the scenario's 1200
    assert c["dataset"].value == "fashion-mnist" and c["dataset"].disabled
    assert c["batch_size"].disabled and not c["steps"].disabled
    note = app.scenario_note.value
    assert "over 75 steps" in note and "300 steps" in note and "1200" in note
    assert app.use_scenario_length.layout.display is None
    c["steps"].value = 600
    assert "over 150 steps" in app.scenario_note.value
    app.use_scenario_length.click()
    assert c["steps"].value == 1200 and "over 300 steps" in app.scenario_note.value
    assert app.use_scenario_length.layout.display == "none"
    c["scenario"].value = "none"
    assert not c["dataset"].disabled and app.scenario_note.value == ""


def test_no_image_is_shown_before_the_first_frame(tmp_path, fake_runs):
    app = Workbench(WorkbenchSettings(steps=40), output_dir=tmp_path, min_interval=0.0)
    assert app.plot.layout.display == "none" and app.plot.value == b""
    result = app.run(timeout=60, progress=False)
    assert result.state == "finished"
    assert app.plot.layout.display is None and app.plot.value[:4] == b"\x89PNG"


def test_extra_clicks_on_start_are_ignored_without_a_traceback(tmp_path, fake_runs, caplog):
    app = Workbench(WorkbenchSettings(steps=100_000), output_dir=tmp_path)
    with caplog.at_level(logging.DEBUG, logger="autoopt_lab.workbench"):
        app.start_button.click()
        assert app.running
        runner = app.runner
        for _ in range(3):
            app.start_button.click()
        assert app.runner is runner and len(fake_runs) == 1
        assert app.status.value.startswith("Running")
        app.stop_button.click()
        assert runner.join(30) and runner.state == "stopped"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]


def test_a_failed_start_clears_the_previous_run(tmp_path, fake_runs):
    app = Workbench(WorkbenchSettings(steps=30), output_dir=tmp_path, min_interval=0.0)
    assert app.run(timeout=60, progress=False).state == "finished"
    assert "<table" in app.table.value and app.progress.value == 30
    app.compare_panel.menu.value = "sgd"  # no lr: the start fails
    app.start_button.click()
    assert "Could not start" in app.status.value and "needs lr" in app.status.value
    assert app.table.value == "" and app.plot.value == b"" and app.plot.layout.display == "none"
    assert app.progress.value == 0 and app.progress.bar_style == ""
    assert app.result is None and not app.start_button.disabled


def test_a_bad_start_is_reported_in_the_app_in_one_line(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("AUTOOPT_OFFLINE", "1")
    monkeypatch.setattr(
        choices, "data_status", lambda name: choices.DataStatus(name, False, fix="copy the files")
    )
    monkeypatch.setenv("AUTOOPT_DATA", str(tmp_path / "empty"))
    app = Workbench(WorkbenchSettings(dataset="cifar10", steps=5), output_dir=tmp_path)
    assert "cifar10 is not on this machine" in app.data_note.value  # before Start
    with caplog.at_level(logging.WARNING, logger="autoopt_lab.workbench"):
        app.start_button.click()
    assert "Could not start" in app.status.value and "cifar10" in app.status.value.lower()
    assert not app.running and not app.start_button.disabled
    assert [r.exc_info for r in caplog.records] == [None]  # one line, no traceback


def test_missing_data_is_offered_as_such_before_start(tmp_path, monkeypatch):
    def status(name):
        return choices.DataStatus(name, name != "cifar10", "disk", "copy the cifar10 files")

    monkeypatch.setattr(choices, "data_status", status)
    app = Workbench(output_dir=tmp_path)
    datasets = dict((v, lbl) for lbl, v in app.controls["dataset"].options)
    scenarios = dict((v, lbl) for lbl, v in app.controls["scenario"].options)
    assert datasets["cifar10"] == "cifar10 (data missing)"
    assert scenarios["cifar10-rotation-incremental"].endswith("(data missing: cifar10)")
    assert app.data_note.value == ""
    app.controls["scenario"].value = "cifar10-rotation-incremental"
    assert "copy the cifar10 files" in app.data_note.value
    app.controls["scenario"].value = "none"
    app.controls["dataset"].value = "mnist"
    assert app.data_note.value == ""


def _finished_then_stopped(tmp_path):
    store = tmp_path / "store.sqlite"
    app = Workbench(
        WorkbenchSettings(steps=30, compare="sgd:lr=0.1"), output_dir=tmp_path / "out",
        store_path=store, min_interval=0.0,
    )
    first = app.run(timeout=60, progress=False)
    assert first.state == "finished" and first.stored
    first_files = {k: p.read_bytes() for k, p in first.files.items()}
    app.controls["steps"].value = 100_000  # the same settings otherwise
    app.start_button.click()
    assert app.runner.wait_for_steps(5, timeout=30)
    app.stop_button.click()
    assert app.runner.join(30)
    return first, first_files, app.result, ResultsStore(store).runs(status=None)


def test_a_later_stopped_run_never_overwrites_a_finished_one(tmp_path, fake_runs):
    first, first_files, second, rows = _finished_then_stopped(tmp_path)
    assert second.state == "stopped" and second.metrics["state"] == "stopped"
    assert second.folder != first.folder
    assert {k: p.read_bytes() for k, p in first.files.items()} == first_files
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        [first.folder.name, second.folder.name]
    )
    assert set(first.store_ids).isdisjoint(second.store_ids)
    done = rows[rows["status"] == "done"]
    assert sorted(done["run_id"]) == sorted(first.store_ids)  # the stopped run is never "done"
    assert (done["steps"] == 30).all() and (done["state"] == "finished").all()


def test_a_stopped_run_is_stored_as_stopped(tmp_path, fake_runs):
    first, _, second, rows = _finished_then_stopped(tmp_path)
    assert second.stored and len(second.store_ids) == 2
    rows = rows.set_index("run_id")
    assert (rows.loc[second.store_ids, "status"] == "stopped").all()
    assert (rows.loc[first.store_ids, "status"] == "done").all()


def test_a_new_app_stops_the_run_of_an_earlier_one(tmp_path):
    old = Workbench(output_dir=tmp_path)
    old.runner = BackgroundRunner({"slow": SlowSource(100_000, delay=0.005)})
    old.runner.start()
    assert old.runner.wait_for_steps(3, timeout=30)
    Workbench(output_dir=tmp_path)
    assert old.runner.join(timeout=10) and old.runner.state == "stopped"


# ----------------------------------------------------------------------------- real runs
def test_short_real_run_writes_its_folder_and_store_rows(tmp_path):
    torch.set_num_threads(1)
    store = tmp_path / "store.sqlite"
    app = Workbench(
        WorkbenchSettings(dataset="mnist", optimizer="autosgd", compare="sgd:lr=0.05",
                          batch_size=32, steps=12, device="cpu"),
        output_dir=tmp_path / "out", store_path=store, min_interval=0.0,
    )
    result = app.run(timeout=300)
    assert result is not None and result.state == "finished" and result.steps == 12
    assert result.folder.parent == tmp_path / "out"
    assert result.figure_path.read_bytes()[:4] == b"\x89PNG"
    assert list(result.table.index) == ["AutoSGD", "SGD(lr=0.05)"]
    assert (result.table["steps"] == 12).all()
    for lane in ("AutoSGD", "SGD(lr=0.05)"):
        part = result.trace[result.trace["lane"] == lane]
        lr_cols = [c for c in part.columns if c.startswith("lr/")]
        # an lr of 0 is a tensor whose gradient showed no signal yet (the decoupled gain)
        assert lr_cols and part[lr_cols].notna().all().all()
        assert (part[lr_cols] >= 0).all().all() and (part[lr_cols] > 0).any().any()
    sgd = result.trace[result.trace["lane"] == "SGD(lr=0.05)"]
    assert sgd[[c for c in sgd.columns if c.startswith("lr/")]].to_numpy() == pytest.approx(0.05)
    assert pd.read_csv(result.files["table"]).shape[0] == 2
    runs = ResultsStore(store).runs()
    assert sorted(runs["optimizer"]) == ["autosgd", "sgd"] and (runs["sweep"] == "workbench").all()
    assert set(runs["run_id"]) == set(result.store_ids)
    assert 0.0 <= result.metrics["draw_fraction"] < 1.0
    assert app.progress.value == 12 and app.progress.bar_style == "success"
    assert not app.start_button.disabled and app.stop_button.disabled


def test_tuning_free_peers_and_a_registered_toy_run_in_the_workbench(tmp_path):
    """Issue 12: any optimizer of the registry runs, Schedule-Free evaluated with its own
    weights, a peer's adapted step size in the lr panel, a toy registered by a test."""
    torch.set_num_threads(1)
    peers = [n for n in ("sf-adamw", "prodigy") if registry.get(n).available]
    if len(peers) < 2:
        pytest.skip("the peers extra is not installed: pip install 'autoopt-lab[peers]'")
    registry.register(_toy_spec())
    try:
        app = Workbench(output_dir=tmp_path, min_interval=0.0)
        for main, other in (("sf-adamw", "prodigy"), ("toy-sgd:lr=0.02", "autoadam")):
            result = app.run(
                WorkbenchSettings(dataset="mnist", optimizer=main, compare=other, batch_size=32,
                                  steps=8, device="cpu"),
                timeout=300, progress=False,
            )
            assert result.state == "finished" and (result.table["steps"] == 8).all()
            for lane in result.table.index:
                part = result.trace[result.trace["lane"] == lane]
                lr = part[[c for c in part.columns if c.startswith("lr/")]].to_numpy()
                # the Auto gain is 0 while a tensor's gradient shows no signal beyond its noise
                ok = (lr >= 0).all() if lane.startswith("Auto") else (lr > 0).all()
                assert lr.size and ok, lane
        assert list(result.table.index) == ["Toy SGD(lr=0.02)", "AutoAdam"]
    finally:
        registry.unregister("toy-sgd")


def test_a_diverging_run_is_flagged_in_the_table_legend_json_and_store(tmp_path):
    torch.set_num_threads(1)
    app = Workbench(
        WorkbenchSettings(dataset="mnist", optimizer="autosgd", compare="sgd:lr=1000",
                          batch_size=32, steps=15, device="cpu"),
        output_dir=tmp_path / "out", store_path=tmp_path / "store.sqlite", min_interval=0.0,
    )
    result = app.run(timeout=300, progress=False)
    flags = result.table.loc["SGD(lr=1000)", "flags"]
    assert flags.startswith("diverged at step"), result.table
    assert "color:#b00" in app.table.value and flags in app.table.value
    assert "; ".join(result.flags["SGD(lr=1000)"]) == flags
    legend = app._plot.fig.legends[0].get_texts()
    assert any(t.get_text().startswith("SGD(lr=1000): diverged") for t in legend)
    rows = ResultsStore(tmp_path / "store.sqlite").runs().set_index("optimizer")
    assert bool(rows.loc["sgd", "diverged"]) and "; ".join(rows.loc["sgd", "flags"]) == flags
