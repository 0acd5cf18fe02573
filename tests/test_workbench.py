"""Workbench library: config validation, the background runner (Stop, throttling), the
live figure, the results table, and one short real run end to end."""

from __future__ import annotations

import threading
import time

import numpy as np
import pandas as pd
import pytest
import torch

from autoopt_lab.workbench import (
    BackgroundRunner,
    RunConfig,
    StationarySource,
    StepRecord,
    Workbench,
)
from autoopt_lab.workbench.plotting import RunPlot
from autoopt_lab.workbench.results import summary_table, trace_frame
from autoopt_lab.workbench.session import lane_configs
from autoopt_lab.workbench.streaming import optimizer_spec, scenario_for, scenario_names


class SlowSource:
    """A step source whose steps take ``delay`` seconds, with a real record each step."""

    def __init__(self, total: int, delay: float = 0.005, boundaries: list[int] | None = None):
        self.total_steps = total
        self.boundaries = boundaries or []
        self.t = 0
        self.delay = delay
        self.closed = False

    @property
    def done(self) -> bool:
        return self.t >= self.total_steps

    def step(self) -> StepRecord:
        time.sleep(self.delay)
        rec = StepRecord(
            step=self.t,
            loss=1.0 / (1 + self.t),
            accuracy=0.5,
            rolling_accuracy=0.5,
            hparams={"w": (0.01, 0.9)},
            segment=int(self.t in self.boundaries),
        )
        self.t += 1
        return rec

    def close(self) -> None:
        self.closed = True


# ----------------------------------------------------------------------------- config
@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"optimizer": "RMSprop"}, "optimizer='RMSprop' is unknown"),
        ({"batch_size": 1}, "batch_size=1 is invalid"),
        ({"steps": 0}, "steps=0 is invalid"),
        ({"lr": 0.0}, "lr=0.0 is invalid"),
        ({"momentum": 1.0}, "momentum=1.0 is invalid"),
        ({"device": "tpu"}, "device='tpu' is invalid"),
        ({"compare": "Nesterov"}, "compare='Nesterov' is unknown"),
    ],
)
def test_config_rejects_bad_input_with_a_clear_message(kwargs, fragment):
    with pytest.raises(ValueError, match="allowed|must be") as err:
        RunConfig(**kwargs)
    assert fragment in str(err.value)


def test_lanes_and_optimizer_specs():
    cfg = RunConfig(optimizer="AutoSGD", compare="SGD", lr=0.02, momentum=0.5)
    lanes = lane_configs(cfg)
    assert list(lanes) == ["AutoSGD", "SGD lr=0.02 m=0.5"]
    assert optimizer_spec(lanes["AutoSGD"]) == ("autosgd", {})
    assert optimizer_spec(lanes["SGD lr=0.02 m=0.5"]) == ("sgd", {"lr": 0.02, "momentum": 0.5})
    assert optimizer_spec(RunConfig(optimizer="Adam", lr=1e-3)) == ("adam", {"lr": 1e-3})
    assert RunConfig(optimizer="Adam", lr=1e-3, momentum=0.5).label() == "Adam lr=0.001"
    with pytest.raises(ValueError, match="same run"):
        lane_configs(RunConfig(optimizer="AutoSGD", compare="AutoSGD"))


def test_scenarios_rescale_and_reseed():
    names = scenario_names()
    assert "fmnist-rotation-incremental" in names
    full = scenario_for(RunConfig(scenario="fmnist-rotation-incremental", steps=1200))
    short = scenario_for(RunConfig(scenario="fmnist-rotation-incremental", steps=60, seed=7))
    assert short.total_steps == 60 and short.seed == 7
    assert [b * 60 / full.total_steps for b in full.boundaries] == pytest.approx(
        short.boundaries, abs=1
    )
    flat = scenario_for(RunConfig(dataset="mnist", steps=25, batch_size=16))
    assert flat.boundaries == [] and flat.total_steps == 25 and flat.segments[0].batch_size == 16


# ----------------------------------------------------------------------------- runner
def test_stop_ends_a_running_loop_within_a_step():
    src = SlowSource(total=100_000, delay=0.005)
    runner = BackgroundRunner({"slow": src})
    runner.start()
    assert runner.wait_for_steps(5, timeout=30)
    assert runner.running
    t = time.perf_counter()
    runner.stop()
    assert runner.join(timeout=10)
    assert time.perf_counter() - t < 2.0
    assert runner.state == "stopped"
    assert runner.stop_latency is not None and runner.stop_latency < 1.0
    assert 5 <= runner.steps_done < src.total_steps
    assert src.closed


def test_runner_finishes_and_calls_back_from_its_thread():
    seen: list[str] = []
    finished = threading.Event()
    runner = BackgroundRunner(
        {"a": SlowSource(30, delay=0.002), "b": SlowSource(30, delay=0.002)},
        on_update=lambda r: seen.append(threading.current_thread().name),
        on_finish=lambda r: finished.set(),
        min_interval=0.0,
    )
    runner.start()
    assert runner.join(timeout=30)
    assert runner.state == "finished" and runner.steps_done == 30
    assert [len(v) for v in runner.records.values()] == [30, 30]
    assert finished.is_set()
    assert seen and set(seen) == {"workbench-runner"}
    with pytest.raises(RuntimeError, match="finished"):
        runner.start()


def test_throttle_keeps_drawing_under_its_budget():
    def slow_draw(_runner):
        time.sleep(0.05)

    runner = BackgroundRunner(
        {"a": SlowSource(400, delay=0.002)},
        on_update=slow_draw,
        min_interval=0.0,
        max_draw_fraction=0.1,
    )
    runner.start()
    assert runner.join(timeout=60)
    # Without the throttle every step would draw (~96% drawing); with it, about 10% or less.
    assert runner.updates < 100
    assert runner.draw_fraction < 0.2


def test_runner_reports_a_failing_step():
    class Broken(SlowSource):
        def step(self):
            if self.t == 3:
                raise FloatingPointError("loss is NaN")
            return super().step()

    src = Broken(10, delay=0.0)
    runner = BackgroundRunner({"x": src})
    runner.start()
    runner.join(timeout=10)
    assert runner.state == "failed" and isinstance(runner.error, FloatingPointError)
    assert runner.steps_done == 3 and src.closed


def test_stationary_source_is_prequential_and_deterministic():
    torch.manual_seed(0)
    x, y = torch.randn(64, 5), torch.randint(0, 3, (64,))

    def make():
        torch.manual_seed(1)
        net = torch.nn.Sequential(torch.nn.Linear(5, 3), torch.nn.LogSoftmax(-1))
        return StationarySource(
            net, torch.optim.SGD(net.parameters(), lr=0.5), x, y, batch_size=16, steps=12, seed=3
        )

    a, b = make(), make()
    ra = [a.step() for _ in range(12)]
    rb = [b.step() for _ in range(12)]
    assert [r.loss for r in ra] == [r.loss for r in rb]
    assert ra[-1].loss < ra[0].loss  # it trains
    assert ra[0].hparams == {"0.weight": (0.5, 0.0), "0.bias": (0.5, 0.0)}
    with pytest.raises(RuntimeError, match="exhausted"):
        a.step()


# ----------------------------------------------------------------------------- plot and table
def _records(n, lane_hp=0.01):
    return [
        StepRecord(
            step=i,
            loss=2.0 / (1 + i),
            accuracy=min(1.0, i / n),
            rolling_accuracy=min(1.0, i / n),
            hparams={"conv.weight": (lane_hp * (1 + i), 0.5), "conv.bias": (lane_hp, 0.0)},
            segment=int(i >= n // 2),
            shift=i == n // 2,
        )
        for i in range(n)
    ]


def test_run_plot_updates_lines_in_place_and_thins_long_runs(tmp_path):
    plot = RunPlot("t", max_points=100)
    plot.update({"A": _records(50), "B": _records(50, 0.02)}, boundaries=[25], total_steps=50)
    n_lines = sum(len(ax.lines) for ax in plot.fig.axes)
    plot.update({"A": _records(1000), "B": _records(1000, 0.02)}, boundaries=[25], total_steps=1000)
    assert sum(len(ax.lines) for ax in plot.fig.axes) == n_lines  # no new artists per frame
    lr_line = plot._lines[("A", "lr/conv.weight")]
    assert len(lr_line.get_xdata()) <= 100
    assert plot.ax_lr.get_yscale() == "log"
    path = plot.save(tmp_path / "f.png")
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_summary_table_and_trace():
    recs = {"A": _records(40), "B": _records(20)}
    table = summary_table(recs, planned_steps=40)
    assert list(table.index) == ["A", "B"]
    assert table.loc["A", "steps"] == 40 and table.loc["B", "steps"] == 20
    assert table.loc["A", "final acc"] == pytest.approx(np.mean([i / 40 for i in range(36, 40)]))
    assert {"acc seg 0", "acc seg 1"} <= set(table.columns)
    trace = trace_frame(recs)
    assert len(trace) == 60 and {"lr/conv.weight", "momentum/conv.bias", "lane"} <= set(
        trace.columns
    )


# ----------------------------------------------------------------------------- the app
def test_controls_show_lr_and_momentum_only_for_manual_optimizers(tmp_path):
    app = Workbench(RunConfig(optimizer="AutoSGD"), output_dir=tmp_path)
    c = app.controls
    assert c["lr"].layout.display == "none" and c["momentum"].layout.display == "none"
    c["mode"].value = "Manual"
    assert c["lr"].layout.display is None and c["momentum"].layout.display is None
    c["family"].value = "AdaGrad"
    assert c["lr"].layout.display is None and c["momentum"].layout.display == "none"
    c["mode"].value = "Auto"
    c["compare"].value = "SGD"
    assert c["lr"].layout.display is None and c["momentum"].layout.display is None
    cfg = app.read_config()
    assert cfg.optimizer == "AutoAdaGrad" and cfg.compare == "SGD"


def test_choosing_a_scenario_fixes_data_and_batch_size(tmp_path):
    app = Workbench(RunConfig(), output_dir=tmp_path)
    app.controls["scenario"].value = "mnist-permutation-sudden"
    assert app.controls["dataset"].value == "mnist" and app.controls["dataset"].disabled
    assert app.controls["batch_size"].disabled and not app.controls["steps"].disabled
    assert "segments" in app.scenario_note.value
    app.controls["scenario"].value = "none"
    assert not app.controls["dataset"].disabled


def test_a_bad_start_is_reported_in_the_app(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOOPT_OFFLINE", "1")
    monkeypatch.setenv("AUTOOPT_DATA", str(tmp_path / "empty"))
    app = Workbench(RunConfig(dataset="cifar10", steps=5), output_dir=tmp_path)
    app.start_button.click()
    assert "Could not start" in app.status.value and "cifar10" in app.status.value.lower()
    assert not app.running and not app.start_button.disabled


def test_short_real_run_writes_figure_table_trace_and_store(tmp_path):
    from autoopt_lab.experiments import ResultsStore

    torch.set_num_threads(1)
    store = tmp_path / "store.sqlite"
    app = Workbench(
        RunConfig(
            dataset="mnist", optimizer="AutoSGD", compare="SGD", lr=0.05, batch_size=32, steps=12
        ),
        output_dir=tmp_path / "out",
        store_path=store,
        min_interval=0.0,
    )
    result = app.run(timeout=300)
    assert result is not None and result.state == "finished" and result.steps == 12
    assert result.figure_path.read_bytes()[:4] == b"\x89PNG"
    assert app.plot.value[:4] == b"\x89PNG"
    assert list(result.table.index) == ["AutoSGD", "SGD lr=0.05 m=0"]
    assert (result.table["steps"] == 12).all()
    lr_cols = [c for c in result.trace.columns if c.startswith("lr/")]
    auto = result.trace[result.trace["lane"] == "AutoSGD"]
    assert lr_cols and auto[lr_cols].notna().all().all() and (auto[lr_cols] > 0).all().all()
    assert pd.read_csv(result.files["table"]).shape[0] == 2
    runs = ResultsStore(store).runs()
    assert sorted(runs["optimizer"]) == ["AutoSGD", "SGD"] and (runs["sweep"] == "workbench").all()
    assert 0.0 <= result.metrics["draw_fraction"] < 1.0
    assert app.progress.value == 12 and app.progress.bar_style == "success"
    assert not app.start_button.disabled and app.stop_button.disabled


def test_a_new_app_stops_the_run_of_an_earlier_one(tmp_path):
    old = Workbench(RunConfig(), output_dir=tmp_path)
    old.config = RunConfig()
    old.runner = BackgroundRunner({"slow": SlowSource(100_000, delay=0.005)})
    old.runner.start()
    assert old.runner.wait_for_steps(3, timeout=30)
    Workbench(RunConfig(), output_dir=tmp_path)
    assert old.runner.join(timeout=10) and old.runner.state == "stopped"


def test_gradual_transitions_are_shaded():
    from types import SimpleNamespace

    from autoopt_lab.workbench.streaming import StreamSource

    sc = scenario_for(RunConfig(scenario="fmnist-rotation-incremental", steps=120))
    src = StreamSource(SimpleNamespace(scenario=sc, total_steps=sc.total_steps, is_auto=True))
    width = sc.segments[1].transition.width
    assert width > 0 and src.transitions == [(sc.boundaries[0], sc.boundaries[0] + width)]
    plot = RunPlot()
    plot.update({"A": _records(120)}, boundaries=src.boundaries, transitions=src.transitions)
    assert all(len(ax.patches) == 1 for ax in plot.fig.axes)
    labels = [t.get_text() for t in plot.fig.legends[0].get_texts()]
    assert "shift" in labels and "transition" in labels
