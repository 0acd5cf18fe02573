"""``autoopt-lab reproduce``: the paper's Figures 2-4 and Table 2 as executed notebooks.

Runs the sweep the targets need (resumable, into ``--store`` or ``OUT/results.sqlite``),
executes the notebooks through papermill into ``OUT``, and writes ``OUT/summary.json``.

Example::

    autoopt-lab reproduce all --quick --out results/quick
    autoopt-lab reproduce table2 --full --dataset mnist --out results/full-mnist --workers 8
"""

from __future__ import annotations

import argparse
import json
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "reproduce", help="reproduce Figures 2-4 and Table 2 via papermill notebooks"
    )
    p.add_argument(
        "targets", nargs="*", default=["all"], help="fig2, fig3, fig4, table2 or all (default)"
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--quick",
        dest="mode",
        action="store_const",
        const="quick",
        help="reduced grid and data; minutes on a laptop CPU (default)",
    )
    mode.add_argument(
        "--full",
        dest="mode",
        action="store_const",
        const="full",
        help="the paper's grid, seeds, epochs and full data",
    )
    mode.add_argument(
        "--mode",
        dest="mode",
        choices=["quick", "full", "smoke"],
        help="smoke: seconds, for testing the plumbing only",
    )
    p.set_defaults(mode="quick")
    p.add_argument(
        "--out", required=True, help="output folder for notebooks, PNGs and summary.json"
    )
    p.add_argument(
        "--dataset",
        default="fashion-mnist",
        help="comma list of mnist, fashion-mnist, cifar10 (default fashion-mnist, offline here)",
    )
    p.add_argument(
        "--store", default=None, help="SQLite results store (default OUT/results.sqlite)"
    )
    p.add_argument("--workers", type=int, default=2, help="parallel run processes (default 2)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    p.add_argument("--data-root", default=None, help="data directory (default $AUTOOPT_DATA)")
    p.add_argument("--kernel", default="python3", help="Jupyter kernel for papermill")
    p.add_argument(
        "--allow-subset",
        action="store_true",
        help="let --full run on a data set of which only a subset is here (every output "
        "then says so); by default --full refuses it",
    )
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from autoopt_lab.data import DataUnavailableError
    from autoopt_lab.experiments.reproduce import expand_targets, reproduce

    try:
        targets = expand_targets(args.targets)
    except ValueError as exc:
        print(f"autoopt-lab reproduce: {exc}", file=sys.stderr)
        return 2
    datasets = [d.strip() for d in args.dataset.split(",") if d.strip()]
    try:
        summary = reproduce(
            targets,
            args.mode,
            args.out,
            datasets=datasets,
            store=args.store,
            workers=args.workers,
            device=args.device,
            data_root=args.data_root,
            kernel_name=args.kernel,
            progress=not args.no_progress,
            allow_subset=args.allow_subset,
        )
    except DataUnavailableError as exc:
        print(f"autoopt-lab reproduce: {exc}", file=sys.stderr)
        return 3
    print(f"mode {summary['mode']}: {summary['preset']['description']}")
    print(
        f"{summary['runs']} runs ({summary['sweep']['skipped']} reused), "
        f"{summary['wall_time_s']:.0f}s in all; outputs in {args.out}"
    )
    for cell in summary.get("table2_cells", []):
        paper = cell.get("paper_test_mean")
        ref = f"  paper[{cell['paper_reference']}] {paper:.2f}" if paper is not None else ""
        print(
            f"  {cell['dataset']:>13} {cell['optimizer']:>11}: test {cell['test_mean']:6.2f} "
            f"+- {cell['test_std'] or 0:.2f}  train {cell['train_mean']:6.2f} "
            f"+- {cell['train_std'] or 0:.2f}  ({cell['config_text']}){ref}"
        )
    print(json.dumps({"summary": f"{args.out}/summary.json"}))
    return 0
