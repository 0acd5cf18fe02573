"""``autoopt-lab stream``: run optimizers on streaming scenarios with injected shifts.

Examples::

    autoopt-lab stream --list
    autoopt-lab stream fmnist-rotation-incremental --optimizer autosgd,prodigy,sgd --out results/rot
    autoopt-lab stream fmnist-concept-swap --optimizer autosgd,autoadam:eps=1e-3 --seeds 0-4 \\
        --quick --out results/swap
    autoopt-lab stream streams/my-scenario.toml --validate
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from autoopt_lab.devices import DEFAULT_DEVICE, DEVICE_HELP

log = logging.getLogger(__name__)


def check_positive(args: argparse.Namespace, *names: str) -> None:
    """Raise one clear ``ValueError`` for an option below 1 (or not finite and > 0)."""
    for name in names:
        value = getattr(args, name, None)
        if value is None:
            continue
        flag = "--" + name.replace("_", "-")
        if isinstance(value, float):
            if not (value > 0 and value != float("inf")):
                raise ValueError(f"{flag} must be a finite number > 0, got {value:g}")
        elif value < 1:
            raise ValueError(f"{flag} must be >= 1, got {value}")


def add_run_options(p: argparse.ArgumentParser) -> None:
    """Options shared by ``stream`` and ``leaderboard``."""
    p.add_argument("--device", default=DEFAULT_DEVICE, help=DEVICE_HELP)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--fresh", action="store_true",
                   help="delete results and checkpoints of another configuration found in "
                   "--out and start afresh (without it such a folder is refused)")
    p.add_argument("--max-steps", type=int, default=None,
                   help="refuse scenarios longer than this (default 1,000,000 steps)")
    p.add_argument("--max-batch", type=int, default=None,
                   help="refuse batches larger than this (default: the data set size)")


def register(subparsers: Any) -> None:
    from autoopt_lab.optim import registry

    p = subparsers.add_parser(
        "stream",
        help="replay a data set with injected distribution shifts (prequential)",
        description="Run optimizers on scenarios (catalogue names or TOML paths) over one or "
        "more seeds and write trace.parquet, summary.json, table.md and PNGs into --out. "
        "Tuned optimizers given without lr are tuned on each seed's first segment only.",
    )
    p.add_argument("scenario", nargs="*",
                   help="catalogue name(s) (see --list) or path(s) to .toml files; with several, "
                   "each gets OUT/<name>/ and OUT/table.md sums them up")
    p.add_argument("--list", action="store_true", help="list the catalogue, one line each")
    p.add_argument("--optimizer", default="autosgd,sgd",
                   help="comma-separated optimizer spec strings NAME[:KEY=VALUE...], or 'all'. "
                   f"Known: {', '.join(registry.names())} (default: autosgd,sgd)")
    p.add_argument("--auto-options", default="",
                   help="KEY=VALUE,... given to every selected Auto optimizer that takes the "
                   "key, e.g. 'ewma=0.99,max_lr=0.3' (a spec string's own value wins)")
    p.add_argument("--seeds", default=None,
                   help="seeds, e.g. 0-4 or 0,2,5: stream order, model init and shift draws "
                   "(default: the scenario's own seed)")
    p.add_argument("--out", help="output folder (required unless --list or --validate)")
    p.add_argument("--steps-scale", type=float, default=None,
                   help="multiply every segment length and transition width (e.g. 0.25)")
    p.add_argument("--quick", action="store_true",
                   help="every length x 0.25 and the quick tuning grid")
    p.add_argument("--grid", choices=("full", "quick"), default=None,
                   help="baseline tuning grid (default: full; quick with --quick)")
    p.add_argument("--tuning-cache",
                   help="JSON file reused across scenarios (default OUT/tuning.json)")
    p.add_argument("--checkpoint-every", type=int, default=None,
                   help="checkpoint each run every N steps; a rerun resumes from it")
    p.add_argument("--validate", action="store_true",
                   help="only check the scenarios (schema, sizes, model against the data) and "
                   "estimate how long each run would take")
    add_run_options(p)
    p.set_defaults(func=main, on_interrupt=_kept)


def _kept(args: argparse.Namespace) -> str:
    """What an interrupted ``stream`` kept: finished runs, and checkpoints when asked."""
    if not args.out:
        return "nothing was written"
    from pathlib import Path

    n = sum(1 for _ in Path(args.out).glob("**/runs/*.json"))
    if args.checkpoint_every:
        ckpt, how = (f" and each unfinished run's last checkpoint (every "
                     f"{args.checkpoint_every} steps)"), ""
    else:
        ckpt, how = "", " (an unfinished run starts again; --checkpoint-every N resumes mid-run)"
    return (f"{n} finished run{'s' if n != 1 else ''}{ckpt} kept in {args.out}; rerun the same "
            f"command to resume{how}")


def _list() -> int:
    from autoopt_lab.streams import list_catalogue

    cat = list_catalogue()
    width = max(len(n) for n, _ in cat)
    for name, sc in cat:
        kinds = sorted({s.kind for seg in sc.segments for s in seg.shifts}
                       | ({"batch_size"} if len({g.batch_size for g in sc.segments}) > 1
                          else set()))
        trans = sorted({seg.transition.kind for seg in sc.segments[1:]})
        print(f"{name:<{width}}  {sc.dataset:<13} {sc.total_steps:>5} steps  "
              f"shifts={','.join(kinds)}  transitions={','.join(trans)}")
    return 0


def unique_names(scenarios: list[Any]) -> list[str]:
    """Folder names for scenarios: their names, made distinct (``name``, ``name-2``, ...).

    >>> from types import SimpleNamespace as S
    >>> unique_names([S(name="a"), S(name="b"), S(name="a")])
    ['a', 'b', 'a-2']
    """
    seen: dict[str, int] = {}
    out = []
    for sc in scenarios:
        n = seen.get(sc.name, 0) + 1
        seen[sc.name] = n
        out.append(sc.name if n == 1 else f"{sc.name}-{n}")
    return out


def _validate(scenarios: list[Any], args: argparse.Namespace, device: Any) -> int:
    from autoopt_lab.data import load_arrays
    from autoopt_lab.streams import DEFAULT_MAX_STEPS, check_model, check_size
    from autoopt_lab.streams.checks import (
        DATASET_SIZES,
        estimate_seconds,
        format_duration,
        measure_step_seconds,
    )

    for sc in scenarios:
        load_arrays(sc.dataset, train=True)  # valid only when its data is here
        check_model(sc, device=device)
        check_size(sc, max_steps=sys.maxsize, max_batch=args.max_batch,
                   data_size=DATASET_SIZES[sc.dataset])
        rate = measure_step_seconds(sc, device=device)
        check_size(sc, max_steps=args.max_steps or DEFAULT_MAX_STEPS, max_batch=args.max_batch,
                   seconds_per_sample=rate)
        samples = sum(s.steps * s.batch_size for s in sc.segments)
        print(f"{sc.source}: valid, {len(sc.segments)} segments, {sc.total_steps:,} steps, "
              f"{samples:,} samples; about {format_duration(estimate_seconds(sc, rate))} per "
              f"optimizer and seed on {device} with a plain optimizer (Auto ones up to ~2x), "
              "plus first-segment tuning for tuned baselines")
    return 0


def main(args: argparse.Namespace) -> int:
    from autoopt_lab.devices import resolve_device
    from autoopt_lab.streams import (
        apply_shared_options,
        find_scenario,
        parse_optimizers,
        parse_seeds,
        resolve_mode,
    )

    check_positive(args, "steps_scale", "checkpoint_every", "threads", "max_steps", "max_batch")
    if args.list:
        return _list()
    if not args.scenario:
        raise ValueError("give a SCENARIO (catalogue name or .toml path), or --list")
    device = resolve_device(args.device)
    mode = resolve_mode("quick" if args.quick else "full", steps_scale=args.steps_scale,
                        grid=args.grid)
    scenarios = [find_scenario(name) for name in args.scenario]
    if mode.steps_scale != 1.0:
        scenarios = [sc.scaled(mode.steps_scale) for sc in scenarios]
    if args.validate:
        return _validate(scenarios, args, device)
    entries = apply_shared_options(parse_optimizers(args.optimizer), args.auto_options)
    seeds = parse_seeds(args.seeds) if args.seeds is not None else None
    if not args.out:
        raise ValueError("--out DIR is required to run a scenario")
    from autoopt_lab.streams.outdir import ensure_writable, lock_output, release_output

    out = ensure_writable(args.out)
    lock_output(out)  # one stream command per --out (each scenario's folder is locked too)
    try:
        return _run(args, scenarios, entries, seeds, mode, device, out)
    finally:
        release_output(out)


def _run(args: argparse.Namespace, scenarios: list[Any], entries: list[Any], seeds: Any,
         mode: Any, device: Any, out: Any) -> int:
    from autoopt_lab.streams import DEFAULT_MAX_STEPS, run_scenario

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    import pandas as pd

    from autoopt_lab.streams.table import (
        comparison_table,
        markdown_table,
        optimizer_rows,
        table_rows,
    )

    many = len(scenarios) > 1
    folders = unique_names(scenarios)
    for sc, folder in zip(scenarios, folders, strict=True):
        if folder != sc.name:
            log.warning("two scenarios are named %r: %s goes to %s/%s", sc.name, sc.source, out,
                        folder)
    cache = args.tuning_cache or (out / "tuning.json")
    from autoopt_lab.experiments.outputs import check_distinct

    check_distinct({"--tuning-cache": cache, **{f"--out's {n}": out / f / n
                    for f in (folders if many else ["."])
                    for n in ("summary.json", "trace.parquet", "table.md", "table.csv",
                              "stream.json")}})
    common = dict(device=device, seeds=seeds, grid=mode.grid, tuning_cache=cache,
                  checkpoint_every=args.checkpoint_every, fresh=args.fresh,
                  max_steps=args.max_steps or DEFAULT_MAX_STEPS, max_batch=args.max_batch)
    for sc in scenarios:  # every scenario valid before any folder is claimed
        run_scenario(sc, entries, out=None, check_only=True, **common)
    for sc, folder in zip(scenarios, folders, strict=True):  # every folder before any work
        run_scenario(sc, entries, out=out / folder if many else out, check_only=True, **common)
    all_rows, opt_rows = [], []
    for sc, folder in zip(scenarios, folders, strict=True):
        target = out / folder if many else out
        _, summary = run_scenario(sc, entries, out=target, **common)
        summary["scenario"] = folder
        all_rows += table_rows(summary)
        opt_rows += optimizer_rows(summary)
        print(f"{folder}: wrote {target}/trace.parquet, summary.json, comparison.png and one "
              "PNG per optimizer")
        for key, s in summary["optimizers"].items():
            _print_line(key, s)
    table = markdown_table(all_rows) + "\n\n" + comparison_table(opt_rows) + "\n"
    (out / "table.md").write_text(table)
    pd.DataFrame(all_rows).to_csv(out / "table.csv", index=False)
    if many:
        print(f"wrote {out}/table.md and table.csv")
    return 0


def _print_line(key: str, s: dict[str, Any]) -> None:
    err = s["prequential_error"]
    ci = s.get("prequential_error_ci")
    text = "—" if err is None else f"{err:.4f}" + (f" [{ci[0]:.4f}, {ci[1]:.4f}]" if ci else "")
    rec = []
    for sh in s["shifts"]:
        if sh["recovery_steps"] is not None:
            rec.append(f"{sh['recovery_steps']:.0f}")
        else:
            statuses = sh.get("status_by_seed") or ["not recovered"]
            rec.append(statuses[0] if len(set(statuses)) == 1 else "mixed")
    flags = s["health"]["flags"]
    warn = f"  FLAGGED: {', '.join(flags)} ({s['health']['flagged_seeds']}/{len(s['seeds'])} " \
           "seeds)" if flags else ""
    print(f"  {key:<14} prequential error {text}  recovery [{', '.join(rec)}]  "
          f"harness/train {s['timing']['harness_over_train']:.3f}{warn}")
