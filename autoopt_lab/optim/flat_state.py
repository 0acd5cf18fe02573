"""Per-tensor optimizer state kept flat between steps, and scratch vectors reused across steps.

A step handles a param group as flat vectors (:mod:`.flat`). Gathering each tensor's state
into one vector (``torch.cat``) and scattering it back costs two passes per state key and
step; instead a :class:`Layout` keeps one flat buffer per key and puts *views* of it in the
per-tensor state, so ``state[p]["momentum_buffer"]`` is still a tensor of ``p``'s shape
(state dicts and tests read it as before) while the step reads and writes the buffer.

On CPU, a tensor of tens of MiB is allocated by ``mmap`` and first touched page by page:
each fresh temporary of the model's size cost about as much as two elementwise passes
over it (docs/performance.md, section 5). :meth:`Layout.scratch` hands out the same
vectors each step.

A layout is found again through the first tensor's ``step`` counter (a new state, e.g.
after ``load_state_dict``, is a new layout) and checked every step: a state tensor that is
not the layout's view any more (replaced by a load, or a key added) is gathered again.

>>> import torch
>>> ps = [torch.zeros(2, 2), torch.zeros(3)]
>>> states = [{"step": torch.zeros(()), "momentum_buffer": torch.ones_like(p)} for p in ps]
>>> lay = layout_for(ps, states, [4, 3])
>>> lay.buffers["momentum_buffer"].add_(1.0).shape
torch.Size([7])
>>> states[1]["momentum_buffer"]
tensor([2., 2., 2.])
"""

from __future__ import annotations

import ctypes
import weakref

import torch
from torch import Tensor

from .flat import forget_segments, remember_segments

#: Keys kept flat when every tensor of the batch has them with its own shape and dtype;
#: besides these, the preconditioner's keys (those of :data:`.batch.BASE_KEYS`' complement).
FLAT_BASE_KEYS = ("momentum_buffer", "last_update")

_LAYOUTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
#: Elements from which a gathered state is worth a ``malloc_trim`` (a few MiB).
_TRIM_AT = 1 << 20


class Layout:
    """Flat buffers (one per state key) with per-tensor views, and named scratch vectors."""

    def __init__(self, params: list[Tensor], sizes: list[int]) -> None:
        self.ids = tuple(id(p) for p in params)
        self.sizes = list(sizes)
        self.numel = sum(sizes)
        self.offsets = [sum(sizes[:k]) for k in range(len(sizes))]
        self.buffers: dict[str, Tensor] = {}
        self.views: dict[str, list[Tensor]] = {}
        self._work: dict[str, Tensor] = {}
        self._flat: dict[str, Tensor] = {}
        self._ids: set[int] = set()  # the vectors whose segments flat.segments remembers
        weakref.finalize(self, _forget, self._ids)

    def _remember(self, old: Tensor | None, new: Tensor) -> None:
        if old is not None:
            forget_segments(id(old))
            self._ids.discard(id(old))
        remember_segments(new, self.sizes)
        self._ids.add(id(new))

    def adopt(self, key: str, params: list[Tensor], states: list[dict], *,
              gathered: bool = False) -> bool:
        """Make ``states[k][key]`` views of one flat buffer (gathered once); False when the
        key cannot be kept flat (missing, or of another shape or dtype). With ``gathered``,
        True only when this call gathered it."""
        views = self.views.get(key)
        if views is not None and all(s.get(key) is v for s, v in zip(states, views,
                                                                      strict=True)):
            return not gathered
        values = [s.get(key) for s in states]
        p0 = params[0]
        if any(v is None or v.shape != p.shape or v.dtype != p0.dtype or v.device != p0.device
               for v, p in zip(values, params, strict=True)):
            old = self.buffers.pop(key, None)
            if old is not None:
                forget_segments(id(old))
                self._ids.discard(id(old))
            self.views.pop(key, None)
            return False
        buf = torch.cat([v.reshape(-1) for v in values])
        self._remember(self.buffers.get(key), buf)
        views = [x.view_as(p) for x, p in zip(buf.split(self.sizes), params, strict=True)]
        for s, v in zip(states, views, strict=True):
            s[key] = v
        self.buffers[key], self.views[key] = buf, views
        return True

    def create(self, key: str, params: list[Tensor], states: list[dict]) -> Tensor:
        """A new zero state ``key`` for every tensor, as views of one flat buffer."""
        buf = torch.zeros(self.numel, dtype=params[0].dtype, device=params[0].device)
        self._remember(self.buffers.get(key), buf)
        views = [x.view_as(p) for x, p in zip(buf.split(self.sizes), params, strict=True)]
        for s, v in zip(states, views, strict=True):
            s[key] = v
        self.buffers[key], self.views[key] = buf, views
        return buf

    def scratch(self, name: str, like: Tensor) -> Tensor:
        """A flat vector of the batch's size, the same one at every step (contents
        undefined)."""
        buf = self._buffer(name, like)
        flat = self._flat.get(name)
        if flat is None or flat._base is not buf:  # made once per scratch vector
            flat = buf[: self.numel]
            self._remember(self._flat.get(name), flat)
            self._flat[name] = flat
        return flat

    def piece(self, k: int, like: Tensor, *, as_segment: bool = True) -> Tensor:
        """A reused vector of tensor ``k``'s size (one buffer for all ``k``: one at a
        time), aligned as segment ``k`` of a fresh flat vector is (``as_segment``) or as a
        fresh allocation is: a float32 sum's order depends on its operands' alignment, so
        this keeps the bits of the sums formed in new vectors."""
        step = max(1, 64 // like.element_size())
        buf = self._work.get("piece")
        if buf is None or buf.dtype != like.dtype or buf.device != like.device:
            buf = torch.empty(max(self.sizes) + step, dtype=like.dtype, device=like.device)
            self._work["piece"] = buf
        pad = self.offsets[k] % step if as_segment else 0
        return buf[pad: pad + self.sizes[k]]

    def _buffer(self, name: str, like: Tensor) -> Tensor:
        buf = self._work.get(name)
        if buf is None or buf.dtype != like.dtype or buf.device != like.device:
            buf = torch.empty(self.numel, dtype=like.dtype, device=like.device)
            self._work[name] = buf
        return buf


def _forget(ids: set[int]) -> None:
    for i in ids:
        forget_segments(i)


def layout_for(params: list[Tensor], states: list[dict], sizes: list[int]) -> Layout:
    """The layout of this batch of tensors (a new one when the batch changed), its keys
    adopted (see :class:`Layout`)."""
    anchor = states[0]["step"]
    lay = _LAYOUTS.get(anchor)
    if lay is None or lay.ids != tuple(id(p) for p in params):
        lay = Layout(params, sizes)
        _LAYOUTS[anchor] = lay
    keys = [k for k in states[0] if k in FLAT_BASE_KEYS or k not in _NOT_FLAT]
    gathered = False
    for key in keys:
        gathered |= lay.adopt(key, params, states, gathered=True)
    if gathered and params[0].device.type == "cpu" and lay.numel >= _TRIM_AT:
        _release_freed_memory()
    return lay


def _release_freed_memory() -> None:
    """Give the per-tensor state just gathered (freed in the middle of the C heap, where it
    would stay resident) back to the OS: glibc's ``malloc_trim``; nothing elsewhere."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


#: State that is never per element (counters, per-tensor scalars) or is kept per tensor.
_NOT_FLAT = frozenset((
    "step", "gamma", "nonfinite_skips", "curvature", "curvature_count", "probe_direction",
    "probe_quad", "trust_scale", "secant", "gain", "initial_norm",
))
