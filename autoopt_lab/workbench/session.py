"""Build the step sources for a :class:`~autoopt_lab.workbench.config.RunConfig`.

One lane per optimizer (two when ``config.compare`` is set), each a
:class:`~autoopt_lab.streams.StreamRun` with its own fresh model (same initial weights, from
``config.seed``) on the same stream of batches.

>>> from autoopt_lab.workbench.config import RunConfig
>>> list(lane_configs(RunConfig(optimizer="AutoSGD", compare="SGD", lr=0.01)))
['AutoSGD', 'SGD lr=0.01 m=0']
"""

from __future__ import annotations

import logging
from dataclasses import replace

import torch

from autoopt_lab.workbench.config import RunConfig
from autoopt_lab.workbench.sources import StepSource

log = logging.getLogger(__name__)


def resolve_device(device: str) -> torch.device:
    """``device`` as a torch device, with a clear error when CUDA is asked for but absent."""
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} is not available here (no CUDA); allowed: 'cpu'")
    return torch.device(device)


def check_model_fits(
    model_name: str, dataset: str, shape: tuple[int, ...], num_classes: int
) -> None:
    """Raise a clear ``ValueError`` when ``model_name`` cannot take ``dataset``'s images."""
    from autoopt_lab.models import build_model

    model = build_model(model_name, in_channels=shape[0], num_classes=num_classes).eval()
    try:
        with torch.no_grad():
            model(torch.zeros(2, *shape))
    except RuntimeError as exc:
        dims = "x".join(str(s) for s in shape)
        raise ValueError(
            f"model {model_name!r} does not accept {dataset} images ({dims}); "
            f"pick the data set's own model ('paper default')"
        ) from exc


def lane_configs(config: RunConfig) -> dict[str, RunConfig]:
    """``{label: config}`` for the main optimizer and, when set, the one to compare with."""
    lanes = {config.label(): config}
    if config.compare is not None:
        other = replace(config, optimizer=config.compare, compare=None)
        label = other.label()
        if label in lanes:
            raise ValueError(
                f"compare={config.compare!r} is the same run as optimizer={config.optimizer!r}; "
                "pick a different optimizer or 'none'"
            )
        lanes[label] = other
    return lanes


def build_sources(config: RunConfig) -> dict[str, StepSource]:
    """The step sources of a run, one per lane, ready to step."""
    from autoopt_lab.data import load_arrays
    from autoopt_lab.workbench.streaming import build_stream_sources, scenario_for

    device = resolve_device(config.device)
    scenario = scenario_for(config)
    x, _, info = load_arrays(scenario.dataset, train=True)
    check_model_fits(scenario.model, scenario.dataset, tuple(x.shape[1:]), scenario.num_classes)
    return build_stream_sources(config, device, lane_configs(config))
