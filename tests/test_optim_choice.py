"""One optimizer-choice value (optim.Choice): every front-end parses a choice the same way, and
its canonical text keeps the stream keys, checkpoints and variant names they always had."""

from __future__ import annotations

import pytest

from autoopt_lab.experiments.analysis import variant_name
from autoopt_lab.experiments.grids import parse_item, parse_optimizer_items
from autoopt_lab.optim import Choice, registry
from autoopt_lab.optim.spec_strings import choice_text, parse_choices, parse_spec
from autoopt_lab.streams.selection import entry_key, parse_optimizers
from autoopt_lab.workbench.settings import WorkbenchSettings


def _old_entry_key(name, options):
    """selection.entry_key before issue 20 (the stored stream keys)."""
    parts = []
    for k, v in options.items():
        if isinstance(v, tuple | list):
            v = "(" + ",".join(f"{x:g}" if isinstance(x, float) else str(x) for x in v) + ")"
        elif isinstance(v, float):
            v = f"{v:g}"
        parts.append(f"{k}={v}")
    return ":".join([name, *parts])


@pytest.mark.parametrize("text", [
    "autosgd", "autoadam:eps=1e-3:bias_correction=constant", "adam:betas=(0.9,0.99)",
    "sgd:lr=0.1:momentum=0.9", "autosgd-paper:max_lr=0.3", "autosgd:curvature=measured",
    "autoadam:ewma=0.95", "adam:lr=1e-05", "sgd:lr=1", "prodigy:growth_rate=inf",
])
def test_the_canonical_text_is_the_stored_key_and_reads_back(text):
    choice = Choice.parse(text)
    assert choice.text == _old_entry_key(choice.name, choice.options)  # keys stay stable
    assert entry_key(*choice.pair) == choice.text
    assert Choice.parse(choice.text) == choice


def test_a_value_that_g_would_round_is_written_in_full():
    choice = Choice.parse("adam:lr=0.123456789")
    assert choice.text == "adam:lr=0.123456789"  # the old key "adam:lr=0.123457" was lossy
    assert Choice.parse(choice.text) == choice


def test_every_front_end_parses_alike():
    text = "autoadam:ewma=0.95:eps=1e-3"
    want = ("autoadam", {"ewma": 0.95, "eps": 0.001})
    assert parse_spec(text) == parse_item(text) == want
    assert parse_optimizer_items(text) == parse_optimizers(text) == [want]
    s = WorkbenchSettings(optimizer=text, steps=10)
    assert (s.optimizer, s.options) == want
    assert registry.parse_spec(text) == want  # the registry's old name still answers


def test_one_error_for_an_unknown_option_or_name():
    for parse in (parse_spec, parse_item, parse_optimizers, lambda t: Choice.parse(t)):
        with pytest.raises(registry.UnknownOptimizerError, match=r"has no option\(s\) \['ewma'\]"):
            parse("sgd:ewma=0.9")
        with pytest.raises(registry.UnknownOptimizerError, match="unknown optimizer 'nope'"):
            parse("nope")


def test_equal_whatever_the_order_and_one_package_check():
    a, b = Choice.parse("autoadam:eps=1e-3:ewma=0.9"), Choice.parse("autoadam:ewma=0.9:eps=1e-3")
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert parse_choices("autosgd,autosgd", unique=True) == [Choice("autosgd", {})]
    assert Choice.parse("sgd:lr=0.1").require_available().name == "sgd"


def test_variant_names_use_the_canonical_text_by_key():
    assert variant_name("autoadam", {"ewma": 0.95, "eps": 0.001}) == "autoadam:eps=0.001:ewma=0.95"
    assert variant_name("sgd", None) == "sgd"
    assert variant_name("adam", {"betas": [0.9, 0.99]}) == choice_text("adam", {"betas": (0.9, 0.99)})


def test_the_registry_does_not_import_the_modules_that_import_it():
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(registry))
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not imported & {"bound", "spec_strings", ".bound", ".spec_strings"}
    assert registry.build is not None and registry.BoundOptimizer is not None
