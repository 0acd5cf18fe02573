"""Whole training step of the Auto optimizers over Adam's, on the models people train.

Models: torchvision ResNet-18 with GroupNorm (N=32, 3x32x32), a 2-layer transformer encoder
(N=32, T=64, d=128), an LSTM classifier (N=32, T=32, hidden 128), an MLP on 28x28 inputs
(N=128) and the paper's MNIST CNN (N=128). Each optimizer runs the plain loop
(``zero_grad(); loss.backward(); step()``; Auto optimizers built as ``AutoX(model)``), and
``autoadam+closure`` the loss-closure loop. Times are medians over interleaved rounds, in the
same process, so the ratios compare like with like on a noisy machine; ``--memory`` adds the
peak memory that training adds (gradients, optimizer state, activations, temporaries) over
the built model, each configuration in a fresh subprocess (Linux).

Run::

    python benchmarks/model_overhead.py                      # one thread, all models
    python benchmarks/model_overhead.py --models resnet18 --rounds 3 --memory
    python benchmarks/model_overhead.py --step paper     # the Auto optimizers' step rule
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

import autoopt_lab
from autoopt_lab.models import build_model


class Encoder(nn.Module):
    """Token embedding, two TransformerEncoderLayers, mean pooling, a linear head."""

    def __init__(self, vocab: int = 1000, d: int = 128, classes: int = 10) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        layer = nn.TransformerEncoderLayer(d, 4, 256, dropout=0.1, batch_first=True)
        self.body = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(d, classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(self.emb(tokens)).mean(1))


class Recurrent(nn.Module):
    """Token embedding, a one-layer LSTM, the last state through a linear head."""

    def __init__(self, vocab: int = 1000, d: int = 64, hidden: int = 128) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.lstm = nn.LSTM(d, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 10)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(self.emb(tokens))
        return self.head(out[:, -1])


def _resnet18() -> nn.Module:
    import torchvision

    return torchvision.models.resnet18(num_classes=10, norm_layer=lambda c: nn.GroupNorm(32, c))


MODELS = {
    "resnet18": (_resnet18, lambda g: torch.randn(32, 3, 32, 32, generator=g)),
    "transformer": (Encoder, lambda g: torch.randint(0, 1000, (32, 64), generator=g)),
    "lstm": (Recurrent, lambda g: torch.randint(0, 1000, (32, 32), generator=g)),
    "mlp": (
        lambda: nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256),
                              nn.ReLU(), nn.Linear(256, 10)),
        lambda g: torch.randn(128, 1, 28, 28, generator=g),
    ),
    "paper_cnn": (lambda: build_model("mnist_cnn"), lambda g: torch.randn(128, 1, 28, 28,
                                                                             generator=g)),
}
#: Options given to every Auto optimizer (``--step`` sets ``step``); empty: the defaults.
AUTO_OPTIONS: dict = {}
OPTIMIZERS = {
    "adam": lambda m: torch.optim.Adam(m.parameters(), lr=1e-3),
    "autosgd": lambda m: autoopt_lab.AutoSGD(m, **AUTO_OPTIONS),
    "autoadam": lambda m: autoopt_lab.AutoAdam(m, **AUTO_OPTIONS),
    "autoadagrad": lambda m: autoopt_lab.AutoAdaGrad(m, **AUTO_OPTIONS),
    "autoadam+closure": lambda m: autoopt_lab.AutoAdam(m, **AUTO_OPTIONS),
}


def _loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy on logits (the paper's CNN ends in log-softmax, where it is the NLL)."""
    return F.cross_entropy(model(x), y)


class Runner:
    """One model and optimizer, stepping on one fixed batch."""

    def __init__(self, model_name: str, opt_name: str) -> None:
        make_model, make_x = MODELS[model_name]
        torch.manual_seed(0)
        gen = torch.Generator().manual_seed(0)
        self.model = make_model()
        self.x = make_x(gen)
        self.y = torch.randint(0, 10, (self.x.shape[0],), generator=gen)
        self.opt = OPTIMIZERS[opt_name](self.model)
        self.closure = opt_name.endswith("+closure")

    def step(self) -> float:
        start = time.perf_counter()
        self.opt.zero_grad()
        _loss(self.model, self.x, self.y).backward()
        if self.closure:
            self.opt.step(lambda: _loss(self.model, self.x, self.y))
        else:
            self.opt.step()
        return time.perf_counter() - start


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as fh:
        return int(fh.read().split(field + ":")[1].split()[0])


def peak_training_memory(model_name: str, opt_name: str, steps: int) -> float:
    """MiB that ``steps`` training steps add at their peak over the memory the process held
    with the model, the batch and the optimizer built (Linux: the peak is reset through
    ``/proc/self/clear_refs`` first, so importing the libraries does not count)."""
    runner = Runner(model_name, opt_name)
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    before = _status_kib("VmRSS")
    for _ in range(steps):
        runner.step()
    return (_status_kib("VmHWM") - before) / 1024


def _peak_memory(model_name: str, opt_name: str, steps: int) -> float:
    """:func:`peak_training_memory` in a fresh process."""
    code = (
        "import sys, torch; sys.path.insert(0, 'benchmarks');"
        "import model_overhead as b; torch.set_num_threads(1);"
        f"b.AUTO_OPTIONS.update({AUTO_OPTIONS!r});"
        f"print(b.peak_training_memory({model_name!r}, {opt_name!r}, {steps}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--optimizers", default=",".join(OPTIMIZERS))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--memory", action="store_true", help="also peak RSS per configuration")
    parser.add_argument("--json", help="write the numbers to this file")
    parser.add_argument("--step", help="the Auto optimizers' step rule (default: theirs)")
    args = parser.parse_args()
    if args.step:
        AUTO_OPTIONS["step"] = args.step
    torch.set_num_threads(args.threads)
    names = args.optimizers.split(",")
    rows = []
    print(f"torch {torch.__version__}, {args.threads} thread(s), median of {args.rounds} rounds"
          f", Auto options {AUTO_OPTIONS or 'default'}")
    print("| model | optimizer | step s | step / Adam | peak MiB | peak / Adam |")
    print("|---|---|---|---|---|---|")
    for model_name in args.models.split(","):
        runners = {}
        for name in names:
            try:
                runners[name] = Runner(model_name, name)
                for _ in range(args.warmup):
                    runners[name].step()
            except Exception as exc:  # a refused configuration is a row, not a crash
                runners.pop(name, None)
                print(f"| {model_name} | {name} | error: {type(exc).__name__}: {exc} | | | |")
        times: dict[str, list[float]] = {n: [] for n in runners}
        for _ in range(args.rounds):  # interleaved: each round steps every optimizer once
            for name, runner in runners.items():
                times[name].append(runner.step())
        base = statistics.median(times["adam"]) if "adam" in times else float("nan")
        mem_base = _peak_memory(model_name, "adam", 3) if args.memory else float("nan")
        for name, ts in times.items():
            med = statistics.median(ts)
            mem = _peak_memory(model_name, name, 3) if args.memory else float("nan")
            rows.append({"model": model_name, "optimizer": name, "seconds": med,
                         "ratio": med / base, "peak_mib": mem, "peak_ratio": mem / mem_base})
            print(f"| {model_name} | {name} | {med:.3f} | {med / base:.2f} | {mem:.0f} | "
                  f"{mem / mem_base:.2f} |", flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)


if __name__ == "__main__":
    main()
