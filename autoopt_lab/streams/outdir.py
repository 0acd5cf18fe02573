"""An output folder that is never silently overwritten.

:func:`claim_output` is called before any work. It checks that the folder can be written,
then compares the identity of the call with the folder's manifest (``stream.json``): an
empty folder is claimed; a folder holding the results of the *same* configuration is resumed
(finished runs are reused, checkpoints continued); a folder holding anything else is refused
with the difference named, unless ``fresh=True``, which deletes the files this harness wrote
there (never anything else) and starts afresh.

One stream command at a time per folder: :func:`lock_output` takes an exclusive lock
(``fcntl.flock`` on ``.stream.lock``, released by the system when the process ends, even by
``kill -9``); a second command is refused at once with :class:`OutputBusyError` naming the
holder's pid. Every file is written under a unique temporary name, then renamed.

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> claim_output(d, {"seeds": [0]}), claim_output(d, {"seeds": [0]})
('new', 'resume')
>>> claim_output(d, {"seeds": [0, 1]})  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
autoopt_lab.streams.outdir.OutputExistsError: ... holds the results of another run (seeds: [0] -> [0, 1]); ...
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from .identity import canonical, differences

__all__ = ["MANIFEST", "OutputBusyError", "OutputExistsError", "atomic_write_text",
           "claim_output", "ensure_writable", "lock_output", "record_files", "release_output"]

logger = logging.getLogger(__name__)

#: The manifest file of an output folder.
MANIFEST = "stream.json"
#: Files and folders the harness writes into an output folder (besides listed PNGs).
_OWN = ("trace.parquet", "summary.json", "comparison.png", "runs", "table.md", "table.csv")


class OutputExistsError(ValueError):
    """The output folder holds results of another configuration."""


class OutputBusyError(OSError):
    """Another process is writing into the output folder."""


#: The lock file of an output folder, and the folders this process holds (path -> fd).
LOCK = ".stream.lock"
_HELD: dict[Path, int] = {}


def lock_output(out: str | os.PathLike[str]) -> None:
    """Hold ``out`` for this process (again: no-op) or raise :class:`OutputBusyError`."""
    key = Path(out).resolve()
    if key in _HELD:
        return
    fd = os.open(key / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise OutputBusyError(f"output folder {out} is in use by another stream command (pid "
                              f"{holder}); nothing was changed. Wait for it to finish, or "
                              "write to another --out") from None
    except OSError as exc:  # a file system without locks (some network ones): go on unlocked
        logger.warning("cannot lock output folder %s (%s); another stream command could "
                       "write into it at the same time", out, exc.strerror or exc)
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    _HELD[key] = fd


def release_output(out: str | os.PathLike[str]) -> None:
    """Let other processes write into ``out`` again."""
    fd = _HELD.pop(Path(out).resolve(), None)
    if fd is not None:
        os.close(fd)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` through a uniquely named temporary file and a rename."""
    from autoopt_lab.experiments.outputs import writing

    path = Path(path)
    with writing(path):
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(text)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def ensure_writable(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` if needed and prove it writable (``OSError`` naming it otherwise)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"--out {path} is a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise OSError(f"cannot write to output folder {path}: {exc.strerror or exc}; "
                      "nothing was run") from None
    return path


def _read_manifest(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and "identity" in data else None


def _write_manifest(out: Path, data: dict[str, Any]) -> None:
    atomic_write_text(out / MANIFEST, json.dumps(canonical(data), indent=1))


def _clear(out: Path, manifest: dict[str, Any] | None) -> None:
    names = list(_OWN) + list((manifest or {}).get("files", []))
    for name in names:
        p = out / name
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif p.exists() or p.is_symlink():
            p.unlink()
    (out / MANIFEST).unlink(missing_ok=True)


def claim_output(out: str | os.PathLike[str], identity: dict[str, Any], *,
                 fresh: bool = False) -> str:
    """Claim ``out`` for a call of this ``identity``; returns ``"new"`` or ``"resume"``.
    The folder is locked for this process first (:func:`lock_output`)."""
    out = ensure_writable(out)
    lock_output(out)
    manifest_path = out / MANIFEST
    old = _read_manifest(manifest_path) if manifest_path.exists() else None
    if old is not None:
        diffs = differences(old["identity"], identity)
        if not diffs:
            return "resume"
        why = f"holds the results of another run ({'; '.join(diffs)})"
    elif manifest_path.exists() or any((out / n).exists() for n in _OWN):
        why = "holds stream results this version cannot match (no readable stream.json)"
    else:
        why = ""
    if why:
        if not fresh:
            raise OutputExistsError(
                f"output folder {out} {why}; nothing was changed. Write to another --out, "
                "or pass --fresh (fresh=True) to delete those results and start afresh")
        _clear(out, old)
    _write_manifest(out, {"identity": identity, "files": []})
    return "new"


def record_files(out: str | os.PathLike[str], files: list[str]) -> None:
    """Add ``files`` (names inside ``out``) to the manifest, so ``fresh`` can delete them."""
    out = Path(out)
    data = _read_manifest(out / MANIFEST)
    if data is None:
        return
    data["files"] = sorted(set(data.get("files", [])) | set(files))
    _write_manifest(out, data)
