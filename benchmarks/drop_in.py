"""The Auto optimizers in the training loops people write, next to Adam: same data, seeds, steps.

Each case trains the paper's CNN on real Fashion-MNIST (offline: Debian's
dataset-fashion-mnist) and reports the test error, mean ± std over seeds. The loops:

* ``closure``: ``backward(); step(lambda: loss)`` (the project's own loop);
* ``plain``: ``backward(); step()`` (the Hugging Face / most-scripts loop);
* ``torch``: ``step(closure)`` with a torch-style closure (PyTorch Lightning's contract);
* ``clip``: plain loop with ``clip_grad_norm_(…, 1.0)`` before ``step()``;
* ``accum``: plain loop, two micro-batches of N/2 accumulated (each loss / 2);
* ``bf16``: plain loop under ``torch.autocast("cpu", torch.bfloat16)``;
* ``cosine``: plain loop with ``CosineAnnealingLR`` over the run.

Run::

    python benchmarks/drop_in.py --seeds 0,1 --epochs 1           # about 20 min on 2 cores
    python benchmarks/drop_in.py --cases autoadam:plain,adam:plain --seeds 0
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import torch
import torch.nn.functional as F

import autoopt_lab
from autoopt_lab.data import load_arrays, normalize, shuffled_batches
from autoopt_lab.models import build_model

OPTIMIZERS = {
    "adam": lambda m: torch.optim.Adam(m.parameters(), lr=10**-2.5, betas=(0.9, 0.99)),
    "sgd": lambda m: torch.optim.SGD(m.parameters(), lr=10**-1.5, momentum=0.9),
    "autoadam": lambda m: autoopt_lab.AutoAdam(m),
    "autoadagrad": lambda m: autoopt_lab.AutoAdaGrad(m),
    "autosgd": lambda m: autoopt_lab.AutoSGD(m),
    "autoadam-hvp": lambda m: autoopt_lab.AutoAdam(m, curvature_source="hvp"),
}
LOOPS = ("closure", "plain", "torch", "clip", "accum", "bf16", "cosine")
DEFAULT_CASES = [
    "adam:plain", "adam:clip", "sgd:plain",
    *(f"autoadam:{loop}" for loop in LOOPS),
    *(f"autoadagrad:{loop}" for loop in ("closure", "plain", "torch", "clip")),
    *(f"autosgd:{loop}" for loop in ("closure", "plain", "clip")),
]


def train(opt_name: str, loop: str, seed: int, data: tuple, epochs: int, n: int) -> dict:
    """One run; returns the test error (%) and the seconds it took."""
    x, y, xt, yt = data
    torch.manual_seed(seed)
    model = build_model("mnist_cnn")
    opt = OPTIMIZERS[opt_name](model)
    steps = epochs * (len(x) // n)
    sched = (
        torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps) if loop == "cosine" else None
    )
    gen = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    for _ in range(epochs):
        for idx in shuffled_batches(len(x), n, gen, min_batch=n):
            xb, yb = x[idx], y[idx]

            def loss_of(xs=xb, ys=yb):
                return F.nll_loss(model(xs), ys)

            if loop == "torch":

                def closure(xs=xb, ys=yb):
                    opt.zero_grad()
                    loss = F.nll_loss(model(xs), ys)
                    loss.backward()
                    return loss

                opt.step(closure)
                continue
            opt.zero_grad()
            if loop == "accum":
                for xs, ys in zip(xb.chunk(2), yb.chunk(2), strict=True):
                    (loss_of(xs, ys) / 2).backward()
            else:
                ctx = (
                    torch.autocast("cpu", dtype=torch.bfloat16)
                    if loop == "bf16"
                    else contextlib.nullcontext()
                )
                with ctx:
                    loss = loss_of()
                loss.float().backward()
            if loop == "clip":
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            if loop == "closure" and isinstance(opt, autoopt_lab.optim.AutoOptimizer):
                opt.step(loss_of)
            else:
                opt.step()
            if sched is not None:
                sched.step()
    seconds = time.perf_counter() - start
    model.eval()
    with torch.no_grad():
        wrong = sum(
            int((model(xt[i : i + 1000]).argmax(1) != yt[i : i + 1000]).sum())
            for i in range(0, len(xt), 1000)
        )
    return {"error": 100.0 * wrong / len(xt), "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default=",".join(DEFAULT_CASES))
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--train-samples", type=int, default=60000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    x, y, info = load_arrays("fashion-mnist", train=True)
    xt, yt, _ = load_arrays("fashion-mnist", train=False)
    data = (normalize(x[: args.train_samples], info), y[: args.train_samples],
            normalize(xt, info), yt)
    seeds = [int(s) for s in args.seeds.split(",")]
    print(f"| case | test error % (mean ± std over seeds {args.seeds}) | seconds/run |")
    print("|---|---|---|")
    for case in args.cases.split(","):
        opt_name, loop = case.split(":")
        runs = []
        for seed in seeds:
            try:
                runs.append(train(opt_name, loop, seed, data, args.epochs, args.batch_size))
            except Exception as exc:  # a refused case is a row, not a crash
                print(f"| {case} | error: {type(exc).__name__}: {exc} | |")
                break
        else:
            errs = [r["error"] for r in runs]
            spread = statistics.stdev(errs) if len(errs) > 1 else 0.0
            secs = statistics.mean(r["seconds"] for r in runs)
            print(f"| {case} | {statistics.mean(errs):.2f} ± {spread:.2f} | {secs:.0f} |",
                  flush=True)


if __name__ == "__main__":
    main()
