"""Step time of each optimizer against plain SGD, measured in interleaved rounds.

A step is forward + backward + optimizer step on one mini-batch in train mode, through the
same :class:`~autoopt_lab.optim.bound.BoundOptimizer` contract as training (the loss
closure passed to ``step``, so measured-curvature Hessian-vector products are included,
amortised over their interval). Rounds alternate the baseline and every contender and the
median per-step time is compared, so a shared, noisy machine shifts all alike; ratios carry
over between machines, absolute times do not.

>>> ratios = step_time_ratios(["autosgd"], batch_size=16, steps=2, rounds=1, warmup=1)
>>> sorted(ratios)
['autosgd', 'sgd']
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from autoopt_lab.devices import resolve_device
from autoopt_lab.models import build_model
from autoopt_lab.optim import Choice, build, registry

INPUT_SHAPES = {"mnist_cnn": (1, 28, 28), "cifar_lenet": (3, 32, 32)}
#: The baseline every ratio divides by.
BASELINE = "sgd:lr=0.01:momentum=0.9"


def make_stepper(
    spec: str, model_name: str, batch_size: int, device: torch.device
) -> tuple[Callable[[], None], Callable[[], None]]:
    """A function doing one training step with optimizer ``spec``, and a cleanup."""
    torch.manual_seed(0)
    model = build_model(model_name).to(device).train()
    x = torch.randn(batch_size, *INPUT_SHAPES[model_name], device=device)
    y = torch.randint(0, 10, (batch_size,), device=device)
    name, options = Choice.parse(spec).pair
    if registry.get(name).required and "lr" not in options:
        options["lr"] = 0.01
    bound = build(name, model, **options)

    def closure() -> torch.Tensor:
        return F.nll_loss(model(x), y)

    def step() -> None:
        bound.zero_grad()
        F.nll_loss(model(x), y).backward()
        bound.step(closure)

    return step, bound.close


def _time(step: Callable[[], None], steps: int, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) / steps


def step_times(
    specs: Sequence[str],
    *,
    model_name: str = "mnist_cnn",
    batch_size: int = 128,
    steps: int = 20,
    rounds: int = 5,
    warmup: int = 3,
    device: str = "cpu",
) -> dict[str, float]:
    """Median seconds per step of the baseline (key ``"sgd"``) and each spec."""
    dev = resolve_device(device)
    keys = ["sgd", *specs]
    made = {"sgd": make_stepper(BASELINE, model_name, batch_size, dev)}
    for s in specs:
        made[s] = make_stepper(s, model_name, batch_size, dev)
    try:
        for k in keys:
            _time(made[k][0], warmup, dev)
        samples: dict[str, list[float]] = {k: [] for k in keys}
        for _ in range(rounds):
            for k in keys:
                samples[k].append(_time(made[k][0], steps, dev))
    finally:
        for _, cleanup in made.values():
            cleanup()
    return {k: statistics.median(v) for k, v in samples.items()}


def step_time_ratios(specs: Sequence[str], **kwargs: object) -> dict[str, float]:
    """Each spec's median step time divided by plain SGD's, from :func:`step_times`."""
    times = step_times(specs, **kwargs)  # type: ignore[arg-type]
    return {k: v / times["sgd"] for k, v in times.items()}
