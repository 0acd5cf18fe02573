"""The scenario catalogue: the ``streams/`` folder of TOML files, one per scenario.

The folder is found, in order, at ``$AUTOOPT_STREAMS``, ``./streams`` (the current directory),
the copy an installed wheel ships as package data (``autoopt_lab/streams/scenarios/``, built
from the repository's ``streams/``) and ``<repository>/streams`` beside the package. A
scenario's catalogue name is its file stem.

>>> names = [name for name, _ in list_catalogue()]  # doctest: +SKIP
>>> find_scenario("fmnist-rotation-incremental").dataset  # doctest: +SKIP
'fashion-mnist'
"""

from __future__ import annotations

import os
from pathlib import Path

from .scenario import Scenario, load_scenario

__all__ = ["PACKAGED", "catalogue_dir", "find_scenario", "list_catalogue"]

#: Where an installed wheel has the catalogue (in a checkout: only a note, no scenario).
PACKAGED = Path(__file__).resolve().parent / "scenarios"


def catalogue_dir() -> Path:
    """The catalogue folder (raises ``FileNotFoundError`` naming the places tried)."""
    tried = []
    env = os.environ.get("AUTOOPT_STREAMS")
    candidates = ([Path(env)] if env else []) + [
        Path.cwd() / "streams",
        PACKAGED,
        Path(__file__).resolve().parents[2] / "streams",
    ]
    for c in candidates:
        tried.append(str(c))
        if c.is_dir() and any(c.glob("*.toml")):
            return c
    raise FileNotFoundError("no scenario catalogue (a folder of *.toml files) found; tried: "
                            + ", ".join(tried) + ". Set $AUTOOPT_STREAMS to the folder.")


def list_catalogue() -> list[tuple[str, Scenario]]:
    """Every scenario of the catalogue as ``(name, scenario)``, sorted by name."""
    return [(p.stem, load_scenario(p)) for p in sorted(catalogue_dir().glob("*.toml"))]


def find_scenario(name_or_path: str | os.PathLike[str]) -> Scenario:
    """A catalogue scenario by name, or a scenario file by path."""
    p = Path(name_or_path)
    if p.is_dir():
        inside = sorted(q.name for q in p.glob("*.toml"))[:5]
        hint = f" (it holds {', '.join(inside)}{', ...' if len(inside) == 5 else ''})" if inside else ""
        raise IsADirectoryError(f"scenario {p} is a directory, not a scenario .toml file{hint}")
    if p.suffix == ".toml" or p.exists():
        if not p.is_file():
            raise FileNotFoundError(f"scenario file {p} does not exist")
        return load_scenario(p)
    folder = catalogue_dir()
    f = folder / f"{name_or_path}.toml"
    if not f.is_file():
        names = ", ".join(sorted(q.stem for q in folder.glob("*.toml")))
        raise FileNotFoundError(f"no scenario named {str(name_or_path)!r} in {folder}; "
                                f"known: {names}")
    return load_scenario(f)
