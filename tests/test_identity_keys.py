"""Stored keys never change: results stores are keyed by ``RunConfig.run_id`` (sha256) and
stream checkpoints, result files and caches by ``identity.digest`` (blake2b). The values
below were recorded before the two hashes moved to :mod:`autoopt_lab.identity` (issue 20);
a store or checkpoint written before must still be found.
"""

from __future__ import annotations

import pytest

from autoopt_lab import identity
from autoopt_lab.experiments import RunConfig, config_key
from autoopt_lab.streams import identity as stream_identity
from autoopt_lab.streams.scenario import parse_scenario

SCENARIO = ('name="t"\ndataset="mnist"\nmodel="m"\nseed=0\nbatch_size=4\n'
            '[[segments]]\nname="a"\nsteps=8\n')


@pytest.fixture
def reference_data(monkeypatch):
    # ids of runs on the data sets' reference content carry no data hash
    monkeypatch.setattr("autoopt_lab.data.fingerprint.run_data_key", lambda name: None)


def test_run_ids_are_the_ones_stores_were_written_with(reference_data):
    assert RunConfig("mnist", "sgd", lr=0.1, momentum=0.9).run_id() == "71784a1870654d30"
    # An Auto run's id holds its resolved options, so it changes when a library default does
    # (by design: a store must not hand back a run of the old default). It was 00cbbcad52a885d6
    # before the decoupled step became AutoAdam's default (issue 18).
    assert RunConfig("mnist", "autoadam", options={"ewma": 0.95}).run_id() == "f4184f4a2f32f676"
    assert RunConfig("mnist", "adam", lr=1e-3, engine="stacked").run_id() == "ecef380ae180f351"


def test_stream_digests_are_the_ones_checkpoints_were_written_with():
    assert stream_identity.scenario_hash(parse_scenario(SCENARIO)) == (
        "ad587c9c1f3bfba0092ec794efc9e904")
    assert stream_identity.digest(["x", 0.1], 4) == "b19199a1"


def test_each_name_has_one_home():
    assert config_key is identity.config_key
    assert stream_identity.digest is identity.digest
    assert stream_identity.library_version is identity.library_version
    from autoopt_lab.experiments import library_versions

    assert library_versions is identity.library_versions


def test_one_seed_parser():
    from autoopt_lab import seeds
    from autoopt_lab.experiments import options
    from autoopt_lab.streams import modes

    assert options.parse_seeds is modes.parse_seeds is seeds.parse_seeds
    assert seeds.parse_seeds("3,1,1-2") == [1, 2, 3]
