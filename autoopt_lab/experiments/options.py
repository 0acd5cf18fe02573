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

from autoopt_lab.devices import DEFAULT_DEVICE, DEVICE_HELP
from autoopt_lab.optim import registry
from autoopt_lab.seeds import MAX_SEEDS, parse_seeds  # noqa: F401  (their home; old names here)

from .grids import grid, parse_optimizer_items
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


def parse_lr(item: str) -> float:
    """One learning rate: ``1e-2`` or ``10^-1.5``; it must be > 0."""
    item = item.strip()
    value = 10.0 ** float(item[3:]) if item.startswith("10^") else float(item)
    if not value > 0:
        raise ValueError("a learning rate must be > 0")
    return value


def parse_lrs(text: str) -> list[float]:
    """``"paper"`` for the paper's nine, or values like ``1e-2`` / ``10^-1.5``."""
    if text.strip() == "paper":
        return list(PAPER_LRS)
    return parse_list(text, parse_lr, "learning rate")


def parse_optimizers(text: str) -> list[tuple[str, dict]]:
    """A comma list of registry names or spec strings (``autoadam:ewma=0.95``), or ``all``
    (every available optimizer); an unknown name or option is a ``ValueError``."""
    return parse_optimizer_items(text)


def optimizer_help(what: str = "comma list of") -> str:
    """Help text naming every registered optimizer, by family."""
    fams = "; ".join(
        f"{fam}: {', '.join(registry.names(fam))}" for fam in registry.FAMILIES if registry.names(fam)
    )
    return (
        f"{what} optimizer names or spec strings NAME:key=value:... ({fams}), or all "
        "(every available one)"
    )


def add_grid_arguments(p: argparse.ArgumentParser) -> None:
    """The options that select a subset of the paper's grid."""
    p.add_argument(
        "--datasets",
        default="fashion-mnist",
        help="comma list: mnist, fashion-mnist, cifar10 (default: fashion-mnist)",
    )
    p.add_argument("--optimizers", default="all", help=optimizer_help() + "; default all")
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
    p.add_argument("--device", default=DEFAULT_DEVICE, help=DEVICE_HELP)


def configs_from_args(args: argparse.Namespace) -> list:
    """The :func:`grid` that the parsed options select (bad values raise ``ValueError``)."""
    return grid(
        [d.strip() for d in str(args.datasets).split(",") if d.strip()],
        parse_optimizers(args.optimizers),
        batch_sizes=args.batch_sizes,
        seeds=args.seeds,
        epochs=args.epochs,
        lrs=args.lrs,
        momenta=args.momenta,
        max_train_samples=args.max_train_samples,
        max_test_samples=args.max_test_samples,
        device=args.device,
    )
