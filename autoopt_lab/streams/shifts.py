"""Shift transforms, applied batch-wise on tensors, and the ``Condition`` they form.

A :class:`Condition` is the full description of one data distribution in a stream: the
covariate transforms (pixel permutation, rotation, blur, contrast, inversion, Gaussian noise),
the class proportions (prior / class-incremental shift) and the label map (concept shift).
Every numeric field has an identity value, so two conditions can be interpolated (incremental
transitions). Transforms act on a whole batch ``(B, C, H, W)`` of floats in ``[0, 1]``; there
are no per-sample Python loops.

Order of application: permutation, rotation, blur, contrast, inversion, noise (geometric, then
photometric, then additive noise), then clamping to ``[0, 1]``.

>>> import torch
>>> x = torch.zeros(2, 1, 3, 3); x[:, 0, 0, 1] = 1.0          # a pixel at the top middle
>>> c = Condition(rotation=90.0)
>>> out = c.apply_images(x, generator=torch.Generator().manual_seed(0))
>>> out[0, 0].round().int().tolist()                            # counter-clockwise by 90
[[0, 0, 0], [1, 0, 0], [0, 0, 0]]
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

import torch
import torchvision.transforms.v2.functional as TF
from torchvision.transforms import InterpolationMode

from .scenario import Shift

__all__ = [
    "Condition", "condition_from_shifts", "gaussian_blur", "interpolate", "pixel_permutation",
]


@dataclass(frozen=True)
class Condition:
    """One data distribution. Defaults are the identity (the unshifted data set)."""

    permutation_seed: int | None = None
    rotation: float = 0.0
    blur: float = 0.0
    contrast: float = 1.0
    inversion: float = 0.0
    noise: float = 0.0
    proportions: tuple[float, ...] | None = None  # None: the data set's own class frequencies
    label_map: tuple[int, ...] | None = None  # new label of each original class

    def apply_images(self, x: torch.Tensor, *, generator: torch.Generator) -> torch.Tensor:
        """Transform a batch of images ``(B, C, H, W)`` in ``[0, 1]``; returns a new tensor."""
        if self.permutation_seed is not None:
            b, c, h, w = x.shape
            perm = pixel_permutation(h * w, self.permutation_seed, x.device)
            x = x.reshape(b, c, h * w)[:, :, perm].reshape(b, c, h, w)
        if self.rotation % 360 != 0:
            x = TF.rotate(x, self.rotation, interpolation=InterpolationMode.BILINEAR)
        if self.blur > 0:
            x = gaussian_blur(x, self.blur)
        if self.contrast != 1.0:
            x = TF.adjust_contrast(x, self.contrast)
        if self.inversion > 0:
            x = x + self.inversion * (1.0 - 2.0 * x)
        if self.noise > 0:
            x = x + self.noise * torch.randn(x.shape, generator=generator, device=x.device,
                                             dtype=x.dtype)
        return x.clamp(0.0, 1.0)

    def class_probs(self, base: torch.Tensor) -> torch.Tensor:
        """Sampling probability of each class; ``base`` holds the data set's class frequencies."""
        if self.proportions is None:
            return base
        return torch.tensor(self.proportions, dtype=base.dtype, device=base.device)

    def map_labels(self, y: torch.Tensor) -> torch.Tensor:
        """Apply the concept shift (label remapping) to a batch of labels."""
        if self.label_map is None:
            return y
        return torch.tensor(self.label_map, dtype=y.dtype, device=y.device)[y]

    def describe(self) -> str:
        """A short human-readable summary of what differs from the identity.

        >>> Condition(rotation=45.0, noise=0.2).describe()
        'rotation=45, noise=0.2'
        """
        parts = []
        for f in fields(self):
            v = getattr(self, f.name)
            if v != f.default:
                if isinstance(v, float):
                    v = f"{v:g}"
                elif isinstance(v, tuple):
                    v = "[" + ",".join(f"{e:g}" if isinstance(e, float) else str(e) for e in v) + "]"
                parts.append(f"{f.name}={v}")
        return ", ".join(parts) or "identity"


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of a batch ``(B, C, H, W)``, kernel ``2 ceil(3 sigma) + 1``, reflect padding.

    Same result as torchvision's ``gaussian_blur``, computed as two small matrix products
    (``B_h @ x @ B_w^T``, the reflect padding folded into the banded matrices), which is several
    times faster on a CPU than a single-channel 2-D convolution.

    >>> x = torch.zeros(1, 1, 9, 9); x[0, 0, 4, 4] = 1.0
    >>> round(gaussian_blur(x, 1.0).sum().item(), 4)
    1.0
    """
    h, w = x.shape[-2:]
    bh = _blur_matrix(h, sigma, x.dtype, x.device)
    bw = bh if w == h else _blur_matrix(w, sigma, x.dtype, x.device)
    return bh @ x @ bw.T


_BLUR_CACHE: dict[tuple[int, float, torch.dtype, str], torch.Tensor] = {}


def _blur_matrix(n: int, sigma: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    key = (n, float(sigma), dtype, str(device))
    if key not in _BLUR_CACHE:
        k = 2 * math.ceil(3 * sigma) + 1
        k = min(k, 2 * ((n - 1) // 2) + 1)
        half = k // 2
        r = torch.arange(-half, half + 1, dtype=torch.float64)
        wts = torch.exp(-0.5 * (r / sigma) ** 2)
        wts = wts / wts.sum()
        m = torch.zeros(n, n, dtype=torch.float64)
        for i in range(n):  # n <= a few dozen pixels: built once per size and sigma
            for t in range(k):
                j = i + t - half
                j = -j if j < 0 else (2 * (n - 1) - j if j >= n else j)  # reflect
                m[i, j] += wts[t]
        _BLUR_CACHE[key] = m.to(dtype=dtype, device=device)
    return _BLUR_CACHE[key]


_PERM_CACHE: dict[tuple[int, int, str], torch.Tensor] = {}


def pixel_permutation(n: int, seed: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """The fixed permutation of ``n`` pixels drawn from ``seed`` (cached per device).

    >>> p = pixel_permutation(5, 0); sorted(p.tolist())
    [0, 1, 2, 3, 4]
    """
    key = (n, seed, str(device))
    if key not in _PERM_CACHE:
        g = torch.Generator().manual_seed(seed)
        _PERM_CACHE[key] = torch.randperm(n, generator=g).to(device)
    return _PERM_CACHE[key]


#: Run seeds move a permutation shift's seed by this stride, so every seed draws its own one.
PERMUTATION_SEED_STRIDE = 1_000_003


def condition_from_shifts(shifts: tuple[Shift, ...] | list[Shift], num_classes: int, *,
                          run_seed: int = 0) -> Condition:
    """Build the condition of a segment from its (validated) shifts.

    A permutation is drawn from its own ``seed`` and the run's seed
    (``seed + run_seed * PERMUTATION_SEED_STRIDE``): seed 0 keeps the file's permutation,
    and each further run seed draws another, so results over seeds cover several tasks.

    >>> from autoopt_lab.streams.scenario import Shift
    >>> c = condition_from_shifts([Shift("class_incremental", {"classes": [0, 1]})], 4)
    >>> c.proportions
    (0.5, 0.5, 0.0, 0.0)
    """
    c = Condition()
    for s in shifts:
        p = s.params
        if s.kind == "permutation":
            c = replace(c, permutation_seed=int(p["seed"]) + run_seed * PERMUTATION_SEED_STRIDE)
        elif s.kind == "rotation":
            c = replace(c, rotation=float(p["degrees"]))
        elif s.kind == "noise":
            c = replace(c, noise=float(p["std"]))
        elif s.kind == "blur":
            c = replace(c, blur=float(p["sigma"]))
        elif s.kind == "contrast":
            c = replace(c, contrast=float(p["factor"]))
        elif s.kind == "inversion":
            c = replace(c, inversion=float(p["amount"]))
        elif s.kind == "prior":
            c = replace(c, proportions=tuple(float(v) for v in p["proportions"]))
        elif s.kind == "class_incremental":
            cls = set(p["classes"])
            c = replace(c, proportions=tuple(1.0 / len(cls) if k in cls else 0.0
                                             for k in range(num_classes)))
        elif s.kind == "concept":
            m = list(range(num_classes))
            for a, b in p["mapping"]:
                m[a] = b
            c = replace(c, label_map=tuple(m))
        else:  # pragma: no cover - the schema rejects unknown kinds first
            raise ValueError(f"unknown shift kind {s.kind!r}")
    return c


_NUMERIC = ("rotation", "blur", "contrast", "inversion", "noise")


def interpolate(a: Condition, b: Condition, frac: float,
                base_probs: tuple[float, ...] | None = None) -> Condition:
    """The condition a fraction ``frac`` of the way from ``a`` to ``b`` (incremental drift).

    Numeric fields move linearly; proportions move linearly (``None`` stands for
    ``base_probs``); permutation and label map must be equal in ``a`` and ``b``.

    >>> interpolate(Condition(), Condition(rotation=90.0), 0.25).rotation
    22.5
    """
    if not 0.0 <= frac <= 1.0:
        raise ValueError(f"frac must be in [0, 1], got {frac}")
    if a.permutation_seed != b.permutation_seed or a.label_map != b.label_map:
        raise ValueError("incremental interpolation cannot move a permutation or a label map")
    kw = {n: (1 - frac) * getattr(a, n) + frac * getattr(b, n) for n in _NUMERIC}
    props = b.proportions
    if a.proportions != b.proportions:
        pa = a.proportions if a.proportions is not None else base_probs
        pb = b.proportions if b.proportions is not None else base_probs
        if pa is None or pb is None:
            raise ValueError("interpolating to or from the data set's own class frequencies "
                             "needs base_probs")
        props = tuple((1 - frac) * u + frac * v for u, v in zip(pa, pb, strict=True))
    return replace(b, proportions=props, **kw)
