"""Vectorised grid sweeps against sequential runs: the paper's 54 Adam settings (9 learning
rates x 6 batch sizes) on the MNIST CNN.

Two measurements, both on real MNIST batches:

1. **Per-step throughput.** For each batch size N, one training step (forward, backward,
   Adam update; dropout on) of a single model against one step of the 9 settings of that
   batch size trained at once (:class:`StackedModel` + :class:`StackedOptimizer`). Interleaved
   rounds, medians. ``ratio = 9 * t_sequential / t_vectorised``. The sweep-level ratio weights
   each batch size by its steps per epoch (60,000 / N), as a real sweep spends its time.
2. **End to end.** :func:`run_group` against :func:`run` for the 9 settings of a few batch
   sizes on a training subset (data loading, training, per-epoch evaluation, traces).

    python benchmarks/vectorized_sweep.py                    # CPU, 1 thread
    python benchmarks/vectorized_sweep.py --device cuda --rounds 20
    python benchmarks/vectorized_sweep.py --json docs/vectorized.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch
import torch.nn.functional as F

from autoopt_lab.data import load_arrays, normalize
from autoopt_lab.experiments import PAPER_BATCH_SIZES, PAPER_LRS, RunConfig, run
from autoopt_lab.experiments.stacked import StackedModel
from autoopt_lab.experiments.stacked_optim import StackedOptimizer
from autoopt_lab.experiments.vectorized import run_group
from autoopt_lab.models import build_model

BETAS = (0.9, 0.99)
EPOCH_SAMPLES = 60_000


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def step_times(
    x_all: torch.Tensor, y_all: torch.Tensor, n: int, rounds: int, device: torch.device
) -> tuple[float, float]:
    """Median seconds per step: (one sequential run, the 9 lrs at once)."""
    k = len(PAPER_LRS)
    torch.manual_seed(0)
    model = build_model("mnist_cnn").to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=BETAS)
    members = [build_model("mnist_cnn").to(device) for _ in range(k)]
    gens = [torch.Generator(device=device).manual_seed(j) for j in range(k)]
    stacked = StackedModel(members, gens).to(device).train()
    sopt = StackedOptimizer(stacked.parameters(), "adam", lrs=list(PAPER_LRS), betas=BETAS)
    gen = torch.Generator().manual_seed(0)

    def batch() -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.randint(0, len(y_all), (n,), generator=gen).to(device)
        return x_all[idx], y_all[idx]

    def seq() -> None:
        x, y = batch()
        opt.zero_grad(set_to_none=True)
        F.nll_loss(model(x), y).backward()
        opt.step()

    def vec() -> None:
        x, y = batch()
        sopt.zero_grad()
        out = stacked(x, shared=True)
        F.nll_loss(out, y.repeat(k), reduction="none").view(k, n).mean(1).sum().backward()
        sopt.step()

    times: dict[str, list[float]] = {"seq": [], "vec": []}
    for fn in (seq, vec, seq, vec):
        fn()
    for _ in range(rounds):
        for name, fn in (("seq", seq), ("vec", vec)):
            _sync(device)
            t0 = time.perf_counter()
            fn()
            _sync(device)
            times[name].append(time.perf_counter() - t0)
    return statistics.median(times["seq"]), statistics.median(times["vec"])


def end_to_end(batch_sizes: list[int], samples: int, device: str) -> list[dict[str, float | int]]:
    rows = []
    for n in batch_sizes:
        cfgs = [
            RunConfig(
                "mnist",
                "adam",
                lr=lr,
                batch_size=n,
                epochs=1,
                seed=0,
                device=device,
                max_train_samples=samples,
                max_test_samples=samples // 2,
            )
            for lr in PAPER_LRS
        ]
        run(cfgs[0], progress=False)  # warm the data cache
        t0 = time.perf_counter()
        grouped = run_group(cfgs, progress=False)
        t_vec = time.perf_counter() - t0
        t0 = time.perf_counter()
        seq = [run(c, progress=False) for c in cfgs]
        t_seq = time.perf_counter() - t0
        worst = max(
            abs(a.metrics["final_test_err_pct"] - b.metrics["final_test_err_pct"])
            for a, b in zip(grouped, seq, strict=True)
        )
        rows.append(
            {
                "n": n,
                "sequential_s": t_seq,
                "vectorized_s": t_vec,
                "ratio": t_seq / t_vec,
                "max_test_err_diff_pct": worst,
            }
        )
        print(
            f"end-to-end N={n}: sequential {t_seq:.1f}s, vectorised {t_vec:.1f}s, "
            f"{t_seq / t_vec:.2f}x (max |test err diff| {worst:.2f} points)",
            flush=True,
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--batch-sizes", default=",".join(map(str, PAPER_BATCH_SIZES)))
    p.add_argument("--e2e-batch-sizes", default="16,64", help="empty to skip")
    p.add_argument("--e2e-samples", type=int, default=2048)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    x, y, info = load_arrays("mnist", train=True)
    x_all, y_all = normalize(x, info, device=device), y.to(device)
    k = len(PAPER_LRS)
    rows = []
    for n in [int(v) for v in args.batch_sizes.split(",")]:
        t_seq, t_vec = step_times(x_all, y_all, n, args.rounds, device)
        rows.append(
            {"n": n, "seq_ms": 1e3 * t_seq, "vec_ms": 1e3 * t_vec, "ratio": k * t_seq / t_vec}
        )
        print(
            f"N={n}: sequential {1e3 * t_seq:.1f} ms/step, 9 at once {1e3 * t_vec:.1f} ms/step, "
            f"throughput ratio {k * t_seq / t_vec:.2f}x",
            flush=True,
        )
    seq_total = sum(k * (EPOCH_SAMPLES / r["n"]) * r["seq_ms"] for r in rows)
    vec_total = sum((EPOCH_SAMPLES / r["n"]) * r["vec_ms"] for r in rows)
    print(
        f"54 Adam settings, one epoch of {EPOCH_SAMPLES} samples each (training steps only): "
        f"sequential {seq_total / 1e3:.0f} s, vectorised {vec_total / 1e3:.0f} s, "
        f"{seq_total / vec_total:.2f}x",
        flush=True,
    )
    e2e = []
    if args.e2e_batch_sizes and device.type == "cpu":
        e2e = end_to_end(
            [int(v) for v in args.e2e_batch_sizes.split(",")], args.e2e_samples, args.device
        )
    result = {
        "machine": {
            "cpu": platform.processor(),
            "platform": platform.platform(),
            "torch": torch.__version__,
            "threads": args.threads,
            "device": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu",
        },
        "per_step": rows,
        "sweep_ratio_54_adam": seq_total / vec_total,
        "end_to_end": e2e,
    }
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
