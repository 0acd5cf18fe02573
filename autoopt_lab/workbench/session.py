"""Build the step sources for a :class:`~autoopt_lab.workbench.config.RunConfig`.

One lane per optimizer (two when ``config.compare`` is set), each with its own fresh model
(same initial weights, from ``config.seed``) on the same stream of batches.

>>> from autoopt_lab.workbench.config import RunConfig
>>> lanes = build_sources(RunConfig(optimizer="SGD", steps=5))  # doctest: +SKIP
>>> list(lanes), lanes["SGD lr=0.01 m=0"].total_steps  # doctest: +SKIP
(['SGD lr=0.01 m=0'], 5)
"""

from __future__ import annotations

import logging
from dataclasses import replace

import torch

from autoopt_lab.workbench.config import NO_SHIFT, RunConfig
from autoopt_lab.workbench.optimizers import build_optimizer
from autoopt_lab.workbench.sources import StationarySource, StepSource

log = logging.getLogger(__name__)


def resolve_device(device: str) -> torch.device:
    """``device`` as a torch device, with a clear error when CUDA is asked for but absent."""
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} is not available here (no CUDA); allowed: 'cpu'")
    return torch.device(device)


def build_model_for(
    config: RunConfig, channels: int, num_classes: int, probe: torch.Tensor
) -> torch.nn.Module:
    """A fresh model seeded by ``config.seed``, checked against one real batch of inputs."""
    from autoopt_lab.models import build_model, model_name_for

    name = config.model or model_name_for(config.dataset)
    torch.manual_seed(config.seed)
    model = build_model(name, in_channels=channels, num_classes=num_classes)
    try:
        with torch.no_grad():
            model.eval()(probe)
    except RuntimeError as exc:
        shape = "x".join(str(s) for s in probe.shape[1:])
        raise ValueError(
            f"model {name!r} does not accept {config.dataset} images ({shape}); "
            f"pick the data set's own model (model=None): {exc}"
        ) from exc
    return model.train()


def lane_configs(config: RunConfig) -> dict[str, RunConfig]:
    """``{label: config}`` for the main optimizer and, when set, the one to compare with."""
    lanes = {config.label(): config}
    if config.compare is not None:
        other = replace(config, optimizer=config.compare, compare=None)
        label = other.label()
        if label in lanes:
            raise ValueError(
                f"compare={config.compare!r} is the same run as optimizer={config.optimizer!r}"
            )
        lanes[label] = other
    return lanes


def build_sources(config: RunConfig) -> dict[str, StepSource]:
    """The step sources of a run, one per lane, ready to step."""
    device = resolve_device(config.device)
    if config.scenario != NO_SHIFT:
        from autoopt_lab.workbench.streaming import build_stream_sources

        return build_stream_sources(config, device)
    from autoopt_lab.data import load_arrays, normalize

    x_raw, y, info = load_arrays(config.dataset, train=True)
    x = normalize(x_raw, info)
    log.info("workbench data: %s (%d samples, source %s)", info.name, len(x), info.source)
    sources: dict[str, StepSource] = {}
    for label, cfg in lane_configs(config).items():
        model = build_model_for(cfg, info.channels, info.num_classes, x[:2]).to(device)
        opt = build_optimizer(cfg, model)
        sources[label] = StationarySource(
            model,
            opt,
            x,
            y,
            batch_size=cfg.batch_size,
            steps=cfg.steps,
            seed=cfg.seed,
            device=device,
            track=cfg.is_auto,
        )
    return sources
