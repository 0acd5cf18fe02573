"""AutoSGD stability with and without the max_lr trust region, on full Fashion-MNIST.

One epoch of the paper's MNIST CNN at N = 128 per (max_lr, seed); prints one JSON line per run
(test error, whether the loss went non-finite or above 1e4, the final mean lr). Offline data:
Debian's dataset-fashion-mnist.

    python benchmarks/max_lr_stability.py
"""

from __future__ import annotations

import json
import time

import torch
import torch.nn.functional as F

import autoopt_lab
from autoopt_lab.data import load_arrays
from autoopt_lab.models import build_model

BATCH = 128


def normalise(images: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    return (images.float() / 255 - mean) / std


def one_run(max_lr: float, seed: int, data: tuple) -> dict:
    x, y, xt, yt = data
    torch.manual_seed(seed)
    model = build_model("mnist_cnn").train()
    opt = autoopt_lab.AutoSGD(model.named_parameters(), max_lr=max_lr)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    diverged, start = False, time.time()
    with autoopt_lab.track(model):
        for i in range(0, len(x) - BATCH + 1, BATCH):
            idx = perm[i : i + BATCH]
            opt.zero_grad()
            loss = F.nll_loss(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
            if not torch.isfinite(loss) or loss.item() > 1e4:
                diverged = True
                break
    model.eval()
    with torch.no_grad():
        err = (model(xt).argmax(1) != yt).float().mean().item() * 100
    lrs = [v["lr"] for v in opt.hparams().values()]
    return {
        "max_lr": max_lr,
        "seed": seed,
        "test_err": round(err, 2),
        "diverged": diverged,
        "mean_lr_end": round(sum(lrs) / len(lrs), 3),
        "seconds": round(time.time() - start, 1),
    }


def main() -> None:
    x, y, info = load_arrays("fashion-mnist", train=True)
    xt, yt, _ = load_arrays("fashion-mnist", train=False)
    mean, std = info.mean[0], info.std[0]
    data = (normalise(x, mean, std), y, normalise(xt, mean, std), yt)
    for max_lr in (1.0, 0.3, 0.1):
        for seed in (0, 1, 2):
            print(json.dumps(one_run(max_lr, seed, data)), flush=True)


if __name__ == "__main__":
    main()
