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

Two outputs of one command are never the same file, and an output never replaces a file of
another kind (JSON over an SQLite store):

>>> check_distinct({"--json": "a.sqlite", "--store": "./a.sqlite"})
Traceback (most recent call last):
...
ValueError: --json and --store are the same file a.sqlite; give each output its own path
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: What :func:`file_kind` may call an existing file, by its first bytes.
_MAGIC = ((b"SQLite format 3\x00", "an SQLite database"), (b"PAR1", "a Parquet file"),
          (b"\x89PNG", "a PNG image"), (b"PK\x03\x04", "a zip archive (or torch file)"),
          (b"\x80", "a pickle (or torch file)"))


def file_kind(path: str | os.PathLike[str]) -> str | None:
    """What ``path`` holds, from its first bytes: ``"JSON"``, ``"text"``, one of the binary
    formats above, ``"binary"``; None for a missing or empty file."""
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except (FileNotFoundError, IsADirectoryError):
        return None
    if not head:
        return None
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        if b"\x00" in head or len(head) < 508:
            return "binary"
        text = head[:-4].decode("utf-8", "ignore")
    return "JSON" if text.lstrip().startswith(("{", "[")) else "text"


#: The kinds an existing file may have for each output format to be replaced.
_REPLACEABLE = {"json": {"JSON"}, "csv": {"text"}, "text": {"text", "JSON"}}


def check_distinct(outputs: dict[str, str | os.PathLike[str] | None]) -> None:
    """A ``ValueError`` when two of ``outputs`` (option -> path; None skipped) are one file."""
    seen: list[tuple[Path, str, str | os.PathLike[str]]] = []
    for option, path in outputs.items():
        if not path:
            continue
        real = Path(path).expanduser().resolve()
        for other, first, first_path in seen:
            if other == real or (real.exists() and other.exists() and os.path.samefile(other, real)):
                raise ValueError(f"{first} and {option} are the same file {first_path}; give "
                                 "each output its own path")
        seen.append((real, option, path))


def check_output_file(path: str | os.PathLike[str], option: str, kind: str | None = None) -> Path:
    """``path`` if a file can be written there (its folder exists and is writable, and it is
    not a folder or a read-only file); otherwise an ``OSError`` naming ``option``. With
    ``kind`` (``"json"``, ``"csv"``, ``"text"``), an existing file of another kind (an SQLite
    store, a Parquet file, ...) is refused (``FileExistsError``) rather than replaced."""
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
    found = file_kind(p) if kind is not None and p.is_file() else None
    if found is not None and found not in _REPLACEABLE[kind]:
        raise FileExistsError(f"{option} {p}: the file exists and is {found}, not a {kind} "
                              "file; nothing was written. Give another path (or remove it)")
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


#: Suffixes of the files commands write beside a store; a store is never given one of them.
OUTPUT_SUFFIXES = (".json", ".csv", ".md", ".png", ".ipynb", ".parquet")


def check_store_path(path: str | os.PathLike[str], option: str = "--store") -> Path:
    """``path`` unless it has the suffix of an output file (a report written later would
    replace the store): a ``ValueError`` naming ``option`` then.

    >>> check_store_path("out/arena.json")
    Traceback (most recent call last):
    ...
    ValueError: --store out/arena.json: a results store needs its own file (e.g. .sqlite), not a name with the .json suffix of a report this command writes
    """
    p = Path(path).expanduser()
    if p.suffix.lower() in OUTPUT_SUFFIXES:
        raise ValueError(f"{option} {p}: a results store needs its own file (e.g. .sqlite), "
                         f"not a name with the {p.suffix} suffix of a report this command writes")
    return p


@contextmanager
def writing(path: str | os.PathLike[str]) -> Iterator[None]:
    """Re-raise an ``OSError`` raised while writing ``path`` (a full disk: ``[Errno 28]``)
    with ``path`` in it when it lacks one.

    >>> with writing("/tmp/x.json"):
    ...     raise OSError(28, "No space left on device")
    Traceback (most recent call last):
    ...
    OSError: [Errno 28] No space left on device: '/tmp/x.json'
    """
    try:
        yield
    except OSError as exc:
        if exc.filename is not None or exc.errno is None:
            raise
        raise type(exc)(exc.errno, exc.strerror, str(path)) from exc
