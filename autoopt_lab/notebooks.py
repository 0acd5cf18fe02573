"""The one way notebooks are made: every notebook in ``notebooks/`` is built from cells in code.

Each sub-package that owns a notebook keeps its cells in a module listed in
:data:`CELL_MODULES`; that module calls :func:`register_notebook` with the file name and the
cells, ``(kind, source)`` pairs where kind is ``"markdown"``, ``"code"`` or ``"parameters"``
(a code cell tagged for papermill). ``python -m autoopt_lab.notebooks [DIR]`` (re)writes
them all without outputs; a test checks that the committed notebooks equal what is built.

>>> nb = build([("markdown", "# Title"), ("parameters", "x = 1"), ("code", "print(x)")])
>>> [c.cell_type for c in nb.cells], nb.cells[1].metadata["tags"]
(['markdown', 'code', 'code'], ['parameters'])
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from pathlib import Path

import nbformat

Cells = list[tuple[str, str]]

#: Modules that register notebooks (imported on demand).
CELL_MODULES: tuple[str, ...] = (
    "autoopt_lab.experiments.notebooks",
    "autoopt_lab.workbench.cells",
    "autoopt_lab.streams.notebooks",
    "autoopt_lab.arena.notebook",
)

_NOTEBOOKS: dict[str, Callable[[], Cells]] = {}


def register_notebook(filename: str, cells: Cells | Callable[[], Cells]) -> None:
    """Declare ``notebooks/<filename>`` and its cells (a list, or a function returning one)."""
    if not filename.endswith(".ipynb"):
        raise ValueError(f"notebook file names end in .ipynb, got {filename!r}")
    _NOTEBOOKS[filename] = cells if callable(cells) else (lambda c=cells: c)


def notebook_cells() -> dict[str, Cells]:
    """``{file name: cells}`` of every registered notebook."""
    for module in CELL_MODULES:
        importlib.import_module(module)
    return {name: fn() for name, fn in sorted(_NOTEBOOKS.items())}


def build(cells: Cells) -> nbformat.NotebookNode:
    """A notebook without outputs from ``(kind, source)`` pairs."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    for i, (kind, source) in enumerate(cells):
        if kind == "markdown":
            cell = nbformat.v4.new_markdown_cell(source)
        elif kind in ("code", "parameters"):
            cell = nbformat.v4.new_code_cell(source)
            if kind == "parameters":
                cell.metadata["tags"] = ["parameters"]
        else:
            raise ValueError(f"cell kind must be markdown, code or parameters, got {kind!r}")
        cell["id"] = f"cell-{i}"
        nb.cells.append(cell)
    return nb


def notebook_dir() -> Path:
    """The repository's ``notebooks/`` folder (next to the package in a source checkout)."""
    return Path(__file__).resolve().parents[1] / "notebooks"


def write_all(target: Path | None = None) -> list[Path]:
    """Write every registered notebook into ``target`` (default :func:`notebook_dir`)."""
    target = Path(target) if target is not None else notebook_dir()
    target.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, cells in notebook_cells().items():
        path = target / name
        nbformat.write(build(cells), path)
        paths.append(path)
    return paths


def stale(target: Path | None = None) -> list[str]:
    """Names of committed notebooks that differ from what the code builds (or are missing)."""
    target = Path(target) if target is not None else notebook_dir()
    out = []
    for name, cells in notebook_cells().items():
        path = target / name
        if not path.exists():
            out.append(name)
            continue
        have = nbformat.read(path, as_version=4)
        want = build(cells)
        if [(c.cell_type, c.source) for c in have.cells] != [
            (c.cell_type, c.source) for c in want.cells
        ]:
            out.append(name)
    return out


if __name__ == "__main__":  # pragma: no cover
    # run as a script, this file is __main__: register into the importable module instead
    from autoopt_lab import notebooks as _module

    dest = Path(sys.argv[1]) if len(sys.argv) > 1 else None
    for p in _module.write_all(dest):
        sys.stdout.write(f"wrote {p}\n")
