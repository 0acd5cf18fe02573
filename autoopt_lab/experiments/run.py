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
import platform
import time
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from autoopt_lab.data import load_arrays, normalize, shuffled_batches
from autoopt_lab.devices import resolve_device
from autoopt_lab.models import build_model, check_log_probabilities
from autoopt_lab.optim import registry

from .config import RunConfig

logger = logging.getLogger(__name__)

SUBSET_SEED = 20190101  # fixed: every run of a sweep sees the same data subset
EVAL_BATCH = 256  # measured fastest for the MNIST CNN on CPU
MAX_TRACE_ROWS = 2000
# A mean NLL this large (chance level is ln 10 = 2.3) means the weights have blown up.
DIVERGED_LOSS = 1e4
# A final test error within this many points of chance (90% for ten classes) is "at chance".
CHANCE_MARGIN_PCT = 2.0


@dataclass
class RunResult:
    """What a run produced: its config, scalar and per-epoch metrics, and the step trace."""

    config: RunConfig
    metrics: dict[str, Any]
    trace: pd.DataFrame = field(repr=False)

    @property
    def run_id(self) -> str:
        return self.config.run_id()


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("autoopt-lab")
    except PackageNotFoundError:
        return "unknown"


def library_versions() -> dict[str, str]:
    """Versions of Python and the libraries that shape a result."""
    import numpy
    import torchvision

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": numpy.__version__,
        "autoopt_lab": _package_version(),
        "platform": platform.platform(),
    }


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


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(error %, mean NLL) of ``model`` in eval mode; restores the previous mode."""
    was_training = model.training
    model.eval()
    wrong = torch.zeros((), device=x.device)
    loss = torch.zeros((), device=x.device, dtype=torch.float64)
    for start in range(0, len(y), EVAL_BATCH):
        out = model(x[start : start + EVAL_BATCH])
        target = y[start : start + EVAL_BATCH]
        wrong += (out.argmax(1) != target).sum()
        loss += F.nll_loss(out, target, reduction="sum").double()
    model.train(was_training)
    n = max(len(y), 1)
    return 100.0 * wrong.item() / n, loss.item() / n


def run(
    config: RunConfig,
    *,
    data_root: str | None = None,
    progress: bool = True,
    position: int | None = None,
) -> RunResult:
    """Train ``config`` and return its :class:`RunResult`.

    A run whose loss becomes non-finite or exceeds ``DIVERGED_LOSS`` stops there, with
    ``diverged=True`` and the errors of the model as it then is. A config with
    ``engine="stacked"`` trains through the stacked trainer (as a group of one).

    >>> cfg = RunConfig("mnist", "sgd", lr=0.05, momentum=0.5, batch_size=64, epochs=1,
    ...                 max_train_samples=256, max_test_samples=100, device="cpu")
    >>> result = run(cfg, progress=False)
    >>> len(result.metrics["test_err_pct_per_epoch"])
    1
    """
    if config.engine == "stacked":
        from .vectorized import run_group

        return run_group([config], data_root=data_root, progress=progress)[0]
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


def run_metrics(
    per_epoch: dict[str, list[float]],
    *,
    diverged: bool,
    nonfinite_skips: int = 0,
    steps: int,
    trace_every: int,
    wall_time_s: float,
    device: Any,
    train_info: Any,
    test_info: Any,
    n_train: int,
    n_test: int,
    versions: dict[str, str],
) -> dict[str, Any]:
    """The metrics record of one run (its row in the results store).

    Health flags: ``diverged`` (the loss became non-finite or exceeded ``DIVERGED_LOSS``),
    ``nonfinite_skips`` (steps an Auto optimizer skipped for non-finite gradients) and
    ``at_chance`` (final test error within ``CHANCE_MARGIN_PCT`` points of chance).
    """
    chance = 100.0 * (1.0 - 1.0 / max(int(train_info.num_classes), 1))
    final_test = per_epoch["test_err_pct"][-1]
    return {
        "final_train_err_pct": per_epoch["train_err_pct"][-1],
        "final_test_err_pct": per_epoch["test_err_pct"][-1],
        "train_err_pct_per_epoch": per_epoch["train_err_pct"],
        "test_err_pct_per_epoch": per_epoch["test_err_pct"],
        "train_loss_per_epoch": per_epoch["train_loss"],
        "test_loss_per_epoch": per_epoch["test_loss"],
        "epochs_completed": len(per_epoch["train_err_pct"]),
        "diverged": diverged,
        "nonfinite_skips": int(nonfinite_skips),
        "chance_err_pct": chance,
        "at_chance": bool(final_test >= chance - CHANCE_MARGIN_PCT),
        "steps": steps,
        "trace_every": trace_every,
        "wall_time_s": wall_time_s,
        "device_used": str(device),
        "train_samples": n_train,
        "test_samples": n_test,
        "train_data": train_info.to_dict(),
        "test_data": test_info.to_dict(),
        "data_source": train_info.source,
        "data_is_subset": bool(train_info.is_subset or n_train < train_info.num_samples),
        "versions": versions,
    }


def is_diverged(loss: float) -> bool:
    """True for a non-finite loss or one above ``DIVERGED_LOSS``."""
    return not math.isfinite(loss) or loss > DIVERGED_LOSS


def trace_frame(rows: list) -> pd.DataFrame:
    """Rows -> a wide frame: step, epoch, loss, loss_window_mean, lr/<tensor>, momentum/<tensor>."""
    if not rows:
        return pd.DataFrame(columns=["step", "epoch", "loss", "loss_window_mean"])
    names = list(rows[0][4])
    losses = torch.stack([torch.stack([r[2].float(), r[3].float()]) for r in rows]).cpu()
    hps = torch.stack(
        [torch.stack([r[4][n].float().reshape(2) for n in names]) for r in rows]
    ).cpu()
    data: dict[str, Any] = {
        "step": [r[0] for r in rows],
        "epoch": [r[1] for r in rows],
        "loss": losses[:, 0].numpy(),
        "loss_window_mean": losses[:, 1].numpy(),
    }
    for j, n in enumerate(names):
        data[f"lr/{n}"] = hps[:, j, 0].numpy()
        data[f"momentum/{n}"] = hps[:, j, 1].numpy()
    return pd.DataFrame(data)
