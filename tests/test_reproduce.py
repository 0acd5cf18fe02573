"""The reproduction: plans, the claim table and its rules, the committed notebooks, and every
notebook executed by papermill (smoke mode by default; the real quick mode is marked slow;
the full mode's GPU path is marked gpu)."""

import json
from collections import Counter
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from autoopt_lab.data import sources
from autoopt_lab.experiments import ResultsStore
from autoopt_lab.experiments import claims as cl
from autoopt_lab.experiments import reproduce as rp
from autoopt_lab.experiments.notebooks import NOTEBOOK_CELLS
from autoopt_lab.experiments.variants import BASES, variants_for
from autoopt_lab.notebooks import build
from autoopt_lab.optim import registry

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
needs_fmnist = pytest.mark.skipif(
    not sources.DEBIAN_FASHION_MNIST_DIR.is_dir(), reason="apt-get install -y dataset-fashion-mnist"
)
VERDICTS = ("holds", "fails", "reproduced", "not reproduced", "not testable offline", "not run",
            "inconclusive")


def test_plans_have_the_papers_sizes_and_every_variant():
    full = rp.plan_all("all", "full", ["mnist"])
    by_opt = Counter(c.optimizer for c in full)
    # SGD: 324 settings x 10 seeds; Adam and AdaGrad at N = 128: 9 lrs x 10 seeds
    assert (by_opt["sgd"], by_opt["adam"], by_opt["adagrad"]) == (3240, 90, 90)
    autos = set(rp.figure_autos("sgd"))
    for base in BASES:
        for v in variants_for(base, peers="all")[1:]:
            # Figure 2-3's AutoSGD variants run at all 6 batch sizes, the rest at N = 128
            assert by_opt[v.optimizer] == (60 if v.optimizer in autos else 10), v
    peers = registry.names("peer", available=True)
    assert set(peers) <= set(by_opt)  # full mode: every tuning-free peer
    assert all(c.epochs == 10 and c.max_train_samples is None and c.engine in ("loop", "stacked")
               for c in full)
    assert {c.engine for c in full if c.optimizer == "sgd"} == {"stacked"}
    quick = rp.plan_all("all", "quick", ["mnist", "fashion-mnist"])
    assert all(c.epochs == 10 and (c.max_train_samples, c.max_test_samples) == (4000, 1000)
               for c in quick)
    assert {c.seed for c in quick} == {0, 1, 2}
    # quick: Figures 2-3 only on the first data set; one peer per family
    assert {c.dataset for c in quick if c.batch_size != 128} == {"mnist"}
    assert {c.optimizer for c in quick} & set(peers) == {
        v.optimizer for b in BASES for v in variants_for(b, peers="first") if v.role == "peer"
    }
    with pytest.raises(ValueError, match="allowed: fig2, fig3, fig4, table2, all"):
        rp.expand_targets(["fig5"])
    with pytest.raises(ValueError, match="allowed: full, quick, smoke"):
        rp.get_preset("medium")


def test_verdict_rules():
    assert cl.match_verdict(0.49, 0.0) == "holds"  # within the 0.5-point floor
    assert cl.match_verdict(0.9, 0.5) == "holds"  # within 2 pooled std
    assert cl.match_verdict(1.1, 0.5) == "fails"
    assert cl.match_verdict(-3.0, 0.1) == "holds"  # better than tuned
    assert cl.match_verdict(-3.0, 0.1, "1/3 diverged") == "fails (1/3 diverged)"
    assert set(cl.RULES) == {"matches", "grows", "gap"}
    assert cl.paper_gap_marks(["fashion-mnist"]) == {}  # reference marks: same data set only


def test_claim_rows_compare_gaps_like_with_like():
    from autoopt_lab.experiments.variants import paper_for, peers_for

    rows = []
    paper_name, peer_name = paper_for("sgd"), peers_for("sgd", "first")[0]
    for seed, (sgd, auto, peer) in enumerate([(2.0, 2.2, 5.0), (2.2, 2.3, 5.5), (2.1, 2.5, 6.0)]):
        for opt, err, lr, mom in (("sgd", sgd, 0.1, 0.9), ("sgd", sgd + 3, 0.01, 0.0),
                                  (paper_name, auto, None, None), (peer_name, peer, None, None)):
            rows.append({"dataset": "mnist", "optimizer": opt, "batch_size": 128, "lr": lr,
                         "momentum": mom, "seed": seed, "options": {},
                         "final_train_err_pct": err - 0.5, "final_test_err_pct": err,
                         "diverged": False, "at_chance": False, "nonfinite_skips": 0})
    from autoopt_lab.experiments import analysis

    table = analysis.table2(pd.DataFrame(rows))
    (row,) = cl._table2_rows(table, "mnist", "MNIST test data")
    assert row["claim"] == "AutoSGD matches tuned SGD" and row["kind"] == "matches"
    assert row["paper"].startswith("MNIST +0.01 pts")  # the paper's gap on its own data
    paper = row["variants"]["paper"]
    assert paper["gap"] == pytest.approx(2.3333 - 2.1, abs=1e-3) and paper["verdict"] == "holds"
    assert row["variants"]["peer"]["verdict"] == "fails" and row["verdict"] == "holds"
    tuned = table[(table["role"] == "tuned")].iloc[0]
    assert tuned["config_text"] == "lr 10^-1.0, momentum 0.9" and tuned["paper_test_mean"] == 1.21


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
    rc = main(["reproduce", "table2", "--quick", "--dataset", "cifar10", "--out",
               str(tmp_path / "o"), "--data-root", str(tmp_path / "empty")])
    assert rc == 3
    err = capsys.readouterr().err
    assert "cifar10" in err and "Sources tried" in err and "download=True" in err
    assert not (tmp_path / "o" / "results.sqlite").exists()


def _check_summary(out: Path, mode: str, seeds: list[int], datasets: list[str]):
    summary = json.loads((out / "summary.json").read_text())
    assert next(iter(summary)) == "claims"  # the claim table comes first
    assert summary["mode"] == mode and summary["is_paper_setting"] is False
    assert summary["sweep"]["failed"] == 0
    claims = summary["claims"]
    kinds = Counter((c["dataset"], c["kind"]) for c in claims)
    for ds in datasets:
        assert kinds[ds, "matches"] == 3 + (ds == datasets[0])  # Table 2 rows (+ Figs 3-4)
    assert kinds["mnist", "grows"] == (datasets[0] == "mnist")
    for c in claims:
        assert c["verdict"].split(" (")[0] in VERDICTS, c
        assert c["rule"] and c["paper"] and c["data"]
        for cell in c["variants"].values():
            assert cell["verdict"].split(" (")[0] in VERDICTS
    cifar = [c for c in claims if c["dataset"] == "cifar10"]
    assert cifar and cifar[0]["verdict"] == "not testable offline"
    data = {d["dataset"]: d for d in summary["data"]}
    assert set(data) == set(datasets)
    for ds in datasets:
        assert data[ds]["is_subset"] is True
        assert data[ds]["train_samples_used"] == summary["preset"]["max_train_samples"]
    cells = pd.DataFrame(summary["table2_cells"])
    assert set(cells["role"]) >= {"tuned", "paper", "default", "peer"}
    assert set(cells["base"]) == set(BASES)
    for _, c in cells.iterrows():
        assert 0.0 <= c["test_mean"] <= 100.0 and c["test_std"] >= 0.0
        assert list(c["seeds"]) == seeds
        if c["dataset"] != "mnist":
            assert pd.isna(c.get("paper_test_mean"))  # no paper value beside other data
    titles = summary["table2"]["titles"]
    assert all(f"{len(seeds)} seeds" in t and "epoch" in t and "train /" in t
               for t in titles.values())
    fig2 = summary["fig2"]["per_dataset"][datasets[0]]
    assert sorted({r["batch_size"] for r in fig2}) == summary["preset"]["fig2_batch_sizes"]
    for r in fig2:
        assert 0.0 < r["peak_lr"] <= 1.0 and 0.0 <= r["final_momentum"] <= 1.0
    fig34 = summary["fig3_fig4"]
    assert {r["batch_size"] for r in fig34["fig3"]["auto_vs_grid"]} == set(
        summary["preset"]["fig3_batch_sizes"]
    )
    assert {r["base"] for r in fig34["fig4"]["auto_vs_grid"]} == set(BASES)
    pngs = [f"fig2_{datasets[0]}.png", f"fig3_{datasets[0]}.png", "fig4.png", "table2.png",
            "claims.png"]
    for png in pngs:
        assert 10_000 < (out / png).stat().st_size, png
    assert (out / "claims.png").stat().st_size < 200_000
    for nb in ["fig2_lr_momentum.ipynb", "fig3_fig4_errors.ipynb", "table2_errors.ipynb"]:
        executed = nbformat.read(out / nb, as_version=4)
        assert any(c.get("outputs") for c in executed.cells if c.cell_type == "code")
    return summary


@needs_fmnist
@pytest.mark.notebook
def test_every_notebook_runs_under_papermill_smoke(tmp_path):
    datasets = ["mnist", "fashion-mnist"]
    summary = rp.reproduce("all", "smoke", tmp_path, datasets=datasets, workers=1, device="cpu",
                           progress=False)
    _check_summary(tmp_path, "smoke", [0, 1], datasets)
    planned = rp.plan_all("all", "smoke", datasets, device="cpu")
    assert summary["runs"] == len(planned)
    # the notebooks found every run in the store: nothing was run twice
    assert summary["run_times"]["n"] == len(planned)
    table2_runs = rp.plan("table2", "smoke", datasets, device="cpu")
    again = rp.ensure_runs(table2_runs, ResultsStore(tmp_path / "results.sqlite"))
    assert (again.skipped, again.done) == (len(table2_runs), 0)


@needs_fmnist
@pytest.mark.notebook
@pytest.mark.slow
def test_reproduce_all_quick(tmp_path):
    from autoopt_lab.cli import main

    args = ["reproduce", "all", "--quick", "--out", str(tmp_path), "--workers", "2",
            "--no-progress"]
    assert main(args) == 0
    summary = _check_summary(tmp_path, "quick", [0, 1, 2], ["mnist", "fashion-mnist"])
    cells = pd.DataFrame(summary["table2_cells"])
    tuned = cells[(cells["role"] == "tuned") & (cells["dataset"] == "mnist")]
    # on the real MNIST subset, 10 epochs of the best SGD setting beat chance (90%) by far
    assert tuned["test_mean"].max() < 10.0


@pytest.mark.gpu
@pytest.mark.notebook
def test_full_mode_on_a_gpu(tmp_path):
    """The full path on a GPU: one Table 2 cell's runs at full size (a few minutes)."""
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    configs = [c for c in rp.plan("table2", "full", ["fashion-mnist"], device="cuda")
               if c.seed == 0 and c.optimizer in ("sgd", rp.figure_autos("sgd")[0])][:10]
    report = rp.ensure_runs(configs, ResultsStore(tmp_path / "r.sqlite"), workers=1)
    assert (report.done, report.failed) == (len(configs), 0)
    runs = ResultsStore(tmp_path / "r.sqlite").runs()
    assert runs["device_used"].str.startswith("cuda").all()
    assert (runs["train_samples"] == 60000).all()
