"""The streams notebook runs through papermill in a tiny configuration and records its numbers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "stream_readapt.ipynb"


def test_notebook_has_one_parameters_cell_and_no_outputs():
    import nbformat

    nb = nbformat.read(NOTEBOOK, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and "mode = " in tagged[0].source and "scenario = " in tagged[0].source
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")
    imports = [line for c in nb.cells if c.cell_type == "code" for line in c.source.splitlines()
               if line.startswith(("import ", "from "))]
    assert any("autoopt_lab.streams" in line for line in imports)


@pytest.mark.notebook
def test_notebook_quick_run_writes_pngs_and_json(tmp_path):
    papermill = pytest.importorskip("papermill")
    out = tmp_path / "out.ipynb"
    papermill.execute_notebook(
        str(NOTEBOOK), str(out), kernel_name="python3", cwd=str(tmp_path),
        parameters={"scenario": "fmnist-contrast-inversion", "optimizers": "autosgd,sgd",
                    "steps_scale": 0.03, "out_dir": str(tmp_path)},
    )
    key = json.loads((tmp_path / "stream_readapt.json").read_text())
    assert key["scenario"] == "fmnist-contrast-inversion" and key["steps"] == 36
    assert set(key["per_optimizer"]) == {"autosgd", "sgd"}
    for name in ("autosgd", "sgd"):
        numbers = key["per_optimizer"][name]
        assert 0.0 <= numbers["prequential_error"] <= 1.0
        assert [s["name"] for s in numbers["shifts"]] == ["low-contrast", "inverted"]
    assert key["per_optimizer"]["autosgd"]["shifts"][0]["lr"]["pre"] > 0
    for png in key["png"]:
        assert (tmp_path / png).stat().st_size > 10_000


def test_notebook_is_generated_from_the_streams_cells_module():
    from autoopt_lab.notebooks import CELL_MODULES, stale

    assert "autoopt_lab.streams.notebooks" in CELL_MODULES
    assert "stream_readapt.ipynb" not in stale()
    import nbformat

    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert "resolve_mode(" in code and "0.25" not in code  # no copied quick-mode policy
