"""How much the online learner's own thread count buys: the README's example, three ways, in one process.

* ``num_threads=None``: the learner leaves torch's thread count alone (as before issue 20);
* ``num_threads=1`` (the default): the learner sets one thread around its own work and
  restores the caller's count after each ``learn_one`` / ``predict_*`` (a save/restore per call);
* ``manual``: the caller sets ``torch.set_num_threads(1)`` once (no save/restore at all).

Rounds are interleaved; the best of ``--rounds`` is reported. The save/restore itself is also
timed alone (the learner's ``_threads()`` context entered and left 20,000 times), since the
end-to-end difference between the default and ``manual`` is within the rounds' spread.

    .venv/bin/python benchmarks/online_threads.py --rounds 3
"""

from __future__ import annotations

import argparse
import time

import torch
from river import datasets, evaluate, metrics, preprocessing

from autoopt_lab.online import TorchClassifier


def one_run(num_threads: int | None) -> tuple[float, float]:
    model = preprocessing.StandardScaler() | TorchClassifier(
        optimizer="autoadagrad-paper", seed=0, num_threads=num_threads)
    start = time.perf_counter()
    acc = evaluate.progressive_val_score(datasets.Phishing(), model, metrics.Accuracy()).get()
    return time.perf_counter() - start, acc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    threads = torch.get_num_threads()
    times: dict[str, list[float]] = {"num_threads=None": [], "num_threads=1": [], "manual": []}
    accuracy = {}
    for _ in range(args.rounds):
        for way in times:
            torch.set_num_threads(1 if way == "manual" else threads)
            seconds, accuracy[way] = one_run(1 if way == "num_threads=1" else None)
            times[way].append(seconds)
    torch.set_num_threads(threads)
    best = {way: min(v) for way, v in times.items()}
    print(f"torch threads outside the learner: {threads}; Phishing, 1,250 samples")
    for way, v in times.items():
        print(f"{way:17s} best {best[way]:6.2f} s  all {', '.join(f'{t:.2f}' for t in v)}  "
              f"accuracy {accuracy[way]:.4f}")
    print(f"speed-up of the default over num_threads=None: "
          f"{best['num_threads=None'] / best['num_threads=1']:.2f}x")
    print(f"save/restore cost (default vs manual): "
          f"{100 * (best['num_threads=1'] / best['manual'] - 1):+.1f}%")
    learner, calls = TorchClassifier(), 20_000
    start = time.perf_counter()
    for _ in range(calls):
        with learner._threads():
            pass
    each = (time.perf_counter() - start) / calls
    per_run = each * 2 * 1250  # one learn_one and one predict_proba_one per sample
    print(f"one save/set/restore alone: {each * 1e6:.2f} us; per Phishing run (at most 2,500): "
          f"{per_run * 1e3:.1f} ms = {100 * per_run / best['num_threads=1']:.2f}% of it")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
