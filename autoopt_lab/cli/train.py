"""``autoopt-lab train``: one run, printed, and optionally saved to a results store.

Example::

    autoopt-lab train --dataset fashion-mnist --optimizer autosgd --batch-size 128 --epochs 2
    autoopt-lab train --dataset mnist --optimizer sgd --lr 1e-2 --momentum 0 --store runs.sqlite
    autoopt-lab train --dataset mnist --optimizer autoadam:ewma=0.95 --epochs 1
    autoopt-lab train --dataset mnist --optimizer prodigy --epochs 1
"""

from __future__ import annotations

import argparse
import json

from autoopt_lab.devices import DEFAULT_DEVICE, DEVICE_HELP


def register(subparsers: argparse._SubParsersAction) -> None:
    from autoopt_lab.experiments.options import optimizer_help, parse_lr

    p = subparsers.add_parser("train", help="train one run and report its errors")
    p.add_argument("--dataset", default="fashion-mnist", help="mnist, fashion-mnist or cifar10")
    p.add_argument(
        "--optimizer", default="autosgd", help=optimizer_help("one of the") + "; default autosgd"
    )
    p.add_argument("--lr", type=parse_lr, default=None,
                   help="e.g. 1e-2 or 10^-1.5 (tuned optimizers only)")
    p.add_argument("--momentum", type=float, default=None,
                   help="SGD momentum (tuned SGD only; default 0)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=DEFAULT_DEVICE, help=DEVICE_HELP)
    p.add_argument("--model", default=None, help="mnist_cnn or cifar_lenet (default: the paper's)")
    p.add_argument("--max-train-samples", type=int, default=None)
    p.add_argument("--max-test-samples", type=int, default=None)
    p.add_argument("--data-root", default=None, help="data directory (default $AUTOOPT_DATA)")
    p.add_argument("--store", default=None, help="also save the run into this SQLite store")
    p.add_argument("--json", dest="json_out", default=None, help="write config+metrics JSON here")
    p.add_argument("--trace-csv", default=None, help="write the per-step trace CSV here")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=main)


def config_from_args(args: argparse.Namespace):
    """The :class:`RunConfig` the options describe (bad input raises ``ValueError``)."""
    from autoopt_lab.experiments.config import RunConfig, field_options
    from autoopt_lab.experiments.grids import parse_item
    from autoopt_lab.optim import registry

    name, options = parse_item(args.optimizer)
    momentum = args.momentum
    if momentum is None and "momentum" in field_options(registry.get(name)):
        momentum = options.pop("momentum", 0.0)
    return RunConfig(
        args.dataset,
        name,
        lr=args.lr,
        momentum=momentum,
        batch_size=args.batch_size,
        epochs=args.epochs,
        seed=args.seed,
        device=args.device,
        model=args.model,
        max_train_samples=args.max_train_samples,
        max_test_samples=args.max_test_samples,
        options=options,
    )


def check_before_training(args: argparse.Namespace, config) -> object | None:
    """Everything that can fail without training, checked before it starts: the device,
    the data, and every output path (the store is opened, so a damaged one is named now).
    Returns the opened store (or None)."""
    from autoopt_lab.data import load_arrays
    from autoopt_lab.devices import resolve_device
    from autoopt_lab.experiments import ResultsStore
    from autoopt_lab.experiments.config import check_batch_fits
    from autoopt_lab.experiments.outputs import check_distinct, check_output_file

    resolve_device(config.device)
    check_distinct({"--store": args.store, "--json": args.json_out, "--trace-csv": args.trace_csv})
    for option, path, kind in (("--json", args.json_out, "json"),
                               ("--trace-csv", args.trace_csv, "csv")):
        if path:
            check_output_file(path, option, kind)
    store = ResultsStore(args.store) if args.store else None
    _, y, _ = load_arrays(config.dataset, train=True, root=args.data_root)
    check_batch_fits([config], {config.dataset: len(y)})
    return store


def main(args: argparse.Namespace) -> int:
    from autoopt_lab.experiments import run

    config = config_from_args(args)
    store = check_before_training(args, config)
    result = run(config, data_root=args.data_root, progress=not args.no_progress)
    m = result.metrics
    print(
        f"run {result.run_id}: {config.label()} on {m['data_source']} "
        f"({m['train_samples']} train / {m['test_samples']} test samples)"
    )
    for i, (tr, te) in enumerate(
        zip(m["train_err_pct_per_epoch"], m["test_err_pct_per_epoch"], strict=True)
    ):
        print(f"  epoch {i + 1:2d}: train error {tr:6.2f}%  test error {te:6.2f}%")
    status = " (diverged)" if m["diverged"] else ""
    print(
        f"final: train {m['final_train_err_pct']:.2f}%  test {m['final_test_err_pct']:.2f}%"
        f"{status}  in {m['wall_time_s']:.1f}s on {m['device_used']}"
    )
    if store is not None:
        store.add_run(config, m, result.trace, sweep="train")
        print(f"saved to {args.store}")
    from autoopt_lab.experiments.outputs import writing

    if args.json_out:
        with writing(args.json_out), open(args.json_out, "w") as f:
            json.dump(
                {"run_id": result.run_id, "config": config.to_dict(), "metrics": m}, f, indent=2
            )
    if args.trace_csv:
        with writing(args.trace_csv):
            result.trace.to_csv(args.trace_csv, index=False)
    return 0
