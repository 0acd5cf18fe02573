"""One training run: data, model, optimizer, epochs; per-epoch errors and a per-step trace.

Errors are percentages. *Train error* is measured the way the paper reports it: after each
epoch, the classification error of the model in eval mode (dropout off, no gradient) on the
whole training set that the run trains on (the subset, when ``max_train_samples`` is set).
*Test error* is the same on the test split.

The run is deterministic for a seed on CPU: the seed fixes the initial weights, dropout and
the shuffling (its own generator). On CUDA, cuDNN kernels may differ in the last bits.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from autoopt_lab.data import load_arrays, normalize, shuffled_batches
from autoopt_lab.devices import resolve_device
from autoopt_lab.health import CHANCE_MARGIN_PCT, DIVERGED_LOSS, is_diverged
from autoopt_lab.identity import library_versions
from autoopt_lab.models import build_model, check_log_probabilities
from autoopt_lab.optim import registry

from . import engines
from .config import RunConfig
from .evaluation import EVAL_BATCH, evaluate
from .result import MAX_TRACE_ROWS, RunResult, run_metrics, trace_frame

logger = logging.getLogger(__name__)

# Names other modules and notebooks import from here (their homes are the modules above).
__all__ = [
    "CHANCE_MARGIN_PCT", "DIVERGED_LOSS", "EVAL_BATCH", "MAX_TRACE_ROWS", "RunResult",
    "evaluate", "is_diverged", "library_versions", "load_split", "nonfinite_skips", "run",
    "run_metrics", "trace_frame",
]

SUBSET_SEED = 20190101  # fixed: every run of a sweep sees the same data subset


def _fixed_subset(n_total: int, n_keep: int | None) -> torch.Tensor | None:
    if n_keep is None or n_keep >= n_total:
        return None
    gen = torch.Generator().manual_seed(SUBSET_SEED)
    return torch.randperm(n_total, generator=gen)[:n_keep].sort().values


def load_split(config: RunConfig, train: bool, device: torch.device, data_root: str | None):
    """``(x normalised on device, y, info, n)`` of one split, cut to the config's subset."""
    x, y, info = load_arrays(config.dataset, train=train, root=data_root)
    limit = config.max_train_samples if train else config.max_test_samples
    idx = _fixed_subset(len(y), limit)
    if idx is not None:
        x, y = x[idx], y[idx]
    return normalize(x, info, device=device), y.to(device), info, len(y)


def nonfinite_skips(optimizer: torch.optim.Optimizer) -> int:
    """Steps an Auto optimizer skipped for non-finite gradients (the most over its
    tensors; 0 for optimizers that do not count them). One host sync."""
    counts = [
        st["nonfinite_skips"] for st in optimizer.state.values() if "nonfinite_skips" in st
    ]
    return int(torch.stack(counts).max()) if counts else 0


def run(
    config: RunConfig,
    *,
    data_root: str | None = None,
    progress: bool = True,
    position: int | None = None,
) -> RunResult:
    """Train ``config`` and return its :class:`RunResult`.

    A run whose loss becomes non-finite or exceeds ``DIVERGED_LOSS`` stops there, with
    ``diverged=True`` and the errors of the model as it then is. A config of another
    engine (``engine="stacked"``) trains through that engine (as a group of one).

    >>> cfg = RunConfig("mnist", "sgd", lr=0.05, momentum=0.5, batch_size=64, epochs=1,
    ...                 max_train_samples=256, max_test_samples=100, device="cpu")
    >>> result = run(cfg, progress=False)
    >>> len(result.metrics["test_err_pct_per_epoch"])
    1
    """
    if config.engine != "loop":
        return engines.train([config], data_root=data_root, progress=progress)[0]
    t0 = time.perf_counter()
    c0 = time.process_time()
    device = resolve_device(config.device)
    x_train, y_train, train_info, n_train = load_split(config, True, device, data_root)
    x_test, y_test, test_info, n_test = load_split(config, False, device, data_root)

    torch.manual_seed(config.seed)
    if device.type == "cuda":
        torch.cuda.manual_seed_all(config.seed)
    model = build_model(
        config.model, in_channels=train_info.channels, num_classes=train_info.num_classes
    ).to(device)
    shuffle_gen = torch.Generator().manual_seed(config.seed)

    min_batch = 2 if config.spec.per_sample_stats else 1
    steps_per_epoch = sum(
        1
        for s in range(0, n_train, config.batch_size)
        if min(config.batch_size, n_train - s) >= min_batch
    )
    total_steps = steps_per_epoch * config.epochs
    every = config.trace_every or max(1, math.ceil(total_steps / MAX_TRACE_ROWS))

    rows: list[tuple[int, int, torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]] = []
    per_epoch: dict[str, list[float]] = {
        "train_err_pct": [],
        "test_err_pct": [],
        "train_loss": [],
        "test_loss": [],
    }
    diverged = False
    step = 0
    bar = tqdm(
        total=total_steps,
        desc=config.label(),
        disable=not progress,
        leave=False,
        position=position,
        dynamic_ncols=True,
    )
    with registry.build(config.optimizer, model, **config.build_options()) as bound:
        model.train()
        for epoch in range(config.epochs):
            window = torch.zeros((), device=device)
            window_n = 0
            for idx in shuffled_batches(
                n_train, config.batch_size, shuffle_gen, min_batch=min_batch
            ):
                idx = idx.to(device)
                xb, yb = x_train[idx], y_train[idx]
                bound.zero_grad()
                out = model(xb)
                if step == 0:
                    check_log_probabilities(out, where=f"model {config.model!r}")
                loss = F.nll_loss(out, yb)
                loss.backward()
                bound.step(lambda xb=xb, yb=yb: F.nll_loss(model(xb), yb))
                step += 1
                window += loss.detach()
                window_n += 1
                if step % every == 0 or step == total_steps:
                    hp = {k: v.detach().clone() for k, v in bound.hparams().items()}
                    rows.append((step, epoch + 1, loss.detach(), window / window_n, hp))
                    window = torch.zeros((), device=device)
                    window_n = 0
                    if device.type == "cpu" and is_diverged(float(loss.detach())):
                        diverged = True
                        break
                bar.update(1)
            if not diverged and rows and is_diverged(float(rows[-1][2])):
                diverged = True
            last = diverged or epoch == config.epochs - 1
            with bound.evaluating():
                train_err, train_loss = (
                    evaluate(model, x_train, y_train)
                    if last or config.train_eval == "epoch"
                    else (math.nan, math.nan)
                )
                test_err, test_loss = evaluate(model, x_test, y_test)
            for k, v in zip(per_epoch, (train_err, test_err, train_loss, test_loss), strict=True):
                per_epoch[k].append(v)
            bar.set_postfix(test=f"{test_err:.2f}%")
            if diverged:
                logger.info("%s diverged in epoch %d", config.label(), epoch + 1)
                break
    bar.close()

    trace = trace_frame(rows)
    wall = time.perf_counter() - t0
    metrics = run_metrics(
        per_epoch,
        diverged=diverged,
        nonfinite_skips=nonfinite_skips(bound.optimizer),
        steps=step,
        trace_every=every,
        wall_time_s=wall,
        device=device,
        train_info=train_info,
        test_info=test_info,
        n_train=n_train,
        n_test=n_test,
        versions=library_versions(),
    )
    metrics["cpu_time_s"] = time.process_time() - c0
    return RunResult(config, metrics, trace)


def _loop_engine(configs: Sequence[RunConfig], *, data_root: str | None = None,
                 progress: bool = False) -> list[RunResult]:
    return [run(c, data_root=data_root, progress=progress) for c in configs]


engines.register_engine("loop", _loop_engine)
