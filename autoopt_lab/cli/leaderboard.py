"""``autoopt-lab leaderboard``: every Fashion-MNIST stream x optimizer x seed, one figure.

Runs the cells not yet in the results store (``--store``, default ``OUT/leaderboard.sqlite``;
a killed run redoes nothing it had finished), then executes ``notebooks/stream_leaderboard.ipynb``
with papermill into ``OUT`` (``--no-notebook`` writes the same figure, table and JSON
without it).

Examples::

    autoopt-lab leaderboard --quick --out results/leaderboard-quick
    autoopt-lab leaderboard --full --out results/leaderboard        # 8 scenarios, seeds 0-4
    autoopt-lab leaderboard --quick --families auto,peer --seeds 0-2 --out results/lb
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from autoopt_lab.cli import store_kept

log = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    from autoopt_lab.devices import DEFAULT_DEVICE, DEVICE_HELP
    from autoopt_lab.optim import registry

    p = subparsers.add_parser(
        "leaderboard",
        help="the stream leaderboard: scenarios (Fashion-MNIST by default) x optimizers x seeds",
        description="Run the catalogue scenarios (every Fashion-MNIST one by default, each on "
        "its own data set) with the registry's Auto "
        "variants, tuning-free peers and first-segment-tuned baselines over several seeds, "
        "into a results store, and draw one figure (leaderboard.png) with leaderboard.md and "
        "leaderboard.json.",
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", dest="mode", action="store_const", const="quick",
                      help="every length x 0.15, seed 0, quick tuning grid (the default; "
                      "about 10 minutes on a quiet 2-core CPU)")
    mode.add_argument("--full", dest="mode", action="store_const", const="full",
                      help="catalogue lengths, seeds 0-4, full tuning grid")
    p.set_defaults(mode="quick")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--store", default=None,
                   help="SQLite results store (default OUT/leaderboard.sqlite)")
    p.add_argument("--scenarios", default="",
                   help="comma list of scenarios, each trained on its own data set "
                   "(default: every Fashion-MNIST one)")
    p.add_argument("--families", default="auto,peer,tuned",
                   help=f"registry families on the board (of {', '.join(registry.FAMILIES)})")
    p.add_argument("--optimizer", default="",
                   help="registry spec strings instead of --families, e.g. autosgd,prodigy,sgd")
    p.add_argument("--seeds", default=None, help="e.g. 0-4 (default: the mode's)")
    p.add_argument("--steps-scale", type=float, default=None,
                   help="length scale instead of the mode's")
    p.add_argument("--workers", type=int, default=2,
                   help="cells run in this many processes, one torch thread each (default 2)")
    p.add_argument("--no-notebook", action="store_true",
                   help="write the outputs directly instead of executing the notebook")
    p.add_argument("--kernel", default="python3", help="Jupyter kernel for papermill")
    p.add_argument("--device", default=DEFAULT_DEVICE, help=DEVICE_HELP)
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads of this process (workers use one each)")
    p.set_defaults(func=main, on_interrupt=lambda args: store_kept(
        args.store or Path(args.out) / "leaderboard.sqlite"))


def main(args: argparse.Namespace) -> int:
    from autoopt_lab.cli.stream import check_positive
    from autoopt_lab.devices import resolve_device
    from autoopt_lab.experiments.store import ResultsStore
    from autoopt_lab.streams import leaderboard as lb
    from autoopt_lab.streams.outdir import ensure_writable

    check_positive(args, "steps_scale", "threads", "workers")
    families = [f.strip() for f in args.families.split(",") if f.strip()]
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()] or None
    plan = lb.plan_leaderboard(args.mode, scenarios=scenarios, families=families,
                               optimizers=args.optimizer or None, seeds=args.seeds,
                               steps_scale=args.steps_scale)
    device = resolve_device(args.device)
    out = ensure_writable(args.out).resolve()
    store_path = Path(args.store).resolve() if args.store else out / "leaderboard.sqlite"
    ensure_writable(store_path.parent)
    store = ResultsStore(store_path)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    print(f"{len(plan.scenarios)} scenarios x {len(plan.optimizers)} optimizers x "
          f"{len(plan.seeds)} seeds = {len(plan.cells())} cells (steps x {plan.steps_scale}, "
          f"tuning grid {plan.grid}); store {store_path}")
    report = lb.run_leaderboard(plan, store, device=device, workers=args.workers)
    print(f"ran {report['ran']} cells, {report['done_before']} were done before, "
          f"{report['failed']} failed, in {report['wall_time_s']:.0f} s")
    if args.no_notebook:
        record = lb.write_outputs(plan, lb.leaderboard_frame(store, plan), out, report)
    else:
        import json

        import papermill

        from autoopt_lab.notebooks import notebook_dir

        name = "stream_leaderboard.ipynb"
        papermill.execute_notebook(
            str(notebook_dir() / name), str(out / name), kernel_name=args.kernel, cwd=str(out),
            parameters={"mode": plan.mode, "store": str(store_path), "out_dir": str(out),
                        "scenarios": ",".join(plan.scenarios),
                        "optimizers": ",".join(plan.optimizers),
                        "seeds": ",".join(map(str, plan.seeds)),
                        "steps_scale": plan.steps_scale, "run_missing": False,
                        "device": str(device), "threads": args.threads or 1})
        record = json.loads((out / "leaderboard.json").read_text())
    print(record["markdown"])
    goal = record["goal"]
    print(f"best Auto beats best peer on {goal['auto_beats_peer_on']} of {goal['of']} "
          f"scenarios; median recovery: best Auto ({goal['best_overall'].get('auto')}) "
          f"{goal.get('auto_median_recovery')}, best peer ({goal['best_overall'].get('peer')}) "
          f"{goal.get('peer_median_recovery')}")
    print(f"wrote {out}/leaderboard.png, leaderboard.md, leaderboard.json")
    if report["failed"]:
        log.warning("%d cells failed; see the 'error' column of %s (a rerun retries them)",
                    report["failed"], store_path)
    return 0
