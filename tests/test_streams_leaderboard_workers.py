"""The leaderboard's worker processes (scheduled by the sweep's executors.bounded_unordered)
give the cells one process gives, and stop where they are told to."""

from __future__ import annotations

import pytest
import torch

from autoopt_lab.streams import leaderboard as lb


@pytest.fixture
def one_thread():
    """Workers run on one torch thread; so does the in-process run here (float sums split
    across threads would differ in their last bits)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.slow
def test_two_workers_give_the_results_of_one_and_stop_on_request(tmp_path, one_thread):
    plan = lb.plan_leaderboard("quick", scenarios=["fmnist-concept-swap"],
                               optimizers="autosgd,sgd,prodigy", steps_scale=0.02)
    errors = {}
    for workers in (1, 2):
        store = tmp_path / f"w{workers}.sqlite"
        report = lb.run_leaderboard(plan, store, device="cpu", progress=False, workers=workers)
        assert (report["ran"], report["failed"]) == (3, 0)
        frame = lb.leaderboard_frame(store, plan)
        errors[workers] = dict(zip(frame["optimizer"], frame["prequential_error"], strict=True))
    assert errors[1] == errors[2]
    answers = iter([False])
    report = lb.run_leaderboard(plan, tmp_path / "stop.sqlite", device="cpu", progress=False,
                                workers=2, should_stop=lambda: next(answers, True))
    assert report["stopped"] and report["ran"] == 1
