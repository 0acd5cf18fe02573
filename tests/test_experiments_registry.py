"""Runs, grids, sweeps and the train/sweep CLI take every optimizer from the registry."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch
from torch import nn

from autoopt_lab.experiments import ResultsStore, RunConfig, grid, run, run_sweep
from autoopt_lab.optim import registry
from autoopt_lab.optim.registry import OptimizerSpec, Option

TINY = dict(
    dataset="mnist",
    batch_size=32,
    epochs=1,
    device="cpu",
    max_train_samples=128,
    max_test_samples=64,
)


class _Recording(torch.optim.SGD):
    """Plain SGD that counts closures, train() and eval() calls (a toy peer)."""

    calls: list[str] = []

    def __init__(self, params, lr=0.05, scale=1.0):
        super().__init__(params, lr=lr * scale)

    def step(self, closure=None):
        if closure is not None:
            _Recording.calls.append("closure")
            assert torch.isfinite(closure())
        return super().step()

    def train(self):
        _Recording.calls.append("train")

    def eval(self):
        _Recording.calls.append("eval")


@pytest.fixture
def toy():
    """A toy tuning-free optimizer, registered for one test."""
    spec = OptimizerSpec(
        name="toyopt",
        display="Toy",
        family="peer",
        base="sgd",
        factory=lambda named, opts: _Recording([p for _, p in named], **opts),
        options=(Option("lr", 0.05, float), Option("scale", 1.0, float)),
        probe=True,
        eval_switch=True,
    )
    registry.register(spec)
    _Recording.calls.clear()
    yield spec
    registry.unregister("toyopt")


def test_tuned_run_ids_are_unchanged_and_auto_ids_carry_the_resolved_options():
    # ids computed by the code before the registry (commit 9a32e00): results stay reusable
    sgd = RunConfig(optimizer="sgd", lr=0.05, momentum=0.9, **{**TINY, "epochs": 2,
                                                              "max_train_samples": 256,
                                                              "max_test_samples": 128})
    adam = dataclasses.replace(sgd, optimizer="adam", lr=1e-3, momentum=None)
    assert (sgd.run_id(), adam.run_id()) == ("76f6b45e2a8cf276", "6599db10d8254913")
    assert "options" not in sgd.identity()
    auto = RunConfig(optimizer="autoadam", **TINY)
    ident = auto.identity()["options"]
    assert "betas" not in ident and ident["ewma"] == registry.get("autoadam").resolve()["ewma"]
    # an option equal to the default is the same run; another value is another run
    assert RunConfig(optimizer="autoadam", options={"ewma": ident["ewma"]}, **TINY).run_id() == (
        auto.run_id()
    )
    assert RunConfig(optimizer="AutoAdam", options={"ewma": "0.95"}, **TINY).run_id() != (
        auto.run_id()
    )


def test_a_changed_library_default_changes_auto_ids_only(toy):
    cfg = RunConfig(optimizer="toyopt", **TINY)
    sgd = RunConfig(optimizer="sgd", lr=0.1, momentum=0.0, **TINY)
    before = (cfg.run_id(), sgd.run_id())
    registry.register(
        dataclasses.replace(toy, options=(Option("lr", 0.05, float), Option("scale", 2.0, float))),
        replace=True,
    )
    assert cfg.run_id() != before[0] and sgd.run_id() == before[1]


def test_options_are_typed_hashable_json_and_validated():
    cfg = RunConfig(optimizer="autoadam", options={"eps": "1e-3", "bias_correction": "constant"},
                    **TINY)
    assert dict(cfg.options) == {"eps": 1e-3, "bias_correction": "constant"}
    assert hash(cfg) == hash(RunConfig(optimizer="autoadam",
                                       options={"bias_correction": "constant", "eps": 0.001},
                                       **TINY))
    again = RunConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg and again.run_id() == cfg.run_id()
    assert cfg.build_options() == {"betas": (0.9, 0.99), "eps": 1e-3,
                                   "bias_correction": "constant"}
    assert cfg.label() == "AutoAdam(eps=0.001, bias_correction=constant) N=32 seed=0"
    # spec-string options for a tuned optimizer fill its fields
    sgd = RunConfig(optimizer="sgd", options={"lr": "0.1", "momentum": "0.9"}, **TINY)
    assert (sgd.lr, sgd.momentum, dict(sgd.options)) == (0.1, 0.9, {})
    with pytest.raises(registry.UnknownOptimizerError, match="no option.*colour.*ewma"):
        RunConfig(optimizer="autosgd", options={"colour": 1}, **TINY)
    with pytest.raises(ValueError, match="ewma='often' is not a valid float"):
        RunConfig(optimizer="autoadam", options={"ewma": "often"}, **TINY)
    with pytest.raises(ValueError, match="lr given twice"):
        RunConfig(optimizer="sgd", lr=0.2, momentum=0.0, options={"lr": 0.1}, **TINY)
    with pytest.raises(ValueError, match="sets its own step size"):
        RunConfig(optimizer="prodigy", lr=0.1, **TINY)


def test_any_registered_optimizer_runs_through_run_with_the_loop_contract(toy):
    res = run(RunConfig(optimizer="TOYOPT", options={"scale": "0.5"}, **TINY), progress=False)
    assert res.config.optimizer == "toyopt" and res.metrics["steps"] == 4
    assert _Recording.calls.count("closure") == 4  # the loss closure reaches step()
    assert _Recording.calls.count("eval") == 1  # evaluation in the optimizer's eval mode
    assert res.trace["lr/conv1.weight"].eq(0.025).all()
    assert math.isfinite(res.metrics["final_test_err_pct"])


@pytest.mark.skipif(not registry.get("prodigy").available, reason="pip install prodigyopt")
def test_a_peer_runs_and_records_its_adapted_step_size():
    res = run(RunConfig(optimizer="prodigy", **TINY), progress=False)
    assert res.trace["lr/conv1.weight"].iloc[-1] > 0
    assert res.metrics["epochs_completed"] == 1


def test_a_model_returning_logits_is_refused_before_training(monkeypatch):
    class Logits(nn.Module):
        def __init__(self, **_):
            super().__init__()
            self.fc = nn.Linear(784, 10)

        def forward(self, x):
            return self.fc(x.flatten(1))

    monkeypatch.setitem(
        __import__("autoopt_lab.models", fromlist=["MODELS"]).MODELS, "logits", Logits
    )
    cfg = RunConfig(optimizer="sgd", lr=0.1, momentum=0.0, model="logits", **TINY)
    with pytest.raises(ValueError, match="model 'logits' must return log-probabilities"):
        run(cfg, progress=False)


def test_grids_and_sweeps_take_names_and_spec_strings(toy, tmp_path):
    cfgs = grid(["mnist"], "sgd,autoadam:ewma=0.95,toyopt:scale=2", batch_sizes=[32, 64],
                seeds=[0], lrs=[0.1, 0.01], momenta=[0.0, 0.9])
    by = {}
    for c in cfgs:
        by.setdefault(c.optimizer, []).append(c)
    assert {k: len(v) for k, v in by.items()} == {"sgd": 8, "autoadam": 2, "toyopt": 2}
    assert all(dict(c.options) == {"ewma": 0.95} for c in by["autoadam"])
    # a spec string fixes a tuned optimizer's lr and momentum instead of the grid's
    fixed = grid(["mnist"], ["sgd:lr=0.3:momentum=0.5"], batch_sizes=[32], seeds=[0, 1])
    assert [(c.lr, c.momentum) for c in fixed] == [(0.3, 0.5)] * 2
    assert {c.optimizer for c in grid(["mnist"], "all", batch_sizes=[32], seeds=[0],
                                      lrs=[0.1], momenta=[0.0])} == set(
        registry.names(available=True)
    )
    small = [dataclasses.replace(c, **{k: v for k, v in TINY.items() if k != "dataset"})
             for c in by["toyopt"][:1]]
    report = run_sweep(small, ResultsStore(tmp_path / "r.sqlite"), executor="serial",
                       progress=False)
    assert report.done == 1


def test_cli_lists_registry_names_and_rejects_unknown_ones_on_stderr(toy, capsys, tmp_path):
    from autoopt_lab.cli import build_parser, main

    parser = build_parser()
    sub = parser._subparsers._group_actions[0].choices
    for command in ("train", "sweep"):
        assert "toyopt" in sub[command].format_help()
        assert "prodigy" in sub[command].format_help()
    rc = main(["sweep", "--store", str(tmp_path / "s.sqlite"), "--datasets", "mnist",
               "--optimizers", "autosgd,toyopt,autoadam:ewma=0.95,sgd", "--batch-sizes", "32",
               "--seeds", "0", "--lrs", "0.1", "--momenta", "0", "--dry-run"])
    assert rc == 0 and "4 runs in the grid" in capsys.readouterr().out
    for argv in (
        ["train", "--optimizer", "rmsprop"],
        ["train", "--optimizer", "autoadam:colour=red"],
        ["sweep", "--store", str(tmp_path / "s.sqlite"), "--optimizers", "sgd,nadam"],
    ):
        assert main(argv) == 2
        out = capsys.readouterr()
        assert out.out == "" and len(out.err.strip().splitlines()) == 1, out
        assert out.err.startswith(f"autoopt-lab {argv[0]}: ")
