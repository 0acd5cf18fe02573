"""Issue 13, streams side: nothing silently wrong, nothing lost, no hang, one clear line.

Each test is a case the issue lists; each failed (or hung, or gave a traceback) before."""

from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from autoopt_lab.cli import main
from autoopt_lab.streams import (
    CheckpointError,
    CheckpointMismatchError,
    ScenarioTooLargeError,
    StreamRun,
    parse_scenario,
    tune_baseline,
)

HEAD = 'name="f"\ndataset="fashion-mnist"\nmodel="mnist_cnn"\nseed={seed}\nbatch_size={batch}\n'
BODY = """[metrics]
window=200
warmup=3
[[segments]]
name="a"
steps={a}
[[segments]]
name="b"
steps={b}
shifts=[{{kind="inversion"}}]
"""


def scenario(seed=0, batch=16, a=10, b=10):
    return parse_scenario(HEAD.format(seed=seed, batch=batch) + BODY.format(a=a, b=b),
                          source="f.toml")


def write(tmp_path, name="f", **kw):
    p = tmp_path / f"{name}.toml"
    text = HEAD.format(seed=kw.pop("seed", 0), batch=kw.pop("batch", 16)) + BODY.format(
        a=kw.pop("a", 6), b=kw.pop("b", 6))
    p.write_text(text.replace('name="f"', f'name="{kw.pop("sc_name", name)}"'))
    return p


@pytest.fixture(scope="module")
def data(fmnist_train):
    x, y, info = fmnist_train
    return x[:2000], y[:2000], info


class Tiny(nn.Module):
    def __init__(self, logits: bool = False) -> None:
        super().__init__()
        self.fc = nn.Linear(784, 10)
        self.logits = logits

    def forward(self, x):
        z = self.fc(x.flatten(1))
        return z if self.logits else torch.log_softmax(z, 1)


def tiny(seed=0, **kw):
    torch.manual_seed(seed)
    return Tiny(**kw)


def one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


# -- checkpoints ---------------------------------------------------------------------------


def test_a_checkpoint_of_another_configuration_is_refused_with_the_difference(data, tmp_path):
    ckpt = tmp_path / "run.ckpt"
    first = StreamRun(scenario(), "autoadam:eps=1e-3", device="cpu", data=data, model=tiny())
    first.run(7)
    first.save_checkpoint(ckpt)
    cases = [
        (scenario(), "autoadam", "options: eps=0.001 -> eps=1e-08"),
        (scenario(seed=1), "autoadam:eps=1e-3", "seed: 0 -> 1"),
        (scenario(a=40, b=40).scaled(0.25), "autoadam:eps=1e-3", "steps_scale: 1.0 -> 0.25"),
    ]
    for sc, opt, words in cases:
        other = StreamRun(sc, opt, device="cpu", data=data, model=tiny())
        with pytest.raises(CheckpointMismatchError) as info:
            other.resume(ckpt)
        assert words in str(info.value) and "--fresh" in str(info.value)
        assert other.position == 0
    # other data is refused too
    x, y, info_ = data
    other = StreamRun(scenario(), "autoadam:eps=1e-3", device="cpu",
                      data=(x.flip(0), y.flip(0), info_), model=tiny())
    with pytest.raises(CheckpointMismatchError, match="data differs"):
        other.resume(ckpt)
    # the same configuration resumes; asked to, another one starts afresh
    same = StreamRun(scenario(), "autoadam:eps=1e-3", device="cpu", data=data, model=tiny())
    assert same.resume(ckpt) and same.position == 7
    fresh = StreamRun(scenario(), "autoadam", device="cpu", data=data, model=tiny())
    assert not fresh.resume(ckpt, fresh=True) and fresh.position == 0 and not ckpt.exists()


def test_a_damaged_checkpoint_is_one_line_naming_it(data, tmp_path, capsys):
    bad = tmp_path / "run.ckpt"
    bad.write_bytes(b"\x80\x02garbage")
    run = StreamRun(scenario(), "sgd", hparams={"lr": 0.1}, device="cpu", data=data,
                    model=tiny())
    with pytest.raises(CheckpointError) as info:
        run.resume(bad)
    assert str(bad) in str(info.value) and "nothing was written" in str(info.value)
    assert bad.read_bytes() == b"\x80\x02garbage"
    # through the CLI: a finished run, its result removed, a damaged checkpoint left
    sc = write(tmp_path, a=4, b=4)
    out = tmp_path / "out"
    args = ["stream", str(sc), "--optimizer", "sgd:lr=0.05", "--out", str(out),
            "--checkpoint-every", "3", "--threads", "1"]
    assert main(args) == 0
    capsys.readouterr()
    for f in (out / "runs").glob("*.json"):
        f.unlink()
    (out / "runs" / "sgd_lr=0.05-x.ckpt").write_bytes(b"")  # not ours: untouched
    ckpt = next(iter((out / "runs").glob("sgd*seed0.parquet"))).with_suffix(".ckpt")
    ckpt.write_bytes(b"truncated")
    assert main(args) == 3
    err = one_line(capsys)
    assert str(ckpt) in err and "--fresh" in err


def test_checkpoint_every_below_one_is_refused_at_once(tmp_path, capsys):
    sc = write(tmp_path)
    for value in ("-3", "0"):
        t0 = time.perf_counter()
        assert main(["stream", str(sc), "--checkpoint-every", value, "--out",
                     str(tmp_path / "o")]) == 2
        assert "--checkpoint-every must be >= 1" in one_line(capsys)
        assert time.perf_counter() - t0 < 30
    assert not (tmp_path / "o").exists()


# -- sizes -----------------------------------------------------------------------------------


def test_a_huge_scenario_is_refused_with_an_estimate_and_builds_nothing_eagerly(data, tmp_path,
                                                                                capsys):
    huge = write(tmp_path, name="huge", a=10**12, b=10)
    t0 = time.perf_counter()
    assert main(["stream", str(huge), "--validate"]) == 2
    err = one_line(capsys)
    assert "1,000,000,000,010 steps" in err and "would take about" in err and "--max-steps" in err
    # raising the limit is allowed, and the plan is lazy: constructing and stepping is instant
    sc = scenario(a=10**12)
    run = StreamRun(sc, "sgd", hparams={"lr": 0.1}, device="cpu", data=data, model=tiny(),
                    max_steps=10**13)
    assert run.total_steps == 10**12 + 10 and run.sampler.plan[10**12].boundary
    run.step()
    assert time.perf_counter() - t0 < 60


def test_a_batch_larger_than_the_data_set_is_refused(data, tmp_path, capsys):
    with pytest.raises(ScenarioTooLargeError, match="more than the 2,000 samples"):
        StreamRun(scenario(batch=10**9), "sgd", hparams={"lr": 0.1}, device="cpu", data=data,
                  model=tiny())
    big = write(tmp_path, name="big", batch=10**9)
    assert main(["stream", str(big), "--validate"]) == 2
    assert "draws batches of 1,000,000,000" in one_line(capsys)


def test_steps_scale_zero_unknown_options_and_a_missing_gpu_are_one_line(tmp_path, capsys):
    sc = write(tmp_path)
    out = str(tmp_path / "o")
    assert main(["stream", str(sc), "--steps-scale", "0", "--out", out]) == 2
    assert "--steps-scale must be a finite number > 0" in one_line(capsys)
    assert main(["stream", str(sc), "--optimizer", "autosgd", "--auto-options", "eps=1e-3",
                 "--out", out]) == 2
    assert "no selected Auto optimizer" in one_line(capsys)
    assert main(["stream", str(sc), "--optimizer", "autosgd:bogus=1", "--out", out]) == 2
    assert "has no option(s) ['bogus']" in one_line(capsys)
    if not torch.cuda.is_available():
        assert main(["stream", str(sc), "--device", "cuda", "--out", out]) == 2
        assert "no CUDA GPU" in one_line(capsys)
    assert not (tmp_path / "o").exists()


def test_validate_names_an_unknown_model_or_one_that_does_not_fit(tmp_path, capsys):
    unknown = tmp_path / "u.toml"
    unknown.write_text((HEAD.format(seed=0, batch=8) + BODY.format(a=5, b=5))
                       .replace("mnist_cnn", "resnet9000"))
    assert main(["stream", str(unknown), "--validate"]) == 2
    err = one_line(capsys)
    assert "u.toml" in err and "resnet9000" in err and "mnist_cnn" in err
    misfit = tmp_path / "m.toml"
    misfit.write_text((HEAD.format(seed=0, batch=8) + BODY.format(a=5, b=5))
                      .replace("mnist_cnn", "cifar_lenet"))
    assert main(["stream", str(misfit), "--validate"]) == 2
    assert "does not fit fashion-mnist images of shape 1x28x28" in one_line(capsys)
    ok = write(tmp_path, name="ok")
    assert main(["stream", str(ok), "--validate"]) == 0
    assert "valid" in capsys.readouterr().out


def test_a_model_returning_logits_is_refused_before_training(data):
    with pytest.raises(ValueError, match="log-probabilities"):
        StreamRun(scenario(), "sgd", hparams={"lr": 0.1}, device="cpu", data=data,
                  model=tiny(logits=True))


# -- outputs ---------------------------------------------------------------------------------


def test_out_with_results_is_refused_resumed_or_replaced(tmp_path, capsys, monkeypatch):
    sc = write(tmp_path)
    out = tmp_path / "out"
    base = ["stream", str(sc), "--out", str(out), "--threads", "1"]
    assert main(base + ["--optimizer", "sgd:lr=0.05"]) == 0
    capsys.readouterr()
    before = (out / "summary.json").read_text()
    assert main(base + ["--optimizer", "sgd:lr=0.1"]) == 2
    err = one_line(capsys)
    assert "holds the results of another run" in err and "sgd:lr=0.05" in err and "--fresh" in err
    assert (out / "summary.json").read_text() == before
    # the same call again reuses the finished run: nothing trains
    monkeypatch.setattr(StreamRun, "step", lambda self: pytest.fail("should be reused"))
    assert main(base + ["--optimizer", "sgd:lr=0.05"]) == 0
    monkeypatch.undo()
    assert (out / "summary.json").read_text() == before
    capsys.readouterr()
    assert main(base + ["--optimizer", "sgd:lr=0.1", "--fresh"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["optimizers"]) == ["sgd:lr=0.1"]
    assert not list((out / "runs").glob("sgd_lr=0.05*"))


def test_two_scenarios_with_the_same_name_do_not_overwrite_each_other(tmp_path, capsys):
    a = write(tmp_path, name="one", sc_name="same")
    b = write(tmp_path, name="two", sc_name="same", seed=4)
    out = tmp_path / "out"
    assert main(["stream", str(a), str(b), "--optimizer", "sgd:lr=0.05", "--out", str(out),
                 "--threads", "1"]) == 0
    s1 = json.loads((out / "same" / "summary.json").read_text())
    s2 = json.loads((out / "same-2" / "summary.json").read_text())
    assert s1["source"].endswith("one.toml") and s2["source"].endswith("two.toml")
    table = (out / "table.md").read_text()
    assert "| same |" in table and "| same-2 |" in table


def test_an_unwritable_out_fails_before_any_work(tmp_path, capsys, monkeypatch):
    sc = write(tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setattr(StreamRun, "__init__", lambda *a, **k: pytest.fail("work started"))
    assert main(["stream", str(sc), "--out", str(blocker / "sub")]) == 3
    assert "file" in one_line(capsys)
    assert main(["stream", str(sc), "--out", str(blocker)]) == 3
    assert "is a file, not a folder" in one_line(capsys)


# -- caches ----------------------------------------------------------------------------------


def test_the_tuning_cache_keys_on_the_data_passed_in(data, tmp_path, monkeypatch):
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (2000, 1, 28, 28), dtype=torch.uint8, generator=g)
    noise = (x, torch.arange(2000) % 10, data[2])
    grid = [{"lr": 0.01}, {"lr": 0.1}]
    cache = tmp_path / "tuning.json"
    sc = scenario(a=4, b=2)
    tune_baseline(sc, "adagrad", grid=grid, data=noise, device="cpu", cache=cache)
    calls = []
    real = StreamRun.run

    def counting(self, *a, **k):
        calls.append(1)
        return real(self, *a, **k)

    monkeypatch.setattr(StreamRun, "run", counting)
    tune_baseline(sc, "adagrad", grid=grid, data=data, device="cpu", cache=cache)
    assert len(calls) == 2  # tuned again on the real data
    tune_baseline(sc, "adagrad", grid=grid, data=data, device="cpu", cache=cache)
    assert len(calls) == 2  # and that result is reused


# -- runs that cannot be read ------------------------------------------------------------------


def test_a_diverged_run_is_flagged_and_gets_no_recovery_time(data, tmp_path):
    from autoopt_lab.streams.plot import flag_text
    from autoopt_lab.streams.table import markdown_table, table_rows

    run = StreamRun(scenario(), "sgd", hparams={"lr": 1e4}, device="cpu", data=data,
                    model=tiny())
    run.run()
    s = run.summary()
    assert "diverged" in s["health"]["flags"] and s["health"]["diverged_at"] is not None
    assert s["shifts"][0]["recovery_steps"] is None and s["shifts"][0]["status"] == "diverged"
    assert "DIVERGED" in flag_text(s["health"])
    from autoopt_lab.streams import aggregate_seeds

    agg = {"scenario": "f", "optimizers": {"sgd": {**aggregate_seeds({0: s}), "hparams": {}}}}
    assert "⚠ diverged" in markdown_table(table_rows(agg))


class Spiky(nn.Module):
    """Log-probabilities, but a non-finite training loss on some steps (eval stays finite)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(784, 10)
        self.calls = 0

    def forward(self, x):
        out = torch.log_softmax(self.fc(x.flatten(1)), 1)
        if self.training and torch.is_grad_enabled():
            self.calls += 1
            if self.calls % 4 == 0:
                out = out * float("inf")
        return out


def test_skipped_steps_are_flagged_and_withhold_recovery(data):
    torch.manual_seed(0)
    run = StreamRun(scenario(), "autosgd", device="cpu", data=data, model=Spiky())
    df = run.run()
    assert df["nonfinite_skips"].iloc[-1] > 0 and np.isfinite(df["loss"]).all()
    s = run.summary()
    assert "skipped steps" in s["health"]["flags"]
    assert s["shifts"][0]["status"] == "skipped steps" and s["shifts"][0]["recovery_steps"] is None


def test_a_run_at_chance_is_flagged_and_its_shifts_get_no_recovery_time(data):
    run = StreamRun(scenario(a=20, b=20), "sgd", hparams={"lr": 1e-12}, device="cpu",
                    data=data, model=tiny())
    run.run()
    s = run.summary()
    assert s["health"]["status"] == "at chance"
    shift = s["shifts"][0]
    # before: "recovered in 0 steps" because the accuracy never dropped below chance
    assert shift["recovery_steps"] is None and shift["status"] == "at chance before"
    assert not shift["recovered"]


def test_recovery_statuses_in_a_trace_report():
    from autoopt_lab.streams import shift_report

    sc = scenario(a=30, b=20)
    roll = np.r_[np.full(30, 0.8), [0.6, 0.7, 0.8], np.full(17, 0.8)]
    df = pd.DataFrame({"step": np.arange(50), "segment": [0] * 30 + [1] * 20,
                       "batch_size": 16, "accuracy": roll, "rolling_accuracy": roll,
                       "loss": 0.5})
    shift = shift_report(df, sc)["shifts"][0]
    assert shift["recovery_steps"] == 2 and shift["status"] == "recovered"


def test_a_killed_run_resumes_from_its_checkpoint_to_the_same_trace(data, tmp_path):
    from autoopt_lab.streams.experiment import run_one

    sc = scenario(a=8, b=8)
    full, _ = run_one(sc, "autosgd", {}, data=data, device=torch.device("cpu"), progress=False)
    files = tmp_path / "autosgd-seed0"
    part = StreamRun(sc, "autosgd", device="cpu", data=data)
    part.run(11)
    part.save_checkpoint(tmp_path / "autosgd-seed0.ckpt")  # as if killed after step 11
    resumed, _ = run_one(sc, "autosgd", {}, data=data, device=torch.device("cpu"), files=files,
                         checkpoint_every=5, progress=False)
    pd.testing.assert_frame_equal(resumed, full, check_exact=True)
    assert not (tmp_path / "autosgd-seed0.ckpt").exists()  # finished: the result file stays
    assert (tmp_path / "autosgd-seed0.json").is_file()


def test_every_scenario_folder_is_checked_before_any_work(tmp_path, capsys, monkeypatch):
    a = write(tmp_path, name="a1")
    b = write(tmp_path, name="b1")
    out = tmp_path / "out"
    assert main(["stream", str(b), "--optimizer", "sgd:lr=0.05", "--out", str(out / "b1"),
                 "--threads", "1"]) == 0
    capsys.readouterr()
    monkeypatch.setattr(StreamRun, "step", lambda self: pytest.fail("work started"))
    assert main(["stream", str(a), str(b), "--optimizer", "sgd:lr=0.1", "--out", str(out)]) == 2
    err = one_line(capsys)
    assert "b1" in err and "another run" in err
    assert not (out / "a1" / "summary.json").exists()
