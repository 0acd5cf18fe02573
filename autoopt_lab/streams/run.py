"""``StreamRun``: one optimizer on one scenario, prequential, step by step, resumable.

Each step draws the batch, scores it with the current model (eval mode, ``no_grad``), feeds
river (rolling accuracy, drift detectors on the normalised loss), then trains on it. The
per-step records form the trace; Auto optimizers' per-tensor ``lr`` and ``momentum`` are kept
as device tensors and moved to the host every ``hparam_every`` steps.

Driving it step by step (e.g. from a notebook's background thread):

>>> from autoopt_lab.streams import StreamRun, find_scenario  # doctest: +SKIP
>>> run = StreamRun(find_scenario("fmnist-rotation-sudden"), "autosgd")  # doctest: +SKIP
>>> rec = run.step()          # one prequential step; returns its record  # doctest: +SKIP
>>> rec["step"], rec["loss"], rec["rolling_accuracy"]  # doctest: +SKIP
>>> run.run(200, should_stop=stop_event.is_set)   # up to 200 more steps  # doctest: +SKIP
>>> run.trace()               # pandas DataFrame, lr/... and momentum/... columns  # doctest: +SKIP
>>> run.save_checkpoint("ckpt.pt"); run2 = StreamRun.from_checkpoint("ckpt.pt")  # doctest: +SKIP
>>> run.summary()             # per-shift report (detection delay, recovery, errors)  # doctest: +SKIP

``StreamRun`` is not thread-safe: drive one instance from one thread at a time.
"""

from __future__ import annotations

import logging
import pickle
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

from .monitor import DETECTORS, Monitor
from .optimizers import AUTO_OPTIMIZERS, make_optimizer
from .sampler import StreamSampler
from .scenario import Scenario

__all__ = ["StreamRun", "default_device"]

logger = logging.getLogger(__name__)

_CHECKPOINT_VERSION = 1


def default_device() -> torch.device:
    """CUDA when available, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class StreamRun:
    """One prequential run of ``optimizer`` on ``scenario``.

    ``data`` is ``(x, y, info)`` as from ``autoopt_lab.data.load_arrays`` (loaded from the
    scenario's data set, train split, when omitted); ``model`` defaults to
    ``build_model(scenario.model)`` initialised from the scenario seed. ``hparams`` are the
    optimizer's options (baselines: ``lr``, SGD ``momentum``).
    """

    def __init__(self, scenario: Scenario, optimizer: str = "autosgd", *,
                 hparams: dict[str, Any] | None = None, device: torch.device | str | None = None,
                 data: tuple[torch.Tensor, torch.Tensor, Any] | None = None,
                 model: nn.Module | None = None, hparam_every: int = 50) -> None:
        if hparam_every < 1:
            raise ValueError(f"hparam_every must be >= 1, got {hparam_every}")
        self.scenario = scenario
        self.optimizer_name = optimizer
        self.hparams = dict(hparams or {})
        self.device = torch.device(device) if device is not None else default_device()
        if data is None:
            from autoopt_lab.data import load_arrays

            data = load_arrays(scenario.dataset, train=True)
        x, y, info = data
        self.data_info = info
        self.sampler = StreamSampler(scenario, x, y, mean=tuple(info.mean), std=tuple(info.std),
                                     device=self.device)
        with torch.random.fork_rng(devices=self._rng_devices()):
            torch.manual_seed(scenario.seed)
            if model is None:
                from autoopt_lab.models import build_model

                model = build_model(scenario.model, in_channels=int(x.shape[1]),
                                    num_classes=scenario.num_classes)
            self._cpu_rng = torch.get_rng_state()
            self._cuda_rng = (torch.cuda.get_rng_state(self.device)
                              if self.device.type == "cuda" else None)
        self.model = model.to(self.device)
        self.opt, self._handle = make_optimizer(optimizer, self.model, self.hparams)
        self.monitor = Monitor(window=scenario.metrics.window, warmup=scenario.metrics.warmup,
                               seed=scenario.seed)
        self.hparam_every = hparam_every
        self.records: list[dict[str, Any]] = []
        self.hp_names: list[str] | None = None
        self._hp_host: list[np.ndarray] = []
        self._hp_pending: list[torch.Tensor] = []
        self.timing = {"data": 0.0, "eval": 0.0, "train": 0.0, "monitor": 0.0}

    # -- bookkeeping ------------------------------------------------------------------------
    @property
    def is_auto(self) -> bool:
        return self.optimizer_name in AUTO_OPTIMIZERS

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
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    # -- one step ---------------------------------------------------------------------------
    def step(self) -> dict[str, Any]:
        """One prequential step: draw, score (no_grad), update river, train. Returns the record.

        The record holds the step, segment, batch size, batch loss and accuracy (before
        training), rolling accuracy, normalised loss, shift markers and detections. Auto
        optimizers' lr/momentum reach the trace at the next flush (:meth:`trace`).
        """
        if self.done:
            raise StopIteration(f"stream {self.scenario.name!r} finished after "
                                f"{self.total_steps} steps")
        plan = self.sampler.plan[self.position]
        t0 = time.perf_counter()
        xb, yb = self.sampler.next_batch()
        t1 = time.perf_counter()
        with torch.random.fork_rng(devices=self._rng_devices()):
            torch.set_rng_state(self._cpu_rng)
            if self._cuda_rng is not None:
                torch.cuda.set_rng_state(self._cuda_rng, self.device)
            self.model.eval()
            with torch.no_grad():
                out = self.model(xb)
                loss = F.nll_loss(out, yb)
                pred = out.argmax(1)
                host = torch.cat([loss.view(1), pred.float(), yb.float()]).cpu().numpy()
            t2 = time.perf_counter()
            self.model.train()
            self.opt.zero_grad(set_to_none=True)
            F.nll_loss(self.model(xb), yb).backward()
            self.opt.step()
            if self.is_auto:
                hp = self.opt.hparam_tensors()
                if self.hp_names is None:
                    self.hp_names = list(hp)
                self._hp_pending.append(torch.stack([hp[n].detach().float() for n in self.hp_names]))
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
            self._hp_pending = []

    def latest_hparams(self) -> dict[str, dict[str, float]]:
        """The most recent step's ``{tensor: {"lr", "momentum"}}`` (one host sync; Auto only)."""
        self._flush()
        if not self._hp_host:
            return {}
        last = self._hp_host[-1][-1]
        return {n: {"lr": float(last[i, 0]), "momentum": float(last[i, 1])}
                for i, n in enumerate(self.hp_names or [])}

    def trace(self) -> pd.DataFrame:
        """The per-step trace as a DataFrame (flushes pending lr/momentum to the host)."""
        self._flush()
        df = pd.DataFrame.from_records(self.records)
        if self.hp_names and self._hp_host:
            hp = np.concatenate(self._hp_host)  # (steps, tensors, 2)
            cols = {}
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
        """The per-shift report of the trace so far (see :func:`shift_report`)."""
        from .report import shift_report

        out = shift_report(self.trace(), self.scenario)
        out["optimizer"] = self.optimizer_name
        out["hparams"] = self.hparams
        out["timing"] = self.harness_cost()
        return out

    # -- checkpoint / resume ----------------------------------------------------------------
    def save_checkpoint(self, path: str | Path) -> Path:
        """Save model, optimizer, stream position, RNG and river state, and the trace so far."""
        self._flush()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {
            "version": _CHECKPOINT_VERSION,
            "scenario": self.scenario,
            "optimizer": self.optimizer_name,
            "hparams": self.hparams,
            "hparam_every": self.hparam_every,
            "model": self.model.state_dict(),
            "opt": self.opt.state_dict(),
            "sampler": self.sampler.state_dict(),
            "cpu_rng": self._cpu_rng,
            "cuda_rng": self._cuda_rng,
            "monitor": pickle.dumps(self.monitor),
            "records": self.records,
            "hp_names": self.hp_names,
            "hp_host": self._hp_host,
            "timing": self.timing,
        }
        tmp = path.with_suffix(path.suffix + ".tmp")
        torch.save(state, tmp)
        tmp.replace(path)
        return path

    @classmethod
    def from_checkpoint(cls, path: str | Path, *, device: torch.device | str | None = None,
                        data: tuple[torch.Tensor, torch.Tensor, Any] | None = None,
                        model: nn.Module | None = None) -> StreamRun:
        """Rebuild a run from :meth:`save_checkpoint`; it continues to an identical trace.

        The file is unpickled (``weights_only=False``): load only checkpoints you wrote.
        """
        state = torch.load(path, map_location="cpu", weights_only=False)
        if state.get("version") != _CHECKPOINT_VERSION:
            raise ValueError(f"{path}: checkpoint version {state.get('version')!r}, "
                             f"expected {_CHECKPOINT_VERSION}")
        run = cls(state["scenario"], state["optimizer"], hparams=state["hparams"],
                  device=device, data=data, model=model, hparam_every=state["hparam_every"])
        run.model.load_state_dict(state["model"])
        run.opt.load_state_dict(state["opt"])
        run.sampler.load_state_dict(state["sampler"])
        run._cpu_rng = state["cpu_rng"]
        if run._cuda_rng is not None and state["cuda_rng"] is not None:
            run._cuda_rng = state["cuda_rng"]
        run.monitor = pickle.loads(state["monitor"])
        run.records = list(state["records"])
        run.hp_names = state["hp_names"]
        run._hp_host = list(state["hp_host"])
        run.timing = dict(state["timing"])
        return run
