"""Issue 19: optimizer options are typed from the real signature; non-finite values refused."""

from __future__ import annotations

import math

import pytest

from autoopt_lab.experiments import RunConfig
from autoopt_lab.optim import registry

PEERS = [n for n in registry.names("peer") if registry.get(n).available]
needs_peers = pytest.mark.skipif(len(PEERS) < 7, reason="the peers extra is not installed")


@needs_peers
@pytest.mark.parametrize("name", ["prodigy", "dadapt-sgd", "dadapt-adam", "sf-sgd", "sf-adamw"])
def test_weight_decay_of_every_peer_is_a_float(name):
    assert registry.parse_spec(f"{name}:weight_decay=0.01")[1] == {"weight_decay": 0.01}


@needs_peers
def test_types_come_from_annotations_and_defaults():
    assert registry.parse_spec("sf-sgd:weight_lr_power=2.5")[1] == {"weight_lr_power": 2.5}
    assert registry.parse_spec("dadapt-adagrad:momentum=0.5")[1] == {"momentum": 0.5}
    counts = {"dadapt-sgd": "log_every", "prodigy": "slice_p", "sf-sgd": "warmup_steps"}
    for name, key in counts.items():
        assert registry.parse_spec(f"{name}:{key}=3")[1] == {key: 3}
        with pytest.raises(ValueError, match="not a valid int"):
            registry.parse_spec(f"{name}:{key}=2.5")


@needs_peers
@pytest.mark.parametrize("spec", ["prodigy:d_coef=nan", "prodigy:d_coef=inf", "dog:lr=nan",
                                  "prodigy:betas=(nan,0.9)", "sf-sgd:lr=-inf",
                                  "autosgd:ewma=nan"])
def test_non_finite_values_are_refused(spec):
    with pytest.raises(ValueError, match="finite"):
        registry.parse_spec(spec)


@needs_peers
def test_negative_values_of_non_negative_options_are_refused():
    with pytest.raises(ValueError, match=r"d_coef=-5.0 must be >= 0"):
        registry.parse_spec("prodigy:d_coef=-5")
    with pytest.raises(ValueError, match="must be >= 0"):
        RunConfig("mnist", "dadapt-sgd", options={"weight_decay": -0.1})


@needs_peers
def test_an_infinite_default_may_be_given_and_equal_values_keep_the_default():
    assert registry.parse_spec("prodigy:growth_rate=inf")[1] == {"growth_rate": math.inf}
    plain = RunConfig("mnist", "prodigy")
    assert RunConfig("mnist", "prodigy", options={"weight_decay": 0}).run_id() == plain.run_id()
    assert RunConfig("mnist", "prodigy", options={"weight_decay": "0.0"}).run_id() == (
        plain.run_id())


def test_run_config_refuses_nan_options():
    with pytest.raises(ValueError, match="finite"):
        RunConfig("mnist", "autosgd", options={"max_lr": float("nan")})


def test_auto_option_values_are_checked_when_configured():
    with pytest.raises(ValueError, match="ewma"):
        registry.parse_spec("autosgd:ewma=5")
    with pytest.raises(ValueError, match="ewma"):
        registry.get("autoadam").resolve({"ewma": 1.5})


def test_stream_selections_check_values_too():
    from autoopt_lab.streams.selection import apply_shared_options, parse_optimizers

    with pytest.raises(ValueError, match="ewma"):
        parse_optimizers("autosgd:ewma=5")
    with pytest.raises(ValueError, match="ewma"):
        parse_optimizers([("autoadam", {"ewma": 2.0})])
    with pytest.raises(ValueError, match="finite"):
        apply_shared_options(parse_optimizers("autosgd"), "max_lr=nan")


@needs_peers
@pytest.mark.parametrize("spec", ["sf-sgd:momentum=1.5", "prodigy:betas=(1.5,0.9)",
                                  "dog:reps_rel=0"])
def test_a_peers_own_checks_run_when_configured(spec):
    with pytest.raises(ValueError, match=spec.split(":")[0]):
        registry.parse_spec(spec)
    name, _, option = spec.partition(":")
    with pytest.raises(ValueError):
        RunConfig("mnist", name, options=dict([option.split("=")]))
