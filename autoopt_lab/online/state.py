"""What an online learner keeps to itself: its RNG stream, its torch thread count, its pickle.

* **Randomness.** With a ``seed``, every draw (initial weights, dropout) comes from the
  learner's own generator state, so runs repeat and the caller's torch RNG is untouched.
* **Threads.** A tiny model spends more time waking intra-op threads than computing:
  the learner runs its own torch work on ``num_threads`` threads (default 1) and restores the
  caller's setting afterwards (``torch.set_num_threads`` is process-wide; None leaves it).
* **Pickles.** Every tensor the learner holds (modules, optimizer state, RNG state) is
  written as one ``torch.save`` record, whose bytes depend on the values only; plain pickle
  would name each tensor's storage by its memory address. So ``pickle.dumps`` of the same
  learner gives the same bytes each time (river's checks compare them), and a copy of it too.

>>> import pickle
>>> from autoopt_lab.online import TorchRegressor
>>> model = TorchRegressor(optimizer="autosgd", batch_size=2, seed=0)
>>> for i in range(6):
...     model.learn_one({"x": i / 6}, i / 6)
>>> pickle.dumps(model) == pickle.dumps(model) == pickle.dumps(pickle.loads(pickle.dumps(model)))
True
"""

from __future__ import annotations

import contextlib
import copy
import io
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from .checks import check_optimizer

__all__ = ["LearnerState", "check_threads"]

#: the learner attributes that hold tensors; pickled together by ``torch.save``
_TENSOR_FIELDS = ("_net", "_eval_net", "_rng", "_optimizer_state")


def check_threads(num_threads: int | None) -> None:
    """``num_threads``: None or an integer >= 1."""
    if num_threads is not None and (
        isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 1
    ):
        raise ValueError(f"num_threads must be an integer >= 1 or None, got {num_threads!r}")


class LearnerState:
    """Mixin of :class:`~autoopt_lab.online.learner.TorchLearner`: RNG, threads, pickling."""

    num_threads: int | None = 1  # also for learners pickled before it existed

    # -- threads --------------------------------------------------------------------------
    @contextlib.contextmanager
    def _threads(self) -> Iterator[None]:
        """Run on ``num_threads`` torch threads, then restore the caller's count."""
        before = torch.get_num_threads()
        if self.num_threads is None or self.num_threads == before:
            yield
            return
        torch.set_num_threads(self.num_threads)
        try:
            yield
        finally:
            torch.set_num_threads(before)

    # -- randomness -----------------------------------------------------------------------
    @contextlib.contextmanager
    def _random(self) -> Iterator[None]:
        """Draw from the learner's own RNG stream (only with a seed)."""
        if self.seed is None:
            yield
            return
        cuda = self._device.type == "cuda"
        index = (self._device.index or torch.cuda.current_device()) if cuda else None
        with torch.random.fork_rng(devices=[index] if cuda else [], device_type="cuda"):
            if self._rng is None:
                torch.default_generator.manual_seed(self.seed)
                if cuda:
                    with torch.cuda.device(index):
                        torch.cuda.manual_seed(self.seed)
            else:
                torch.set_rng_state(self._rng[0])
                if cuda:
                    torch.cuda.set_rng_state(self._rng[1], index)
            try:
                yield
            finally:
                self._rng = (
                    torch.get_rng_state(),
                    torch.cuda.get_rng_state(index) if cuda else None,
                )

    # -- pickling and copying -------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        bound = state.pop("_bound")
        del state["_spec"]  # registry specs hold factories; looked up again on load
        state["_optimizer_state"] = None
        if bound is not None:
            opt_state = bound.state_dict()
            if bound.tracker is not None:
                # the per-sample hooks reference the tracker: save a hook-free module copy
                bound.close()
                state["_net"] = copy.deepcopy(self._net)
                self._bind(opt_state, new_eval_net=False)
            state["_optimizer_state"] = opt_state
        tensors = {k: state.pop(k) for k in _TENSOR_FIELDS if k in state}
        if isinstance(self.module, nn.Module):
            tensors["module"] = state.pop("module")
        buffer = io.BytesIO()
        torch.save(tensors, buffer)
        state["_tensors"] = buffer.getvalue()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        if "_tensors" in state:  # older pickles hold the tensors in place
            buffer = io.BytesIO(state.pop("_tensors"))
            state.update(torch.load(buffer, weights_only=False))
        opt_state = state.pop("_optimizer_state", None)
        self.__dict__.update(state)
        self._spec, _ = check_optimizer(self.optimizer, self.optimizer_options)
        self._bound = None
        if self._net is not None:
            self._bind(opt_state, new_eval_net=False)
