"""Issue 12: several seeds, intervals, and tables that say where optimizers separate."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from autoopt_lab.streams import (
    StreamRun,
    aggregate_seeds,
    build_plan,
    mean_ci,
    paired_difference,
    parse_scenario,
    parse_seeds,
    run_scenario,
)
from autoopt_lab.streams.table import comparison_table, optimizer_rows

SCENARIO = """name="seeds"
dataset="fashion-mnist"
model="mnist_cnn"
seed=0
batch_size=16
[metrics]
window=100
warmup=2
[[segments]]
name="a"
steps=6
[[segments]]
name="b"
steps=6
shifts=[{kind="permutation", seed=3}]
"""


@pytest.fixture(scope="module")
def data(fmnist_train):
    x, y, info = fmnist_train
    return x[:2000], y[:2000], info


def test_parse_seeds():
    assert parse_seeds("0-4") == [0, 1, 2, 3, 4]
    assert parse_seeds("3,1,1-2") == [1, 2, 3]
    for bad in ("4-1", "a", "", "-1", "0-100000"):
        with pytest.raises(ValueError, match="seed"):
            parse_seeds(bad)


def test_the_seed_drives_stream_order_model_init_and_shift_draws(data):
    sc = parse_scenario(SCENARIO)
    a = StreamRun(sc, "sgd", hparams={"lr": 0.05}, device="cpu", data=data)
    b = StreamRun(sc.reseeded(1), "sgd", hparams={"lr": 0.05}, device="cpu", data=data)
    again = StreamRun(sc.reseeded(1), "sgd", hparams={"lr": 0.05}, device="cpu", data=data)
    wa, wb = (next(r.model.parameters()).detach().clone() for r in (a, b))
    assert not torch.equal(wa, wb)  # model init
    xa, _ = a.sampler.next_batch()
    xb, _ = b.sampler.next_batch()
    assert not torch.equal(xa, xb)  # stream order
    pa, pb = build_plan(sc)[-1].new, build_plan(sc.reseeded(1))[-1].new
    assert pa.permutation_seed == 3 and pb.permutation_seed != 3  # the shift's draw
    again.sampler.next_batch()
    pd.testing.assert_frame_equal(b.run(), again.run(), check_exact=True)


def test_mean_ci_and_paired_difference_match_scipy():
    v = [0.31, 0.29, 0.35, 0.30, 0.33]
    m = mean_ci(v)
    lo, hi = stats.t.interval(0.95, len(v) - 1, loc=np.mean(v), scale=stats.sem(v))
    assert m["mean"] == pytest.approx(np.mean(v)) and m["ci"] == pytest.approx([lo, hi])
    assert mean_ci([0.3])["ci"] is None and mean_ci([None])["mean"] is None
    a = {0: 0.30, 1: 0.31, 2: 0.32}
    b = {0: 0.35, 1: 0.36, 2: 0.37}
    assert paired_difference(a, b)["separated"] is True
    c = {0: 0.25, 1: 0.36, 2: 0.33}
    assert paired_difference(a, c)["separated"] is False
    assert paired_difference({0: 0.3}, {0: 0.4})["separated"] is None


def _summary(err, rec, status="recovered"):
    return {"prequential_error": err, "health": {"flags": [], "status": "ok"},
            "timing": {"data": 1.0, "eval": 1.0, "train": 2.0, "monitor": 1.0},
            "shifts": [{"segment": 1, "name": "b", "step": 6, "transition": "sudden",
                        "condition": "x", "recovery_steps": rec, "recovered": rec is not None,
                        "status": status, "prequential_error": err,
                        "detection_delay": {"ADWIN": rec}, "lr": None, "momentum": None}]}


def test_aggregate_gives_intervals_for_error_recovery_and_delay():
    agg = aggregate_seeds({0: _summary(0.3, 10), 1: _summary(0.32, 20), 2: _summary(0.31, None,
                                                                                      "not recovered")})
    assert agg["prequential_error"] == pytest.approx(0.31) and len(agg["prequential_error_ci"]) == 2
    sh = agg["shifts"][0]
    assert sh["recovery_steps"] == 15 and sh["recovered"] == "2/3" and len(sh["recovery_ci"]) == 2
    assert sh["recovery_median"] == 20  # the unrecovered seed counts as infinitely slow
    assert sh["detection_delay"]["ADWIN"] == 15 and sh["detected"]["ADWIN"] == "2/3"
    flagged = aggregate_seeds({0: _summary(0.3, 10),
                               1: {**_summary(0.9, None, "diverged"),
                                   "health": {"flags": ["diverged"], "status": "diverged"}}})
    assert flagged["health"]["flags"] == ["diverged"] and flagged["health"]["flagged_seeds"] == 1
    assert flagged["shifts"][0]["readable"] == "1/2"


def test_the_table_marks_where_an_interval_separates_optimizers():
    def entry(errs):
        by = {str(i): e for i, e in enumerate(errs)}
        m = mean_ci(errs)
        return {"prequential_error": m["mean"], "prequential_error_ci": m["ci"],
                "prequential_error_by_seed": by, "seeds": list(range(len(errs))),
                "health": {"flags": []}, "shifts": [], "family": "auto"}

    summary = {"scenario": "s", "optimizers": {
        "best": entry([0.30, 0.31, 0.32]), "close": entry([0.25, 0.36, 0.34]),
        "worse": entry([0.40, 0.41, 0.43])}}
    rows = optimizer_rows(summary)
    by = {r["optimizer"]: r for r in rows}
    assert by["best"]["best"] and by["worse"]["separated_from_best"] is True
    assert by["close"]["separated_from_best"] is False
    md = comparison_table(rows)
    line = next(ln for ln in md.splitlines() if ln.startswith("| s |"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[1].startswith("**0.310**") and cells[2].endswith("~") and cells[3].endswith(">")


def test_run_scenario_over_seeds_writes_intervals_bands_and_per_seed_reports(data, tmp_path):
    from matplotlib.collections import PolyCollection

    from autoopt_lab.streams import plot_comparison

    sc = parse_scenario(SCENARIO)
    trace, summary = run_scenario(sc, "autosgd,sgd:lr=0.05", seeds=[0, 1, 2], data=data,
                                  device="cpu", out=tmp_path / "o", progress=False)
    assert sorted(trace["seed"].unique()) == [0, 1, 2]
    s = summary["optimizers"]["autosgd"]
    assert s["seeds"] == [0, 1, 2] and len(s["prequential_error_ci"]) == 2
    assert set(s["runs"]) == {"0", "1", "2"} and len(s["shifts"][0]["status_by_seed"]) == 3
    assert "detection_delay_ci" in s["shifts"][0] and "recovery_ci" in s["shifts"][0]
    on_disk = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert on_disk["optimizers"]["sgd:lr=0.05"]["seeds"] == [0, 1, 2]
    fig = plot_comparison(trace, sc, summary=summary)
    bands = [c for ax in fig.axes for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(bands) >= 6  # accuracy, lr and momentum bands for both optimizers
    label = fig.axes[0].get_legend().get_texts()[0].get_text()
    assert label.startswith("autosgd (")


def test_cli_seeds_option(tmp_path, capsys):
    from autoopt_lab.cli import main

    p = tmp_path / "s.toml"
    p.write_text(SCENARIO.replace("steps=6", "steps=4"))
    assert main(["stream", str(p), "--optimizer", "sgd:lr=0.05", "--seeds", "0-1",
                 "--out", str(tmp_path / "o"), "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "prequential error" in out and "[" in out  # mean [interval]
    table = (tmp_path / "o" / "table.md").read_text()
    assert "95% t-interval" in table
