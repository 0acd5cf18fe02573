"""Every registry optimizer in every stream (issues 9 and 12): names, options, devices, the
Schedule-Free eval switch, the loss closure, and the CLI's rough edges."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from autoopt_lab.optim import registry
from autoopt_lab.streams import StreamRun, parse_optimizers, parse_scenario, run_scenario

SCENARIO = """name="reg"
dataset="fashion-mnist"
model="mnist_cnn"
seed=3
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
shifts=[{kind="inversion"}]
"""


@pytest.fixture(scope="module")
def data(fmnist_train):
    x, y, info = fmnist_train
    return x[:2000], y[:2000], info


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(784, 16)
        self.fc2 = nn.Linear(16, 10)

    def forward(self, x):
        return torch.log_softmax(self.fc2(torch.relu(self.fc1(x.flatten(1)))), 1)


def tiny(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return Tiny()


def options_for(name: str) -> dict:
    return {"lr": 0.05} if registry.get(name).family == "tuned" else {}


@pytest.mark.parametrize("name", registry.names(available=True))
def test_every_registry_optimizer_runs_a_stream(name, data):
    sc = parse_scenario(SCENARIO)
    run = StreamRun(sc, name, hparams=options_for(name), device="cpu", data=data, model=tiny())
    df = run.run()
    run.close()
    assert len(df) == 12 and np.isfinite(df["loss"]).all()
    lr = [c for c in df.columns if c.startswith("lr/")]
    assert sorted(c.removeprefix("lr/") for c in lr) == ["fc1.bias", "fc1.weight", "fc2.bias",
                                                          "fc2.weight"]
    assert np.isfinite(df[lr].to_numpy()).all() and "nonfinite_skips" in df
    s = run.summary()
    assert s["optimizer"] == name and s["family"] == registry.get(name).family
    assert s["identity"]["options"] == registry.get(name).resolve(options_for(name))


def test_spec_strings_reach_the_optimizer(data):
    sc = parse_scenario(SCENARIO)
    run = StreamRun(sc, "autoadam:eps=1e-3:bias_correction=constant", device="cpu", data=data,
                    model=tiny())
    group = run.opt.param_groups[0]
    assert group["eps"] == 1e-3 and group["bias_correction"] == "constant"
    assert run.label.startswith("AutoAdam(")
    with pytest.raises(registry.UnknownOptimizerError, match="no option"):
        StreamRun(sc, "autosgd:eps=1e-3", device="cpu", data=data, model=tiny())
    with pytest.raises(ValueError, match="needs lr"):
        StreamRun(sc, "sgd", device="cpu", data=data, model=tiny())


def test_schedule_free_scores_with_its_evaluation_weights(data):
    pytest.importorskip("schedulefree")
    sc = parse_scenario(SCENARIO)
    run = StreamRun(sc, "sf-sgd", device="cpu", data=data, model=tiny())
    seen = []

    def hook(module, args):
        seen.append((torch.is_grad_enabled(), run.opt.param_groups[0]["train_mode"]))

    handle = run.model.register_forward_pre_hook(hook)
    run.run(4)
    handle.remove()
    scoring = [mode for grad, mode in seen if not grad]
    training = [mode for grad, mode in seen if grad]
    assert len(scoring) == 4 and not any(scoring)  # eval weights for every prediction
    assert training and all(training) and run.opt.param_groups[0]["train_mode"]


def test_step_gets_a_closure_that_recomputes_the_batch_loss_in_train_mode(data):
    sc = parse_scenario(SCENARIO)
    run = StreamRun(sc, "autosgd", device="cpu", data=data, model=tiny())
    calls = []
    original = run.bound.step

    def spy(closure=None):
        assert closure is not None
        loss = closure()
        calls.append((run.model.training, loss.requires_grad, loss.dim()))
        original(closure)

    run.bound.step = spy
    run.run(3)
    assert calls == [(True, True, 0)] * 3


def test_measured_curvature_variant_resumes_to_an_identical_trace(data, tmp_path):
    spec = registry.get("autosgd")
    if "curvature" not in spec.option_names:
        pytest.skip("no measured-curvature option in this build")
    sc = parse_scenario(SCENARIO)
    opts = {"curvature": "measured", "curvature_every": 2}
    full = StreamRun(sc, "autosgd", hparams=opts, device="cpu", data=data, model=tiny()).run()
    part = StreamRun(sc, "autosgd", hparams=opts, device="cpu", data=data, model=tiny())
    part.run(5)
    part.save_checkpoint(tmp_path / "c.ckpt")
    resumed = StreamRun.from_checkpoint(tmp_path / "c.ckpt", device="cpu", data=data,
                                        model=tiny(7))
    pd.testing.assert_frame_equal(resumed.run(), full, check_exact=True)


def test_device_default_is_auto_and_a_missing_gpu_is_one_error(data):
    from autoopt_lab.devices import DeviceUnavailableError, resolve_device

    sc = parse_scenario(SCENARIO)
    run = StreamRun(sc, "sgd", hparams={"lr": 0.1}, data=data, model=tiny())
    assert run.device == resolve_device("auto")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceUnavailableError, match="no CUDA"):
            StreamRun(sc, "sgd", hparams={"lr": 0.1}, device="cuda", data=data, model=tiny())


def test_a_registered_toy_optimizer_is_in_the_cli_choices_and_runs(data, tmp_path):
    from autoopt_lab.cli import build_parser
    from autoopt_lab.optim.registry import OptimizerSpec, Option
    from autoopt_lab.streams.baselines import grid_for

    def factory(named, opts):
        return torch.optim.SGD([p for _, p in named], lr=opts["lr"])

    registry.register(OptimizerSpec("toy-sgd", "Toy SGD", "tuned", "sgd", factory,
                                    options=(Option("lr", None, float),), required=("lr",)))
    try:
        parser = build_parser()
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        assert "toy-sgd" in sub.choices["stream"].format_help()
        assert ("toy-sgd", {}) in parse_optimizers("all")
        assert [g["lr"] for g in grid_for("toy-sgd", "quick")] == [0.01, 0.03, 0.1]
        sc = parse_scenario(SCENARIO)
        trace, summary = run_scenario(sc, "toy-sgd", data=data, device="cpu", grid="quick",
                                      out=tmp_path / "o", progress=False)
        assert set(trace["optimizer"]) == {"toy-sgd"}
        assert summary["optimizers"]["toy-sgd"]["hparams"]["lr"] in (0.01, 0.03, 0.1)
    finally:
        registry.unregister("toy-sgd")


def test_stream_list_into_a_closed_pipe_ends_quietly():
    exe = Path(sys.executable).with_name("autoopt-lab")
    if not exe.exists():
        exe = shutil.which("autoopt-lab")
    if exe is None:
        pytest.skip("autoopt-lab entry point not installed")
    proc = subprocess.run(f"'{exe}' stream --list | head -n 1", shell=True, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0
    assert len(proc.stdout.splitlines()) == 1
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr


def test_a_directory_given_as_a_scenario_says_so(tmp_path, capsys):
    from autoopt_lab.cli import main

    (tmp_path / "x.toml").write_text(SCENARIO)
    assert main(["stream", str(tmp_path), "--validate"]) == 3
    err = capsys.readouterr().err.strip()
    assert "is a directory" in err and "x.toml" in err and len(err.splitlines()) == 1


def test_no_module_keeps_its_own_optimizer_names():
    root = Path(__file__).resolve().parents[1] / "autoopt_lab"
    assert not (root / "streams" / "optimizers.py").exists()
    for path in [*(root / "streams").glob("*.py"), root / "cli" / "stream.py",
                 root / "cli" / "leaderboard.py"]:
        text = path.read_text()
        assert "optim.factory" not in text and "build_optimizer" not in text, path
        for name in ('"autoadagrad"', '"prodigy"', '"dadapt-sgd"', '"sf-sgd"', '"dog"'):
            assert name not in text, f"{path} names {name}"


def test_loss_closure_matches_the_training_loss(data):
    """The closure a measured-curvature step calls computes the same NLL as the step's."""
    sc = parse_scenario(SCENARIO)
    run = StreamRun(sc, "autosgd", device="cpu", data=data, model=tiny())
    got = []
    original = run.bound.step

    def spy(closure=None):
        xb, yb = spy.batch
        with torch.no_grad():
            got.append((closure().item(), F.nll_loss(run.model(xb), yb).item()))
        original(closure)

    real_next = run.sampler.next_batch

    def next_batch():
        spy.batch = real_next()
        return spy.batch

    run.sampler.next_batch = next_batch
    run.bound.step = spy
    run.run(2)
    assert all(a == pytest.approx(b) for a, b in got)
