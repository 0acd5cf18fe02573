"""Cost of an AutoOpt training step against plain torch optimizers, measured in one run.

A step is forward + backward + optimizer step on one mini-batch, in train mode (dropout on),
with the loss closure passed to ``step()`` as training does (the measured-curvature variant
then spends one Hessian-vector product every ``curvature_every`` steps, amortised here). Each configuration is timed in interleaved rounds (baseline, candidates, baseline,
...) and the median per-step time is reported with its ratio to the plain optimizer of the
same family (SGD for AutoSGD, Adam for AutoAdam, Adagrad for AutoAdaGrad), measured in the
same rounds. Columns: ``paper`` (curvature="paper", hook engine; AutoSGD's default),
``measured`` (curvature="measured", hook engine; AutoAdam's and AutoAdaGrad's default),
``func`` (the class default with the torch.func engine). Ratios, not absolute times,
are what carry over between machines. Use --steps >= 20 so that the Hessian-vector product
(every 10 steps) is amortised as in training.

    python benchmarks/step_overhead.py                       # CPU, the issue's grid
    python benchmarks/step_overhead.py --device cuda --sync-check
    python benchmarks/step_overhead.py --models mnist_cnn --batch-sizes 128 --steps 30
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

import autoopt_lab
from autoopt_lab.models import build_model

INPUT_SHAPES = {"mnist_cnn": (1, 28, 28), "cifar_lenet": (3, 32, 32)}
PLAIN = {
    "sgd": lambda ps: torch.optim.SGD(ps, lr=0.01, momentum=0.9),
    "adam": lambda ps: torch.optim.Adam(ps, lr=1e-3, betas=(0.9, 0.99)),
    "adagrad": lambda ps: torch.optim.Adagrad(ps, lr=1e-2),
}
AUTO = {
    "sgd": autoopt_lab.AutoSGD,
    "adam": autoopt_lab.AutoAdam,
    "adagrad": autoopt_lab.AutoAdaGrad,
}
KINDS = ("plain", "paper", "measured", "functional")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_stepper(kind: str, family: str, model_name: str, n: int, device: torch.device):
    """A closure doing one training step, and a cleanup function."""
    torch.manual_seed(0)
    model = build_model(model_name).to(device).train()
    x = torch.randn(n, *INPUT_SHAPES[model_name], device=device)
    y = torch.randint(0, 10, (n,), device=device)
    cleanup: Callable[[], None] = lambda: None  # noqa: E731
    if kind == "plain":
        opt = PLAIN[family](model.parameters())

        def step() -> None:
            opt.zero_grad()
            F.nll_loss(model(x), y).backward()
            opt.step()

    elif kind in ("paper", "measured"):
        opt = AUTO[family](model.parameters(), curvature=kind)
        handle = autoopt_lab.track(model)
        cleanup = handle.remove

        def step() -> None:
            opt.zero_grad()
            F.nll_loss(model(x), y).backward()
            opt.step(lambda: F.nll_loss(model(x), y))

    elif kind == "functional":
        opt = AUTO[family](model.parameters())

        def step() -> None:
            opt.zero_grad()
            autoopt_lab.functional_backward(model, F.nll_loss, x, y)
            opt.step(lambda: F.nll_loss(model(x), y))

    else:
        raise ValueError(kind)
    return step, cleanup


def time_steps(step: Callable[[], None], steps: int, device: torch.device) -> float:
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    return (time.perf_counter() - start) / steps


def bench(model_name: str, n: int, family: str, args: argparse.Namespace) -> dict[str, float]:
    device = torch.device(args.device)
    kinds = list(KINDS)
    steppers = {k: make_stepper(k, family, model_name, n, device) for k in kinds}
    for k in kinds:  # warm-up
        time_steps(steppers[k][0], args.warmup, device)
    samples: dict[str, list[float]] = {k: [] for k in kinds}
    for _ in range(args.rounds):
        for k in kinds:
            samples[k].append(time_steps(steppers[k][0], args.steps, device))
    for _, cleanup in steppers.values():
        cleanup()
    return {k: statistics.median(v) for k, v in samples.items()}


def check_no_sync(model_name: str, n: int, device: torch.device) -> str:
    """Run AutoSGD/AutoAdam/AutoAdaGrad steps with CUDA sync debugging set to error."""
    results = []
    for family in AUTO:
        step, cleanup = make_stepper("measured", family, model_name, n, device)
        step()  # first step allocates state
        torch.cuda.set_sync_debug_mode("error")
        try:
            step()
            results.append(f"{family}: no sync")
        except RuntimeError as exc:
            results.append(f"{family}: SYNC ({str(exc).splitlines()[0]})")
        finally:
            torch.cuda.set_sync_debug_mode("default")
            cleanup()
    return "; ".join(results)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--models", nargs="+", default=["mnist_cnn", "cifar_lenet"])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[32, 128, 256])
    parser.add_argument("--families", nargs="+", default=["sgd", "adam", "adagrad"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=20, help="steps per timed block")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (median)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument(
        "--sync-check", action="store_true", help="CUDA: assert no host sync in step()"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"# torch {torch.__version__}, device {args.device}, threads {torch.get_num_threads()}")
    print(f"# median of {args.rounds} interleaved rounds x {args.steps} steps; ratios = / plain")
    header = (
        f"{'model':<12} {'N':>4} {'optimizer':<12} {'plain ms':>9} {'paper':>6} "
        f"{'measured':>9} {'func':>6}"
    )
    print(header)
    print("-" * len(header))
    for model_name in args.models:
        for n in args.batch_sizes:
            for family in args.families:
                t = bench(model_name, n, family, args)
                print(
                    f"{model_name:<12} {n:>4} {'Auto' + family:<12} {t['plain'] * 1e3:>9.2f} "
                    f"{t['paper'] / t['plain']:>6.2f} {t['measured'] / t['plain']:>9.2f} "
                    f"{t['functional'] / t['plain']:>6.2f}",
                    flush=True,
                )
    if args.sync_check and torch.device(args.device).type == "cuda":
        print(
            "# sync check:",
            check_no_sync(args.models[0], args.batch_sizes[0], torch.device(args.device)),
        )


if __name__ == "__main__":
    main()
