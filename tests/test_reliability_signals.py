"""Ctrl-C and kill -9 (issue 19): an interrupted sweep or stream prints one line saying what
was kept and how to resume and exits 130; workers die with their parent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from cli_checks import one_line

from autoopt_lab.cli import main
from autoopt_lab.experiments import ResultsStore, RunConfig, run_sweep
from autoopt_lab.experiments.executors import Executor, RunOutcome, register_executor

TINY = dict(dataset="mnist", batch_size=32, epochs=1, device="cpu", max_train_samples=64,
            max_test_samples=32)


def _interrupt_line(capsys, command):
    line = one_line(capsys, command)
    assert line.startswith(f"autoopt-lab {command}: interrupted; "), line
    return line


def test_ctrl_c_in_a_sweep_is_one_line_with_what_was_kept(tmp_path, capsys, monkeypatch):
    store = tmp_path / "s.sqlite"

    def one_then_ctrl_c(configs, results, **_):
        results.add_run(configs[0], {"final_test_err_pct": 1.0})
        raise KeyboardInterrupt

    monkeypatch.setattr("autoopt_lab.experiments.run_sweep", one_then_ctrl_c)
    monkeypatch.setattr("autoopt_lab.data.load_arrays", lambda *a, **k: (None, [0] * 64, None))
    rc = main(["sweep", "--store", str(store), "--datasets", "mnist", "--optimizers", "sgd",
               "--batch-sizes", "32", "--lrs", "0.1,0.01", "--momenta", "0", "--seeds", "0",
               "--device", "cpu", "--no-progress"])
    assert rc == 130
    line = _interrupt_line(capsys, "sweep")
    assert f"1 finished run kept in {store}" in line and "rerun the same command" in line


class _Interrupted(Executor):
    aborted = closed = 0

    def __init__(self, **_):
        pass

    def map_unordered(self, configs):
        yield RunOutcome(configs[0], error="boom")
        raise KeyboardInterrupt

    def abort(self):
        type(self).aborted += 1

    def close(self):
        type(self).closed += 1


register_executor("test-interrupted", _Interrupted)


def test_an_interrupted_sweep_aborts_its_workers_instead_of_waiting(tmp_path):
    _Interrupted.aborted = _Interrupted.closed = 0
    cfgs = [RunConfig(optimizer="sgd", lr=lr, momentum=0.0, **TINY) for lr in (0.1, 0.01)]
    with pytest.raises(KeyboardInterrupt):
        run_sweep(cfgs, tmp_path / "s.sqlite", executor="test-interrupted", progress=False)
    assert (_Interrupted.aborted, _Interrupted.closed) == (1, 0)
    assert ResultsStore(tmp_path / "s.sqlite").count("failed") == 1  # kept


def test_ctrl_c_in_a_stream_is_one_line_and_frees_the_folder(tmp_path, capsys, monkeypatch,
                                                             fmnist_train):
    from autoopt_lab.streams import StreamRun

    sc = tmp_path / "p.toml"
    sc.write_text('name="p"\ndataset="fashion-mnist"\nmodel="mnist_cnn"\nseed=0\n'
                  'batch_size=16\n[[segments]]\nname="a"\nsteps=4\n')
    out = tmp_path / "out"
    args = ["stream", str(sc), "--optimizer", "sgd:lr=0.05", "--out", str(out), "--threads",
            "1", "--checkpoint-every", "2"]
    real = StreamRun.step

    def step(self):
        if self.position == 3:
            raise KeyboardInterrupt
        return real(self)

    monkeypatch.setattr(StreamRun, "step", step)
    assert main(args) == 130
    line = _interrupt_line(capsys, "stream")
    assert f"kept in {out}" in line and "checkpoint (every 2 steps)" in line
    assert next((out / "runs").glob("*.ckpt")).is_file()
    monkeypatch.setattr(StreamRun, "step", real)
    assert main(args) == 0  # resumed in the same folder: the lock was released


@pytest.mark.slow
def test_workers_die_with_their_parent_after_kill_9(tmp_path):
    code = textwrap.dedent("""
        import sys, time
        from autoopt_lab.experiments.executors import ProcessExecutor
        ex = ProcessExecutor(workers=1)
        ex._pool.submit(time.sleep, 120)
        while not ex._pool._processes:
            time.sleep(0.05)
        print(*ex._pool._processes, flush=True)
        time.sleep(120)
    """)
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        worker = int(parent.stdout.readline().split()[0])
        time.sleep(1.0)  # let the worker start its watchdog
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        deadline = time.time() + 15
        while time.time() < deadline and _alive(worker):
            time.sleep(0.2)
        assert not _alive(worker), "the worker outlived its parent"
    finally:
        parent.kill()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("command", ["leaderboard", "arena", "reproduce"])
def test_every_store_command_says_what_ctrl_c_kept(tmp_path, command):
    from autoopt_lab.cli import build_parser, interrupted

    store = tmp_path / "s.sqlite"
    ResultsStore(store).add_run(RunConfig(optimizer="sgd", lr=0.1, momentum=0.0, **TINY),
                                {"final_test_err_pct": 1.0})
    args = build_parser().parse_args([command, "--out", str(tmp_path), "--store", str(store)])
    assert interrupted(args) == (f"1 finished run kept in {store}; rerun the same command to "
                                 "resume (finished runs are not redone)")


def test_a_sweep_whose_store_fails_aborts_its_workers_too(tmp_path, monkeypatch):
    _Interrupted.aborted = _Interrupted.closed = 0

    def full(*a, **k):
        raise OSError(28, "No space left on device", str(tmp_path / "s.sqlite"))

    monkeypatch.setattr(ResultsStore, "add_failure", full)
    cfgs = [RunConfig(optimizer="sgd", lr=lr, momentum=0.0, **TINY) for lr in (0.1, 0.01)]
    with pytest.raises(OSError):
        run_sweep(cfgs, tmp_path / "s.sqlite", executor="test-interrupted", progress=False)
    assert (_Interrupted.aborted, _Interrupted.closed) == (1, 0)
