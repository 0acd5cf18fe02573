"""No code from files (issue 19): checkpoints are plain data, read with ``weights_only=True``;
a planted pickle runs nothing and is named in one line."""

from __future__ import annotations

import os
import random

import pytest
import torch
from cli_checks import tiny_scenario

from autoopt_lab.cli import main
from autoopt_lab.streams.checkpoint import CheckpointError, read_checkpoint
from autoopt_lab.streams.monitor import Monitor


class Planted:
    """Unpickling this writes a marker file (what a malicious checkpoint would do)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def plant(path, marker) -> None:
    torch.save({"version": 3, "identity": Planted(str(marker))}, path)


def test_a_planted_checkpoint_runs_nothing_and_is_named(tmp_path):
    marker = tmp_path / "pwned"
    bad = tmp_path / "run.ckpt"
    plant(bad, marker)
    before = bad.read_bytes()
    with pytest.raises(CheckpointError) as info:
        read_checkpoint(bad)
    assert str(bad) in str(info.value) and "nothing in it was run" in str(info.value)
    assert not marker.exists()
    assert bad.read_bytes() == before


def test_a_planted_checkpoint_in_out_runs_is_refused_by_the_cli(tmp_path, capsys, fmnist_train):
    sc = tmp_path / "p.toml"
    sc.write_text(tiny_scenario())
    out = tmp_path / "out"
    args = ["stream", str(sc), "--optimizer", "sgd:lr=0.05", "--out", str(out),
            "--checkpoint-every", "3", "--threads", "1"]
    assert main(args) == 0
    capsys.readouterr()
    for f in (out / "runs").glob("*.json"):
        f.unlink()
    ckpt = next(iter((out / "runs").glob("sgd*seed0.parquet"))).with_suffix(".ckpt")
    marker = tmp_path / "pwned"
    plant(ckpt, marker)
    assert main(args) == 3
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(ckpt) in err, err
    assert not marker.exists()


def test_the_monitor_saved_as_plain_data_continues_identically():
    from autoopt_lab.streams.checkpoint import monitor_state, restore_monitor

    rng = random.Random(0)
    steps = [(rng.random() * (1 + 3 * (i > 150)), [rng.randrange(3) for _ in range(4)],
              [rng.randrange(3) for _ in range(4)]) for i in range(300)]
    whole = Monitor(window=50, warmup=20, seed=3)
    half = Monitor(window=50, warmup=20, seed=3)
    records = []
    for loss, yt, yp in steps[:170]:
        whole.update(loss, yt, yp)
        records.append(half.update(loss, yt, yp))
    saved = torch.load(_roundtrip(monitor_state(half)), weights_only=True)
    resumed = Monitor(window=50, warmup=20, seed=3)
    restore_monitor(resumed, saved, records)
    for loss, yt, yp in steps[170:]:
        assert resumed.update(loss, yt, yp) == whole.update(loss, yt, yp)


def _roundtrip(obj):
    import io

    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return buf
