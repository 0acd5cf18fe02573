"""The interactive workbench: ipywidgets controls, Start/Stop, live throttled plots.

Training runs in a background thread (:class:`~autoopt_lab.workbench.runner.BackgroundRunner`),
so the kernel keeps handling widget events and *Stop* works while a run is going. The live
figure is drawn with matplotlib's Agg canvas in the training thread, throttled, and sent to
an ``ipywidgets.Image``. When a run ends, its own folder under ``output_dir`` receives a static
PNG, the results table, the per-step trace and the key numbers (JSON), and the results store
(when configured) one row per optimizer with the run's state (``done`` or ``stopped``).

>>> from autoopt_lab.workbench import WorkbenchSettings, Workbench
>>> app = Workbench(WorkbenchSettings(optimizer="sgd:lr=0.05"), output_dir="/tmp/wb")
>>> app.optimizer_panel.read()
('sgd', {'lr': 0.05})
>>> app.plot.layout.display  # no empty image before the first run
'none'
"""

from __future__ import annotations

import html
import logging
import threading
import time
import weakref
from pathlib import Path
from typing import Any

import ipywidgets as widgets
from tqdm.std import tqdm

from autoopt_lab.data import DataUnavailableError
from autoopt_lab.health import balanced_chance
from autoopt_lab.workbench import choices
from autoopt_lab.workbench.finish import finish_run, show_outcome
from autoopt_lab.workbench.optimizer_panel import OptimizerPanel
from autoopt_lab.workbench.plotting import RunPlot
from autoopt_lab.workbench.results import WorkbenchOutcome, table_html
from autoopt_lab.workbench.runner import BackgroundRunner
from autoopt_lab.workbench.settings import BATCH_SIZES, NO_SHIFT, WorkbenchSettings
from autoopt_lab.workbench.storage import STORE_STATUS, check_writable, new_run_folder
from autoopt_lab.workbench.streaming import build_sources

log = logging.getLogger(__name__)

#: Every live app, so that a new one can stop an orphaned run (see ``Workbench.__init__``).
_APPS: weakref.WeakSet[Workbench] = weakref.WeakSet()
#: Controls a catalogue scenario decides (shown, but not editable, while one is selected).
_SCENARIO_FIXED = ("dataset", "model", "batch_size")
#: Errors that are the user's input or the machine's files: one line, no traceback.
_EXPECTED = (ValueError, OSError, ImportError, DataUnavailableError)
DEFAULT_MODEL = "data set default"
VIEWS = ("median + band", "per tensor")


class Workbench:
    """The widget app. ``display(app)`` (or ``app`` as a cell's last line) shows it.

    ``settings`` sets the controls' starting values; each run writes into a new folder under
    ``output_dir``; ``store_path``, when given, is the results store the sweeps use.
    ``min_interval`` and ``max_draw_fraction`` throttle the live plot.
    """

    def __init__(
        self,
        settings: WorkbenchSettings | None = None,
        *,
        output_dir: str | Path = "workbench_output",
        store_path: str | Path | None = None,
        min_interval: float = 0.5,
        max_draw_fraction: float = 0.1,
    ) -> None:
        settings = settings or WorkbenchSettings()
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
        self.result: WorkbenchOutcome | None = None
        self.settings: WorkbenchSettings | None = None
        self.folder: Path | None = None
        self._plot: RunPlot | None = None
        self._plot_lock = threading.Lock()
        self._starting = False
        self._build_widgets()
        self.set_settings(settings)

    # ----------------------------------------------------------------- widgets
    def _build_widgets(self) -> None:
        style = {"description_width": "110px"}

        def wide() -> widgets.Layout:  # one Layout per widget: display toggles are per widget
            return widgets.Layout(width="330px")

        from autoopt_lab.models import MODELS

        choices.reload_scenarios()
        c: dict[str, widgets.Widget] = {
            "dataset": widgets.Dropdown(options=choices.dataset_menu(), description="data set"),
            "model": widgets.Dropdown(options=[DEFAULT_MODEL, *MODELS], description="model"),
            "batch_size": widgets.Dropdown(
                options=list(BATCH_SIZES), value=64, description="batch size"
            ),
            "steps": widgets.BoundedIntText(
                value=300, min=1, max=10_000_000, step=50, description="steps"
            ),
            "scenario": widgets.Dropdown(
                options=choices.scenario_menu(), description="shift scenario"
            ),
            "seed": widgets.IntText(value=0, description="seed"),
            "device": widgets.Dropdown(options=choices.device_menu(), description="device"),
            "view": widgets.ToggleButtons(
                options=VIEWS, description="lr, momentum",
                tooltips=["median over tensors, 25-75% band", "one line per tensor"],
                style={"description_width": "110px", "button_width": "125px"},
            ),
        }
        for key, w in c.items():
            if key != "view":
                w.style, w.layout = style, wide()
        self.controls = c
        self.optimizer_panel = OptimizerPanel("optimizer")
        self.compare_panel = OptimizerPanel("compare with", value=None, allow_none=True)
        self.start_button = widgets.Button(description="Start", button_style="success", icon="play")
        self.stop_button = widgets.Button(
            description="Stop", button_style="danger", icon="stop", disabled=True
        )
        self.progress = widgets.IntProgress(
            value=0, min=0, max=1, description="progress", style=style,
            layout=widgets.Layout(width="420px"),
        )
        self.status = widgets.HTML(value="<i>Set the controls and press Start.</i>")
        self.data_note = widgets.HTML(layout=widgets.Layout(width="760px"))
        self.plot = widgets.Image(format="png", layout=widgets.Layout(max_width="900px", display="none"))
        self.table = widgets.HTML()
        self.scenario_note = widgets.HTML(layout=widgets.Layout(width="400px"))
        self.use_scenario_length = widgets.Button(
            description="use the scenario's length", layout=widgets.Layout(width="220px", display="none")
        )
        self.start_button.on_click(lambda _b: self._start_clicked())
        self.stop_button.on_click(lambda _b: self.stop())
        self.use_scenario_length.on_click(lambda _b: self._use_native_length())
        c["scenario"].observe(lambda _ch: self._sync_scenario(), names="value")
        c["steps"].observe(lambda _ch: self._describe_scenario(), names="value")
        c["dataset"].observe(lambda _ch: self._sync_data_note(), names="value")
        c["view"].observe(lambda _ch: self._view_changed(), names="value")
        left = widgets.VBox(
            [c["dataset"], c["model"], c["batch_size"], c["steps"], c["scenario"],
             self.scenario_note, self.use_scenario_length, c["seed"], c["device"], c["view"]],
            layout=widgets.Layout(width="440px", flex="0 0 auto"),
        )
        right = widgets.VBox(
            [self.optimizer_panel.widget, self.compare_panel.widget],
            layout=widgets.Layout(width="400px", flex="0 0 auto"),
        )
        self.widget = widgets.VBox(
            [
                widgets.HTML("<b>AutoOpt workbench</b>"),
                widgets.HBox([left, right]),
                self.data_note,
                widgets.HBox([self.start_button, self.stop_button, self.progress]),
                self.status,
                self.plot,
                self.table,
            ]
        )

    def _scenario_info(self) -> dict[str, Any] | None:
        name = self.controls["scenario"].value
        return None if name == NO_SHIFT else choices.describe_scenario(name, int(self.controls["steps"].value))

    def _sync_scenario(self) -> None:
        """A catalogue scenario fixes the data set, model and batch size (never the steps)."""
        c = self.controls
        info = self._scenario_info()
        for key in _SCENARIO_FIXED:
            c[key].disabled = info is not None
        if info is not None:
            c["dataset"].value = info["dataset"]
            c["model"].value = info["model"] if info["model"] in c["model"].options else DEFAULT_MODEL
            if info["batch_size"] not in c["batch_size"].options:
                c["batch_size"].options = sorted({*c["batch_size"].options, info["batch_size"]})
            c["batch_size"].value = info["batch_size"]
        self._describe_scenario()
        self._sync_data_note()

    def _describe_scenario(self) -> None:
        """The scenario as this run will see it: lengths rescaled to the steps set."""
        info = self._scenario_info()
        self.scenario_note.value = "" if info is None else choices.scenario_note(info)
        if info is None:
            self.use_scenario_length.layout.display = "none"
            return
        self.use_scenario_length.description = f"use its own length ({info['native_steps']})"
        self.use_scenario_length.layout.display = None if info["scale"] != 1 else "none"

    def _use_native_length(self) -> None:
        info = self._scenario_info()
        if info is not None:
            self.controls["steps"].value = info["native_steps"]

    def _sync_data_note(self) -> None:
        problem = choices.data_problem(self.controls["dataset"].value)
        self.data_note.value = (
            f"<span style='color:#b00'>&#9888; {html.escape(problem)}</span>" if problem else ""
        )

    def _view_changed(self) -> None:
        with self._plot_lock:
            if self._plot is None:
                return
            self._plot.set_per_tensor(self.controls["view"].value == VIEWS[1])
        if self.runner is not None and not self.running:
            self.plot.value = self._draw(self.runner).png()

    def set_settings(self, settings: WorkbenchSettings) -> None:
        """Put ``settings`` into the controls (a scenario's own data set and batch size win)."""
        c = self.controls
        for key, value in (("scenario", settings.scenario), ("device", settings.device)):
            allowed = [o[1] if isinstance(o, tuple) else o for o in c[key].options]
            if value not in allowed:
                raise ValueError(f"{key}={value!r} is not available here; allowed: {', '.join(allowed)}")
        c["steps"].value = settings.steps
        if settings.scenario == NO_SHIFT:
            c["scenario"].value = NO_SHIFT
            c["dataset"].value = settings.dataset
            c["model"].value = settings.model or DEFAULT_MODEL
            if settings.batch_size not in c["batch_size"].options:
                c["batch_size"].options = sorted({*c["batch_size"].options, settings.batch_size})
            c["batch_size"].value = settings.batch_size
        else:
            c["scenario"].value = settings.scenario
        self._sync_scenario()
        self.optimizer_panel.set(settings.optimizer, settings.options)
        self.compare_panel.set(settings.compare, settings.compare_options)
        c["seed"].value = settings.seed
        c["device"].value = settings.device

    def read_settings(self) -> WorkbenchSettings:
        """The run the controls describe (validated)."""
        c = self.controls
        main = self.optimizer_panel.read()
        assert main is not None
        other = self.compare_panel.read()
        return WorkbenchSettings(
            dataset=c["dataset"].value,
            model=None if c["model"].value == DEFAULT_MODEL else c["model"].value,
            optimizer=main[0],
            options=main[1],
            batch_size=int(c["batch_size"].value),
            steps=int(c["steps"].value),
            scenario=c["scenario"].value,
            seed=int(c["seed"].value),
            device=c["device"].value,
            compare=None if other is None else other[0],
            compare_options={} if other is None else other[1],
        )

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    # ----------------------------------------------------------------- running
    @property
    def running(self) -> bool:
        return self.runner is not None and self.runner.running

    def _start_clicked(self) -> None:
        if self._starting or self.running:
            log.debug("Start ignored: a run is already starting or going")
            return
        self._starting = True
        self.start_button.disabled = True
        try:
            self.start()
        except _EXPECTED as exc:  # bad input or missing files: shown in the app, one log line
            log.warning("could not start the run: %s", exc)
            self._show_error("Could not start", exc)
        except Exception as exc:  # a bug: keep the traceback in the log
            log.exception("could not start the run")
            self._show_error("Could not start", exc)
        finally:
            self._starting = False
            if not self.running:
                self._set_controls_enabled(True)

    def _show_error(self, what: str, exc: BaseException) -> None:
        self.status.value = (
            f"<b style='color:#b00'>{what}:</b> <pre style='white-space:pre-wrap'>"
            f"{html.escape(str(exc))}</pre>"
        )

    def _clear(self) -> None:
        """Forget the previous run's figure, table and progress (a new or failed Start)."""
        self.result = None
        self.table.value = ""
        self.plot.value = b""
        self.plot.layout.display = "none"
        self.progress.value = 0
        self.progress.bar_style = ""

    def start(self, settings: WorkbenchSettings | None = None) -> BackgroundRunner:
        """Start a run in the background (the controls' run unless ``settings`` is given)."""
        if self.running:
            raise RuntimeError("a run is already going; press Stop first")
        self._clear()
        if settings is not None:
            self.set_settings(settings)
        settings = self.read_settings()
        check_writable(self.output_dir)
        self.status.value = "<i>Loading data and building the models...</i>"
        sources = build_sources(settings)
        labels = list(sources)
        try:
            self.folder = new_run_folder(self.output_dir, labels)
        except OSError:
            for src in sources.values():
                src.close()
            raise
        self.settings = settings
        first = next(iter(sources.values()))
        scenario = first.run.scenario if hasattr(first, "run") else None
        title = f"{settings.dataset} | {' vs '.join(labels)} | batch {settings.batch_size}"
        if settings.scenario != NO_SHIFT:
            title += f" | scenario {settings.scenario}"
        chance = balanced_chance(scenario.num_classes) if scenario is not None else None
        t0 = time.perf_counter()
        with self._plot_lock:
            self._plot = RunPlot(title, per_tensor=self.controls["view"].value == VIEWS[1], chance=chance)
            self._plot.png()  # times one frame for the throttle
        self.runner = BackgroundRunner(
            sources, on_update=self._on_update, on_progress=self._on_progress,
            on_finish=self._on_finish, min_interval=self.min_interval,
            max_draw_fraction=self.max_draw_fraction, draw_estimate=time.perf_counter() - t0,
        )
        self.progress.max = self.runner.total_steps
        self._set_controls_enabled(False)
        self.runner.start()
        self.status.value = f"Running {html.escape(' vs '.join(labels))}..."
        return self.runner

    def stop(self) -> None:
        """Ask the running training thread to stop after its current step."""
        if self.runner is not None and self.running:
            self.runner.stop()
            self.status.value = "<i>Stopping...</i>"

    def wait(self, timeout: float | None = None) -> WorkbenchOutcome | None:
        """Block until the run ends (headless use); the outcome, or None on timeout."""
        if self.runner is None:
            raise RuntimeError("no run has been started; call start() or press Start")
        if not self.runner.join(timeout):
            return None
        if self.runner.error is not None:
            raise RuntimeError(f"the run failed: {self.runner.error}") from self.runner.error
        return self.result

    def run(
        self, settings: WorkbenchSettings | None = None, timeout: float | None = None, *,
        progress: bool = True,
    ) -> WorkbenchOutcome | None:
        """Start and wait: the headless path (papermill, scripts), with a text tqdm bar."""
        runner = self.start(settings)
        if progress:
            deadline = None if timeout is None else time.monotonic() + timeout
            with tqdm(total=runner.total_steps, desc="workbench", unit="step", mininterval=2.0) as bar:
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
            w.disabled = (not enabled and key != "view") or (fixed and key in _SCENARIO_FIXED)
        self.optimizer_panel.disabled = not enabled
        self.compare_panel.disabled = not enabled
        self.use_scenario_length.disabled = not enabled

    def _draw(self, runner: BackgroundRunner, notes: dict[str, str] | None = None) -> RunPlot:
        first = next(iter(runner.sources.values()))
        with self._plot_lock:
            assert self._plot is not None
            self._plot.update(
                runner.records, boundaries=first.boundaries,
                transitions=getattr(first, "transitions", ()), total_steps=runner.total_steps,
                notes=notes,
            )
        return self._plot

    def _final_frame(self, runner: BackgroundRunner, notes: dict[str, str]) -> bytes:
        png = self._draw(runner, notes).png(dpi=100)
        self.plot.value = png
        self.plot.layout.display = None
        self.progress.value = runner.steps_done
        return png

    def _on_progress(self, runner: BackgroundRunner) -> None:
        self.progress.value = runner.steps_done
        self.status.value = html.escape(runner.status_line())

    def _on_update(self, runner: BackgroundRunner) -> None:
        self.plot.value = self._draw(runner).png()
        self.plot.layout.display = None
        self._on_progress(runner)

    def _on_finish(self, runner: BackgroundRunner) -> None:
        try:
            assert self.settings is not None and self.folder is not None
            self.result = finish_run(
                runner, self.settings, self.folder, store_path=self.store_path,
                draw=self._final_frame,
            )
            self.table.value = table_html(self.result.table)
            note = f" (stored as {STORE_STATUS[runner.state]})" if self.result.stored else ""
            self.status.value = (
                html.escape(runner.status_line()) + f" | saved to {html.escape(str(self.folder))}{note}"
            )
        finally:
            self.progress.bar_style = {"finished": "success", "stopped": "warning"}.get(runner.state, "danger")
            if runner.error is not None:
                self._show_error("Run failed", runner.error)
            self._set_controls_enabled(True)

    # ----------------------------------------------------------------- static outputs
    def show_results(self, json_path: str | Path | None = None) -> dict[str, Any]:
        """Display the static PNG and the results table; return the key numbers (also in the
        run folder's JSON, and written to ``json_path`` when given).

        Call it in a notebook cell after a run; the outputs survive in any notebook viewer
        (unlike the live widget). Returns ``{}`` when no run has ended.
        """
        return show_outcome(self.settings, self.result, json_path)
