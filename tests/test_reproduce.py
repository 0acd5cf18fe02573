"""The reproduction: plans, the committed notebooks, and every notebook executed by
papermill (smoke mode by default; the real quick mode is marked slow)."""

import json
from pathlib import Path

import nbformat
import pytest

from autoopt_lab.data import sources
from autoopt_lab.experiments import ResultsStore
from autoopt_lab.experiments import reproduce as rp
from autoopt_lab.experiments.notebooks import NOTEBOOK_CELLS
from autoopt_lab.notebooks import build

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
needs_fmnist = pytest.mark.skipif(
    not sources.DEBIAN_FASHION_MNIST_DIR.is_dir(), reason="apt-get install -y dataset-fashion-mnist"
)


def test_plans_have_the_papers_sizes():
    full = rp.plan_all("all", "full", ["mnist"])
    by_opt = {}
    for c in full:
        by_opt[c.optimizer] = by_opt.get(c.optimizer, 0) + 1
    # SGD: 324 settings x 10 seeds; Adam and AdaGrad at N=128: 9 lrs x 10 seeds;
    # AutoSGD at every batch size, the other Autos at N=128, 10 seeds each
    assert by_opt == {
        "sgd": 3240,
        "autosgd": 60,
        "adam": 90,
        "adagrad": 90,
        "autoadam": 10,
        "autoadagrad": 10,
    }
    assert all(c.epochs == 10 and c.max_train_samples is None for c in full)
    quick = rp.plan_all("all", "quick", ["fashion-mnist"])
    assert len(quick) == 75 and all(c.max_train_samples == 4096 for c in quick)
    with pytest.raises(ValueError, match="allowed: fig2, fig3, fig4, table2, all"):
        rp.expand_targets(["fig5"])
    with pytest.raises(ValueError, match="allowed: full, quick, smoke"):
        rp.get_preset("medium")


@pytest.mark.parametrize("name", sorted(NOTEBOOK_CELLS))
def test_committed_notebooks_are_thin_clean_and_current(name):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    assert all(
        not c.get("outputs") and not c.get("execution_count")
        for c in nb.cells
        if c.cell_type == "code"
    )
    for cell in nb.cells:
        for line in cell.source.splitlines():
            if line.startswith(("import ", "from ")):
                assert line.split()[1].split(".")[0] in {"autoopt_lab", "pathlib"}, line
    expected = build(NOTEBOOK_CELLS[name])
    assert [c.source for c in nb.cells] == [c.source for c in expected.cells], (
        "regenerate: python -m autoopt_lab.notebooks"
    )


def test_missing_data_fails_fast_with_the_fix(tmp_path, monkeypatch, capsys):
    from autoopt_lab.cli import main

    monkeypatch.setenv("AUTOOPT_OFFLINE", "1")
    rc = main(
        [
            "reproduce",
            "table2",
            "--quick",
            "--dataset",
            "cifar10",
            "--out",
            str(tmp_path / "o"),
            "--data-root",
            str(tmp_path / "empty"),
        ]
    )
    assert rc == 3
    err = capsys.readouterr().err
    assert "cifar10" in err and "Sources tried" in err and "download=True" in err
    assert not (tmp_path / "o" / "results.sqlite").exists()


def _check_summary(out: Path, mode: str, seeds: list[int]):
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mode"] == mode and summary["is_paper_setting"] is False
    assert summary["sweep"]["failed"] == 0
    data = summary["data"][0]
    assert data["source"] == "debian:dataset-fashion-mnist" and data["is_subset"] is True
    assert data["train_samples_used"] == summary["preset"]["max_train_samples"]
    cells = {c["optimizer"]: c for c in summary["table2_cells"]}
    assert set(cells) == {"sgd", "autosgd", "adam", "autoadam", "adagrad", "autoadagrad"}
    for opt, c in cells.items():
        assert c["dataset"] == "fashion-mnist" and c["seeds"] == seeds
        assert 0.0 <= c["test_mean"] <= 100.0 and 0.0 <= c["train_mean"] <= 100.0
        assert c["test_std"] >= 0.0 and c["paper_reference"] == "mnist"
        assert c["diff_test"] == pytest.approx(c["test_mean"] - c["paper_test_mean"])
        assert (c["config"] == "AutoOpt") == opt.startswith("auto")
    assert cells["sgd"]["paper_test_mean"] == 1.21 and cells["autosgd"]["paper_train_mean"] == 1.10
    sizes = summary["preset"]["fig2_batch_sizes"]
    fig2 = summary["fig2"]["per_dataset"]["fashion-mnist"]
    assert [r["batch_size"] for r in fig2] == sizes
    for r in fig2:
        assert 0.0 < r["peak_lr"] <= 1.0 and 0.0 <= r["final_momentum"] <= 1.0
    fig34 = summary["fig3_fig4"]
    assert {r["batch_size"] for r in fig34["fig3"]["auto_vs_grid"]} == set(
        summary["preset"]["fig3_batch_sizes"]
    )
    assert {r["optimizer"] for r in fig34["fig4"]["auto_vs_grid"]} == {"sgd", "adam", "adagrad"}
    for png in ["fig2_fashion-mnist.png", "fig3_fashion-mnist.png", "fig4.png", "table2.png"]:
        assert (out / png).stat().st_size > 10_000, png
    for nb in ["fig2_lr_momentum.ipynb", "fig3_fig4_errors.ipynb", "table2_errors.ipynb"]:
        executed = nbformat.read(out / nb, as_version=4)
        assert any(c.get("outputs") for c in executed.cells if c.cell_type == "code")
    return summary


@needs_fmnist
@pytest.mark.notebook
def test_every_notebook_runs_under_papermill_smoke(tmp_path):
    summary = rp.reproduce("all", "smoke", tmp_path, workers=1, device="cpu", progress=False)
    _check_summary(tmp_path, "smoke", [0, 1])
    assert summary["runs"] == 17
    # the notebooks found every run in the store: nothing was run twice
    assert summary["run_times"]["n"] == 17
    table2_runs = rp.plan("table2", "smoke", device="cpu")
    again = rp.ensure_runs(table2_runs, ResultsStore(tmp_path / "results.sqlite"))
    assert (again.skipped, again.done) == (14, 0)


@needs_fmnist
@pytest.mark.notebook
@pytest.mark.slow
def test_reproduce_all_quick(tmp_path):
    from autoopt_lab.cli import main

    assert (
        main(
            [
                "reproduce",
                "all",
                "--quick",
                "--out",
                str(tmp_path),
                "--workers",
                "2",
                "--no-progress",
            ]
        )
        == 0
    )
    summary = _check_summary(tmp_path, "quick", [0, 1, 2])
    assert summary["runs"] == 75
    # on real Fashion-MNIST, even three short epochs beat chance (90%) by far
    assert summary["table2_cells"][0]["test_mean"] < 40.0
