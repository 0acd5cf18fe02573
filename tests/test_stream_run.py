"""Prequential runs: markers, determinism, checkpoint/resume, detectors, report, CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from autoopt_lab.streams import Monitor, StreamRun, parse_scenario, shift_report

BODY = """
[metrics]
window = 200
warmup = 10
[[segments]]
name = "clean"
steps = 30
[[segments]]
name = "rotated"
steps = 20
batch_size = 24
transition = { kind = "gradual", width = 6 }
shifts = [{ kind = "rotation", degrees = 90 }, { kind = "noise", std = 0.2 }]
[[segments]]
name = "swapped"
steps = 20
shifts = [{ kind = "concept", mapping = [[0, 1], [1, 0]] }]
"""


@pytest.fixture(scope="module")
def data(fmnist_train):
    x, y, info = fmnist_train
    return x[:3000], y[:3000], info


def scenario(seed: int = 5):
    head = f'name="tiny"\ndataset="fashion-mnist"\nmodel="mnist_cnn"\nseed={seed}\nbatch_size=32\n'
    return parse_scenario(head + BODY, source="tiny.toml")


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(784, 32)
        self.drop = nn.Dropout(0.2)  # exercises the run's own RNG stream
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x):
        return torch.log_softmax(self.fc2(self.drop(torch.relu(self.fc1(x.flatten(1))))), 1)


def tiny_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return Tiny()


def make_run(data, opt="sgd", **kw):
    hp = {"lr": 0.05, "momentum": 0.9} if opt == "sgd" else {}
    return StreamRun(scenario(), opt, hparams=hp, device="cpu", data=data, model=tiny_model(),
                     **kw)


def assert_same_trace(a: pd.DataFrame, b: pd.DataFrame) -> None:
    assert list(a.columns) == list(b.columns)
    pd.testing.assert_frame_equal(a, b, check_exact=True)


def test_markers_trace_and_report(data):
    run = make_run(data)
    df = run.run()
    assert len(df) == 70 and run.done
    assert df.loc[df["shift"], "step"].tolist() == [30, 50]
    assert df["segment"].tolist() == [0] * 30 + [1] * 20 + [2] * 20
    assert df["batch_size"].tolist() == [32] * 30 + [24] * 20 + [32] * 20
    mixing = df.loc[df["in_transition"], "new_fraction"].to_numpy()
    assert len(mixing) == 6 and np.all(np.diff(mixing) > 0)
    for col in ("loss", "accuracy", "rolling_accuracy", "detect_ADWIN", "detect_PageHinkley",
                "detect_KSWIN"):
        assert col in df
    rep = run.summary()
    assert [s["step"] for s in rep["shifts"]] == [30, 50]
    seg_err = [s["prequential_error"] for s in rep["segments"]]
    for i, (lo, hi) in enumerate([(0, 30), (30, 50), (50, 70)]):
        part = df[(df.step >= lo) & (df.step < hi)]
        expect = 1 - (part.accuracy * part.batch_size).sum() / part.batch_size.sum()
        assert seg_err[i] == pytest.approx(expect)
    assert set(rep["shifts"][0]["detection_delay"]) == {"ADWIN", "PageHinkley", "KSWIN"}
    assert rep["timing"]["train"] > 0


def test_same_seed_same_trace(data):
    a = make_run(data).run()
    b = make_run(data).run()
    assert_same_trace(a, b)


def test_checkpoint_resume_gives_an_identical_trace(data, tmp_path):
    full = make_run(data).run()
    first = make_run(data)
    first.run(37)  # mid-segment, mid-stream
    ckpt = first.save_checkpoint(tmp_path / "run.ckpt")
    # a different global RNG state must not matter after resume
    torch.manual_seed(12345)
    resumed = StreamRun.from_checkpoint(ckpt, device="cpu", data=data, model=tiny_model(99))
    assert resumed.position == 37
    assert_same_trace(resumed.run(), full)


def test_auto_optimizer_records_lr_and_momentum_and_resumes(data, tmp_path):
    pytest.importorskip("autoopt_lab.optim")
    full = make_run(data, "autosgd", hparam_every=7).run()
    lr_cols = [c for c in full.columns if c.startswith("lr/")]
    assert sorted(lr_cols) == ["lr/fc1.bias", "lr/fc1.weight", "lr/fc2.bias", "lr/fc2.weight"]
    assert full[lr_cols].notna().all().all()
    mom = full[[c for c in full.columns if c.startswith("momentum/")]].to_numpy()
    assert np.all((mom >= 0) & (mom <= 1))
    part = make_run(data, "autosgd", hparam_every=7)
    part.run(40)
    ckpt = part.save_checkpoint(tmp_path / "auto.ckpt")
    resumed = StreamRun.from_checkpoint(ckpt, device="cpu", data=data, model=tiny_model(3))
    assert_same_trace(resumed.run(), full)
    part.close()


def test_step_api_and_should_stop(data):
    run = make_run(data)
    rec = run.step()
    assert rec["step"] == 0 and rec["segment_name"] == "clean" and not rec["shift"]
    calls = []
    run.run(50, should_stop=lambda: len(calls.append(1) or calls) > 5)
    assert run.position == 6
    run.run()
    assert run.done
    with pytest.raises(StopIteration):
        run.step()


def test_detectors_find_a_clear_shift_quickly():
    rng = np.random.default_rng(0)
    mon = Monitor(window=100, warmup=20, seed=0)
    losses = np.r_[rng.normal(0.5, 0.05, 300), rng.normal(2.0, 0.05, 100)]
    first = {}
    for t, loss in enumerate(losses):
        rec = mon.update(float(loss), [0], [0])
        for name, hit in rec["detected"].items():
            if hit:
                first.setdefault(name, []).append(t)
    for name in ("ADWIN", "PageHinkley", "KSWIN"):
        before = [t for t in first.get(name, []) if t < 300]
        after = [t for t in first.get(name, []) if t >= 300]
        assert not before, f"{name} false alarm at {before}"
        assert after and after[0] - 300 <= 40, f"{name} delay {after[:1]}"
    assert first["PageHinkley"][0] - 300 <= 5


def test_recovery_time_definition():
    sc = scenario()
    steps = np.arange(70)
    roll = np.r_[np.full(30, 0.8), [0.8, 0.7, 0.6, 0.7, 0.79, 0.8], np.full(14, 0.8),
                 np.full(20, 0.3)]
    df = pd.DataFrame({"step": steps, "segment": [0] * 30 + [1] * 20 + [2] * 20,
                       "batch_size": 32, "accuracy": roll, "rolling_accuracy": roll,
                       "loss": 1.0})
    rep = shift_report(df, sc)
    assert rep["recovery_margin"] == 0.02
    assert rep["shifts"][0]["recovery_steps"] == 4  # 0.79 >= 0.8 - 0.02 at step 34
    assert rep["shifts"][1]["recovery_steps"] is None and not rep["shifts"][1]["recovered"]


def test_cli_list_validate_and_bad_file(tmp_path, capsys):
    from autoopt_lab.cli import main

    assert main(["stream", "--list"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) >= 8 and any(line.startswith("fmnist-rotation-incremental") for line in lines)
    assert main(["stream", "fmnist-concept-swap", "--validate", "--quick"]) == 0
    bad = tmp_path / "oops.toml"
    bad.write_text('name="o"\ndataset="mnist"\nmodel="mnist_cnn"\nseed=0\nbatch_size=8\n'
                   '[[segments]]\nname="a"\nsteps=-3\n')
    assert main(["stream", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "oops.toml" in err and "segments[0].steps" in err and ">= 1" in err


def test_cli_run_writes_trace_summary_and_pngs(tmp_path, capsys):
    from autoopt_lab.cli import main

    out = tmp_path / "out"
    sc = tmp_path / "short.toml"
    sc.write_text('name="short"\ndataset="fashion-mnist"\nmodel="mnist_cnn"\nseed=0\n'
                  'batch_size=16\n[metrics]\nwarmup=5\n[[segments]]\nname="a"\nsteps=12\n'
                  '[[segments]]\nname="b"\nsteps=12\nshifts=[{kind="inversion"}]\n')
    code = main(["stream", str(sc), "--optimizer", "sgd", "--out", str(out),
                 "--grid", "quick", "--threads", "1"])
    assert code == 0
    trace = pd.read_parquet(out / "trace.parquet")
    assert len(trace) == 24 and set(trace["optimizer"]) == {"sgd"}
    summary = json.loads((out / "summary.json").read_text())
    s = summary["optimizers"]["sgd"]
    assert s["shifts"][0]["step"] == 12
    assert len(s["tuning"]["0"]["grid"]) == 6 and s["hparams"] == s["tuning"]["0"]["best"]
    assert (out / "sgd.png").stat().st_size > 10_000 and (out / "comparison.png").is_file()


def cifar_like_data(n: int = 400):
    """Random uint8 3x32x32 arrays: plumbing only (no result is read from them)."""
    from types import SimpleNamespace

    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)
    y = torch.arange(n) % 10
    return x, y, SimpleNamespace(mean=(0.49, 0.48, 0.45), std=(0.25, 0.24, 0.26))


def test_cifar10_catalogue_scenario_runs_with_the_lenet():
    from autoopt_lab.streams import find_scenario

    for name in ("cifar10-rotation-incremental", "cifar10-noise-blur-gradual",
                 "cifar10-concept-swap"):
        sc = find_scenario(name).scaled(0.01)
        run = StreamRun(sc, "sgd", hparams={"lr": 0.01}, device="cpu", data=cifar_like_data())
        df = run.run()
        assert len(df) == sc.total_steps and type(run.model).__name__ == "CifarLeNet"
        assert np.isfinite(df["loss"]).all()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_stream_batches_and_training_on_cuda(data):
    run = StreamRun(scenario(), "autosgd", device="cuda", data=data, model=tiny_model())
    plan = run.sampler.plan[0]
    xb, yb = run.sampler.batch_at_plan(plan)
    assert xb.is_cuda and yb.is_cuda
    df = run.run()
    assert len(df) == 70 and np.isfinite(df["loss"]).all()
    again = StreamRun(scenario(), "autosgd", device="cuda", data=data, model=tiny_model()).run()
    pd.testing.assert_frame_equal(df, again, check_exact=False, rtol=1e-5)


def test_auto_options_go_only_to_the_optimizers_that_take_them():
    """Issue 9: --auto-options used to hand eps/bias_correction to AutoSGD as well."""
    from autoopt_lab.optim import registry
    from autoopt_lab.streams import apply_shared_options, parse_optimizers

    entries = apply_shared_options(parse_optimizers("autosgd,autoadam,sgd"),
                                   "eps=0.001,bias_correction=constant,ewma=0.95")
    assert entries == [("autosgd", {"ewma": 0.95}),
                       ("autoadam", {"eps": 0.001, "bias_correction": "constant", "ewma": 0.95}),
                       ("sgd", {})]
    # a spec string's own value wins over the shared one
    mixed = apply_shared_options(parse_optimizers("autoadam:eps=1e-6"), "eps=1e-3")
    assert mixed == [("autoadam", {"eps": 1e-6})]
    with pytest.raises(registry.UnknownOptimizerError, match="no selected Auto optimizer"):
        apply_shared_options(parse_optimizers("autosgd"), "eps=0.001")
    with pytest.raises(ValueError, match="no Auto optimizer is selected"):
        apply_shared_options(parse_optimizers("sgd"), "ewma=0.9")
    with pytest.raises(ValueError, match="KEY=VALUE|key=value"):
        apply_shared_options(parse_optimizers("autosgd"), "ewma")


def test_baseline_tuning_picks_the_best_and_caches_by_first_segment(data, tmp_path, monkeypatch):
    from autoopt_lab.streams import tune_baseline

    def short(first: str):
        return parse_scenario(
            'name="s"\ndataset="fashion-mnist"\nmodel="mnist_cnn"\nseed=1\nbatch_size=16\n'
            f'[metrics]\nwarmup=2\n[[segments]]\nname="{first}"\nsteps=8\n'
            '[[segments]]\nname="b"\nsteps=4\nshifts=[{kind="inversion"}]\n', source="s.toml")

    grid = [{"lr": 1e-6}, {"lr": 0.05}]
    cache = tmp_path / "tuning.json"
    res = tune_baseline(short("a"), "adagrad", grid=grid, data=data, device="cpu", cache=cache)
    errs = {r["hparams"]["lr"]: r["prequential_error"] for r in res["grid"]}
    assert res["best"] == min(res["grid"], key=lambda r: r["prequential_error"])["hparams"]
    assert res["tuned_on_steps"] == 8 and all(0 <= e <= 1 for e in errs.values())
    monkeypatch.setattr(StreamRun, "run", lambda *a, **k: pytest.fail("should come from cache"))
    again = tune_baseline(short("renamed"), "adagrad", grid=grid, data=data, device="cpu",
                          cache=cache)
    assert again == res


def test_table_rows_accept_string_options():
    from autoopt_lab.streams.table import markdown_table, table_rows

    summary = {"scenario": "s", "optimizers": {"autoadam": {
        "prequential_error": 0.5, "hparams": {"eps": 0.001, "bias_correction": "constant"},
        "shifts": [{"name": "b", "transition": "sudden", "condition": "identity",
                    "recovery_steps": None, "prequential_error": 0.4,
                    "detection_delay": {"ADWIN": None},
                    "lr": {"pre": 0.1, "post_min": 0.1, "post_max": 0.2, "end": 0.1},
                    "momentum": {"pre": 0.5, "post_min": 0.4, "post_max": 0.6, "end": 0.5}}]}}}
    rows = table_rows(summary)
    assert rows[0]["hparams"] == "eps=0.001, bias_correction=constant"
    assert "not recovered" in markdown_table(rows)
