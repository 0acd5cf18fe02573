"""``autoopt-lab stream``: run optimizers on a streaming scenario with injected shifts.

Examples::

    autoopt-lab stream --list
    autoopt-lab stream fmnist-rotation-incremental --optimizer autosgd,sgd --out results/rot
    autoopt-lab stream streams/my-scenario.toml --optimizer autosgd --quick --out results/my
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "stream",
        help="replay a data set with injected distribution shifts (prequential)",
        description="Run optimizers on a scenario (catalogue name or TOML path) and write "
        "trace.parquet, summary.json and PNGs into --out. Baselines (sgd, adam, adagrad) are "
        "tuned on the first segment only.",
    )
    p.add_argument("scenario", nargs="*",
                   help="catalogue name(s) (see --list) or path(s) to .toml files; with several, "
                   "each gets OUT/<name>/ and OUT/table.md sums them up")
    p.add_argument("--list", action="store_true", help="list the catalogue, one line each")
    p.add_argument("--optimizer", default="autosgd,sgd",
                   help="comma-separated: autosgd, autoadam, autoadagrad, sgd, adam, adagrad "
                   "(default: autosgd,sgd)")
    p.add_argument("--out", help="output folder (required unless --list or --validate)")
    p.add_argument("--steps-scale", type=float, default=1.0,
                   help="multiply every segment length and transition width (e.g. 0.25)")
    p.add_argument("--quick", action="store_true",
                   help="shortcut for --steps-scale 0.25 and the quick tuning grid")
    p.add_argument("--grid", choices=("full", "quick"), default=None,
                   help="baseline tuning grid (default: full; quick with --quick)")
    p.add_argument("--auto-options", default="",
                   help="keyword options for the Auto optimizers, e.g. "
                   "'ewma=0.99,eps=0.001,bias_correction=constant'")
    p.add_argument("--tuning-cache", help="JSON file reused across scenarios (default OUT/tuning.json)")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available)")
    p.add_argument("--checkpoint-every", type=int, default=None,
                   help="save OUT/<optimizer>.ckpt every N steps; a rerun resumes from it")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--validate", action="store_true", help="only load and validate the scenario")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from autoopt_lab.streams import (
        ScenarioError,
        find_scenario,
        list_catalogue,
        parse_optimizers,
        run_scenario,
    )

    if args.list:
        try:
            cat = list_catalogue()
        except (FileNotFoundError, ScenarioError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        width = max(len(n) for n, _ in cat)
        for name, sc in cat:
            kinds = sorted({s.kind for seg in sc.segments for s in seg.shifts}
                           | ({"batch_size"} if len({g.batch_size for g in sc.segments}) > 1
                              else set()))
            trans = sorted({seg.transition.kind for seg in sc.segments[1:]})
            print(f"{name:<{width}}  {sc.dataset:<13} {sc.total_steps:>5} steps  "
                  f"shifts={','.join(kinds)}  transitions={','.join(trans)}")
        return 0
    if not args.scenario:
        print("error: give a SCENARIO (catalogue name or .toml path), or --list", file=sys.stderr)
        return 2
    try:
        scenarios = [find_scenario(name) for name in args.scenario]
        optimizers = parse_optimizers(args.optimizer)
    except (FileNotFoundError, ScenarioError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    scale = 0.25 if args.quick and args.steps_scale == 1.0 else args.steps_scale
    if scale != 1.0:
        scenarios = [sc.scaled(scale) for sc in scenarios]
    if args.validate:
        for sc in scenarios:
            print(f"{sc.source}: valid, {len(sc.segments)} segments, {sc.total_steps} steps")
        return 0
    if not args.out:
        print("error: --out DIR is required to run a scenario", file=sys.stderr)
        return 2
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    import pandas as pd

    from autoopt_lab.data import DataUnavailableError
    from autoopt_lab.streams.table import markdown_table, table_rows

    grid = args.grid or ("quick" if args.quick else "full")
    try:
        auto_hparams = _parse_options(args.auto_options)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    many = len(scenarios) > 1
    cache = args.tuning_cache or (out / "tuning.json")
    all_rows = []
    for sc in scenarios:
        target = out / sc.name if many else out
        try:
            _, summary = run_scenario(sc, optimizers, out=target, device=args.device,
                                      grid=grid, tuning_cache=cache, auto_hparams=auto_hparams,
                                      checkpoint_every=args.checkpoint_every)
        except DataUnavailableError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 3
        rows = table_rows(summary)
        all_rows += rows
        print(f"{sc.name}: wrote {target}/trace.parquet, summary.json, comparison.png and one "
              "PNG per optimizer")
        for name, s in summary["optimizers"].items():
            rec = [sh["recovery_steps"] for sh in s["shifts"]]
            print(f"  {name:<12} prequential error {s['prequential_error']:.4f}  "
                  f"recovery {rec}  harness/train {s['timing']['harness_over_train']:.3f}  "
                  f"{s['hparams'] or ''}")
    if all_rows:
        table = markdown_table(all_rows)
        (out / "table.md").write_text(table + "\n")
        pd.DataFrame(all_rows).to_csv(out / "table.csv", index=False)
        if many:
            print(f"wrote {out}/table.md and table.csv")
    return 0


def _parse_options(text: str) -> dict[str, Any]:
    """``"ewma=0.99,adapt_momentum=false,solver=triangle"`` -> numbers, booleans and strings."""
    out: dict[str, Any] = {}
    for item in filter(None, (t.strip() for t in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--auto-options: {item!r} is not KEY=VALUE")
        v = value.strip()
        if v.lower() in ("true", "false"):
            out[key.strip()] = v.lower() == "true"
        else:
            try:
                out[key.strip()] = float(v)
            except ValueError:
                out[key.strip()] = v  # a choice such as bias_correction=constant
    return out
