"""Lose nothing (issue 19): two outputs of one command are never one file, no output
replaces a file of another kind, and two stream commands never share a folder at once."""

from __future__ import annotations

import pytest
from cli_checks import one_line, tiny_scenario, train_args

from autoopt_lab.cli import main
from autoopt_lab.experiments import ResultsStore, RunConfig


def _store_with_a_run(path):
    ResultsStore(path).add_run(
        RunConfig("mnist", "sgd", lr=0.1, momentum=0.0, batch_size=32, epochs=1, device="cpu"),
        {"final_test_err_pct": 1.0})
    return path.read_bytes()


def test_json_and_store_on_one_file_are_refused_and_the_store_kept(tmp_path, capsys,
                                                                    no_training):
    store = tmp_path / "s.sqlite"
    before = _store_with_a_run(store)
    assert main(train_args("--json", str(store), "--store", str(store))) == 2
    assert "same file" in one_line(capsys)
    assert store.read_bytes() == before and len(ResultsStore(store)) == 1


def test_json_and_trace_on_one_file_are_refused(tmp_path, capsys, no_training):
    out = tmp_path / "x"
    assert main(train_args("--json", str(out), "--trace-csv", str(tmp_path / "." / "x"))) == 2
    line = one_line(capsys)
    assert "--json and --trace-csv are the same file" in line and not out.exists()


@pytest.mark.parametrize("option", ["--json", "--trace-csv"])
def test_an_output_never_replaces_a_file_of_another_kind(tmp_path, capsys, no_training, option):
    store = tmp_path / "s.sqlite"
    before = _store_with_a_run(store)
    assert main(train_args(option, str(store))) == 3
    line = one_line(capsys)
    assert str(store) in line and "SQLite database" in line
    assert store.read_bytes() == before


def test_a_store_named_like_a_report_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("autoopt_lab.experiments.reproduce.reproduce",
                        lambda *a, **k: pytest.fail("work started"))
    out = tmp_path / "out"
    rc = main(["arena", "--quick", "--out", str(out), "--store", str(out / "arena.json"),
               "--dry-run"])
    assert rc == 2 and "arena.json" in one_line(capsys, "arena")
    assert not (out / "arena.json").exists()
    rc = main(["reproduce", "--out", str(out), "--store", str(out / "summary.json")])
    assert rc == 2 and "summary.json" in one_line(capsys, "reproduce")


def _stream(tmp_path, out, optimizer="sgd:lr=0.05", *extra):
    sc = tmp_path / "p.toml"
    sc.write_text(tiny_scenario(3))
    return ["stream", str(sc), "--optimizer", optimizer, "--out", str(out), "--threads", "1",
            *extra]


@pytest.mark.parametrize("bad", ["sgd:lr=-1", "autosgd:ewma=5"])
def test_a_refused_spec_writes_nothing_and_leaves_the_folder_free(tmp_path, capsys,
                                                                   fmnist_train, bad):
    out = tmp_path / "out"
    assert main(_stream(tmp_path, out, bad)) == 2
    line = one_line(capsys, "stream")
    assert bad.split(":")[1].split("=")[0] in line  # the option named
    assert not (out / "stream.json").exists() and not (out / "runs").exists()
    assert main(_stream(tmp_path, out)) == 0


def test_a_folder_in_use_by_another_stream_is_refused_at_once(tmp_path, capsys, fmnist_train):
    import fcntl
    import os

    out = tmp_path / "out"
    out.mkdir()
    fd = os.open(out / ".stream.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(fd, b"4242")
        assert main(_stream(tmp_path, out)) == 3
        line = one_line(capsys, "stream")
        assert "in use by another stream command (pid 4242)" in line
        assert not (out / "stream.json").exists()
    finally:
        os.close(fd)
    assert main(_stream(tmp_path, out)) == 0  # released: the folder is free again


def test_checkpoints_are_written_under_unique_temporary_names(tmp_path, fmnist_train):
    from autoopt_lab.streams import StreamRun
    from autoopt_lab.streams.scenario import parse_scenario

    x, y, info = fmnist_train
    run = StreamRun(parse_scenario(tiny_scenario(3)), "sgd", hparams={"lr": 0.1}, device="cpu",
                    data=(x[:500], y[:500], info))
    run.run(2)
    other = tmp_path / "run.ckpt.tmp"  # another process's temporary file
    other.write_bytes(b"theirs")
    run.save_checkpoint(tmp_path / "run.ckpt")
    assert other.read_bytes() == b"theirs"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.ckpt", "run.ckpt.tmp"]


def test_a_tuning_cache_on_a_stream_output_is_refused(tmp_path, capsys, fmnist_train):
    out = tmp_path / "out"
    args = _stream(tmp_path, out, "sgd", "--tuning-cache", str(out / "summary.json"))
    assert main(args) == 2
    assert "--tuning-cache and --out's summary.json are the same file" in one_line(capsys,
                                                                                     "stream")


def test_a_stream_command_releases_its_folders_when_it_ends(tmp_path, capsys, fmnist_train):
    from autoopt_lab.streams import outdir

    a = tmp_path / "a.toml"
    a.write_text(tiny_scenario(3).replace('name="p"', 'name="a"'))
    b = tmp_path / "b.toml"
    b.write_text(tiny_scenario(3).replace('name="p"', 'name="b"'))
    out = tmp_path / "out"
    assert main(["stream", str(a), str(b), "--optimizer", "sgd:lr=0.05", "--out", str(out),
                 "--threads", "1"]) == 0
    assert outdir._HELD == {}


def test_no_folder_is_claimed_while_another_scenario_is_invalid(tmp_path, capsys, fmnist_train):
    a = tmp_path / "a.toml"
    a.write_text(tiny_scenario(3).replace('name="p"', 'name="a"'))
    b = tmp_path / "b.toml"  # too large a batch for the data: refused
    b.write_text(tiny_scenario(3).replace('name="p"', 'name="b"').replace("batch_size=16",
                                                                  "batch_size=10000000"))
    out = tmp_path / "out"
    assert main(["stream", str(a), str(b), "--optimizer", "sgd:lr=0.05", "--out", str(out),
                 "--threads", "1"]) == 2
    assert not (out / "a" / "stream.json").exists()
