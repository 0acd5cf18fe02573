"""AutoSGD stability with and without the max_lr trust region, on full Fashion-MNIST.

One epoch of the paper's MNIST CNN at N = 128 per (max_lr, seed); prints one JSON line per run
(test error, whether the loss went non-finite or above 1e4, the final mean lr). Offline data:
Debian's dataset-fashion-mnist.

    python benchmarks/max_lr_stability.py
"""

import json
import time

import torch
import torch.nn.functional as F

import autoopt_lab
from autoopt_lab.data import load_arrays
from autoopt_lab.models import build_model

torch.set_num_threads(2)
x, y, info = load_arrays("fashion-mnist", train=True)
xt, yt, _ = load_arrays("fashion-mnist", train=False)
norm = lambda a: (a.float() / 255 - info.mean[0]) / info.std[0]
x, xt = norm(x), norm(xt)
N = 128
for max_lr in [1.0, 0.3, 0.1]:
    for seed in [0, 1, 2]:
        torch.manual_seed(seed)
        model = build_model("mnist_cnn").train()
        opt = autoopt_lab.AutoSGD(model.named_parameters(), max_lr=max_lr)
        h = autoopt_lab.track(model)
        perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
        diverged = False
        t = time.time()
        for i in range(0, len(x) - N + 1, N):
            idx = perm[i : i + N]
            opt.zero_grad()
            loss = F.nll_loss(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
            if not torch.isfinite(loss) or loss.item() > 1e4:
                diverged = True
                break
        h.remove()
        model.eval()
        with torch.no_grad():
            err = (model(xt).argmax(1) != yt).float().mean().item() * 100
        lrs = [v["lr"] for v in opt.hparams().values()]
        print(
            json.dumps(
                {
                    "max_lr": max_lr,
                    "seed": seed,
                    "test_err": round(err, 2),
                    "diverged": diverged,
                    "mean_lr_end": round(sum(lrs) / len(lrs), 3),
                    "s": round(time.time() - t, 1),
                }
            ),
            flush=True,
        )
