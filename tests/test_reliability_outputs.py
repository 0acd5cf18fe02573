"""Lose nothing (issue 19): two outputs of one command are never one file, no output
replaces a file of another kind, and two stream commands never share a folder at once."""

from __future__ import annotations

import pytest

from autoopt_lab.cli import main
from autoopt_lab.experiments import ResultsStore, RunConfig


def _train(*extra):
    return ["train", "--dataset", "mnist", "--optimizer", "sgd", "--lr", "0.1", "--epochs", "1",
            "--max-train-samples", "64", "--max-test-samples", "32", "--no-progress", *extra]


@pytest.fixture
def no_training(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("training started before the inputs were checked")

    monkeypatch.setattr("autoopt_lab.experiments.run", refuse)


def _one_line(capsys, command="train"):
    out = capsys.readouterr()
    lines = out.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"autoopt-lab {command}: "), out.err
    return lines[0]


def _store_with_a_run(path):
    ResultsStore(path).add_run(
        RunConfig("mnist", "sgd", lr=0.1, momentum=0.0, batch_size=32, epochs=1, device="cpu"),
        {"final_test_err_pct": 1.0})
    return path.read_bytes()


def test_json_and_store_on_one_file_are_refused_and_the_store_kept(tmp_path, capsys,
                                                                    no_training):
    store = tmp_path / "s.sqlite"
    before = _store_with_a_run(store)
    assert main(_train("--json", str(store), "--store", str(store))) == 2
    assert "same file" in _one_line(capsys)
    assert store.read_bytes() == before and len(ResultsStore(store)) == 1


def test_json_and_trace_on_one_file_are_refused(tmp_path, capsys, no_training):
    out = tmp_path / "x"
    assert main(_train("--json", str(out), "--trace-csv", str(tmp_path / "." / "x"))) == 2
    line = _one_line(capsys)
    assert "--json and --trace-csv are the same file" in line and not out.exists()


@pytest.mark.parametrize("option", ["--json", "--trace-csv"])
def test_an_output_never_replaces_a_file_of_another_kind(tmp_path, capsys, no_training, option):
    store = tmp_path / "s.sqlite"
    before = _store_with_a_run(store)
    assert main(_train(option, str(store))) == 3
    line = _one_line(capsys)
    assert str(store) in line and "SQLite database" in line
    assert store.read_bytes() == before


def test_a_store_named_like_a_report_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("autoopt_lab.experiments.reproduce.reproduce",
                        lambda *a, **k: pytest.fail("work started"))
    out = tmp_path / "out"
    rc = main(["arena", "--quick", "--out", str(out), "--store", str(out / "arena.json"),
               "--dry-run"])
    assert rc == 2 and "arena.json" in _one_line(capsys, "arena")
    assert not (out / "arena.json").exists()
    rc = main(["reproduce", "--out", str(out), "--store", str(out / "summary.json")])
    assert rc == 2 and "summary.json" in _one_line(capsys, "reproduce")
