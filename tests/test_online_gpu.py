"""The online learners on CUDA: seeded runs repeat, match the CPU closely, pickle. Skipped without CUDA."""

from __future__ import annotations

import pickle
import random

import pytest
import torch

from autoopt_lab.online import MLP, TorchClassifier

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def stream(n: int = 120) -> list:
    rng = random.Random(0)
    out = []
    for t in range(n):
        x = {"a": rng.gauss(0, 1), "b": rng.gauss(0, 1)}
        if t > 40:
            x["c"] = rng.gauss(0, 1)
        out.append((x, "pos" if x["a"] + x.get("c", 0.0) > 0 else "neg"))
    return out


def run(device: str, optimizer: str) -> tuple[list, TorchClassifier]:
    model = TorchClassifier(MLP(hidden=(8,)), optimizer=optimizer, batch_size=4, seed=0,
                            device=device)
    out = []
    for x, y in stream():
        out.append(model.predict_proba_one(x))
        model.learn_one(x, y)
    return out, model


@pytest.mark.parametrize("optimizer", ["autoadagrad-paper", "autosgd", "sf-sgd"])
def test_cuda_runs_repeat_and_follow_the_cpu(optimizer):
    cuda, model = run("cuda", optimizer)
    assert run("cuda", optimizer)[0] == cuda
    assert next(model.module_.parameters()).device.type == "cuda"
    cpu, _ = run("cpu", optimizer)
    for a, b in zip(cpu, cuda, strict=True):
        assert a == pytest.approx(b, abs=1e-3)
    copy = pickle.loads(pickle.dumps(model))
    x = stream()[0][0]
    assert copy.predict_proba_one(x) == model.predict_proba_one(x)
