"""Where data sets live on disk: an explicit root, ``$AUTOOPT_DATA``, or the user's cache."""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "AUTOOPT_DATA"
OFFLINE_ENV_VAR = "AUTOOPT_OFFLINE"


def data_root(root: str | os.PathLike[str] | None = None) -> Path:
    """Resolve the data root: ``root`` if given, else ``$AUTOOPT_DATA``, else
    ``$XDG_CACHE_HOME/autoopt-lab/data`` (``~/.cache/autoopt-lab/data``).

    >>> str(data_root("/tmp/x"))
    '/tmp/x'
    """
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "autoopt-lab" / "data"


def downloads_allowed(download: bool | None = None) -> bool:
    """Whether to try network downloads: ``download`` if given, else not when
    ``$AUTOOPT_OFFLINE`` is set to 1/true/yes.

    >>> downloads_allowed(False)
    False
    """
    if download is not None:
        return bool(download)
    return os.environ.get(OFFLINE_ENV_VAR, "").strip().lower() not in {"1", "true", "yes"}
