"""The interactive workbench: ipywidgets controls, Start/Stop, live throttled plots.

Training runs in a background thread (:class:`~autoopt_lab.workbench.runner.BackgroundRunner`),
so the kernel keeps handling widget events and *Stop* works while a run is going. The live
figure is drawn with matplotlib's Agg canvas in the training thread, throttled, and sent to
an ``ipywidgets.Image``; at the end of a run the app writes a static PNG, a results table
(CSV) and the per-step trace to ``output_dir``, and adds the run to the results store when
one is configured.

>>> from autoopt_lab.workbench import RunConfig, Workbench
>>> app = Workbench(RunConfig(optimizer="SGD", lr=0.05, steps=50), output_dir="/tmp/wb")
>>> app.controls["mode"].value, app.controls["lr"].layout.display
('Manual', None)
>>> app.controls["mode"].value = "Auto"
>>> app.controls["lr"].layout.display
'none'
"""

from __future__ import annotations

import html
import logging
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ipywidgets as widgets
import pandas as pd
import torch
from tqdm.std import tqdm

from autoopt_lab.workbench.config import BATCH_SIZES, DATASETS, NO_SHIFT, OPTIMIZERS, RunConfig
from autoopt_lab.workbench.plotting import RunPlot
from autoopt_lab.workbench.results import save_to_store, summary_table, trace_frame, write_json
from autoopt_lab.workbench.runner import BackgroundRunner
from autoopt_lab.workbench.session import build_sources, lane_configs

log = logging.getLogger(__name__)

_FAMILIES = ("SGD", "Adam", "AdaGrad")
#: Every live app, so that a new one can stop an orphaned run (see ``Workbench.__init__``).
_APPS: weakref.WeakSet[Workbench] = weakref.WeakSet()
#: Controls a catalogue scenario decides (shown, but not editable, while one is selected).
_SCENARIO_FIXED = ("dataset", "model", "batch_size")


def available_scenarios() -> list[str]:
    """Scenario names from the ``streams/`` catalogue, or ``[]`` when there is none yet."""
    try:
        from autoopt_lab.workbench.streaming import scenario_names
    except ImportError:  # pragma: no cover - depends on the streaming harness being installed
        return []
    return scenario_names()


def available_models() -> list[str]:
    """Model names from :mod:`autoopt_lab.models`."""
    from autoopt_lab.models import MODELS

    return list(MODELS)


@dataclass
class RunResult:
    """What a finished (or stopped) run left behind."""

    state: str
    steps: int
    planned_steps: int
    table: pd.DataFrame
    trace: pd.DataFrame
    figure_path: Path
    files: dict[str, Path] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    stored: bool = False


class Workbench:
    """The widget app. ``display(app)`` (or ``app`` as a cell's last line) shows it.

    ``config`` sets the controls' starting values; ``output_dir`` receives the PNG, table and
    trace of each run; ``store_path``, when given, is the results store the sweeps use.
    ``min_interval`` and ``max_draw_fraction`` throttle the live plot.
    """

    def __init__(
        self,
        config: RunConfig | None = None,
        *,
        output_dir: str | Path = "workbench_output",
        store_path: str | Path | None = None,
        min_interval: float = 0.5,
        max_draw_fraction: float = 0.1,
    ) -> None:
        config = config or RunConfig()
        # Re-running the notebook cell makes a new app; the old one's thread would train on,
        # unseen. Stop it.
        for other in list(_APPS):
            if other.running:
                log.warning("stopping the run of an earlier workbench (a new one was created)")
                other.stop()
        _APPS.add(self)
        self.output_dir = Path(output_dir)
        self.store_path = Path(store_path) if store_path is not None else None
        self.min_interval = min_interval
        self.max_draw_fraction = max_draw_fraction
        self.runner: BackgroundRunner | None = None
        self.result: RunResult | None = None
        self.config: RunConfig | None = None
        self._plot: RunPlot | None = None
        self._build_widgets()
        self.set_config(config)

    # ----------------------------------------------------------------- widgets
    def _build_widgets(self) -> None:
        style = {"description_width": "110px"}
        buttons = {"description_width": "110px", "button_width": "82px"}

        def wide() -> widgets.Layout:  # one Layout per widget: display toggles are per widget
            return widgets.Layout(width="330px")

        scenarios = [NO_SHIFT, *available_scenarios()]
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
        c: dict[str, widgets.Widget] = {
            "dataset": widgets.Dropdown(
                options=list(DATASETS), description="data set", style=style, layout=wide()
            ),
            "model": widgets.Dropdown(
                options=["paper default", *available_models()],
                description="model",
                style=style,
                layout=wide(),
            ),
            "mode": widgets.ToggleButtons(
                options=["Auto", "Manual"], description="optimizer", style=buttons
            ),
            "family": widgets.ToggleButtons(
                options=list(_FAMILIES), description="family", style=buttons
            ),
            "lr": widgets.BoundedFloatText(
                value=0.01,
                min=1e-6,
                max=10.0,
                step=0.005,
                description="manual lr",
                style=style,
                layout=wide(),
            ),
            "momentum": widgets.FloatSlider(
                value=0.0,
                min=0.0,
                max=0.99,
                step=0.01,
                description="SGD momentum",
                style=style,
                layout=wide(),
            ),
            "batch_size": widgets.Dropdown(
                options=list(BATCH_SIZES),
                value=64,
                description="batch size",
                style=style,
                layout=wide(),
            ),
            "steps": widgets.BoundedIntText(
                value=300,
                min=1,
                max=1_000_000,
                step=50,
                description="steps",
                style=style,
                layout=wide(),
            ),
            "scenario": widgets.Dropdown(
                options=scenarios, description="shift scenario", style=style, layout=wide()
            ),
            "compare": widgets.Dropdown(
                options=["none", *OPTIMIZERS],
                description="compare with",
                style=style,
                layout=wide(),
            ),
            "seed": widgets.IntText(value=0, description="seed", style=style, layout=wide()),
            "device": widgets.Dropdown(
                options=devices, description="device", style=style, layout=wide()
            ),
        }
        self.controls = c
        self.start_button = widgets.Button(description="Start", button_style="success", icon="play")
        self.stop_button = widgets.Button(
            description="Stop", button_style="danger", icon="stop", disabled=True
        )
        self.progress = widgets.IntProgress(
            value=0,
            min=0,
            max=1,
            description="progress",
            style=style,
            layout=widgets.Layout(width="420px"),
        )
        self.status = widgets.HTML(value="<i>Set the controls and press Start.</i>")
        self.plot = widgets.Image(format="png", layout=widgets.Layout(max_width="900px"))
        self.table = widgets.HTML()
        self.scenario_note = widgets.HTML(layout=widgets.Layout(width="430px"))
        self.start_button.on_click(lambda _b: self._start_clicked())
        self.stop_button.on_click(lambda _b: self.stop())
        c["mode"].observe(lambda _ch: self._sync_visibility(), names="value")
        c["family"].observe(lambda _ch: self._sync_visibility(), names="value")
        c["compare"].observe(lambda _ch: self._sync_visibility(), names="value")
        c["scenario"].observe(lambda _ch: self._sync_scenario(), names="value")
        left = widgets.VBox(
            [c["dataset"], c["model"], c["mode"], c["family"], c["lr"], c["momentum"]],
            layout=widgets.Layout(width="400px", flex="0 0 auto"),
        )
        right = widgets.VBox(
            [
                c["batch_size"],
                c["steps"],
                c["scenario"],
                self.scenario_note,
                c["compare"],
                c["seed"],
                c["device"],
            ],
            layout=widgets.Layout(width="440px", flex="0 0 auto"),
        )
        buttons = widgets.HBox([self.start_button, self.stop_button, self.progress])
        self.widget = widgets.VBox(
            [
                widgets.HTML("<b>AutoOpt workbench</b>"),
                widgets.HBox([left, right]),
                buttons,
                self.status,
                self.plot,
                self.table,
            ]
        )
        self._sync_visibility()

    def _sync_visibility(self) -> None:
        c = self.controls
        manual_main = c["mode"].value == "Manual"
        compare = c["compare"].value
        manual_compare = compare in ("SGD", "Adam", "AdaGrad")
        # lr for any manual optimizer; momentum for manual SGD only (Adam runs with the
        # paper's betas (0.9, 0.99), AdaGrad has none).
        c["lr"].layout.display = None if manual_main or manual_compare else "none"
        sgd = (manual_main and c["family"].value == "SGD") or compare == "SGD"
        c["momentum"].layout.display = None if sgd else "none"

    def _sync_scenario(self) -> None:
        """A catalogue scenario fixes the data set, model and batch size; steps rescale it."""
        name = self.controls["scenario"].value
        fixed = name != NO_SHIFT
        for key in _SCENARIO_FIXED:
            self.controls[key].disabled = fixed
        if fixed:
            from autoopt_lab.workbench.streaming import scenario_summary

            info = scenario_summary(name)
            c = self.controls
            c["dataset"].value = info["dataset"]
            c["model"].value = (
                info["model"] if info["model"] in c["model"].options else "paper default"
            )
            if info["batch_size"] not in c["batch_size"].options:
                c["batch_size"].options = sorted({*c["batch_size"].options, info["batch_size"]})
            c["batch_size"].value = info["batch_size"]
            c["steps"].value = info["steps"]
            segs = " &rarr; ".join(html.escape(s) for s in info["segments"])
            self.scenario_note.value = (
                f"<small>{html.escape(info['description'])}<br>segments: {segs}</small>"
            )
        else:
            self.scenario_note.value = ""

    def set_config(self, config: RunConfig) -> None:
        """Put ``config`` into the controls (a scenario's own data set and batch size win)."""
        c = self.controls
        if config.scenario not in c["scenario"].options:
            raise ValueError(
                f"scenario={config.scenario!r} is unknown; allowed: {', '.join(c['scenario'].options)}"
            )
        if config.device not in c["device"].options:
            raise ValueError(
                f"device={config.device!r} is not available; allowed: {', '.join(c['device'].options)}"
            )
        if config.scenario == NO_SHIFT:
            c["scenario"].value = NO_SHIFT
            c["dataset"].value = config.dataset
            c["model"].value = config.model or "paper default"
            if config.batch_size not in c["batch_size"].options:
                c["batch_size"].options = sorted({*c["batch_size"].options, config.batch_size})
            c["batch_size"].value = config.batch_size
        else:
            c["scenario"].value = config.scenario
        c["steps"].value = config.steps
        c["mode"].value = "Auto" if config.is_auto else "Manual"
        c["family"].value = config.family
        c["lr"].value = config.lr
        c["momentum"].value = config.momentum
        c["compare"].value = config.compare or "none"
        c["seed"].value = config.seed
        c["device"].value = config.device
        self._sync_visibility()

    def read_config(self) -> RunConfig:
        """The run the controls describe (validated)."""
        c = self.controls
        prefix = "Auto" if c["mode"].value == "Auto" else ""
        return RunConfig(
            dataset=c["dataset"].value,
            model=None if c["model"].value == "paper default" else c["model"].value,
            optimizer=prefix + c["family"].value,
            lr=float(c["lr"].value),
            momentum=float(c["momentum"].value),
            batch_size=int(c["batch_size"].value),
            steps=int(c["steps"].value),
            scenario=c["scenario"].value,
            seed=int(c["seed"].value),
            device=c["device"].value,
            compare=None if c["compare"].value == "none" else c["compare"].value,
        )

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    # ----------------------------------------------------------------- running
    @property
    def running(self) -> bool:
        return self.runner is not None and self.runner.running

    def _start_clicked(self) -> None:
        try:
            self.start()
        except Exception as exc:  # shown in the app; the kernel keeps going
            log.exception("could not start the run")
            self.status.value = (
                f"<b style='color:#b00'>Could not start:</b> {html.escape(str(exc))}"
            )

    def start(self, config: RunConfig | None = None) -> BackgroundRunner:
        """Start a run in the background (the controls' run unless ``config`` is given)."""
        if self.running:
            raise RuntimeError("a run is already going; press Stop first")
        if config is not None:
            self.set_config(config)
        config = self.read_config()
        self.status.value = "<i>Loading data and building the model...</i>"
        sources = build_sources(config)
        self.config = config
        self.result = None
        self.table.value = ""
        title = f"{config.dataset} | {' vs '.join(sources)} | batch {config.batch_size}"
        if config.scenario != NO_SHIFT:
            title += f" | scenario {config.scenario}"
        self._plot = RunPlot(title)
        t0 = time.perf_counter()
        self.plot.value = self._plot.png()  # an empty frame, which also times one frame
        self.runner = BackgroundRunner(
            sources,
            on_update=self._on_update,
            on_progress=self._on_progress,
            on_finish=self._on_finish,
            min_interval=self.min_interval,
            max_draw_fraction=self.max_draw_fraction,
            draw_estimate=time.perf_counter() - t0,
        )
        self.progress.max = self.runner.total_steps
        self.progress.value = 0
        self.progress.bar_style = ""
        self._set_controls_enabled(False)
        self.runner.start()
        self.status.value = f"Running {html.escape(' vs '.join(sources))}..."
        return self.runner

    def stop(self) -> None:
        """Ask the running training thread to stop after its current step."""
        if self.runner is not None:
            self.runner.stop()
            self.status.value = "<i>Stopping...</i>"

    def wait(self, timeout: float | None = None) -> RunResult | None:
        """Block until the run ends (headless use); the result, or None on timeout."""
        if self.runner is None:
            raise RuntimeError("no run has been started; call start() or press Start")
        if not self.runner.join(timeout):
            return None
        if self.runner.error is not None:
            raise RuntimeError(f"the run failed: {self.runner.error}") from self.runner.error
        return self.result

    def run(
        self,
        config: RunConfig | None = None,
        timeout: float | None = None,
        *,
        progress: bool = True,
    ) -> RunResult | None:
        """Start and wait: the headless path (papermill, scripts), with a text tqdm bar."""
        runner = self.start(config)
        if progress:
            deadline = None if timeout is None else time.monotonic() + timeout
            with tqdm(
                total=runner.total_steps, desc="workbench", unit="step", mininterval=2.0
            ) as bar:
                while runner.running and (deadline is None or time.monotonic() < deadline):
                    runner.join(0.5)
                    bar.update(runner.steps_done - bar.n)
                bar.update(runner.steps_done - bar.n)
            if deadline is not None:
                timeout = max(0.0, deadline - time.monotonic())
        return self.wait(timeout)

    def _set_controls_enabled(self, enabled: bool) -> None:
        self.start_button.disabled = not enabled
        self.stop_button.disabled = enabled
        fixed = self.controls["scenario"].value != NO_SHIFT
        for key, w in self.controls.items():
            w.disabled = (not enabled) or (fixed and key in _SCENARIO_FIXED)

    def _draw(self, runner: BackgroundRunner) -> RunPlot:
        assert self._plot is not None
        first = next(iter(runner.sources.values()))
        self._plot.update(
            runner.records,
            boundaries=first.boundaries,
            transitions=getattr(first, "transitions", ()),
            total_steps=runner.total_steps,
        )
        return self._plot

    def _status_line(self, runner: BackgroundRunner) -> str:
        elapsed = runner.elapsed
        rate = runner.steps_done / elapsed if elapsed > 0 else 0.0
        accs = ", ".join(
            f"{lbl}: acc {recs[-1].rolling_accuracy:.3f}"
            for lbl, recs in runner.records.items()
            if recs
        )
        return (
            f"{runner.state}: step {runner.steps_done}/{runner.total_steps} | {rate:.1f} steps/s | "
            f"{runner.updates} frames, drawing {100 * runner.draw_fraction:.1f}% of the time | "
            f"{html.escape(accs)}"
        )

    def _on_progress(self, runner: BackgroundRunner) -> None:
        self.progress.value = runner.steps_done
        self.status.value = self._status_line(runner)

    def _on_update(self, runner: BackgroundRunner) -> None:
        self.plot.value = self._draw(runner).png()
        self.progress.value = runner.steps_done
        self.status.value = self._status_line(runner)

    def _on_finish(self, runner: BackgroundRunner) -> None:
        try:
            self.result = self._finish(runner)
            self.table.value = self.result.table.to_html(float_format=lambda v: f"{v:.4g}")
            note = " (stored)" if self.result.stored else ""
            self.status.value = (
                self._status_line(runner) + f" | saved to {html.escape(str(self.output_dir))}{note}"
            )
        finally:
            self.progress.bar_style = {"finished": "success", "stopped": "warning"}.get(
                runner.state, "danger"
            )
            if runner.error is not None:
                self.status.value = (
                    f"<b style='color:#b00'>Run failed:</b> {html.escape(repr(runner.error))}"
                )
            self._set_controls_enabled(True)

    def _finish(self, runner: BackgroundRunner) -> RunResult:
        assert self.config is not None
        out = self.output_dir
        out.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        png = self._draw(runner).png(dpi=100)
        final_figure_seconds = time.perf_counter() - t0
        figure_path = out / "workbench.png"
        figure_path.write_bytes(png)
        self.plot.value = png
        self.progress.value = runner.steps_done
        table = summary_table(runner.records, planned_steps=runner.total_steps)
        trace = trace_frame(runner.records)
        files = {
            "figure": figure_path,
            "table": out / "workbench_results.csv",
            "trace": out / "workbench_trace.csv",
        }
        table.to_csv(files["table"])
        trace.to_csv(files["trace"], index=False)
        metrics: dict[str, Any] = {
            "state": runner.state,
            "steps": runner.steps_done,
            "planned_steps": runner.total_steps,
            "wall_seconds": runner.wall_seconds,
            "train_seconds": runner.step_seconds,
            "draw_seconds": runner.draw_seconds,
            "draw_fraction": runner.draw_fraction,
            "final_figure_seconds": final_figure_seconds,
            "plot_updates": runner.updates,
            "stop_latency_seconds": runner.stop_latency,
            "lanes": table.reset_index().to_dict(orient="records"),
        }
        shift_reports = self._shift_reports(runner)
        if shift_reports:
            metrics["shift_report"] = shift_reports
        stored = False
        if self.store_path is not None and runner.steps_done > 0:
            try:
                stored = self._store(runner, table, trace, metrics)
            except Exception:
                log.exception("saving the run to the results store at %s failed", self.store_path)
        return RunResult(
            state=runner.state,
            steps=runner.steps_done,
            planned_steps=runner.total_steps,
            table=table,
            trace=trace,
            figure_path=figure_path,
            files=files,
            metrics=metrics,
            stored=stored,
        )

    def _shift_reports(self, runner: BackgroundRunner) -> dict[str, Any]:
        """Per lane: the harness's per-shift report (detection delay, recovery time)."""
        if self.config is None or self.config.scenario == NO_SHIFT:
            return {}
        out = {}
        for label, src in runner.sources.items():
            run = getattr(src, "run", None)
            if run is not None and run.records:
                rep = run.summary()
                out[label] = {"shifts": rep.get("shifts", []), "segments": rep.get("segments", [])}
        return out

    def _store(
        self,
        runner: BackgroundRunner,
        table: pd.DataFrame,
        trace: pd.DataFrame,
        metrics: dict[str, Any],
    ) -> bool:
        """One store row per lane (each lane is a run), tagged ``sweep="workbench"``."""
        assert self.config is not None and self.store_path is not None
        stored = True
        for label, cfg in lane_configs(self.config).items():
            row = table.loc[label]
            lane_metrics = {
                "state": runner.state,
                "steps": int(row["steps"]),
                "planned_steps": runner.total_steps,
                "final_loss": float(row["final loss"]),
                "prequential_err_pct": 100.0 * (1.0 - float(row["mean acc"])),
                "final_err_pct": 100.0 * (1.0 - float(row["final acc"])),
                "wall_time_s": runner.wall_seconds,
                "draw_fraction": runner.draw_fraction,
            }
            if label in metrics.get("shift_report", {}):
                lane_metrics["shift_report"] = metrics["shift_report"][label]
            config = {**cfg.to_dict(), "source": "workbench", "compare": None}
            lane_trace = trace[trace["lane"] == label].drop(columns="lane")
            stored = save_to_store(self.store_path, config, lane_metrics, lane_trace) and stored
        return stored

    # ----------------------------------------------------------------- static outputs
    def show_results(self, json_path: str | Path | None = None) -> dict[str, Any]:
        """Display the static PNG and the results table, and write the key numbers as JSON.

        Call it in a notebook cell after a run; the outputs survive in any notebook viewer
        (unlike the live widget). Returns the JSON payload (empty when no run has ended).
        """
        from IPython.display import Image, Markdown, display

        if self.result is None:
            display(
                Markdown("*No finished run yet: press **Start** above, then run this cell again.*")
            )
            return {}
        res = self.result
        display(Image(filename=str(res.figure_path)))
        display(res.table)
        payload = {
            "config": self.config.to_dict() if self.config else {},
            **res.metrics,
            "files": {k: str(v) for k, v in res.files.items()},
            "stored": res.stored,
        }
        path = (
            Path(json_path) if json_path is not None else self.output_dir / "workbench_metrics.json"
        )
        write_json(path, payload)
        res.files["json"] = path
        return payload
