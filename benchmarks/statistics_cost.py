"""What the per-sample statistics cost: forward + backward with ``track`` on each path, against
a plain forward + backward, in the same run (docs/statistics.md).

Configurations, each on its own copy of the model and the same batch:

* ``plain``        -- forward + ``loss.backward()``, no tracking (the baseline);
* ``auto``         -- ``track(model)`` with the cost model choosing per layer call;
* ``elementwise``  -- ``track(model)`` with ``ghost.forced("elementwise")``;
* ``ghost``        -- ``track(model)`` with ``ghost.forced("ghost")``.

Models: torchvision ResNet-18 with GroupNorm at N=32 on 3x32x32, the paper's MNIST CNN at
N=128, and a 2-block stack of Linear layers (d=128, hidden 512) on (N=32, T=64, 128).

Timing: one thread, warm-up round, then interleaved rounds (each configuration once per
round), median per configuration, ratio to ``plain``. Before timing, the weight statistics of
the three tracked paths are compared (``<1, S>`` against ``Q``; all equal in exact arithmetic).
Peak memory: one fresh child process per (model, configuration); after a warm-up step the
kernel's peak-RSS mark is reset (``/proc/self/clear_refs``) and the step's peak RSS over the
steady state is read from ``VmHWM`` (glibc's mmap threshold fixed at 64 KiB so that freed
tensors return to the OS).

    python benchmarks/statistics_cost.py                       # all models, 5 rounds
    python benchmarks/statistics_cost.py --models mnist_cnn --rounds 3 --no-memory
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from autoopt_lab.models import build_model
from autoopt_lab.stats import ghost, record, track

CONFIGS = ("plain", "auto", "elementwise", "ghost")


class MlpBlock(nn.Module):
    """``x + W2 gelu(W1 x)``: the feed-forward half of a transformer layer."""

    def __init__(self, d: int, hidden: int) -> None:
        super().__init__()
        self.up = nn.Linear(d, hidden)
        self.down = nn.Linear(hidden, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.down(F.gelu(self.up(x)))


class SequenceStack(nn.Module):
    """Two :class:`MlpBlock` on ``(N, T, 128)``, mean over T, a linear head."""

    def __init__(self, d: int = 128, hidden: int = 512, classes: int = 10) -> None:
        super().__init__()
        self.blocks = nn.Sequential(MlpBlock(d, hidden), MlpBlock(d, hidden))
        self.head = nn.Linear(d, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(x).mean(1))


def resnet18_gn() -> nn.Module:
    from torchvision.models import resnet18

    return resnet18(num_classes=10, norm_layer=lambda c: nn.GroupNorm(32, c))


#: name -> (factory, batch size, sample shape)
MODELS: dict[str, tuple[Callable[[], nn.Module], int, tuple[int, ...]]] = {
    "resnet18_gn": (resnet18_gn, 32, (3, 32, 32)),
    "mnist_cnn": (lambda: build_model("mnist_cnn"), 128, (1, 28, 28)),
    "seq_linear": (SequenceStack, 32, (64, 128)),
}


def _loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(out, y)


def make_step(
    config: str, base: nn.Module, x: torch.Tensor, y: torch.Tensor
) -> tuple[Callable[[], None], nn.Module, Callable[[], None]]:
    """``(step, model, close)`` for one configuration on its own copy of ``base``."""
    model = copy.deepcopy(base).eval()  # dropout off: the same function everywhere
    params = [p for p in model.parameters() if p.requires_grad]
    handle = None if config == "plain" else track(model)
    path = "auto" if config == "plain" else config

    def step() -> None:
        for p in params:
            p.grad = None
            record.clear(p)
        with ghost.forced(path):
            _loss(model(x), y).backward()

    def close() -> None:
        if handle is not None:
            handle.remove()

    return step, model, close


def _totals(model: nn.Module) -> dict[str, tuple[float, bool]]:
    """``name -> (<1, S> or Q, scalar?)`` for every Linear and Conv weight."""
    out = {}
    for name, p in model.named_parameters():
        st = record.peek(p)
        if st is not None and name.endswith("weight") and p.dim() > 1:
            out[name] = (float(record.weighted_total(st.sum_sq.double(), None)), st.scalar)
    return out


def check_paths(steps: dict, models: dict) -> dict[str, object]:
    """Run each tracked configuration once; compare the weight statistics across paths."""
    totals = {}
    for config in CONFIGS[1:]:
        steps[config]()
        totals[config] = _totals(models[config])
    ref = totals["elementwise"]
    worst = max(
        abs(totals[c][n][0] - ref[n][0]) / max(abs(ref[n][0]), 1e-30)
        for c in ("auto", "ghost")
        for n in ref
    )
    scalar = {c: sum(s for _, s in totals[c].values()) for c in totals}
    return {"weights": len(ref), "scalar": scalar, "max_rel_diff": worst}


def time_configs(name: str, rounds: int) -> dict[str, object]:
    factory, n, shape = MODELS[name]
    torch.manual_seed(0)
    base = factory()
    x, y = torch.randn(n, *shape), torch.randint(0, 10, (n,))
    built = {c: make_step(c, base, x, y) for c in CONFIGS}
    steps = {c: b[0] for c, b in built.items()}
    check = check_paths(steps, {c: b[1] for c, b in built.items()})
    times: dict[str, list[float]] = {c: [] for c in CONFIGS}
    for r in range(rounds + 1):  # round 0 warms up
        for c in CONFIGS:
            t0 = time.perf_counter()
            steps[c]()
            if r:
                times[c].append(time.perf_counter() - t0)
    for b in built.values():
        b[2]()
    med = {c: statistics.median(v) for c, v in times.items()}
    low = {c: min(v) for c, v in times.items()}
    return {"model": name, "n": n, "seconds": med, "min_seconds": low, "check": check}


# -- per layer ------------------------------------------------------------------------------
def layer_table(rounds: int) -> None:
    """Per distinct conv of ResNet-18 (N=32, 32x32): ATen's weight gradient, the elementwise
    statistic (per-sample gradients, their sum and squared sum) and the ghost statistic (ATen's
    weight gradient, patches, Gram matrices), best of ``rounds``; and the cost model's choice."""
    from autoopt_lab.stats.rules import conv_patches, conv_per_sample

    model = resnet18_gn()
    seen: dict[tuple, tuple] = {}

    def hook(m: nn.Module, i: tuple, o: torch.Tensor) -> None:
        key = (tuple(m.weight.shape), tuple(o.shape), m.stride, m.padding)
        seen.setdefault(key, (m, i[0].shape, o.shape))

    hs = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        model(torch.randn(32, 3, 32, 32))
    for h in hs:
        h.remove()

    def best(fn: Callable[[], object]) -> float:
        out = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
        return min(out) * 1e3

    print("| weight | L | ATen weight grad (ms) | elementwise (ms) | ghost (ms) | choice |")
    print("|---|---|---|---|---|---|")
    for m, in_shape, out_shape in seen.values():
        x, dz, w = torch.randn(in_shape), torch.randn(out_shape), m.weight.detach()
        args = (m.stride, tuple(m.padding), m.dilation)

        def aten(x=x, dz=dz, w=w, args=args) -> torch.Tensor:
            mask = [False, True, False]
            return torch.ops.aten.convolution_backward(
                dz, x, w, None, *args, False, [0, 0], 1, mask
            )[1]

        def elementwise(x=x, dz=dz, w=w, args=args) -> tuple:
            g = conv_per_sample(x, dz, w.shape, *args, 1)["weight"]
            return g.sum(0), g.square().sum(0)

        def ghost_path(x=x, dz=dz, w=w, m=m, aten=aten) -> torch.Tensor:
            aten()
            p = m.padding
            cols = conv_patches(
                F.pad(x, [p[1], p[1], p[0], p[0]]), m.kernel_size, m.stride, m.dilation
            )
            return ghost.conv_ghost_norm(cols, dz)

        positions = out_shape[2] * out_shape[3]
        choice = ghost.choose(32, w.shape[0], w[0].numel(), positions, mode="auto")
        print(
            f"| {tuple(w.shape)} | {positions} | {best(aten):.1f} | {best(elementwise):.1f} | "
            f"{best(ghost_path):.1f} | {choice} |",
            flush=True,
        )


# -- memory ---------------------------------------------------------------------------------
def _vm(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def memory_child(name: str, config: str) -> float:
    """In this (child) process: the extra peak RSS in MiB of one step of ``config``."""
    torch.set_num_threads(1)
    factory, n, shape = MODELS[name]
    torch.manual_seed(0)
    x, y = torch.randn(n, *shape), torch.randint(0, 10, (n,))
    step, _, _ = make_step(config, factory(), x, y)
    step()
    gc.collect()
    steady = _vm("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak-RSS mark to the current RSS
    step()
    return (_vm("VmHWM") - steady) / 2**20


def measure_memory(name: str, config: str) -> float:
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="0")
    cmd = [sys.executable, __file__, "--memory-child", json.dumps([name, config])]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    if res.returncode != 0:
        print(res.stderr[-2000:], file=sys.stderr)
        return float("nan")
    return float(res.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--no-memory", dest="memory", action="store_false")
    p.add_argument("--layers", action="store_true", help="also time ResNet-18's convs alone")
    p.add_argument("--json", default=None, help="also write the results here")
    p.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.memory_child:
        print(memory_child(*json.loads(args.memory_child)))
        return
    torch.set_num_threads(1)
    if args.layers:
        layer_table(args.rounds)
    print(f"torch {torch.__version__}, 1 thread, {args.rounds} rounds, medians (min)")
    print(
        "| model | N | plain (s) | auto | elementwise | ghost | step peak MiB plain / auto / "
        "elementwise / ghost | scalar Q (auto) | max rel. diff |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    results = []
    for name in args.models:
        res = time_configs(name, args.rounds)
        if args.memory:
            res["peak_mib"] = {c: measure_memory(name, c) for c in CONFIGS}
        results.append(res)
        s, chk = res["seconds"], res["check"]
        lo = res["min_seconds"]
        ratios = " | ".join(
            f"{s[c]:.3f} s {s[c] / s['plain']:.2f}x ({lo[c] / lo['plain']:.2f}x)"
            for c in CONFIGS[1:]
        )
        mem = " / ".join(f"{res['peak_mib'][c]:.0f}" for c in CONFIGS) if args.memory else "-"
        print(
            f"| {name} | {res['n']} | {s['plain']:.3f} | {ratios} | {mem} | "
            f"{chk['scalar']['auto']}/{chk['weights']} | {chk['max_rel_diff']:.1e} |",
            flush=True,
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
