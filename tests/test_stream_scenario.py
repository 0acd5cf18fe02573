"""Scenario files: validation errors name the file, the field and what is allowed; catalogue."""

from __future__ import annotations

import pytest

from autoopt_lab.streams import (
    SHIFT_KINDS_ALL,
    ScenarioError,
    catalogue_dir,
    list_catalogue,
    load_scenario,
    parse_scenario,
)

HEAD = """
name = "bad"
dataset = "fashion-mnist"
model = "mnist_cnn"
seed = 0
batch_size = 16
[[segments]]
name = "a"
steps = 50
"""


def write(tmp_path, body: str, head: str = HEAD):
    p = tmp_path / "bad-scenario.toml"
    p.write_text(head + body)
    return p


def error_of(tmp_path, body: str, head: str = HEAD) -> ScenarioError:
    p = write(tmp_path, body, head)
    with pytest.raises(ScenarioError) as info:
        load_scenario(p)
    assert str(p) in str(info.value)
    return info.value


def test_unknown_shift_kind(tmp_path):
    err = error_of(tmp_path, '[[segments]]\nname="b"\nsteps=10\nshifts=[{kind="sepia"}]\n')
    assert err.field == "segments[1].shifts[0].kind"
    assert "sepia" in str(err) and "rotation" in err.allowed and "concept" in err.allowed


def test_unknown_transition_kind(tmp_path):
    err = error_of(tmp_path, '[[segments]]\nname="b"\nsteps=10\ntransition={kind="wobbly"}\n')
    assert err.field == "segments[1].transition.kind"
    assert "gradual" in err.allowed and "recurring" in err.allowed


def test_negative_length(tmp_path):
    err = error_of(tmp_path, '[[segments]]\nname="b"\nsteps=-5\n')
    assert err.field == "segments[1].steps"
    assert "negative" in str(err) and ">= 1" in err.allowed


def test_proportions_must_sum_to_one(tmp_path):
    props = "[0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0, 0, 0, 0]"
    err = error_of(tmp_path, f'[[segments]]\nname="b"\nsteps=10\n'
                             f'shifts=[{{kind="prior", proportions={props}}}]\n')
    assert err.field == "segments[1].shifts[0].proportions"
    assert "sum to 1.2" in str(err) and "summing to 1" in err.allowed


@pytest.mark.parametrize("shift", [
    '{kind="class_incremental", classes=[0, 10]}',
    '{kind="concept", mapping=[[0, 11]]}',
])
def test_class_out_of_range(tmp_path, shift):
    err = error_of(tmp_path, f'[[segments]]\nname="b"\nsteps=10\nshifts=[{shift}]\n')
    assert "out of range" in str(err) and "0 .. 9" in err.allowed


def test_transition_wider_than_segment(tmp_path):
    err = error_of(tmp_path, '[[segments]]\nname="b"\nsteps=10\n'
                             'transition={kind="gradual", width=20}\n'
                             'shifts=[{kind="noise", std=0.3}]\n')
    assert err.field == "segments[1].transition.width"
    assert "wider than its segment" in str(err) and "1 .. 10" in err.allowed


def test_recurring_needs_an_earlier_segment(tmp_path):
    err = error_of(tmp_path, '[[segments]]\nname="b"\nsteps=10\n'
                             'transition={kind="recurring", to="zzz"}\n')
    assert err.field == "segments[1].transition.to" and err.allowed == "a"


def test_incremental_cannot_move_a_permutation(tmp_path):
    err = error_of(tmp_path, '[[segments]]\nname="b"\nsteps=10\n'
                             'transition={kind="incremental", width=5}\n'
                             'shifts=[{kind="permutation", seed=1}]\n')
    assert err.field == "segments[1].transition.kind" and "rotation" in err.allowed


def test_unknown_field_and_bad_dataset(tmp_path):
    err = error_of(tmp_path, "", head=HEAD.replace("seed = 0", "seed = 0\ncolour = 1"))
    assert err.field == "colour"
    err = error_of(tmp_path, "", head=HEAD.replace('"fashion-mnist"', '"imagenet"'))
    assert err.field == "dataset" and "cifar10" in err.allowed


def test_batch_size_of_one_is_rejected(tmp_path):
    err = error_of(tmp_path, '[[segments]]\nname="b"\nsteps=10\nbatch_size=1\n')
    assert err.field == "segments[1].batch_size" and ">= 2" in err.allowed


def test_parse_defaults_and_scaling():
    sc = parse_scenario(HEAD + '[[segments]]\nname="b"\nsteps=30\n'
                               'transition={kind="gradual", width=30}\n'
                               'shifts=[{kind="rotation", degrees=45}]\n', source="x.toml")
    assert sc.total_steps == 80 and sc.boundaries == [50]
    half = sc.scaled(0.5)
    assert [s.steps for s in half.segments] == [25, 15]
    assert half.segments[1].transition.width == 15


def test_catalogue_covers_every_kind_and_transition():
    cat = dict(list_catalogue())
    assert len(cat) >= 8
    kinds, transitions, datasets = set(), set(), set()
    for sc in cat.values():
        datasets.add(sc.dataset)
        kinds |= {s.kind for seg in sc.segments for s in seg.shifts}
        if len({seg.batch_size for seg in sc.segments}) > 1:
            kinds.add("batch_size")
        transitions |= {seg.transition.kind for seg in sc.segments[1:]}
    assert kinds == SHIFT_KINDS_ALL
    assert transitions == {"sudden", "gradual", "incremental", "recurring"}
    assert {"mnist", "cifar10", "fashion-mnist"} <= datasets
    # every MNIST scenario has a Fashion-MNIST twin with the same segments
    for name, sc in cat.items():
        if name.startswith("mnist-"):
            twin = cat["fmnist-" + name.removeprefix("mnist-")]
            assert twin.dataset == "fashion-mnist" and twin.segments == sc.segments
    assert (catalogue_dir() / "README.md").is_file()
