"""One rule for turning a device name into a ``torch.device``, used by every entry point.

``"auto"`` (the default everywhere) means CUDA when available, else CPU. An explicit device
that this machine does not have is a :class:`DeviceUnavailableError` (a ``ValueError``) with
one clear sentence, raised before any work starts.

>>> resolve_device("cpu")
device(type='cpu')
>>> resolve_device(None) == resolve_device("auto")
True
"""

from __future__ import annotations

import torch

#: The default device name of every API and CLI.
DEFAULT_DEVICE = "auto"
#: Help text for a ``--device`` option.
DEVICE_HELP = "auto (CUDA when available, else CPU; the default), cpu, cuda or cuda:N"


class DeviceUnavailableError(ValueError):
    """The requested device does not exist on this machine."""


def resolve_device(device: str | torch.device | None = DEFAULT_DEVICE) -> torch.device:
    """``device`` as a ``torch.device``; ``None``/``"auto"`` pick CUDA when present.

    >>> resolve_device("cuda:7") if not torch.cuda.is_available() else None  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    autoopt_lab.devices.DeviceUnavailableError: device 'cuda:7' was requested but ...
    """
    if device is None or (isinstance(device, str) and device.strip().lower() == "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise DeviceUnavailableError(
            f"device {device!r} is not a device name; use {DEVICE_HELP}"
        ) from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceUnavailableError(
                f"device {str(device)!r} was requested but this machine has no CUDA GPU; "
                "use --device cpu or auto"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceUnavailableError(
                f"device {str(device)!r} was requested but only {torch.cuda.device_count()} "
                "CUDA device(s) exist"
            )
    elif dev.type in ("mps", "xpu"):
        backend = getattr(torch.backends, "mps", None) if dev.type == "mps" else getattr(
            torch, "xpu", None)
        if backend is None or not backend.is_available():
            raise DeviceUnavailableError(
                f"device {str(device)!r} was requested but this machine (or this PyTorch "
                "build) has no such device; use --device cpu or auto"
            )
    elif dev.type != "cpu":
        raise DeviceUnavailableError(f"device {str(device)!r} is not supported; use {DEVICE_HELP}")
    return dev
