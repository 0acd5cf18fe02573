"""``autoopt-lab reproduce``: the paper's Figures 2-4 and Table 2 as executed notebooks.

Runs the sweep the targets need (resumable, into ``--store`` or ``OUT/results.sqlite``),
executes the notebooks through papermill into ``OUT``, and writes ``OUT/summary.json`` (the
claim table first; the command also prints it).

Example::

    autoopt-lab reproduce all --quick --out results/quick
    autoopt-lab reproduce all --full --dataset mnist,cifar10 --out results/full --workers 8
"""

from __future__ import annotations

import argparse
import json
import os

from autoopt_lab.cli import store_kept
from autoopt_lab.devices import DEFAULT_DEVICE, DEVICE_HELP


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
        default="mnist,fashion-mnist",
        help="comma list of mnist, fashion-mnist, cifar10 (default mnist,fashion-mnist: both "
        "offline; Figures 2-3 use the first in quick mode)",
    )
    p.add_argument(
        "--store", default=None, help="SQLite results store (default OUT/results.sqlite)"
    )
    p.add_argument("--workers", type=int, default=2, help="parallel run processes (default 2)")
    p.add_argument("--device", default=DEFAULT_DEVICE, help=DEVICE_HELP)
    p.add_argument("--data-root", default=None, help="data directory (default $AUTOOPT_DATA)")
    p.add_argument("--kernel", default="python3", help="Jupyter kernel for papermill")
    p.add_argument(
        "--allow-subset",
        action="store_true",
        help="let --full run on a data set of which only a subset is here (every output "
        "then says so); by default --full refuses it",
    )
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=main, on_interrupt=lambda args: store_kept(
        args.store or os.path.join(args.out, "results.sqlite")))


def main(args: argparse.Namespace) -> int:
    from autoopt_lab.devices import resolve_device
    from autoopt_lab.experiments.outputs import check_output_dir, check_store_path
    from autoopt_lab.experiments.reproduce import check_kernel, expand_targets, reproduce

    targets = expand_targets(args.targets)
    datasets = [d.strip() for d in args.dataset.split(",") if d.strip()]
    resolve_device(args.device)
    check_kernel(args.kernel)
    check_output_dir(args.out, "--out")
    if args.store:
        check_store_path(args.store)
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
    print(f"mode {summary['mode']}: {summary['preset']['description']}")
    if summary.get("data_warning"):
        print(f"WARNING: {summary['data_warning']}")
    print(
        f"{summary['runs']} runs ({summary['sweep']['skipped']} reused), "
        f"{summary['wall_time_s']:.0f}s in all; outputs in {args.out}"
    )
    print("claims (verdict of the paper's method; every variant in summary.json):")
    for claim in summary.get("claims", []):
        others = "; ".join(
            f"{c['display']} {c['verdict']}" for role, c in claim["variants"].items()
            if role != "paper"
        )
        print(f"  [{claim['verdict']}] {claim['claim']} - {claim['data']}"
              + (f"  (others: {others})" if others else ""))
    print(json.dumps({"summary": f"{args.out}/summary.json"}))
    return 0
