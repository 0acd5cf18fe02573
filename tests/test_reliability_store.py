"""Results stores fail in one line naming the file (issue 19): a foreign SQLite file, a store
locked by another process, a full disk at creation and mid-sweep."""

from __future__ import annotations

import errno
import functools
import sqlite3

import pytest
from cli_checks import one_line

from autoopt_lab.cli import main
from autoopt_lab.experiments import ResultsStore, RunConfig

CFG = RunConfig("mnist", "sgd", lr=0.1, momentum=0.0, batch_size=32, epochs=1, device="cpu")


def _train(store):
    return ["train", "--dataset", "mnist", "--optimizer", "sgd", "--lr", "0.1", "--epochs", "1",
            "--max-train-samples", "64", "--max-test-samples", "32", "--no-progress",
            "--store", str(store)]


@pytest.fixture(autouse=True)
def no_training(monkeypatch):
    monkeypatch.setattr("autoopt_lab.experiments.run",
                        lambda *a, **k: pytest.fail("training started"))


def test_a_foreign_sqlite_file_with_its_own_runs_table_is_refused_untouched(tmp_path, capsys):
    path = tmp_path / "app.sqlite"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE runs (id INTEGER, name TEXT)")
    con.execute("INSERT INTO runs VALUES (1, 'x')")
    con.commit()
    con.close()
    before = path.read_bytes()
    assert main(_train(path)) == 2
    line = one_line(capsys)
    assert str(path) in line and "another program" in line and "nothing was written" in line
    assert path.read_bytes() == before


def test_a_store_locked_by_another_process_is_named_at_once(tmp_path, capsys, monkeypatch):
    path = tmp_path / "s.sqlite"
    ResultsStore(path)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    monkeypatch.setattr(ResultsStore, "busy_timeout_s", 0.2)
    try:
        assert main(_train(path)) == 3
        line = one_line(capsys)
        assert f"results store {path} is locked by another process" in line
    finally:
        holder.execute("ROLLBACK")
        holder.close()


class _FullDisk(sqlite3.Connection):
    """A connection on a full disk: every write fails as SQLite reports it."""

    def execute(self, sql, *args):
        if not sql.lstrip().upper().startswith(("SELECT", "PRAGMA TABLE_INFO", "PRAGMA SYNC")):
            raise sqlite3.OperationalError("database or disk is full")
        return super().execute(sql, *args)

    def executescript(self, sql):
        raise sqlite3.OperationalError("database or disk is full")


def _fill_disk(monkeypatch):
    monkeypatch.setattr("autoopt_lab.experiments.store.sqlite3.connect",
                        functools.partial(sqlite3.connect, factory=_FullDisk))


def test_a_full_disk_at_store_creation_is_one_line_naming_the_store(tmp_path, capsys,
                                                                       monkeypatch):
    path = tmp_path / "new.sqlite"
    _fill_disk(monkeypatch)
    with pytest.raises(OSError) as info:
        ResultsStore(path)
    assert info.value.errno == errno.ENOSPC and str(path) in str(info.value)
    assert main(_train(path)) == 3
    line = one_line(capsys)
    assert "[Errno 28]" in line and str(path) in line


def test_a_full_disk_mid_sweep_is_one_line_naming_the_store(tmp_path, capsys, monkeypatch):
    path = tmp_path / "s.sqlite"
    ResultsStore(path).add_run(CFG, {"final_test_err_pct": 1.0})

    def sweep_on_a_full_disk(configs, store, **_):
        _fill_disk(monkeypatch)
        store.add_run(configs[0], {"final_test_err_pct": 2.0})

    monkeypatch.setattr("autoopt_lab.experiments.run_sweep", sweep_on_a_full_disk)
    monkeypatch.setattr("autoopt_lab.data.load_arrays", lambda *a, **k: (None, [0] * 64, None))
    rc = main(["sweep", "--store", str(path), "--datasets", "mnist", "--optimizers", "sgd",
               "--batch-sizes", "32", "--lrs", "0.01", "--momenta", "0", "--seeds", "0",
               "--device", "cpu", "--no-progress"])
    assert rc == 3
    line = one_line(capsys, "sweep")
    assert "[Errno 28]" in line and str(path) in line and "resume" in line
    monkeypatch.undo()
    assert len(ResultsStore(path)) == 1  # the earlier run is kept


def test_a_full_disk_writing_a_json_output_names_the_file(tmp_path, capsys, monkeypatch):
    from types import SimpleNamespace

    import pandas as pd

    metrics = {"data_source": "x", "train_samples": 64, "test_samples": 32,
               "train_err_pct_per_epoch": [50.0], "test_err_pct_per_epoch": [50.0],
               "diverged": False, "final_train_err_pct": 50.0, "final_test_err_pct": 50.0,
               "wall_time_s": 0.1, "device_used": "cpu"}
    monkeypatch.setattr("autoopt_lab.experiments.run", lambda *a, **k: SimpleNamespace(
        run_id="r", metrics=metrics, trace=pd.DataFrame({"step": [1]})))

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("json.dump", full)
    out = tmp_path / "run.json"
    args = _train(tmp_path / "s.sqlite")[:-2] + ["--json", str(out), "--batch-size", "32"]
    assert main(args) == 3
    line = one_line(capsys)
    assert "[Errno 28]" in line and str(out) in line


def test_a_full_disk_writing_a_stream_file_names_it(tmp_path, monkeypatch):
    from autoopt_lab.streams import outdir

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(outdir.os, "replace", full)
    target = tmp_path / "summary.json"
    with pytest.raises(OSError) as info:
        outdir.atomic_write_text(target, "{}")
    assert info.value.errno == errno.ENOSPC and str(target) in str(info.value)
    assert list(tmp_path.iterdir()) == []  # no temporary file left behind


def test_a_store_locked_by_another_process_names_its_pid(tmp_path, monkeypatch):
    import subprocess
    import sys

    path = tmp_path / "s.sqlite"
    ResultsStore(path)
    code = ("import sqlite3, sys, time\n"
            f"c = sqlite3.connect({str(path)!r}, isolation_level=None)\n"
            "c.execute('BEGIN EXCLUSIVE'); print('locked', flush=True); time.sleep(30)\n")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        monkeypatch.setattr(ResultsStore, "busy_timeout_s", 0.2)
        with pytest.raises(OSError) as info:
            ResultsStore(path).add_run(CFG, {"final_test_err_pct": 1.0})
        assert f"open in process {holder.pid}" in str(info.value)
    finally:
        holder.kill()
        holder.wait()
