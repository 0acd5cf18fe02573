"""The workbench notebook, kernel side: set the widgets, click Start, click Stop while it
trains (testbook); and the headless papermill run in quick mode."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import nbformat
import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "workbench.ipynb"

pytestmark = pytest.mark.notebook


def _cell_index(nb, needle: str) -> int:
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and needle in cell.source:
            return i
    raise AssertionError(f"no code cell containing {needle!r}")


def test_notebook_is_committed_thin_and_without_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert sum("parameters" in c.metadata.get("tags", []) for c in code) == 1
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code)
    imports = [ln for c in code for ln in c.source.splitlines() if ln.startswith(("import ", "from "))]
    assert all(ln.split()[1].split(".")[0] in {"autoopt_lab", "logging"} for ln in imports), imports
    assert nb.metadata["kernelspec"]["name"] == "python3"


def test_widgets_start_and_stop_while_training(tmp_path):
    testbook = pytest.importorskip("testbook").testbook
    nb = nbformat.read(NOTEBOOK, as_version=4)
    build = _cell_index(nb, "Workbench(")
    results = _cell_index(nb, "show_results")
    out = tmp_path / "out"
    with testbook(str(NOTEBOOK), execute=False, timeout=600) as tb:
        tb.execute_cell("parameters")
        tb.inject(
            f"output_dir = {str(out)!r}; store_path = {str(tmp_path / 'store.sqlite')!r}; autostart = False"
        )
        tb.execute_cell(build)
        # Set the widgets as a user would; a log handler catches warnings and tracebacks.
        tb.inject(
            """
            import logging
            class _Catch(logging.Handler):
                def __init__(self):
                    super().__init__(logging.DEBUG)
                    self.records = []
                def emit(self, record):
                    self.records.append(record)
            _catch = _Catch()
            logging.getLogger("autoopt_lab").addHandler(_catch)
            c = app.controls
            c["scenario"].value = "mnist-permutation-sudden"
            main, other = app.optimizer_panel, app.compare_panel
            other.menu.value = "autosgd"
            main.menu.value = "sgd"
            assert "momentum" in main.fields and "trust_ratio" not in main.fields, "SGD's panel"
            assert "trust_ratio" in other.fields, "AutoSGD's panel"
            assert main.fields["momentum"] is not other.fields["momentum"], "each panel has its own momentum"
            assert main.fields["lr"] is not other.fields["lr"], "each panel has its own lr"
            main.fields["lr"].value = "0.05"
            main.fields["momentum"].value = "0.5"
            c["steps"].value = 4000
            c["seed"].value = 1
            import torch; torch.set_num_threads(1)
            """
        )
        assert tb.value("app.plot.layout.display") == "none"  # no empty image before a run
        tb.inject("app.start_button.click()")
        # The click returned: the kernel is free while the thread trains.
        assert tb.value("app.running") is True
        assert tb.value("app.stop_button.disabled") is False
        # Extra clicks while it runs are ignored, without a log line or a traceback.
        tb.inject("_first = app.runner; app.start_button.click(); app.start_button.click()")
        assert tb.value("app.runner is _first") is True
        assert tb.value("app.runner.wait_for_steps(5, timeout=300)") is True
        tb.inject("import time; _t0 = time.perf_counter(); app.stop_button.click(); app.runner.join(120)")
        stop_latency = tb.value("time.perf_counter() - _t0")
        assert tb.value("app.runner.state") == "stopped"
        steps = tb.value("app.runner.steps_done")
        assert 5 <= steps < 4000
        assert stop_latency < 60  # Stop click to the end of the run, end-of-run files included
        # ...and the training loop itself ended within a few steps of the click.
        assert tb.value("app.result.metrics['stop_latency_seconds']") < 15
        assert tb.value("app.progress.bar_style") == "warning"
        assert tb.value("len(app.plot.value) > 1000 and app.plot.value[:4] == b'\\x89PNG'") is True
        assert tb.value("list(app.result.table.index)") == ["SGD(lr=0.05, momentum=0.5)", "AutoSGD"]
        assert tb.value("[int(v) for v in app.result.table['steps']]") == [steps, steps]
        assert tb.value("'<table' in app.table.value") is True
        # No traceback anywhere, no warning from the app's Start/Stop handling.
        assert tb.value(
            "[r.getMessage() for r in _catch.records if r.exc_info or (r.levelno >= "
            "logging.WARNING and r.name == 'autoopt_lab.workbench.app')]"
        ) == []
        folder = Path(tb.value("str(app.result.folder)"))
        tb.execute_cell(results)
        outputs = tb.cells[results]["outputs"]
        kinds = {k for o in outputs for k in o.get("data", {})}
        assert {"image/png", "text/html"} <= kinds
    assert folder.parent == out
    summary = json.loads((folder / "workbench_metrics.json").read_text())
    assert summary["state"] == "stopped" and summary["steps"] == steps
    assert summary["settings"]["scenario"] == "mnist-permutation-sudden"
    assert (folder / "workbench.png").read_bytes()[:4] == b"\x89PNG"
    assert (folder / "workbench_trace.csv").stat().st_size > 0
    with sqlite3.connect(tmp_path / "store.sqlite") as con:  # a stopped run is never "done"
        assert "done" not in {r[0] for r in con.execute("SELECT status FROM runs")}


def test_papermill_headless_quick_run(tmp_path):
    papermill = pytest.importorskip("papermill")
    out_nb = tmp_path / "workbench-out.ipynb"
    out_dir = tmp_path / "figures"
    store = tmp_path / "results.sqlite"
    papermill.execute_notebook(
        str(NOTEBOOK),
        str(out_nb),
        parameters={
            "autostart": True,
            "quick": True,
            "steps": 40,
            "output_dir": str(out_dir),
            "store_path": str(store),
        },
        cwd=str(tmp_path),
        kernel_name="python3",
        progress_bar=False,
    )
    nb = nbformat.read(out_nb, as_version=4)
    kinds = {k for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) for k in o.get("data", {})}
    assert {"image/png", "text/html"} <= kinds  # the static figure and the results table
    (folder,) = out_dir.iterdir()  # the run's own folder
    summary = json.loads((folder / "workbench_metrics.json").read_text())
    assert summary["state"] == "finished" and summary["steps"] == 40
    assert summary["settings"]["scenario"] == "fmnist-rotation-incremental"
    assert len(summary["lanes"]) == 2 and "shift_report" in summary
    assert set(summary["flags"]) == {lane["optimizer"] for lane in summary["lanes"]}
    assert 0.0 <= summary["draw_fraction"] < 0.5
    with sqlite3.connect(store) as con:
        rows = con.execute("SELECT optimizer, sweep, status FROM runs ORDER BY optimizer").fetchall()
    assert rows == [("autosgd", "workbench", "done"), ("sgd", "workbench", "done")]


def test_the_notebook_is_built_by_the_one_builder():
    from autoopt_lab import notebooks

    assert "workbench.ipynb" in notebooks.notebook_cells()
    assert "workbench.ipynb" not in notebooks.stale()
