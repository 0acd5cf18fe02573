"""``StreamRun``: one optimizer on one scenario, prequential, step by step, resumable.

Each step draws the batch, scores it with the current model (eval mode, ``no_grad``, and the
weights the optimizer means for evaluation: Schedule-Free's averaged ones), feeds river
(rolling accuracy, drift detectors on the normalised loss), then trains on it, passing the
batch-loss closure to ``step()`` (measured-curvature Auto optimizers call it). Any optimizer
of :mod:`autoopt_lab.optim.registry` runs, by name or spec string
(``"autoadam:eps=1e-3"``). The per-step records form the trace; every optimizer's
per-tensor ``lr`` and ``momentum`` (and an Auto optimizer's count of steps skipped on
non-finite gradients) are kept as device tensors and moved to the host every
``hparam_every`` steps.

Driving it step by step (e.g. from a notebook's background thread):

>>> from autoopt_lab.streams import StreamRun, find_scenario  # doctest: +SKIP
>>> run = StreamRun(find_scenario("fmnist-rotation-sudden"), "autosgd")  # doctest: +SKIP
>>> rec = run.step()          # one prequential step; returns its record  # doctest: +SKIP
>>> rec["step"], rec["loss"], rec["rolling_accuracy"]  # doctest: +SKIP
>>> run.run(200, should_stop=stop_event.is_set)   # up to 200 more steps  # doctest: +SKIP
>>> run.trace()               # pandas DataFrame, lr/... and momentum/... columns  # doctest: +SKIP
>>> run.save_checkpoint("ckpt.pt"); run2 = StreamRun.from_checkpoint("ckpt.pt")  # doctest: +SKIP
>>> fresh = StreamRun(scenario, "autosgd"); fresh.resume("ckpt.pt")  # refuses another config  # doctest: +SKIP
>>> run.summary()             # per-shift report (detection delay, recovery, errors)  # doctest: +SKIP

``StreamRun`` is not thread-safe: drive one instance from one thread at a time.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from autoopt_lab.devices import resolve_device
from autoopt_lab.optim import registry

from . import checkpoint as ckpt
from .checks import DEFAULT_MAX_STEPS, check_model, check_size
from .identity import data_fingerprint, library_version, model_fingerprint, scenario_hash
from .monitor import DETECTORS, Monitor
from .sampler import StreamSampler
from .scenario import Scenario

__all__ = ["StreamRun"]

logger = logging.getLogger(__name__)

Data = tuple[torch.Tensor, torch.Tensor, Any]


class StreamRun:
    """One prequential run of ``optimizer`` on ``scenario``.

    ``optimizer`` is a registry name or spec string; ``hparams`` overlay its options
    (tuned baselines need ``lr``). ``data`` is ``(x, y, info)`` as from
    ``autoopt_lab.data.load_arrays`` (the scenario's data set, train split, when omitted);
    ``model`` defaults to ``build_model(scenario.model)`` initialised from the scenario seed.
    ``device`` follows :func:`autoopt_lab.devices.resolve_device` (``None``: ``"auto"``).
    Before any work the scenario is checked against ``max_steps`` and ``max_batch``
    (default: the data set size) and the model is run once on the data's shape and checked
    to return log-probabilities.
    """

    def __init__(self, scenario: Scenario, optimizer: str = "autosgd", *,
                 hparams: dict[str, Any] | None = None, device: torch.device | str | None = None,
                 data: Data | None = None, model: nn.Module | None = None,
                 hparam_every: int = 50, max_steps: int = DEFAULT_MAX_STEPS,
                 max_batch: int | None = None) -> None:
        if hparam_every < 1:
            raise ValueError(f"hparam_every must be >= 1, got {hparam_every}")
        name, from_text = (registry.parse_spec(optimizer) if ":" in str(optimizer)
                           else (registry.get(optimizer).name, {}))
        self.spec = registry.get(name)
        self.hparams = {**from_text, **(hparams or {})}
        self.options = self.spec.resolve(self.hparams)  # unknown or missing options: one error
        self.scenario = scenario
        self.optimizer_name = self.spec.name
        self.device = resolve_device(device)
        if data is None:
            from autoopt_lab.data import load_arrays

            data = load_arrays(scenario.dataset, train=True)
        x, y, info = data
        check_size(scenario, max_steps=max_steps, data_size=int(x.shape[0]), max_batch=max_batch)
        self.data_info = info
        self.sampler = StreamSampler(scenario, x, y, mean=tuple(info.mean), std=tuple(info.std),
                                     device=self.device)
        with torch.random.fork_rng(devices=self._rng_devices()):
            torch.manual_seed(scenario.seed)
            if model is None:
                from autoopt_lab.models import build_model

                try:
                    model = build_model(scenario.model, in_channels=int(x.shape[1]),
                                        num_classes=scenario.num_classes)
                except ValueError as exc:
                    raise ValueError(f"{scenario.source}: field 'model': {exc}") from None
            self._cpu_rng = torch.get_rng_state()
            self._cuda_rng = (torch.cuda.get_rng_state(self.device)
                              if self.device.type == "cuda" else None)
        self.model = check_model(scenario, model=model, data=data, device=self.device)
        self.identity: dict[str, Any] = {
            "library": library_version(),
            "scenario": scenario_hash(scenario),
            "steps_scale": scenario.scale,
            "seed": scenario.seed,
            "optimizer": self.spec.name,
            "options": self.options,
            "data": data_fingerprint(x, y),
            "model": model_fingerprint(self.model),
            "device": self.device.type,
        }
        self.bound = registry.build(self.spec.name, self.model, **self.hparams)
        self.monitor = Monitor(window=scenario.metrics.window, warmup=scenario.metrics.warmup,
                               seed=scenario.seed)
        self.hparam_every = hparam_every
        self.records: list[dict[str, Any]] = []
        self.hp_names: list[str] | None = None
        self._hp_host: list[np.ndarray] = []
        self._skips_host: list[np.ndarray] = []
        self._hp_pending: list[torch.Tensor] = []
        self._skips_pending: list[torch.Tensor] = []
        self.timing = {"data": 0.0, "eval": 0.0, "train": 0.0, "monitor": 0.0}

    # -- bookkeeping ------------------------------------------------------------------------
    @property
    def opt(self) -> torch.optim.Optimizer:
        """The underlying ``torch.optim`` optimizer (``self.bound`` is the registry's wrapper)."""
        return self.bound.optimizer

    @property
    def is_auto(self) -> bool:
        return self.spec.is_auto

    @property
    def label(self) -> str:
        """Display name with non-default options, e.g. ``AutoAdam(eps=0.001)``."""
        return self.bound.label

    @property
    def position(self) -> int:
        """Number of steps done (the next step's index)."""
        return self.sampler.position

    @property
    def total_steps(self) -> int:
        return len(self.sampler)

    @property
    def done(self) -> bool:
        return self.position >= self.total_steps

    def _rng_devices(self) -> list[int]:
        if self.device.type == "cuda":
            return [self.device.index if self.device.index is not None
                    else torch.cuda.current_device()]
        return []

    def close(self) -> None:
        """Remove the per-sample statistics hooks from the model (Auto optimizers)."""
        self.bound.close()

    def _skip_counter(self) -> torch.Tensor | None:
        counts = [s["nonfinite_skips"] for s in self.opt.state.values()
                  if isinstance(s, dict) and "nonfinite_skips" in s]
        return torch.stack([c.to(torch.int64) for c in counts]).max() if counts else None

    # -- one step ---------------------------------------------------------------------------
    def step(self) -> dict[str, Any]:
        """One prequential step: draw, score (no_grad), update river, train. Returns the record.

        The record holds the step, segment, batch size, batch loss and accuracy (before
        training), rolling accuracy, normalised loss, shift markers and detections. The
        optimizer's lr/momentum reach the trace at the next flush (:meth:`trace`).
        """
        if self.done:
            raise StopIteration(f"stream {self.scenario.name!r} finished after "
                                f"{self.total_steps} steps")
        plan = self.sampler.plan[self.position]
        t0 = time.perf_counter()
        xb, yb = self.sampler.next_batch()
        t1 = time.perf_counter()
        model, bound = self.model, self.bound
        with torch.random.fork_rng(devices=self._rng_devices()):
            torch.set_rng_state(self._cpu_rng)
            if self._cuda_rng is not None:
                torch.cuda.set_rng_state(self._cuda_rng, self.device)
            model.eval()
            with bound.evaluating(), torch.no_grad():
                out = model(xb)
                loss = F.nll_loss(out, yb)
                pred = out.argmax(1)
                host = torch.cat([loss.view(1), pred.float(), yb.float()]).cpu().numpy()
            t2 = time.perf_counter()
            model.train()
            bound.zero_grad()
            F.nll_loss(model(xb), yb).backward()
            bound.step(lambda: F.nll_loss(model(xb), yb))
            hp = bound.hparams()
            if self.hp_names is None:
                self.hp_names = list(hp)
            self._hp_pending.append(torch.stack([hp[n].detach().float() for n in self.hp_names]))
            skips = self._skip_counter()
            self._skips_pending.append(skips if skips is not None
                                       else torch.zeros((), dtype=torch.int64))
            self._cpu_rng = torch.get_rng_state()
            if self._cuda_rng is not None:
                self._cuda_rng = torch.cuda.get_rng_state(self.device)
        t3 = time.perf_counter()
        b = plan.batch_size
        y_pred = host[1:1 + b].astype(np.int64)
        y_true = host[1 + b:].astype(np.int64)
        mon = self.monitor.update(float(host[0]), y_true.tolist(), y_pred.tolist())
        rec: dict[str, Any] = {
            "step": plan.step,
            "segment": plan.segment,
            "segment_name": self.scenario.segments[plan.segment].name,
            "batch_size": b,
            "loss": float(host[0]),
            "accuracy": float((y_pred == y_true).mean()),
            "rolling_accuracy": mon["rolling_accuracy"],
            "loss_z": mon["loss_z"],
            "shift": plan.boundary,
            "new_fraction": plan.p_new,
            "in_transition": plan.in_transition,
        }
        for name in DETECTORS:
            rec[f"detect_{name}"] = mon["detected"][name]
        self.records.append(rec)
        if len(self._hp_pending) >= self.hparam_every:
            self._flush()
        t4 = time.perf_counter()
        self.timing["data"] += t1 - t0
        self.timing["eval"] += t2 - t1
        self.timing["train"] += t3 - t2
        self.timing["monitor"] += t4 - t3
        return rec

    def run(self, n: int | None = None, *, should_stop: Callable[[], bool] | None = None,
            progress: bool = False) -> pd.DataFrame:
        """Run ``n`` more steps (all remaining when None), stopping early when ``should_stop()``
        returns true; returns the trace so far."""
        remaining = self.total_steps - self.position
        n = remaining if n is None else min(int(n), remaining)
        bar = tqdm(total=n, desc=f"{self.scenario.name}/{self.optimizer_name}",
                   disable=None if progress else True, leave=False)
        for _ in range(n):
            if should_stop is not None and should_stop():
                break
            self.step()
            bar.update(1)
        bar.close()
        return self.trace()

    def _flush(self) -> None:
        if self._hp_pending:
            self._hp_host.append(torch.stack(self._hp_pending).cpu().numpy())
            self._skips_host.append(torch.stack([s.to(self._skips_pending[0].device)
                                                 for s in self._skips_pending]).cpu().numpy())
            self._hp_pending = []
            self._skips_pending = []

    def latest_hparams(self) -> dict[str, dict[str, float]]:
        """The most recent step's ``{tensor: {"lr", "momentum"}}`` (one host sync)."""
        self._flush()
        if not self._hp_host:
            return {}
        last = self._hp_host[-1][-1]
        return {n: {"lr": float(last[i, 0]), "momentum": float(last[i, 1])}
                for i, n in enumerate(self.hp_names or [])}

    def trace(self) -> pd.DataFrame:
        """The per-step trace as a DataFrame (flushes pending lr/momentum to the host).

        Columns: the step records, ``nonfinite_skips`` (cumulative steps an Auto optimizer
        skipped on non-finite gradients; 0 for others), ``lr/<tensor>`` and
        ``momentum/<tensor>`` for every parameter tensor.
        """
        self._flush()
        df = pd.DataFrame.from_records(self.records)
        if self.hp_names and self._hp_host:
            hp = np.concatenate(self._hp_host)  # (steps, tensors, 2)
            cols: dict[str, Any] = {"nonfinite_skips": np.concatenate(self._skips_host)}
            for i, name in enumerate(self.hp_names):
                cols[f"lr/{name}"] = hp[:, i, 0]
                cols[f"momentum/{name}"] = hp[:, i, 1]
            df = pd.concat([df, pd.DataFrame(cols, index=df.index)], axis=1)
        df.insert(0, "optimizer", self.optimizer_name)
        return df

    def harness_cost(self) -> dict[str, float]:
        """Seconds spent per phase, and the harness (data + monitor) share of training time."""
        t = dict(self.timing)
        t["harness_over_train"] = (t["data"] + t["monitor"]) / max(t["train"], 1e-12)
        return t

    def summary(self) -> dict[str, Any]:
        """The per-shift report of the trace so far (see :func:`shift_report`), with the run's
        health flags, optimizer, options and identity."""
        from .report import shift_report

        base = tuple(float(v) for v in self.sampler.base_probs.tolist())
        out = shift_report(self.trace(), self.scenario, base)
        out["optimizer"] = self.optimizer_name
        out["label"] = self.label
        out["family"] = self.spec.family
        out["seed"] = self.scenario.seed
        out["hparams"] = self.hparams
        out["identity"] = self.identity
        out["timing"] = self.harness_cost()
        return out

    # -- checkpoint / resume ----------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The whole state as plain data (tensors, numbers, strings, lists, dicts): identity,
        scenario, optimizer and options, model, optimizer, stream position, RNG and river
        state, and the trace so far. A checkpoint is this plus a format version."""
        self._flush()
        return {
            "identity": self.identity,
            "scenario": dataclasses.asdict(self.scenario),
            "optimizer": self.optimizer_name,
            "hparams": self.hparams,
            "hparam_every": self.hparam_every,
            "model": self.model.state_dict(),
            "opt": self.bound.state_dict(),
            "sampler": self.sampler.state_dict(),
            "cpu_rng": self._cpu_rng,
            "cuda_rng": self._cuda_rng,
            "monitor": self.monitor.state_dict(),
            "records": self.records,
            "hp_names": self.hp_names,
            "hp_host": [torch.from_numpy(np.ascontiguousarray(a)) for a in self._hp_host],
            "skips_host": [torch.from_numpy(np.ascontiguousarray(a)) for a in self._skips_host],
            "timing": self.timing,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Load :meth:`state_dict` into this freshly built run (its identity is not checked
        here: :meth:`resume` and :meth:`from_checkpoint` do that)."""
        self.model.load_state_dict(state["model"])
        self.bound.load_state_dict(state["opt"])
        self.sampler.load_state_dict(state["sampler"])
        self._cpu_rng = state["cpu_rng"]
        if self._cuda_rng is not None and state.get("cuda_rng") is not None:
            self._cuda_rng = state["cuda_rng"]
        self.records = list(state["records"])
        self.monitor.load_state_dict(state["monitor"], self.records)
        self.hp_names = state.get("hp_names")
        self._hp_host = [t.numpy() for t in state["hp_host"]]
        self._skips_host = [t.numpy() for t in state["skips_host"]]
        self.timing = dict(state["timing"])

    def save_checkpoint(self, path: str | Path) -> Path:
        """Save model, optimizer, stream position, RNG and river state, the trace so far and
        the run's identity (atomically)."""
        return ckpt.save_checkpoint(self, path)

    def resume(self, path: str | Path, *, fresh: bool = False) -> bool:
        """Continue from checkpoint ``path`` if it exists; returns True when it was loaded.

        A checkpoint of another configuration raises
        :class:`~autoopt_lab.streams.checkpoint.CheckpointMismatchError` naming the
        difference, and a damaged one :class:`~autoopt_lab.streams.checkpoint.CheckpointError`;
        with ``fresh=True`` either is deleted and the run starts from step 0.
        """
        path = Path(path)
        if not path.exists():
            return False
        try:
            state = ckpt.read_checkpoint(path)
            ckpt.check_identity(path, state, self)
        except (ckpt.CheckpointError, ckpt.CheckpointMismatchError) as exc:
            if not fresh:
                raise
            logger.warning("%s; starting afresh as asked", exc)
            path.unlink()
            return False
        ckpt.restore_checkpoint(self, state, path)
        logger.info("%s/%s: resumed from %s at step %d", self.scenario.name, self.label, path,
                    self.position)
        return True

    @classmethod
    def from_checkpoint(cls, path: str | Path, *, device: torch.device | str | None = None,
                        data: Data | None = None, model: nn.Module | None = None) -> StreamRun:
        """Rebuild a run from :meth:`save_checkpoint`; it continues to an identical trace.

        ``data`` and ``model`` must be what the run used (the data's bytes and the model's
        architecture are checked). The file is read as plain data (``weights_only=True``):
        a planted file runs no code.
        """
        state = ckpt.read_checkpoint(path)
        scenario = ckpt.scenario_from_dict(state["scenario"])
        run = cls(scenario, state["optimizer"], hparams=state["hparams"],
                  device=device, data=data, model=model, hparam_every=state["hparam_every"],
                  max_steps=max(DEFAULT_MAX_STEPS, scenario.total_steps))
        ckpt.restore_checkpoint(run, state, path)
        return run
