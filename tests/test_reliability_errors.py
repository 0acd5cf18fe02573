"""One line, not a traceback, for bad input and unusable data (issue 19); nothing runs first."""

from __future__ import annotations

import pytest
from cli_checks import one_line, tiny_scenario

from autoopt_lab.cli import main
from autoopt_lab.data import DataUnavailableError, load_arrays, sources

TRAIN = ["train", "--dataset", "mnist", "--optimizer", "sgd", "--epochs", "1",
         "--max-train-samples", "64", "--max-test-samples", "32", "--no-progress"]
SWEEP = ["--datasets", "mnist", "--optimizers", "sgd", "--batch-sizes", "32", "--momenta", "0",
         "--seeds", "0", "--max-train-samples", "64", "--max-test-samples", "32",
         "--no-progress", "--device", "cpu"]


def _scenario(tmp_path, dataset="fashion-mnist", model="mnist_cnn", shift='{kind="inversion"}'):
    p = tmp_path / "p.toml"
    p.write_text(tiny_scenario(dataset=dataset, model=model, shift=shift))
    return p


@pytest.mark.parametrize("device", ["mps", "xpu"])
def test_a_device_this_machine_lacks_is_one_line(capsys, no_training, device):
    assert main([*TRAIN, "--lr", "0.1", "--device", device]) == 2
    assert f"device '{device}' was requested" in one_line(capsys, "train")


def test_non_finite_learning_rates_are_one_line(tmp_path, capsys, no_training):
    assert main([*TRAIN, "--lr", "1e400"]) == 2
    assert "inf" in one_line(capsys, "train")
    assert main([*TRAIN, "--optimizer", "dog:lr=nan"]) == 2
    assert "nan" in one_line(capsys, "train")
    assert main(["sweep", "--store", str(tmp_path / "s.sqlite"), *SWEEP, "--lrs", "1e400"]) == 2
    assert "inf" in one_line(capsys, "sweep")


def test_reproduce_with_an_unknown_kernel_is_refused_before_any_run(tmp_path, capsys,
                                                                   no_training):
    assert main(["reproduce", "--out", str(tmp_path / "r"), "--kernel", "nosuch"]) == 2
    line = one_line(capsys, "reproduce")
    assert "no Jupyter kernel named 'nosuch'" in line and "python3" in line


def test_a_scenario_file_that_is_not_utf8_is_named(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b'name="\xff\xfe"\ndataset="mnist"\n')
    assert main(["stream", str(bad), "--validate"]) == 2
    line = one_line(capsys, "stream")
    assert str(bad) in line and "not UTF-8" in line


@pytest.mark.parametrize("where", ["permutation", "top"])
def test_a_seed_too_large_for_torch_is_refused_when_the_file_is_read(tmp_path, capsys, where):
    if where == "permutation":
        sc = _scenario(tmp_path, shift='{kind="permutation", seed=100000000000000000000000}')
    else:
        sc = _scenario(tmp_path)
        sc.write_text(sc.read_text().replace("seed=0", "seed=100000000000000000000000"))
    assert main(["stream", str(sc), "--validate"]) == 2
    line = one_line(capsys, "stream")
    assert "seed" in line and "out of range" in line and str(sc) in line


def test_validate_checks_that_the_data_is_here(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("AUTOOPT_OFFLINE", "1")
    monkeypatch.setenv("AUTOOPT_DATA", str(tmp_path / "nodata"))
    sc = _scenario(tmp_path, dataset="cifar10", model="cifar_lenet")
    assert main(["stream", str(sc), "--validate"]) == 3
    assert "'cifar10' is not available" in capsys.readouterr().err


def test_a_batch_larger_than_the_training_set_is_refused(tmp_path, capsys, no_training):
    args = [*TRAIN, "--lr", "0.1", "--max-train-samples", "16", "--batch-size", "100000"]
    assert main(args) == 2
    assert "batch size 100000 is larger than the 16 training samples" in one_line(capsys,
                                                                                   "train")
    sweep = ["sweep", "--store", str(tmp_path / "s.sqlite"), *SWEEP, "--lrs", "0.1"]
    sweep[sweep.index("32")] = "100"
    assert main(sweep) == 2
    assert "batch size 100 is larger than the 64" in one_line(capsys, "sweep")


def test_a_sweep_says_how_many_runs_diverged_and_which(tmp_path, capsys, monkeypatch):
    from autoopt_lab.experiments.sweep import SweepReport, pending_runs

    def sweep(configs, store, executor, **_):
        cfgs, _ = pending_runs(configs, store, executor)
        store.add_run(cfgs[0], {"diverged": True, "final_test_err_pct": 90.0})
        store.add_run(cfgs[1], {"diverged": False, "final_test_err_pct": 9.0})
        return SweepReport(2, 0, 2, 0, 1.0)

    monkeypatch.setattr("autoopt_lab.experiments.run_sweep", sweep)
    rc = main(["sweep", "--store", str(tmp_path / "s.sqlite"), *SWEEP, "--lrs", "10,0.01"])
    assert rc == 0
    out = capsys.readouterr()
    assert '"diverged": 1' in out.out
    assert "1 of 2 runs diverged" in out.err and "lr=10" in out.err


@pytest.fixture
def debian_copy(tmp_path, monkeypatch):
    """A copy of the Debian Fashion-MNIST folder the loader reads instead of the real one."""
    if not sources.DEBIAN_FASHION_MNIST_DIR.is_dir():
        pytest.skip("the Debian Fashion-MNIST package is not installed")
    copy = tmp_path / "debian"
    copy.mkdir()
    for f in sources.DEBIAN_FASHION_MNIST_DIR.iterdir():
        (copy / f.name).symlink_to(f)
    monkeypatch.setattr(sources, "DEBIAN_FASHION_MNIST_DIR", copy)
    monkeypatch.setenv("AUTOOPT_OFFLINE", "1")
    return copy


def test_a_truncated_packaged_file_is_named_with_a_reinstall_not_an_install(tmp_path,
                                                                          debian_copy):
    gz = debian_copy / "t10k-labels-idx1-ubyte.gz"
    data = gz.read_bytes()
    gz.unlink()
    gz.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataUnavailableError) as info:
        load_arrays("fashion-mnist", train=False, root=tmp_path / "root")
    text = str(info.value)
    assert f"{gz} is truncated or corrupt" in text and "--reinstall" in text


def test_a_truncated_unpacked_file_is_named_and_unpacked_again(tmp_path, debian_copy, caplog):
    root = tmp_path / "root"
    load_arrays("fashion-mnist", train=False, root=root)
    raw = root / "FashionMNIST" / "raw" / "t10k-labels-idx1-ubyte"
    whole = raw.read_bytes()
    raw.write_bytes(whole[:100])
    assert sources.idx_damage(raw).startswith(f"{raw} is truncated or corrupt")
    from autoopt_lab.data import loading

    loading.clear_cache()
    _, y, _ = load_arrays("fashion-mnist", train=False, root=root)
    assert len(y) == 10000 and raw.read_bytes() == whole
    assert f"{raw} is truncated or corrupt" in caplog.text


def test_a_truncated_mnist_file_under_the_root_is_named(tmp_path, caplog, monkeypatch):
    monkeypatch.setenv("AUTOOPT_OFFLINE", "1")
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    header = {"images": b"\0\0\x08\x03" + (60000).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2,
              "labels": b"\0\0\x08\x01" + (60000).to_bytes(4, "big")}
    for split in ("train", "t10k"):
        for kind, n in (("images", "idx3"), ("labels", "idx1")):
            (raw / f"{split}-{kind}-{n}-ubyte").write_bytes(header[kind] + b"\0" * 1000)
    damaged = raw / "train-images-idx3-ubyte"
    try:
        load_arrays("mnist", train=True, root=tmp_path)
    except DataUnavailableError as exc:  # no other source here: the fix is to delete it
        assert f"{damaged} is truncated or corrupt" in str(exc)
        assert "delete the damaged file" in str(exc)
    assert f"{damaged} is truncated or corrupt (1,016 bytes" in caplog.text


def test_reproduce_with_failed_runs_is_one_line_not_a_traceback(tmp_path, capsys, monkeypatch):
    from autoopt_lab.experiments.sweep import SweepReport

    monkeypatch.setattr("autoopt_lab.experiments.reproduce.ensure_runs",
                        lambda *a, **k: SweepReport(3, 0, 1, 2, 1.0))
    monkeypatch.setattr("autoopt_lab.experiments.reproduce.check_data", lambda *a, **k: None)
    out = tmp_path / "r"
    assert main(["reproduce", "--out", str(out), "--mode", "smoke", "--no-progress"]) == 1
    line = one_line(capsys, "reproduce")
    assert "2 runs failed" in line and str(out / "results.sqlite") in line
