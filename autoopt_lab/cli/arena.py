"""``autoopt-lab arena``: AutoOpt against the tuned grids and the tuning-free peers.

Same data, seeds and steps for everyone; resumable through the results store (a killed
arena redoes no finished run); writes ``arena_table.md``/``.csv``, ``arena.json`` and
``arena.png`` into ``--out``.

Examples::

    autoopt-lab arena --quick --out results/arena-quick
    autoopt-lab arena --out results/arena --workers 2          # the full protocol (hours on CPU)
    autoopt-lab arena --preset mnist --out results/arena-mnist
    autoopt-lab arena --quick --auto autosgd,autosgd:curvature_every=1 --peers prodigy --out r
"""

from __future__ import annotations

import argparse
import json
import math
import os

from autoopt_lab.cli import store_kept


def register(subparsers: argparse._SubParsersAction) -> None:
    from autoopt_lab.arena import PRESETS
    from autoopt_lab.devices import DEVICE_HELP
    from autoopt_lab.optim import registry

    p = subparsers.add_parser(
        "arena",
        help="AutoOpt vs tuned grids and tuning-free peers (table, figure, JSON)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", required=True, help="output folder (created if missing)")
    p.add_argument("--preset", default="full", choices=list(PRESETS),
                   help="; ".join(f"{k}: {v.description}" for k, v in PRESETS.items()))
    p.add_argument("--quick", action="store_true", help="shortcut for --preset quick")
    p.add_argument("--dataset", default=None, help="mnist or fashion-mnist (default: the preset's)")
    p.add_argument("--batch-sizes", default=None, help="comma list, e.g. 32,128,256")
    p.add_argument("--seeds", default=None, help="e.g. 0-4 or 0,1")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--max-train-samples", type=int, default=None)
    p.add_argument("--max-test-samples", type=int, default=None)
    p.add_argument("--auto", default=None,
                   help="comma list of Auto variants (spec strings); default: "
                   + ", ".join(registry.names("auto")))
    p.add_argument("--peers", default=None,
                   help="comma list of tuning-free peers, or 'none'; default: every installed "
                   "one (" + ", ".join(registry.names("peer")) + ")")
    p.add_argument("--tuned", default=None,
                   help="comma list of tuned grids, or 'none' (run only the other contenders, "
                   "e.g. a new variant to compare with a table run before); default: every one (" + ", ".join(registry.names("tuned")) + ")")
    p.add_argument("--extra", default=None, help="more contenders, as spec strings")
    p.add_argument("--store", default=None, help="SQLite results file (default OUT/arena.sqlite)")
    p.add_argument("--workers", type=int, default=None, help="worker processes (default: CPUs)")
    p.add_argument("--device", default=None, help=DEVICE_HELP)
    p.add_argument("--data-root", default=None, help="data directory (default $AUTOOPT_DATA)")
    p.add_argument("--no-timing", action="store_true", help="skip the step-time measurement")
    p.add_argument("--dry-run", action="store_true", help="count the runs and exit")
    p.add_argument("--max-runs", type=int, default=None,
                   help="refuse plans of more runs than this (default 100,000)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=main, on_interrupt=lambda args: store_kept(
        args.store or os.path.join(args.out, "arena.sqlite")))


def _plan(args: argparse.Namespace):
    from autoopt_lab.arena import get_preset
    from autoopt_lab.optim import registry
    from autoopt_lab.seeds import parse_seeds

    def specs(text: str | None) -> tuple[str, ...] | None:
        if text is None:
            return None
        if text.strip().lower() == "none":
            return ()
        items = registry.split_list(text)
        for item in items:
            registry.parse_spec(item)  # an unknown name or option is a clear error now
        return tuple(items)

    sizes = None
    if args.batch_sizes:
        sizes = tuple(int(v) for v in args.batch_sizes.split(",") if v.strip())
        if any(n < 2 for n in sizes):
            raise ValueError(f"--batch-sizes must be >= 2 (a variance estimate), got {sizes}")
    return get_preset(
        "quick" if args.quick else args.preset,
        dataset=args.dataset,
        batch_sizes=sizes,
        seeds=tuple(parse_seeds(args.seeds)) if args.seeds else None,
        epochs=args.epochs,
        max_train_samples=args.max_train_samples,
        max_test_samples=args.max_test_samples,
        auto=specs(args.auto),
        peers=specs(args.peers),
        tuned=specs(args.tuned),
        extra=specs(args.extra),
        device=args.device,
    )


def main(args: argparse.Namespace) -> int:
    from autoopt_lab.arena import run_arena
    from autoopt_lab.data import load_arrays
    from autoopt_lab.devices import resolve_device
    from autoopt_lab.experiments import ResultsStore
    from autoopt_lab.experiments.config import check_batch_fits
    from autoopt_lab.experiments.outputs import (
        check_output_dir,
        check_output_file,
        check_store_path,
    )
    from autoopt_lab.experiments.sweep import DEFAULT_MAX_RUNS, check_plan_size

    plan = _plan(args)
    resolve_device(plan.device)
    check_plan_size(len(plan.batch_sizes) * len(plan.seeds) * plan.settings_count(),
                    args.max_runs or DEFAULT_MAX_RUNS, what="arena")
    configs = plan.configs()  # validates every contender and option
    out = check_output_dir(args.out, "--out")
    store_path = check_output_file(check_store_path(args.store or out / "arena.sqlite"),
                                   "--store")
    store = ResultsStore(store_path)
    if args.dry_run:
        from autoopt_lab.experiments.sweep import pending_runs

        configs, todo = pending_runs(configs, store, "vectorized")  # the executor run_arena uses
        print(f"{len(configs)} runs in the arena ({len(plan.contenders())} contenders), "
              f"{len(configs) - len(todo)} already in {store_path}, {len(todo)} to do")
        return 0
    _, y, _ = load_arrays(plan.dataset, train=True, root=args.data_root)  # missing: fail now
    check_batch_fits(configs, {c.dataset: len(y) for c in configs[:1]})
    result = run_arena(plan, out, store=store_path, workers=args.workers,
                       data_root=args.data_root, timing=not args.no_timing,
                       progress=not args.no_progress)
    print(f"arena {plan.name}: {plan.description or ''}")
    print((out / "arena_table.md").read_text())
    for t in result.targets:
        tuned = "n/a" if t["within_tuned"] is None else ("yes" if t["within_tuned"] else "no")
        peer = "n/a" if t["within_peer"] is None else ("yes" if t["within_peer"] else "no")
        gp = t["gap_to_best_peer"]
        gt = t["gap_to_tuned"]
        print(f"target {t['optimizer']:<12} N={t['batch_size']:<4} gap to tuned "
              f"{'n/a' if math.isnan(gt) else f'{gt:+.2f}'} pt (within 0.5: {tuned}), to best peer "
              f"{'n/a' if math.isnan(gp) else f'{gp:+.2f}'} pt (within 0.5: {peer}), "
              f"diverged {t['diverged']}, lr moves {t['lr_moves']}")
    print(json.dumps({"table": str(out / "arena_table.md"), "figure": str(out / "arena.png"),
                      "summary": str(out / "arena.json")}))
    return 0
