"""Command-line options shared by ``autoopt-lab train``, ``sweep`` and ``reproduce``.

>>> parse_seeds("0-2,5")
[0, 1, 2, 5]
>>> [round(v, 6) for v in parse_lrs("1e-2,10^-1.5")]
[0.01, 0.031623]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TypeVar

from .config import OPTIMIZERS
from .grids import grid
from .paper import PAPER_BATCH_SIZES, PAPER_EPOCHS, PAPER_LRS, PAPER_MOMENTA

T = TypeVar("T")


def parse_list(text: str, kind: Callable[[str], T], what: str) -> list[T]:
    """Comma-separated values; a clear error names the bad item."""
    out = []
    for item in str(text).split(","):
        item = item.strip()
        if not item:
            continue
        try:
            out.append(kind(item))
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"bad {what} {item!r} in {text!r}: {exc}") from exc
    if not out:
        raise argparse.ArgumentTypeError(f"no {what} given in {text!r}")
    return out


def parse_seeds(text: str) -> list[int]:
    """``"0,1,2"`` or ranges ``"0-9"`` (inclusive), mixed."""
    seeds: list[int] = []
    for part in parse_list(text, str, "seed"):
        if "-" in part:
            lo, hi = part.split("-", 1)
            seeds.extend(range(int(lo), int(hi) + 1))
        else:
            seeds.append(int(part))
    return seeds


def _lr(item: str) -> float:
    if item.startswith("10^"):
        return 10.0 ** float(item[3:])
    value = float(item)
    if value <= 0:
        raise ValueError("a learning rate must be > 0")
    return value


def parse_lrs(text: str) -> list[float]:
    """``"paper"`` for the paper's nine, or values like ``1e-2`` / ``10^-1.5``."""
    if text.strip() == "paper":
        return list(PAPER_LRS)
    return parse_list(text, _lr, "learning rate")


def parse_optimizers(text: str) -> list[str]:
    """Optimizer names, or ``all``."""
    if text.strip() == "all":
        return list(OPTIMIZERS)
    names = parse_list(text, lambda s: s.lower(), "optimizer")
    bad = [n for n in names if n not in OPTIMIZERS]
    if bad:
        raise argparse.ArgumentTypeError(
            f"unknown optimizer(s) {bad}; allowed: {', '.join(OPTIMIZERS)}, all"
        )
    return names


def add_grid_arguments(p: argparse.ArgumentParser) -> None:
    """The options that select a subset of the paper's grid."""
    p.add_argument(
        "--datasets",
        default="fashion-mnist",
        help="comma list: mnist, fashion-mnist, cifar10 (default: fashion-mnist)",
    )
    p.add_argument(
        "--optimizers",
        default="all",
        type=parse_optimizers,
        help=f"comma list of {', '.join(OPTIMIZERS)}, or all (default)",
    )
    p.add_argument(
        "--batch-sizes",
        default=",".join(map(str, PAPER_BATCH_SIZES)),
        type=lambda s: parse_list(s, int, "batch size"),
        help="comma list (default: the paper's 8..256)",
    )
    p.add_argument(
        "--seeds", default="0-9", type=parse_seeds, help="e.g. 0-9 or 0,1,2 (default 0-9)"
    )
    p.add_argument("--epochs", type=int, default=PAPER_EPOCHS, help="epochs per run (default 10)")
    p.add_argument(
        "--lrs", default="paper", type=parse_lrs, help="paper, or a comma list like 1e-2,10^-1.5"
    )
    p.add_argument(
        "--momenta",
        default=",".join(map(str, PAPER_MOMENTA)),
        type=lambda s: parse_list(s, float, "momentum"),
        help="SGD momenta (default: the paper's six)",
    )
    p.add_argument(
        "--max-train-samples", type=int, default=None, help="train on a fixed subset of this size"
    )
    p.add_argument(
        "--max-test-samples", type=int, default=None, help="test on a fixed subset of this size"
    )
    p.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda, cuda:N")


def configs_from_args(args: argparse.Namespace) -> list:
    """The :func:`grid` that the parsed options select."""
    return grid(
        parse_list(args.datasets, str, "data set"),
        args.optimizers,
        batch_sizes=args.batch_sizes,
        seeds=args.seeds,
        epochs=args.epochs,
        lrs=args.lrs,
        momenta=args.momenta,
        max_train_samples=args.max_train_samples,
        max_test_samples=args.max_test_samples,
        device=args.device,
    )
