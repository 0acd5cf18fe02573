"""Progressive accuracy of the river learner with each optimizer, against river's LogisticRegression.

Binary tasks, each run as a stream through ``StandardScaler() | learner`` with
``river.evaluate.progressive_val_score`` (predict, then learn, sample by sample):

* ``phishing``: ``river.datasets.Phishing`` (1,250 samples, bundled);
* ``bananas``: ``river.datasets.Bananas`` (5,300 samples, bundled; not linearly separable);
* ``sea-drift``: ``ConceptDriftStream`` from SEA variant 0 to variant 3 at sample 2,500
  (near-sudden: width 50; width 1 overflows river 0.26), 10% label noise, ``--n`` samples;
* ``hyperplane``: ``Hyperplane`` with incremental drift (5 of 10 features drifting,
  ``mag_change=0.001``, 5% noise), ``--n`` samples;
* ``agrawal-drift``: ``ConceptDriftStream`` from Agrawal function 0 to function 2 at sample
  2,500 (gradual, width 500), ``--n`` samples.

Seeds: seed ``s`` shuffles the order of a bundled data set (``--order shuffled``, the default;
``original`` keeps river's order), draws the synthetic streams, and seeds the learner's
initial weights. Every learner sees the same stream for a seed, so differences are paired.
The learner is ``autoopt_lab.online.TorchClassifier`` (default module: multinomial logistic
regression, the same model class as river's) with batch size ``--batch-size``; the baseline
is ``river.linear_model.LogisticRegression()`` at its defaults (SGD, lr 0.01).

    .venv/bin/python benchmarks/online_river.py                         # the issue's table
    .venv/bin/python benchmarks/online_river.py --seeds 0-4 --tasks all --json out.json
    .venv/bin/python benchmarks/online_river.py --regression          # docs/online.md's MAE table

``--regression`` runs the regressor instead: progressive MAE on river's TrumpApproval and
ChickWeights (river's order; the seed seeds the learner's initial weights) through
``StandardScaler() | TargetStandardScaler(TorchRegressor(optimizer=...))`` (``--no-target-scaler``
drops the target scaler), against ``river.linear_model.LinearRegression()``.

The table gives mean +- std of progressive accuracy (%) over seeds; the verdict per task
compares the best Auto optimizer with LogisticRegression by the paired difference over seeds
and its 95% t-interval: "beats" (interval above 0), "matches" (contains 0), "loses" (below).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Iterable
from typing import Any

import torch
from river import datasets, evaluate, linear_model, metrics, preprocessing
from river.datasets import synth
from scipy import stats as sps
from tqdm import tqdm

from autoopt_lab.online import MLP, TorchClassifier, TorchRegressor
from autoopt_lab.optim import registry

RIVER_LR = "river-logreg"
DEFAULT_OPTIMIZERS = "autosgd,autoadam,autoadagrad,prodigy,dadapt-sgd,sf-sgd,dog"
RIVER_LIN = "river-linreg"
REGRESSION_TASKS = {"trumpapproval": datasets.TrumpApproval, "chickweights": datasets.ChickWeights}
REGRESSION_OPTIMIZERS = "autoadagrad-paper,autoadagrad,autosgd,autoadam,autosgd-paper,sf-sgd"


def _shuffled(data: Iterable, seed: int, order: str) -> list:
    rows = list(data)
    if order == "shuffled":
        random.Random(seed).shuffle(rows)
    return rows


def _drift(first: Any, second: Any, n: int, position: int, width: int, seed: int) -> list:
    stream = synth.ConceptDriftStream(first, second, position=position, width=width, seed=seed)
    return list(stream.take(n))


TASKS: dict[str, Callable[[int, int, str], list]] = {
    "phishing": lambda seed, n, order: _shuffled(datasets.Phishing(), seed, order),
    "bananas": lambda seed, n, order: _shuffled(datasets.Bananas(), seed, order),
    "sea-drift": lambda seed, n, order: _drift(
        synth.SEA(variant=0, noise=0.1, seed=seed),
        synth.SEA(variant=3, noise=0.1, seed=seed + 10_000),
        n, n // 2, 50, seed,
    ),
    "hyperplane": lambda seed, n, order: list(
        synth.Hyperplane(
            seed=seed, n_features=10, n_drift_features=5, mag_change=0.001, noise_percentage=0.05
        ).take(n)
    ),
    "agrawal-drift": lambda seed, n, order: _drift(
        synth.Agrawal(classification_function=0, seed=seed),
        synth.Agrawal(classification_function=2, seed=seed + 10_000),
        n, n // 2, 500, seed,
    ),
}
DEFAULT_TASKS = "phishing,bananas,sea-drift"


def parse_seeds(text: str) -> list[int]:
    """``"0-2"`` -> [0, 1, 2]; ``"0,3"`` -> [0, 3]."""
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if "-" in part:
            lo, hi = part.split("-", 1)
            out.extend(range(int(lo), int(hi) + 1))
        elif part:
            out.append(int(part))
    if not out:
        raise ValueError(f"no seeds in {text!r}")
    return out


def parse_optimizers(text: str) -> list[str]:
    """Spec strings; the words ``auto``/``peer`` expand to the registry's family."""
    out: list[str] = []
    for item in registry.split_list(text):
        if item in ("auto", "peer"):
            out.extend(registry.names(item, available=True))
        elif item == RIVER_LR:
            continue
        else:
            registry.parse_spec(item)  # validates
            out.append(item)
    return out


def make_model(optimizer: str, seed: int, batch_size: int, module: str) -> Any:
    if optimizer == RIVER_LR:
        learner = linear_model.LogisticRegression()
    else:
        factory = MLP(hidden=(32,)) if module == "mlp" else None
        learner = TorchClassifier(
            module=factory, optimizer=optimizer, batch_size=batch_size, device="cpu", seed=seed
        )
    return preprocessing.StandardScaler() | learner


def one_run(task: str, optimizer: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    stream = TASKS[task](seed, args.n, args.order)
    model = make_model(optimizer, seed, args.batch_size, args.module)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        acc = evaluate.progressive_val_score(stream, model, metrics.Accuracy()).get()
    return {
        "task": task,
        "optimizer": optimizer,
        "seed": seed,
        "accuracy": 100 * acc,
        "n": len(stream),
        "seconds": round(time.perf_counter() - start, 2),
    }


def regression_run(task: str, optimizer: str, seed: int, target_scaler: bool) -> float:
    """Progressive MAE of one regressor on one of river's regression data sets."""
    if optimizer == RIVER_LIN:
        learner: Any = linear_model.LinearRegression()
    else:
        learner = TorchRegressor(optimizer=optimizer, seed=seed, device="cpu")
    if target_scaler:
        learner = preprocessing.TargetStandardScaler(regressor=learner)
    model = preprocessing.StandardScaler() | learner
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return evaluate.progressive_val_score(REGRESSION_TASKS[task](), model, metrics.MAE()).get()


def regression_main(args: argparse.Namespace) -> int:
    optimizers = registry.split_list(args.optimizers)
    seeds = parse_seeds(args.seeds)
    scaled = "TargetStandardScaler(...)" if args.target_scaler else "learner"
    print(f"progressive MAE, StandardScaler() | {scaled}, river's order, seeds {seeds}")
    print("| optimizer | " + " | ".join(REGRESSION_TASKS) + " |")
    print("|---|" + "---|" * len(REGRESSION_TASKS))
    start = time.perf_counter()
    for o in [RIVER_LIN, *optimizers]:
        cells = []
        for task in REGRESSION_TASKS:
            runs = seeds[:1] if o == RIVER_LIN else seeds  # river's model draws nothing
            cells.append(", ".join(f"{regression_run(task, o, s, args.target_scaler):.4g}"
                                   for s in runs))
        print(f"| {o} | " + " | ".join(cells) + " |")
    print(f"total time {time.perf_counter() - start:.0f} s")
    return 0


def paired_verdict(auto: list[float], base: list[float]) -> tuple[float, float, str]:
    """Mean paired difference, its 95% t half-width, and beats / matches / loses."""
    diff = [a - b for a, b in zip(auto, base, strict=True)]
    mean = statistics.fmean(diff)
    if len(diff) < 2:
        return mean, math.nan, "no interval with one seed"
    half = sps.t.ppf(0.975, len(diff) - 1) * statistics.stdev(diff) / math.sqrt(len(diff))
    verdict = "beats" if mean - half > 0 else ("loses" if mean + half < 0 else "matches")
    return mean, half, verdict


def report(rows: list[dict[str, Any]], tasks: list[str], optimizers: list[str]) -> str:
    acc: dict[tuple[str, str], list[float]] = {}
    for r in rows:
        acc.setdefault((r["task"], r["optimizer"]), []).append(r["accuracy"])
    names = [*optimizers, RIVER_LR]
    label = {o: (registry.get(o.partition(":")[0]).label(registry.parse_spec(o)[1])
                 if o != RIVER_LR else "river LogisticRegression") for o in names}
    width = max(len(v) for v in label.values())

    def cell(values: list[float]) -> str:
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{statistics.fmean(values):6.2f} ± {sd:4.2f}"

    lines = ["| optimizer".ljust(width + 2) + " | " + " | ".join(t.ljust(15) for t in tasks) + " |"]
    lines.append("|" + "-" * (width + 2) + "|" + "|".join("-" * 17 for _ in tasks) + "|")
    for o in names:
        cells = [cell(acc[(t, o)]).ljust(15) for t in tasks]
        lines.append(f"| {label[o].ljust(width)} | " + " | ".join(cells) + " |")
    lines.append("")
    autos = [o for o in optimizers if registry.get(o.partition(":")[0]).is_auto]
    wins = 0
    for t in tasks:
        if not autos:
            break
        best = max(autos, key=lambda o: statistics.fmean(acc[(t, o)]))
        mean, half, verdict = paired_verdict(acc[(t, best)], acc[(t, RIVER_LR)])
        wins += verdict in ("beats", "matches")
        lines.append(
            f"{t}: best Auto = {label[best]}, minus LogisticRegression = {mean:+.2f} points "
            f"(95% CI ± {half:.2f}) -> {verdict}"
        )
    if autos:
        lines.append(
            "target (with an Auto optimizer the learner matches or beats LogisticRegression on "
            f"at least two of three binary tasks): matches or beats on {wins} of the "
            f"{len(tasks)} tasks run"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", default=DEFAULT_TASKS,
                        help=f"comma list of {', '.join(TASKS)}, or all (default {DEFAULT_TASKS})")
    parser.add_argument("--optimizers", default=DEFAULT_OPTIMIZERS,
                        help="registry spec strings; 'auto'/'peer' expand to the family "
                        f"(default {DEFAULT_OPTIMIZERS}); river's LogisticRegression always runs")
    parser.add_argument("--seeds", default="0-2", help="e.g. 0-4 or 0,3 (default 0-2)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--n", type=int, default=5000, help="samples per synthetic stream")
    parser.add_argument("--order", choices=("shuffled", "original"), default="shuffled",
                        help="order of the bundled data sets (shuffled by seed by default)")
    parser.add_argument("--module", choices=("linear", "mlp"), default="linear",
                        help="the learner's module: logistic regression or an MLP(32)")
    parser.add_argument("--json", default=None, help="also write every run to this JSON file")
    parser.add_argument("--regression", action="store_true",
                        help="the regressor's MAE table instead (TrumpApproval, ChickWeights; "
                        f"optimizers default {REGRESSION_OPTIMIZERS})")
    parser.add_argument("--no-target-scaler", dest="target_scaler", action="store_false",
                        help="--regression without river's TargetStandardScaler")
    args = parser.parse_args(argv)
    if args.regression:
        if args.optimizers == DEFAULT_OPTIMIZERS:
            args.optimizers = REGRESSION_OPTIMIZERS
        torch.set_num_threads(1)
        return regression_main(args)
    tasks = list(TASKS) if args.tasks == "all" else registry.split_list(args.tasks)
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        parser.error(f"unknown task(s) {unknown}; known: {', '.join(TASKS)}")
    try:
        optimizers = parse_optimizers(args.optimizers)
        seeds = parse_seeds(args.seeds)
    except ValueError as exc:
        parser.error(str(exc))
    torch.set_num_threads(1)  # tiny models: threads only add overhead
    jobs = [(t, o, s) for t in tasks for s in seeds for o in [*optimizers, RIVER_LR]]
    rows = []
    for t, o, s in tqdm(jobs, desc="runs", file=sys.stderr):
        rows.append(one_run(t, o, s, args))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"args": vars(args), "runs": rows}, fh, indent=1)
    print(f"progressive accuracy (%), mean ± std over seeds {seeds}; batch size "
          f"{args.batch_size}; module {args.module}; order {args.order}; n = "
          + ", ".join(f"{t} {next(r['n'] for r in rows if r['task'] == t)}" for t in tasks))
    print(report(rows, tasks, optimizers))
    total = sum(r["seconds"] for r in rows)
    print(f"total learner time {total:.0f} s over {len(rows)} runs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
