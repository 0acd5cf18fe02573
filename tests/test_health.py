"""Run health has one home (:mod:`autoopt_lab.health`, issue 20): every front-end takes its
thresholds, chance rule and flag words from there."""

from __future__ import annotations

import math

from autoopt_lab import health


def test_every_front_end_uses_the_one_definition():
    import importlib

    from autoopt_lab.experiments import analysis
    from autoopt_lab.online import learner
    from autoopt_lab.streams import health as stream_health
    from autoopt_lab.streams import plot

    run = importlib.import_module("autoopt_lab.experiments.run")  # the module, not run()
    assert run.DIVERGED_LOSS is stream_health.DIVERGED_LOSS is health.DIVERGED_LOSS
    assert learner.is_diverged is run.is_diverged is health.is_diverged
    assert analysis.CHANCE_MARGIN_PCT is run.CHANCE_MARGIN_PCT is health.CHANCE_MARGIN_PCT
    assert stream_health.FLAGS is health.FLAGS
    assert plot.flag_text is health.flag_text


def test_the_chance_rule_on_errors_and_on_accuracy_agree():
    chance_err = health.chance_error_pct(10)
    assert chance_err == 90.0
    for err in (85.0, 87.9, 88.0, 88.1, 95.0):
        acc, chance = (100.0 - err) / 100.0, 1.0 - chance_err / 100.0
        assert health.error_at_chance(err, chance_err) == health.at_chance(
            acc, chance, health.CHANCE_MARGIN_PCT / 100.0 + 1e-12)
    assert health.at_chance(math.nan, 0.1)


def test_flags_are_data_and_words_come_from_them():
    h = {"flags": ["diverged", "skipped steps", "at chance"], "diverged_at": 12,
         "nonfinite_skips": 1}
    assert health.flag_words(h) == ["diverged at step 12", "1 skipped step", "at chance"]
    assert health.flag_text(h) == "DIVERGED at step 12; SKIPPED STEPS (1); AT CHANCE"
    assert health.flags_from_metrics({"diverged": False, "nonfinite_skips": 3}) == [
        "skipped steps"]


def test_the_workbench_stores_health_as_data(tmp_path):
    import pandas as pd

    from autoopt_lab.experiments import ResultsStore
    from autoopt_lab.workbench.storage import store_rows

    table = pd.DataFrame({"steps": [5], "flags": ["diverged at step 3"]}, index=["SGD"])
    ids = store_rows(tmp_path / "s.sqlite", run_name="r", state="finished",
                     lanes={"SGD": {"optimizer": "sgd", "options": {"lr": 1.0}}}, table=table,
                     trace=pd.DataFrame(), common={"config": {}, "metrics": {}},
                     health={"SGD": {"flags": ["diverged"], "diverged_at": 3,
                                     "nonfinite_skips": 0}})
    row = ResultsStore(tmp_path / "s.sqlite").runs().set_index("run_id").loc[ids[0]]
    assert bool(row["diverged"]) and not bool(row["at_chance"])
    assert list(row["health.flags"]) == ["diverged"] and list(row["flags"]) == [
        "diverged at step 3"]
