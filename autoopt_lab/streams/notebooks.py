"""The cells of the streams notebooks, registered with :mod:`autoopt_lab.notebooks`.

* ``stream_readapt.ipynb`` — one scenario, several optimizers and seeds: do lr and momentum
  re-adapt after a shift?
* ``stream_leaderboard.ipynb`` — the Fashion-MNIST scenarios x optimizers x seeds from a
  results store, as one figure (also run by ``autoopt-lab leaderboard``).

Both are thin: every decision (quick/full sizes, which optimizers, what a run means) is a
package function. ``python -m autoopt_lab.notebooks`` rewrites them.
"""

from __future__ import annotations

from autoopt_lab.notebooks import register_notebook

READAPT = [
    ("markdown", """\
# Streams: do lr and momentum re-adapt after a distribution shift?

The paper's future work: online training on non-stationary data. A scenario from the
`streams/` catalogue replays a data set with injected shifts (format: `streams/README.md`,
background: `docs/streams.md`). Every optimizer sees the same batches, prequentially (each
batch is scored, then trained on), for every seed. The Auto optimizers set a learning rate and
a momentum per tensor at every step; the tuning-free peers (Prodigy, D-Adaptation,
Schedule-Free, DoG) adapt in their own way; the tuned baselines (SGD, Adam, AdaGrad) keep the
hyper-parameters tuned on the **first segment only**.

`mode` is a package policy (`autoopt_lab.streams.resolve_mode`): `"quick"` shortens every
segment to a quarter and uses the quick tuning grid; `"full"` runs the catalogue lengths with
the full grid. Figures are saved as PNG in `out_dir` and the key numbers in
`out_dir/stream_readapt.json`."""),
    ("parameters", """\
scenario = "fmnist-rotation-incremental"  # catalogue name (autoopt-lab stream --list) or .toml path
optimizers = "autosgd,autoadam-authors,prodigy,sf-sgd,sgd,adam"  # registry spec strings, or "all"
seeds = "0"  # e.g. "0-4": stream order, model init and shift draws follow the seed
mode = "quick"  # "quick": minutes on a CPU; "full": catalogue lengths and the full tuning grid
steps_scale = 0.0  # > 0 overrides the mode's length scale
out_dir = "."  # PNGs, trace.parquet, summary.json and stream_readapt.json go here
device = "auto"  # "auto" uses CUDA when present
threads = 1  # torch CPU threads"""),
    ("code", """\
import json
from pathlib import Path

import pandas as pd
import torch
from IPython.display import Image, display

from autoopt_lab.streams import find_scenario, parse_seeds, resolve_mode, run_scenario
from autoopt_lab.streams.selection import entry_key, file_slug, parse_optimizers
from autoopt_lab.streams.table import markdown_table, optimizer_rows, table_rows

torch.set_num_threads(threads)
out = Path(out_dir)
run_mode = resolve_mode(mode, steps_scale=steps_scale or None)
sc = find_scenario(scenario)
sc = sc.scaled(run_mode.steps_scale) if run_mode.steps_scale != 1.0 else sc
entries = parse_optimizers(optimizers)
seed_list = parse_seeds(seeds)
print(f"{sc.name} on {sc.dataset} ({sc.model}), {sc.total_steps} steps "
      f"(scale {run_mode.steps_scale}), seeds {seed_list}")
print(sc.description)
pd.DataFrame([{"segment": s.name, "steps": s.steps, "batch": s.batch_size,
               "transition": s.transition.kind, "width": s.transition.width,
               "shifts": ", ".join(f"{x.kind} {x.params}" for x in s.shifts) or (
                   f"back to {s.transition.to}" if s.transition.to else "none")}
              for s in sc.segments])"""),
    ("markdown", """\
## Run every optimizer on the same streams

Tuned baselines are tuned first, on each seed's first segment only. A folder that holds the
results of another configuration is refused; the same call resumes."""),
    ("code", """\
trace, summary = run_scenario(sc, entries, out=out, device=device, seeds=seed_list,
                              grid=run_mode.grid, progress=True)
pd.DataFrame(optimizer_rows(summary))[["optimizer", "family", "prequential_error", "ci",
                                       "rank", "separated_from_best", "median_recovery",
                                       "flags"]]"""),
    ("markdown", """\
## lr and momentum against the baselines

Top: rolling accuracy of every optimizer (mean over seeds, 95% band). Middle and bottom: the
tensor-mean lr and momentum every optimizer used. Grey bands are alternate segments, yellow
bands the transitions, dashed lines the shifts. Legend labels carry the prequential error and
any health flag (diverged, skipped steps, at chance)."""),
    ("code", 'display(Image(filename=str(out / "comparison.png")))'),
    ("markdown", "Per tensor, first seed, for each optimizer, with the drift detections marked:"),
    ("code", """\
for name, opts in entries:
    display(Image(filename=str(out / f"{file_slug(entry_key(name, opts))}.png")))"""),
    ("markdown", """\
## Per shift

Recovery: steps until the rolling accuracy is back within the margin of its pre-shift level,
averaged over the seeds that recovered (0 = it never dropped). A shift is not read (status
instead of a number) when the run diverged or skipped steps there, or the model was at chance
before it. Detection delay: steps from the shift to each detector's first detection."""),
    ("code", """\
rows = pd.DataFrame(table_rows(summary))
cols = ["shift", "transition", "optimizer", "recovery_steps", "recovery_ci", "status",
        "segment_error", "delay_ADWIN", "delay_PageHinkley", "delay_KSWIN",
        "lr_pre", "lr_post_min", "lr_post_max", "lr_end",
        "mom_pre", "mom_post_min", "mom_post_max", "mom_end"]
rows[cols]"""),
    ("markdown", "## Key numbers"),
    ("code", """\
key = {
    "notebook": "stream_readapt",
    "mode": run_mode.name,
    "scenario": sc.name,
    "steps": sc.total_steps,
    "steps_scale": run_mode.steps_scale,
    "seeds": seed_list,
    "optimizers": list(summary["optimizers"]),
    "data": summary["data"],
    "recovery_margin": sc.metrics.margin,
    "per_optimizer": {k: {"prequential_error": v["prequential_error"],
                          "prequential_error_ci": v["prequential_error_ci"],
                          "health": v["health"], "hparams": v["hparams"],
                          "harness_over_train": v["timing"]["harness_over_train"],
                          "shifts": [{"name": s["name"], "recovery_steps": s["recovery_steps"],
                                      "recovery_ci": s["recovery_ci"],
                                      "status_by_seed": s["status_by_seed"],
                                      "prequential_error": s["prequential_error"],
                                      "detection_delay": s["detection_delay"],
                                      "lr": s["lr"], "momentum": s["momentum"]}
                                     for s in v["shifts"]]}
                      for k, v in summary["optimizers"].items()},
    "png": ["comparison.png"] + [f"{file_slug(k)}.png" for k in summary["optimizers"]],
}
(out / "stream_readapt.json").write_text(json.dumps(key, indent=1, default=str))
print(markdown_table(table_rows(summary)))"""),
]

LEADERBOARD = [
    ("markdown", """\
# Stream leaderboard: AutoOpt against tuning-free peers and tuned baselines

On a stream nobody can replay the data to tune a learning rate. Every Fashion-MNIST scenario
of the `streams/` catalogue runs with every optimizer of the registry's families `auto`
(AutoOpt variants), `peer` (tuning-free optimizers at their published defaults) and `tuned`
(SGD, Adam, AdaGrad tuned on each seed's first segment), for every seed. Cells are kept in a
results store: a killed run redoes nothing it had finished.

`mode` is a package policy (`autoopt_lab.streams.leaderboard.LEADERBOARD_MODES`): `"quick"`
(every length x 0.15, one seed; about 10 minutes on a 2-core CPU) or `"full"` (catalogue
lengths, seeds 0-4). `autoopt-lab leaderboard` runs the cells, then this notebook."""),
    ("parameters", """\
mode = "quick"  # "quick" or "full"
store = ""  # SQLite results store; "" means <out_dir>/leaderboard.sqlite
out_dir = "."  # leaderboard.png, leaderboard.md and leaderboard.json go here
scenarios = ""  # comma list; "" means every Fashion-MNIST scenario of the catalogue
families = "auto,peer,tuned"  # registry families on the board
optimizers = ""  # registry spec strings to use instead of families; empty: by family
seeds = ""  # e.g. "0-4"; "" means the mode's
steps_scale = 0.0  # > 0 overrides the mode's length scale
run_missing = True  # run cells not yet in the store (False: only read)
device = "auto"  # "auto" uses CUDA when present
threads = 1  # torch CPU threads"""),
    ("code", """\
from pathlib import Path

import torch
from IPython.display import Image, display

from autoopt_lab.experiments.store import ResultsStore
from autoopt_lab.streams import leaderboard as lb

torch.set_num_threads(threads)
out = Path(out_dir)
out.mkdir(parents=True, exist_ok=True)
plan = lb.plan_leaderboard(
    mode, scenarios=[s for s in scenarios.split(",") if s.strip()] or None,
    families=[f.strip() for f in families.split(",") if f.strip()],
    optimizers=optimizers or None, seeds=seeds or None, steps_scale=steps_scale or None)
results = ResultsStore(store or out / "leaderboard.sqlite")
print(f"{len(plan.scenarios)} scenarios x {len(plan.optimizers)} optimizers x "
      f"{len(plan.seeds)} seeds, steps x {plan.steps_scale}, tuning grid {plan.grid}")
plan.optimizers"""),
    ("code", """\
report = lb.run_leaderboard(plan, results, device=device) if run_missing else {}
frame = lb.leaderboard_frame(results, plan)
print(report, f"{len(frame)} of {len(plan.cells())} cells in the store")"""),
    ("markdown", """\
## At a glance

Top: mean prequential error per scenario and optimizer (the row's best boxed). Bottom: median
recovery time after a shift, pooled over the scenario's shifts and seeds (a shift that never
recovered counts as infinitely slow; shifts of diverged or skipped-step runs, or after a
segment at chance, are not read). `!` marks cells where some seed diverged, skipped steps or
stayed at chance. Thick lines separate Auto variants, tuning-free peers and tuned baselines."""),
    ("code", """\
record = lb.write_outputs(plan, frame, out, report)
display(Image(filename=str(out / "leaderboard.png")))"""),
    ("markdown", """\
## With intervals

Mean over seeds [95% t-interval]; `>` where the scenario's best is separated from an
optimizer by a paired interval of the per-seed difference, `~` where it is not."""),
    ("code", "print(record['markdown'])"),
    ("markdown", """\
## The target, as measured

Per scenario: the best Auto optimizer against the best tuning-free peer (lower mean
prequential error), and the overall-best Auto and peer optimizers' median recovery."""),
    ("code", """\
goal = record["goal"]
print(f"best Auto beats best peer on {goal['auto_beats_peer_on']} of {goal['of']} scenarios; "
      f"median recovery: best Auto {goal.get('auto_median_recovery')}, "
      f"best peer {goal.get('peer_median_recovery')}")
goal["scenarios"]"""),
]

register_notebook("stream_readapt.ipynb", READAPT)
register_notebook("stream_leaderboard.ipynb", LEADERBOARD)
