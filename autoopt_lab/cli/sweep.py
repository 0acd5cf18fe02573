"""``autoopt-lab sweep``: a subset of the paper's grid, in parallel workers, into a store.

Resumable: run the same command again after an interruption (even ``kill -9``) and only
the unfinished runs execute.

Example::

    autoopt-lab sweep --store results/fmnist.sqlite --datasets fashion-mnist \\
        --optimizers sgd,autosgd --batch-sizes 128 --seeds 0-2 --epochs 3 --workers 2
    autoopt-lab sweep --store results/peers.sqlite --datasets mnist \\
        --optimizers autosgd,prodigy,autoadam:ewma=0.95 --batch-sizes 128 --seeds 0-2
"""

from __future__ import annotations

import argparse
import json
import sys

from autoopt_lab.cli import store_kept


def register(subparsers: argparse._SubParsersAction) -> None:
    from autoopt_lab.experiments.executors import executor_names
    from autoopt_lab.experiments.options import add_grid_arguments

    p = subparsers.add_parser("sweep", help="run a (resumable) grid of runs into a results store")
    p.add_argument("--store", required=True, help="SQLite results file (created if missing)")
    add_grid_arguments(p)
    p.add_argument(
        "--workers", type=int, default=None, help="worker processes (default: CPU count)"
    )
    p.add_argument("--threads-per-worker", type=int, default=1, help="torch threads per worker")
    p.add_argument(
        "--executor",
        default="vectorized",
        choices=executor_names(),
        help="vectorized (default): grid settings sharing model, batch size and seed train at "
        "once, other runs as in process; process; serial; ray (see docs/performance.md)",
    )
    p.add_argument(
        "--address", default=None, help="Ray cluster for --executor ray, e.g. ray://head:10001"
    )
    p.add_argument("--data-root", default=None, help="data directory (default $AUTOOPT_DATA)")
    p.add_argument("--name", default=None, help="a tag stored with every run")
    p.add_argument("--dry-run", action="store_true", help="count the runs and exit")
    p.add_argument("--max-runs", type=int, default=None,
                   help="refuse plans of more runs than this (default 100,000)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=main, on_interrupt=lambda args: store_kept(args.store))


def main(args: argparse.Namespace) -> int:
    from autoopt_lab.data import load_arrays
    from autoopt_lab.devices import resolve_device
    from autoopt_lab.experiments import ResultsStore, run_sweep
    from autoopt_lab.experiments.config import check_batch_fits
    from autoopt_lab.experiments.options import configs_from_args
    from autoopt_lab.experiments.sweep import DEFAULT_MAX_RUNS, check_plan_size

    one_seed = configs_from_args(argparse.Namespace(**{**vars(args), "seeds": args.seeds[:1]}))
    check_plan_size(len(one_seed) * len(args.seeds), args.max_runs or DEFAULT_MAX_RUNS)
    configs = configs_from_args(args)
    resolve_device(args.device)
    store = ResultsStore(args.store)
    if args.dry_run:  # counted as the sweep would: with its executor's engine
        from autoopt_lab.experiments.sweep import pending_runs

        configs, todo = pending_runs(configs, store, args.executor)
        print(
            f"{len(configs)} runs in the grid, {len(configs) - len(todo)} already in "
            f"{args.store}, {len(todo)} to do"
        )
        return 0
    sizes = {d: len(load_arrays(d, train=True, root=args.data_root)[1])  # missing data: now
             for d in sorted({c.dataset for c in configs})}
    check_batch_fits(configs, sizes)
    report = run_sweep(
        configs,
        store,
        executor=args.executor,
        **({"address": args.address} if args.address else {}),
        workers=args.workers,
        threads_per_worker=args.threads_per_worker,
        sweep_name=args.name,
        data_root=args.data_root,
        progress=not args.no_progress,
    )
    diverged = _diverged(configs, store, args.executor)
    print(json.dumps({**report.to_dict(), "diverged": len(diverged)}, indent=2))
    if diverged:
        shown = "; ".join(diverged[:5]) + (f"; ... ({len(diverged) - 5} more)"
                                            if len(diverged) > 5 else "")
        print(f"WARNING: {len(diverged)} of {report.total} runs diverged (kept in {args.store}, "
              f"column diverged): {shown}", file=sys.stderr)
    return 1 if report.failed else 0


def _diverged(configs: list, store, executor: str) -> list[str]:
    """Labels of this grid's finished runs that diverged."""
    from autoopt_lab.experiments.sweep import pending_runs

    configs, _ = pending_runs(configs, store, executor)
    bad = store.diverged_ids()
    return [c.label() for c in configs if c.run_id() in bad]
