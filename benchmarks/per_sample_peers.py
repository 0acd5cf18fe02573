"""Per-sample statistics against the peers: time and peak memory of one backward pass that
also yields, for every parameter, ``S = sum_i g_i * g_i`` (the sum over samples of squared
per-sample gradients; ``g_i`` the gradient of sample i's own loss).

Engines, each on its own copy of the same model and batch:

* ``plain``       -- forward + ``loss.backward()`` (no statistic; the baseline);
* ``hooks``       -- ours, :func:`autoopt_lab.stats.track` (forward/tensor hooks + layer rules);
* ``functional``  -- ours, :func:`autoopt_lab.stats.functional_backward` (``torch.func``);
* ``backpack``    -- BackPACK's ``SumGradSquared`` (rescaled by N^2: it squares g_i / N);
* ``opacus``      -- Opacus ``GradSampleModule`` (loss_reduction="mean"), squared and summed;
* ``loop``        -- a loop of single-sample backward passes.

Every engine's ``S`` is first checked against the loop (float64) on the same batch; an engine
that disagrees is reported and not timed. Timing: warm-up, then interleaved rounds (every
engine once per round), median per engine, ratio to ``plain`` from the same rounds. Models
run in eval mode (dropout off) so that all engines see the same function.

Peak memory (``--memory``): one child process per (model, N) with glibc's mmap threshold fixed
at 64 KiB (so freed tensors go back to the OS); before each engine the kernel's peak-RSS mark
is reset (``/proc/self/clear_refs``) and the engine's extra peak RSS over the steady state of
its model and batch is read from ``VmHWM``. That is the CPU counterpart of
``torch.cuda.max_memory_allocated``; on CUDA that is used instead.

    python benchmarks/per_sample_peers.py                            # all models, N=32,128,512
    python benchmarks/per_sample_peers.py --models mnist_cnn --batch-sizes 128 --rounds 5
    python benchmarks/per_sample_peers.py --json docs/peers.json --markdown
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import gc
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
import traceback
import warnings
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from autoopt_lab.models import build_model
from autoopt_lab.stats import functional_backward, record, track

ENGINES = ("plain", "hooks", "functional", "backpack", "opacus", "loop")
STAT_ENGINES = ENGINES[1:]
CHECK_SAMPLES = 64


# -- models ---------------------------------------------------------------------------------


class WideMLP(nn.Module):
    """784-1024-1024-10 with ReLU and log-softmax."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(784, 1024)
        self.fc2 = nn.Linear(1024, 1024)
        self.fc3 = nn.Linear(1024, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.fc1(x.flatten(1)))
        x = F.relu(self.fc2(x))
        return F.log_softmax(self.fc3(x), dim=1)


class ResBlock(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.gn1 = nn.GroupNorm(4, c)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.gn2 = nn.GroupNorm(4, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.gn1(self.conv1(x)))
        return F.relu(x + self.gn2(self.conv2(h)))


class SmallResNet(nn.Module):
    """A small residual CNN with GroupNorm for 3x32x32 input (~24k parameters)."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, width, 3, padding=1, bias=False)
        self.gn = nn.GroupNorm(4, width)
        self.block1 = ResBlock(width)
        self.block2 = ResBlock(width)
        self.fc = nn.Linear(width, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.gn(self.stem(x)))
        x = F.max_pool2d(self.block1(x), 2)
        x = F.max_pool2d(self.block2(x), 2)
        x = x.mean((2, 3))
        return F.log_softmax(self.fc(x), dim=1)


MODELS: dict[str, tuple[Callable[[], nn.Module], tuple[int, ...]]] = {
    "mnist_cnn": (lambda: build_model("mnist_cnn"), (1, 28, 28)),
    "cifar_lenet": (lambda: build_model("cifar_lenet"), (3, 32, 32)),
    "wide_mlp": (WideMLP, (1, 28, 28)),
    "resnet_gn": (SmallResNet, (3, 32, 32)),
}


# -- engines --------------------------------------------------------------------------------


def _named(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]


def _prepared(base: nn.Module) -> nn.Module:
    """A copy in train mode (Opacus only records in train mode) with dropout off, so that
    every engine computes the same deterministic function."""
    model = copy.deepcopy(base).train()
    for m in model.modules():
        if isinstance(m, nn.modules.dropout._DropoutNd):
            m.p = 0.0
    return model


def make_engine(
    name: str, base: nn.Module, x: torch.Tensor, y: torch.Tensor
) -> tuple[Callable[[], dict[str, torch.Tensor] | None], Callable[[], None]]:
    """``(step, close)``: ``step()`` runs one backward pass with the engine and returns
    ``{param name: S}`` (None for ``plain``); ``close()`` removes hooks."""
    model = _prepared(base)
    named = _named(model)
    n = x.shape[0]

    def zero() -> None:
        for _, p in named:
            p.grad = None

    if name == "plain":

        def step():
            zero()
            F.nll_loss(model(x), y).backward()

        return step, lambda: None

    if name == "hooks":
        handle = track(model)

        def step():
            zero()
            for _, p in named:
                record.clear(p)
            F.nll_loss(model(x), y).backward()
            return {k: record.peek(p).sum_sq for k, p in named}

        return step, handle.remove

    if name == "functional":

        def step():
            zero()
            for _, p in named:
                record.clear(p)
            functional_backward(model, F.nll_loss, x, y)
            return {k: record.peek(p).sum_sq for k, p in named}

        return step, lambda: None

    if name == "backpack":
        from backpack import backpack, extend
        from backpack.extensions import SumGradSquared

        model = extend(model)
        loss_fn = extend(nn.NLLLoss())
        named = _named(model)

        def step():
            zero()
            with backpack(SumGradSquared()):
                loss_fn(model(x), y).backward()
            return {k: p.sum_grad_squared * (n * n) for k, p in named}

        return step, lambda: None

    if name == "opacus":
        from opacus import GradSampleModule

        gsm = GradSampleModule(model, batch_first=True, loss_reduction="mean")
        named = _named(model)

        def step():
            zero()
            for _, p in named:
                p.grad_sample = None
            F.nll_loss(gsm(x), y).backward()
            return {k: p.grad_sample.square().sum(0) for k, p in named}

        return step, gsm._close

    if name == "loop":

        def step():
            zero()
            return loop_sum_sq(model, x, y)

        return step, lambda: None

    raise ValueError(f"unknown engine {name!r}; allowed: {', '.join(ENGINES)}")


def loop_sum_sq(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """``S`` in float64 from one backward pass per sample, accumulated as it goes (the
    stacked reference in :mod:`autoopt_lab.stats.loop` needs N copies of the model's
    gradients, ~4 GB for the wide MLP at N=512)."""
    named = _named(model)
    out = {k: torch.zeros_like(p, dtype=torch.float64) for k, p in named}
    for i in range(x.shape[0]):
        loss = F.nll_loss(model(x[i : i + 1]), y[i : i + 1])
        grads = torch.autograd.grad(loss, [p for _, p in named], allow_unused=True)
        for (k, _), g in zip(named, grads, strict=True):
            if g is not None:
                out[k] += g.double().square()
    return out


def check_agreement(
    base: nn.Module, x: torch.Tensor, y: torch.Tensor, engines: list[str], tol: float
) -> list[tuple[str, str | None]]:
    """Per engine: None if every parameter's ``S`` matches the loop to ``tol`` (relative to the
    parameter's largest entry), else what differs.

    Checked in float64: in float32 a ReLU input within rounding of 0 can fall on the other
    side in a batch of one than in the full batch (we saw one such unit in the wide MLP at
    N=128, pre-activation 4.7e-8), which moves one sample's whole row of ``S``. At most
    ``CHECK_SAMPLES`` samples (float64 per-sample gradients of the wide MLP at N=512 would
    need 7.5 GB per engine).
    """
    x, y = x[:CHECK_SAMPLES], y[:CHECK_SAMPLES]
    base64, x64 = copy.deepcopy(base).double(), x.double()
    reference = loop_sum_sq(_prepared(base64), x64, y)
    out: list[tuple[str, str | None]] = []
    for name in engines:
        if name == "loop":
            continue
        try:
            step, close = make_engine(name, base64, x64, y)
            got = step()
            close()
        except Exception as exc:  # noqa: BLE001 - reported
            out.append((name, f"cannot check in float64: {type(exc).__name__}: {exc}"[:200]))
            continue
        worst = 0.0
        for k, ref in reference.items():
            scale = ref.abs().max().item() or 1.0
            worst = max(worst, (got[k].double() - ref).abs().max().item() / scale)
        out.append((name, None if worst <= tol else f"max relative error {worst:.2e} > {tol:g}"))
    return out


# -- timing ---------------------------------------------------------------------------------


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_engines(
    steps: dict[str, Callable], device: torch.device, rounds: int, loop_rounds: int
) -> dict[str, float]:
    """Median seconds per step of each engine over interleaved rounds (after one warm-up)."""
    times: dict[str, list[float]] = {k: [] for k in steps}
    for step in steps.values():
        step()
    for r in range(rounds):
        for name, step in steps.items():
            if name == "loop" and r >= loop_rounds:
                continue
            _sync(device)
            t0 = time.perf_counter()
            step()
            _sync(device)
            times[name].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items() if v}


# -- memory ---------------------------------------------------------------------------------


def _vm(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def peak_memory_child(model_name: str, n: int, engines: list[str]) -> dict[str, float]:
    """In this (child) process: extra peak RSS in MiB of one step of each engine."""
    torch.manual_seed(0)
    factory, shape = MODELS[model_name]
    base = factory()
    x, y = torch.randn(n, *shape), torch.randint(0, 10, (n,))
    out: dict[str, float] = {}
    for name in engines:
        try:
            step, close = make_engine(name, base, x, y)
            step()  # first call: lazy initialisation
            gc.collect()
            steady = _vm("VmRSS")
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # reset the peak-RSS mark to the current RSS
            step()
            out[name] = (_vm("VmHWM") - steady) / 2**20
            close()
        except Exception as exc:  # noqa: BLE001 - reported as missing
            out[name] = float("nan")
            print(f"memory {model_name} N={n} {name}: {exc}", file=sys.stderr)
        gc.collect()
    return out


def measure_memory(model_name: str, n: int, engines: list[str], threads: int) -> dict[str, float]:
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="0")
    cmd = [
        sys.executable,
        __file__,
        "--memory-child",
        json.dumps({"model": model_name, "n": n, "engines": engines, "threads": threads}),
    ]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
    if res.returncode != 0:
        print(res.stderr[-2000:], file=sys.stderr)
        return {e: float("nan") for e in engines}
    return json.loads(res.stdout.strip().splitlines()[-1])


def cuda_peak(step: Callable, device: torch.device) -> float:
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    step()
    torch.cuda.synchronize(device)
    return (torch.cuda.max_memory_allocated(device) - before) / 2**20


# -- driver ---------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    cpu = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "torch_threads": str(torch.get_num_threads()),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none",
    }


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("backpack-for-pytorch", "opacus"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def bench_row(
    model_name: str, n: int, args: argparse.Namespace, device: torch.device
) -> dict[str, object]:
    torch.manual_seed(0)
    factory, shape = MODELS[model_name]
    base = factory().to(device)
    x = torch.randn(n, *shape, device=device)
    y = torch.randint(0, 10, (n,), device=device)
    steps: dict[str, Callable] = {}
    closers = []
    problems: dict[str, str] = {}
    for name in args.engines:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                step, close = make_engine(name, base, x, y)
                step()
                steps[name] = step
                closers.append(close)
            except Exception as exc:  # noqa: BLE001 - a peer that cannot run this model
                why = str(exc).splitlines()[0][:160]
                missing = sorted(
                    {
                        m.group(1)
                        for w in caught
                        if (m := re.search(r"for Module <class '[\w.]*?(\w+)'>", str(w.message)))
                    }
                )
                problems[name] = f"cannot run: {type(exc).__name__}: {why}" + (
                    f" (no rule for: {', '.join(missing)})" if missing else ""
                )
    for name, err in check_agreement(base, x, y, [e for e in steps if e != "plain"], args.tol):
        if err:
            problems[name] = err
            steps.pop(name)
    timed = time_engines(steps, device, args.rounds, args.loop_rounds)
    memory: dict[str, float] = {}
    if args.memory:
        if device.type == "cuda":
            memory = {k: cuda_peak(s, device) for k, s in steps.items()}
        else:
            memory = measure_memory(model_name, n, list(steps), torch.get_num_threads())
    for close in closers:
        close()
    return {
        "model": model_name,
        "n": n,
        "time_ms": {k: 1e3 * v for k, v in timed.items()},
        "ratio_to_plain": {k: v / timed["plain"] for k, v in timed.items()}
        if "plain" in timed
        else {},
        "peak_mib": memory,
        "problems": problems,
    }


def markdown(rows: list[dict], engines: list[str]) -> str:
    head = "| model | N | " + " | ".join(engines) + " |"
    lines = [head, "|" + "---|" * (len(engines) + 2)]
    for r in rows:
        cells = []
        for e in engines:
            if e in r["time_ms"]:
                cell = f"{r['time_ms'][e]:.1f} ms"
                if e != "plain" and e in r["ratio_to_plain"]:
                    cell += f" ({r['ratio_to_plain'][e]:.2f}x)"
                mem = r["peak_mib"].get(e)
                if mem is not None and mem == mem:
                    cell += f", {mem:.0f} MiB"
            else:
                cell = "n/a"
            cells.append(cell)
        lines.append(f"| {r['model']} | {r['n']} | " + " | ".join(cells) + " |")
    notes = [
        f"- {r['model']} N={r['n']} {e}: {msg}" for r in rows for e, msg in r["problems"].items()
    ]
    return "\n".join(lines + ([""] + notes if notes else []))


def main(argv: list[str] | None = None) -> int:
    warnings.filterwarnings("ignore", message="Full backward hook is firing")
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default=",".join(MODELS), help=f"comma list of {', '.join(MODELS)}")
    p.add_argument("--batch-sizes", default="32,128,512")
    p.add_argument(
        "--engines", default=",".join(ENGINES), help=f"comma list of {', '.join(ENGINES)}"
    )
    p.add_argument("--rounds", type=int, default=7, help="timed rounds (median)")
    p.add_argument("--loop-rounds", type=int, default=2, help="rounds for the slow loop engine")
    p.add_argument("--tol", type=float, default=1e-8, help="agreement tolerance (float64)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-memory", dest="memory", action="store_false")
    p.add_argument("--json", default=None, help="write the results here")
    p.add_argument("--markdown", action="store_true", help="print a markdown table")
    p.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.memory_child:
        spec = json.loads(args.memory_child)
        torch.set_num_threads(spec["threads"])
        print(json.dumps(peak_memory_child(spec["model"], spec["n"], spec["engines"])))
        return 0
    torch.set_num_threads(args.threads)
    args.engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    bad = [e for e in args.engines if e not in ENGINES]
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    bad += [m for m in models if m not in MODELS]
    if bad:
        p.error(f"unknown engines/models {bad}; engines: {ENGINES}, models: {tuple(MODELS)}")
    if "plain" not in args.engines:
        args.engines.insert(0, "plain")
    device = torch.device(args.device)
    rows = []
    for model_name in models:
        for n in [int(v) for v in args.batch_sizes.split(",")]:
            try:
                row = bench_row(model_name, n, args, device)
            except Exception:  # noqa: BLE001
                traceback.print_exc()
                continue
            rows.append(row)
            times = ", ".join(f"{k} {v:.1f}ms" for k, v in row["time_ms"].items())
            print(f"{model_name} N={n}: {times}", flush=True)
            for e, msg in row["problems"].items():
                print(f"  {e}: {msg}", flush=True)
    result = {"machine": machine(), "versions": _versions(), "args": vars(args), "rows": rows}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    if args.markdown:
        print()
        print(markdown(rows, args.engines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
