"""What the CLI fault tests share: a tiny training command, a tiny scenario, and the check
that an error is one line on stderr (no traceback)."""

from __future__ import annotations


def train_args(*extra: str) -> list[str]:
    """``autoopt-lab train`` on 64 MNIST images, one epoch, plus ``extra``."""
    return ["train", "--dataset", "mnist", "--optimizer", "sgd", "--lr", "0.1", "--epochs", "1",
            "--max-train-samples", "64", "--max-test-samples", "32", "--no-progress", *extra]


def tiny_scenario(
    steps: int = 4, dataset: str = "fashion-mnist", model: str = "mnist_cnn",
    shift: str = '{kind="inversion"}',
) -> str:
    """A two-segment scenario file's text (the second segment shifted)."""
    return (
        f'name="p"\ndataset="{dataset}"\nmodel="{model}"\nseed=0\nbatch_size=16\n'
        f'[[segments]]\nname="a"\nsteps={steps}\n'
        f'[[segments]]\nname="b"\nsteps={steps}\nshifts=[{shift}]\n'
    )


def one_line(capsys, command: str = "train") -> str:
    """The single stderr line of a refused command (asserted: one line, no traceback)."""
    out = capsys.readouterr()
    lines = out.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"autoopt-lab {command}: "), out.err
    assert "Traceback" not in out.err
    return lines[0]
