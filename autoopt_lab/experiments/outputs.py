"""Checks on output paths, made before any work starts so that a long run never ends in an
unwritable file.

>>> import tempfile, os
>>> folder = tempfile.mkdtemp()
>>> check_output_file(os.path.join(folder, "run.json"), "--json").name
'run.json'
>>> check_output_file("/proc/nope/run.json", "--json")
Traceback (most recent call last):
...
FileNotFoundError: --json /proc/nope/run.json: the folder /proc/nope does not exist
"""

from __future__ import annotations

import os
from pathlib import Path


def check_output_file(path: str | os.PathLike[str], option: str) -> Path:
    """``path`` if a file can be written there (its folder exists and is writable, and it is
    not a folder or a read-only file); otherwise an ``OSError`` naming ``option``."""
    p = Path(path).expanduser()
    if p.is_dir():
        raise IsADirectoryError(f"{option} {p}: is a folder; give a file path")
    folder = p.parent if str(p.parent) else Path(".")
    if not folder.is_dir():
        raise FileNotFoundError(f"{option} {p}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(f"{option} {p}: the folder {folder} is not writable")
    if p.exists() and not os.access(p, os.W_OK):
        raise PermissionError(f"{option} {p}: the file exists and is not writable")
    return p


def check_output_dir(path: str | os.PathLike[str], option: str) -> Path:
    """``path`` created if needed and writable; otherwise an ``OSError`` naming ``option``."""
    p = Path(path).expanduser()
    if p.exists() and not p.is_dir():
        raise NotADirectoryError(f"{option} {p}: exists and is not a folder")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise type(exc)(f"{option} {p}: cannot create it ({exc.strerror or exc})") from exc
    if not os.access(p, os.W_OK | os.X_OK):
        raise PermissionError(f"{option} {p}: the folder is not writable")
    return p
