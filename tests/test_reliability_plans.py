"""Absurd plans are refused at once with their size and an estimate, and plans that would
run nothing are refused (issue 19)."""

from __future__ import annotations

import time

import pytest
from cli_checks import one_line

from autoopt_lab.cli import main

SWEEP = ["sweep", "--datasets", "mnist", "--optimizers", "sgd", "--batch-sizes", "32",
         "--lrs", "0.1", "--momenta", "0", "--max-train-samples", "64",
         "--max-test-samples", "32", "--no-progress", "--device", "cpu"]


def test_a_reversed_seed_range_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main([*SWEEP, "--store", str(tmp_path / "s.sqlite"), "--seeds", "5-2"])
    assert info.value.code == 2
    assert "'5-2' is reversed (give 2-5)" in capsys.readouterr().err
    assert not (tmp_path / "s.sqlite").exists()


@pytest.mark.parametrize("command", ["sweep", "arena"])
def test_a_huge_seed_range_is_refused_at_once_with_an_estimate(tmp_path, capsys, command):
    t0 = time.perf_counter()
    if command == "sweep":
        with pytest.raises(SystemExit):
            main([*SWEEP, "--store", str(tmp_path / "s.sqlite"), "--seeds", "0-100000000",
                  "--dry-run"])
        err = capsys.readouterr().err
    else:
        rc = main(["arena", "--quick", "--seeds", "0-100000000", "--dry-run", "--out",
                   str(tmp_path / "a")])
        assert rc == 2
        err = one_line(capsys, "arena")
    assert time.perf_counter() - t0 < 5
    assert "100,000,001 seeds" in err and "years" in err


def test_a_plan_over_the_run_limit_is_refused_before_it_is_built(tmp_path, capsys,
                                                                   monkeypatch):
    store = tmp_path / "s.sqlite"
    rc = main([*SWEEP, "--store", str(store), "--seeds", "0-9", "--max-runs", "5", "--dry-run"])
    assert rc == 2
    err = one_line(capsys, "sweep")
    assert "plans 10 runs, over the limit of 5" in err and "--max-runs" in err
    assert not store.exists()
    rc = main(["arena", "--quick", "--max-runs", "3", "--dry-run", "--out", str(tmp_path / "a")])
    assert rc == 2 and "the arena plans" in one_line(capsys, "arena")
    assert main([*SWEEP, "--store", str(store), "--seeds", "0-9", "--dry-run"]) == 0
    assert "10 runs in the grid" in capsys.readouterr().out
