"""Vectorised grid sweeps: train K fixed-hyper-parameter settings of one model at once.

The paper's sweep is 99% fixed-hyper-parameter runs (SGD, Adam, AdaGrad over a grid of
learning rates and momenta). Runs that share the data set, model, optimizer, batch size and
epochs differ only in their hyper-parameters and seed, so they can train as one program:
a :class:`~autoopt_lab.experiments.stacked.StackedModel` with a
:class:`~autoopt_lab.experiments.stacked_optim.StackedOptimizer`. Which optimizers can be
stacked is the registry's ``OptimizerSpec.vectorized``.

* :func:`run_group` trains a group and returns one :class:`RunResult` per config, the same
  results (to float tolerance) that :func:`autoopt_lab.experiments.run` gives each config:
  each member is initialised with ``torch.manual_seed(seed)``, shuffles with its own
  ``Generator(seed)`` and draws dropout masks from the global stream its run would use.
* :class:`VectorizedExecutor` (executor name ``"vectorized"``) groups a sweep's configs and
  runs groups in worker processes; configs that cannot be grouped run as usual.

>>> from autoopt_lab.experiments import RunConfig
>>> cfgs = [RunConfig("mnist", "adam", lr=lr, batch_size=64, epochs=1, device="cpu",
...                   max_train_samples=256, max_test_samples=64, engine="stacked")
...         for lr in (1e-3, 1e-2)]
>>> [len(t) for t in plan_tasks(cfgs)]
[2]
>>> results = run_group(cfgs, progress=False)  # doctest: +SKIP
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import math
import multiprocessing
import os
import time
import traceback
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from autoopt_lab.data import shuffled_batches
from autoopt_lab.devices import resolve_device
from autoopt_lab.health import diverged_mask, is_diverged
from autoopt_lab.identity import library_versions
from autoopt_lab.models import build_model, check_log_probabilities

from .config import RunConfig
from .engines import register_engine
from .executors import (
    Executor,
    bounded_unordered,
    execute_config,
    init_worker,
    register_executor,
)
from .result import MAX_TRACE_ROWS, RunOutcome, RunResult, run_metrics, trace_frame
from .run import load_split
from .stacked import NotVectorizableError, StackedModel, evaluate_stacked
from .stacked_optim import StackedOptimizer

logger = logging.getLogger(__name__)

# Config fields that may differ inside one group; all others must be equal.
_PER_MEMBER_FIELDS = frozenset({"lr", "momentum", "seed"})


# -- grouping -------------------------------------------------------------------------------


def stacked_kind(config: RunConfig) -> str | None:
    """The stacked optimizer that trains ``config`` (its spec's ``vectorized``), or None.

    >>> stacked_kind(RunConfig("mnist", "adam", lr=1e-3)), stacked_kind(RunConfig("mnist", "autosgd"))
    ('adam', None)
    """
    return config.spec.vectorized if config.stackable else None


def group_key(config: RunConfig) -> tuple | None:
    """Configs with equal keys train together; ``None`` for configs of the loop engine."""
    if config.engine != "stacked":
        return None
    d = {k: v for k, v in config.to_dict().items() if k not in _PER_MEMBER_FIELDS}
    d["trace_every"] = config.trace_every
    return tuple(sorted((k, str(v)) for k, v in d.items()))
def plan_tasks(
    configs: Iterable[RunConfig],
    *,
    max_group: int = 64,
    max_samples_per_step: int = 16384,
    mix_seeds: bool = False,
) -> list[list[RunConfig]]:
    """Split configs into tasks: groups of at least two configs that :func:`run_group` trains
    together (at most ``max_group`` members and ``max_samples_per_step`` samples per step),
    and single configs. Order within a group follows the input order. Groups hold one seed
    unless ``mix_seeds`` (mixed-seed groups cannot share the first layer's work).

    >>> from autoopt_lab.experiments import RunConfig
    >>> cfgs = [RunConfig("mnist", "sgd", lr=lr, momentum=0.0, batch_size=n, engine="stacked")
    ...         for n in (32, 64) for lr in (0.1, 0.01, 0.001)]
    >>> [len(t) for t in plan_tasks(cfgs, max_group=2)]
    [2, 1, 2, 1]
    """
    if max_group < 1:
        raise ValueError(f"max_group must be >= 1, got {max_group}")
    groups: dict[tuple, list[RunConfig]] = {}
    singles: list[list[RunConfig]] = []
    order: list[tuple] = []
    for c in configs:
        key = group_key(c)
        if key is not None and not mix_seeds:
            key = (*key, ("seed", str(c.seed)))
        if key is None:
            singles.append([c])
            continue
        if key not in groups:
            groups[key] = []
            order.append(key)
        groups[key].append(c)
    tasks: list[list[RunConfig]] = []
    for key in order:
        members = groups[key]
        size = max(1, min(max_group, max_samples_per_step // members[0].batch_size))
        tasks.extend(members[i : i + size] for i in range(0, len(members), size))
    return tasks + singles


# -- training -------------------------------------------------------------------------------


def _check_group(configs: Sequence[RunConfig]) -> None:
    if not configs:
        raise ValueError("run_group needs at least one config")
    bad = sorted({c.optimizer for c in configs if not c.stackable})
    if bad:
        raise NotVectorizableError(
            f"optimizer(s) {bad} cannot be vectorised (no stacked form in the registry, "
            "options beyond lr/momentum/betas, or a model with unsupported layers)"
        )
    keys = {group_key(c.with_engine("stacked")) for c in configs}
    if len(keys) != 1:
        raise NotVectorizableError(
            "a group must share every config field except lr, momentum and seed"
        )


def _momentum(config: RunConfig) -> float:
    """What the trace records as momentum: SGD's, Adam's betas[0], else 0."""
    kind = stacked_kind(config)
    if kind == "sgd":
        return float(config.momentum or 0.0)
    return float(config.betas[0]) if kind == "adam" else 0.0


def _stacked_members(
    configs: Sequence[RunConfig], device: torch.device, info: Any
) -> tuple[StackedModel, list[str]]:
    """The members, seeded and initialised as :func:`run` does, stacked; and their names."""
    members, gens = [], []
    for c in configs:  # the same seeding, in the same order, as run()
        torch.manual_seed(c.seed)
        if device.type == "cuda":
            torch.cuda.manual_seed_all(c.seed)
        members.append(
            build_model(c.model, in_channels=info.channels, num_classes=info.num_classes).to(device)
        )
        gen = torch.Generator(device=device)
        if device.type == "cpu":
            gen.set_state(torch.get_rng_state())  # the stream run()'s dropout layers draw from
        else:
            gen.manual_seed(c.seed)
        gens.append(gen)
    names = [n for n, p in members[0].named_parameters() if p.requires_grad]
    return StackedModel(members, gens).to(device), names


class _Ledger:
    """Per-member trace rows, per-epoch metrics and divergence, as :func:`run` keeps them."""

    def __init__(self, configs: Sequence[RunConfig], names: list[str], device: torch.device):
        k = len(configs)
        self.rows: list[list[tuple]] = [[] for _ in range(k)]
        self.per_epoch = [
            {"train_err_pct": [], "test_err_pct": [], "train_loss": [], "test_loss": []}
            for _ in range(k)
        ]
        hps = [torch.tensor((c.lr, _momentum(c)), dtype=torch.float32, device=device)
               for c in configs]
        self.hparams = [dict.fromkeys(names, h) for h in hps]
        self.stop_step: list[int | None] = [None] * k  # step at which a member diverged
        self.finished = [False] * k
        self.snapshots: dict[int, dict[str, Tensor]] = {}

    def ending(self) -> bool:
        """True when a running member stops this epoch (so its final errors are due)."""
        return any(
            not self.finished[j]
            and (self.stop_step[j] is not None or (rows and is_diverged(float(rows[-1][2]))))
            for j, rows in enumerate(self.rows)
        )

    def active(self, j: int) -> bool:
        return self.stop_step[j] is None and not self.finished[j]

    def all_stopped(self) -> bool:
        return not any(self.active(j) for j in range(len(self.finished)))

    def record(self, step: int, epoch: int, losses: Tensor, window_mean: Tensor) -> None:
        for j in range(len(self.rows)):
            if self.active(j):
                self.rows[j].append((step, epoch, losses[j], window_mean[j], self.hparams[j]))

    def check_diverged(self, step: int, losses: Tensor, model: StackedModel) -> None:
        blown = diverged_mask(losses)  # as run() decides
        for j in blown.nonzero().flatten().tolist():
            if self.active(j):
                self.stop_step[j] = step
                self.snapshots[j] = model.member_state(j)

    @torch.no_grad()
    def restore_snapshots(self, model: StackedModel) -> None:
        """Members that diverged this epoch are evaluated as they were when they stopped."""
        params = model.stacked_parameters()
        for j, state in self.snapshots.items():
            for name, value in state.items():
                params[name][j].copy_(value)

    def end_epoch(self, errors: tuple[Tensor, Tensor, Tensor, Tensor]) -> None:
        """Store (train err, test err, train loss, test loss) of the members still running."""
        for j, pe in enumerate(self.per_epoch):
            if self.finished[j]:
                continue
            for key, v in zip(pe, (e[j] for e in errors), strict=True):
                pe[key].append(float(v))
            rows = self.rows[j]
            if self.stop_step[j] is None and rows and is_diverged(float(rows[-1][2])):
                self.stop_step[j] = rows[-1][0]
            if self.stop_step[j] is not None:
                self.finished[j] = True
        self.snapshots.clear()


def run_group(
    configs: Sequence[RunConfig], *, data_root: str | None = None, progress: bool = True
) -> list[RunResult]:
    """Train every config of a group at once; one :class:`RunResult` per config, in order.

    Each result matches what :func:`autoopt_lab.experiments.run` returns for that config's
    loop engine up to float rounding (on CPU the data order, initial weights and dropout masks
    are the same; on CUDA dropout masks differ, as they differ between CUDA runs anyway), which
    chaotic training can amplify; so results carry ``engine="stacked"`` configs. Metrics gain
    ``vectorized_group`` (K); ``wall_time_s`` is the group's wall time divided by K.
    """
    configs = list(configs)
    _check_group(configs)
    configs = [c.with_engine("stacked") for c in configs]
    t0, cpu0 = time.perf_counter(), time.process_time()
    c0, k = configs[0], len(configs)
    device = resolve_device(c0.device)
    x_train, y_train, train_info, n_train = load_split(c0, True, device, data_root)
    x_test, y_test, test_info, n_test = load_split(c0, False, device, data_root)
    model, names = _stacked_members(configs, device, train_info)
    kind = stacked_kind(c0)
    optimizer = StackedOptimizer(
        model.parameters(),
        kind,
        lrs=[c.lr for c in configs],
        momenta=[c.momentum or 0.0 for c in configs] if kind == "sgd" else None,
        betas=c0.betas,
    )
    shuffle_gens = [torch.Generator().manual_seed(c.seed) for c in configs]
    shared = len({c.seed for c in configs}) == 1
    bs = c0.batch_size
    total_steps = math.ceil(n_train / bs) * c0.epochs
    every = c0.trace_every or max(1, math.ceil(total_steps / MAX_TRACE_ROWS))
    book = _Ledger(configs, names, device)
    step = 0
    bar = tqdm(total=total_steps, desc=f"{c0.optimizer} x{k} N={bs}", disable=not progress,
               leave=False, dynamic_ncols=True)
    model.train()
    for epoch in range(c0.epochs):
        window, window_n = torch.zeros(k, device=device), 0
        batches = zip(
            *(shuffled_batches(n_train, bs, g, min_batch=1) for g in shuffle_gens), strict=True
        )
        for idx_list in batches:
            n = len(idx_list[0])
            if shared:  # one seed: every member sees the same batch
                idx = idx_list[0].to(device)
                x, y = x_train[idx], y_train[idx].repeat(k)
            else:
                idx = torch.cat(idx_list).to(device)
                x, y = x_train[idx], y_train[idx]
            optimizer.zero_grad()
            rng_before = torch.get_rng_state() if step == 0 else None
            out = model(x, shared=shared)
            if rng_before is not None:
                check_log_probabilities(out, where=f"model {c0.model!r}")
                if not torch.equal(rng_before, torch.get_rng_state()):
                    raise NotVectorizableError(
                        f"model {c0.model!r} draws random numbers outside nn.Dropout/Dropout2d "
                        "modules, so its members cannot reproduce their sequential runs"
                    )
            losses = F.nll_loss(out, y, reduction="none").view(k, n).mean(1)
            losses.sum().backward()
            optimizer.step()
            step += 1
            window += losses.detach()
            window_n += 1
            if step % every == 0 or step == total_steps:
                lcopy = losses.detach().clone()
                book.record(step, epoch + 1, lcopy, window / window_n)
                window, window_n = torch.zeros(k, device=device), 0
                if device.type == "cpu":
                    book.check_diverged(step, lcopy, model)
            bar.update(1)
            if book.all_stopped():
                break
        book.restore_snapshots(model)
        if c0.train_eval == "epoch" or epoch == c0.epochs - 1 or book.ending():
            tr_err, tr_loss = evaluate_stacked(model, x_train, y_train)
        else:
            tr_err = tr_loss = torch.full((k,), math.nan)
        te_err, te_loss = evaluate_stacked(model, x_test, y_test)
        book.end_epoch((tr_err, te_err, tr_loss, te_loss))
        if all(book.finished):
            break
    bar.close()

    wall = time.perf_counter() - t0
    versions = library_versions()
    results = []
    for j, c in enumerate(configs):
        stop = book.stop_step[j]
        metrics = run_metrics(
            book.per_epoch[j], diverged=stop is not None, steps=stop if stop is not None else step,
            trace_every=every, wall_time_s=wall / k, device=device, train_info=train_info,
            test_info=test_info, n_train=n_train, n_test=n_test, versions=versions,
        )
        metrics["vectorized_group"] = k
        metrics["cpu_time_s"] = (time.process_time() - cpu0) / k
        results.append(RunResult(c, metrics, trace_frame(book.rows[j])))
    return results
# -- executing tasks ------------------------------------------------------------------------


def execute_task(
    task: Sequence[RunConfig], data_root: str | None = None, progress: bool = False
) -> list[RunOutcome]:
    """Run one task of :func:`plan_tasks`: a group through :func:`run_group`, a single config
    through ``run`` (which honours its engine). A group that turns out not to be stackable
    fails with the reason: running it on the loop engine would store loop results under
    stacked ids."""
    task = list(task)
    if len(task) == 1:
        return [execute_config(task[0], data_root, progress)]
    try:
        results = run_group(task, data_root=data_root, progress=progress)
    except NotVectorizableError as exc:
        err = f"NotVectorizableError: {exc}; run these configs with --executor process"
        return [RunOutcome(c, error=err) for c in task]
    except Exception:  # noqa: BLE001 - recorded per run, the sweep goes on
        err = traceback.format_exc()
        return [RunOutcome(c, error=err) for c in task]
    return [RunOutcome(r.config, r) for r in results]


class VectorizedExecutor(Executor):
    """Groups configs with :func:`plan_tasks` and trains each group at once; ``workers``
    processes (spawned, ``threads_per_worker`` torch threads each) run the tasks; with
    ``workers=1`` they run in this process. Its engine is ``"stacked"``: a sweep gives every
    stackable config that engine (and so its id).

    >>> ex = VectorizedExecutor(workers=1, progress=False)
    >>> isinstance(ex, Executor)
    True
    """

    def __init__(
        self,
        workers: int | None = None,
        *,
        threads_per_worker: int = 1,
        data_root: str | None = None,
        progress: bool = False,
        max_group: int = 64,
        max_samples_per_step: int = 16384,
        mix_seeds: bool = False,
        **_: Any,
    ) -> None:
        self.mix_seeds = mix_seeds
        self.workers = max(1, int(workers or os.cpu_count() or 1))
        self.data_root = data_root
        self.progress = progress
        self.max_group = max_group
        self.max_samples_per_step = max_samples_per_step
        self._pool: cf.ProcessPoolExecutor | None = None
        if self.workers > 1:
            self._pool = cf.ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=init_worker,
                initargs=(max(1, int(threads_per_worker)), data_root),
            )

    engine = "stacked"

    def map_unordered(self, configs: Iterable[RunConfig]) -> Iterator[RunOutcome]:
        tasks = plan_tasks(
            configs,
            max_group=self.max_group,
            max_samples_per_step=self.max_samples_per_step,
            mix_seeds=self.mix_seeds,
        )
        logger.info(
            "vectorised sweep: %d tasks (%d groups) for %d configs",
            len(tasks),
            sum(len(t) > 1 for t in tasks),
            sum(map(len, tasks)),
        )
        if self._pool is None:
            for task in tasks:
                yield from execute_task(task, self.data_root, self.progress)
            return
        for outcomes in bounded_unordered(
            self._pool, execute_task, tasks, self.workers, self.data_root
        ):
            yield from outcomes

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)


def _stacked_engine(configs: Sequence[RunConfig], *, data_root: str | None = None,
                    progress: bool = False) -> list[RunResult]:
    return run_group(configs, data_root=data_root, progress=progress)


register_engine("stacked", _stacked_engine)
register_executor("vectorized", VectorizedExecutor)
