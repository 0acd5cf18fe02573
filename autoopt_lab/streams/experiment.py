"""Run several optimizers on one scenario over several seeds; write traces, summary, figures.

``run_scenario`` is what ``autoopt-lab stream`` and the notebook call. For every seed
(stream order, model initialisation and shift draws follow it) and every optimizer entry
(a registry name or spec string): a tuned optimizer given without ``lr`` is first tuned on
that seed's first segment (:mod:`.baselines`); then it runs the whole stream. Outputs in
``out`` (claimed first: :mod:`.outdir` refuses a folder holding another run's results):

* ``runs/<optimizer>-seed<s>.{json,parquet}`` per run (reused by a rerun of the same call),
  and ``.ckpt`` with ``checkpoint_every`` (a rerun resumes; another configuration is refused);
* ``trace.parquet`` — every run's steps (long format, columns ``optimizer`` and ``seed``);
* ``summary.json`` — per optimizer: mean and 95% interval over seeds of the prequential
  error, per-shift recovery time and detection delay, health flags, tuned options, and each
  seed's own report (:mod:`.aggregate`);
* ``<optimizer>.png`` per optimizer and ``comparison.png`` (bands over seeds).

>>> trace, summary = run_scenario(find_scenario("fmnist-batch-size").scaled(0.1),
...                               "autosgd,sgd", seeds=[0, 1], out="results/demo")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from autoopt_lab.devices import resolve_device
from autoopt_lab.experiments.outputs import writing
from autoopt_lab.optim import registry

from .aggregate import aggregate_seeds
from .baselines import Cache, JsonCache, tune_baseline, tuning_grid
from .checks import DEFAULT_MAX_STEPS, check_size
from .identity import canonical, data_fingerprint, differences, library_version, scenario_hash
from .outdir import atomic_write_text, claim_output, record_files, release_output
from .plot import plot_comparison, plot_run
from .run import StreamRun
from .scenario import Scenario
from .selection import Entry, apply_shared_options, entry_key, file_slug, parse_optimizers

__all__ = ["needs_tuning", "parse_optimizers", "run_one", "run_scenario"]

logger = logging.getLogger(__name__)


def needs_tuning(name: str, options: Mapping[str, Any]) -> bool:
    """True for a tuned optimizer whose required options (``lr``) were not given."""
    spec = registry.get(name)
    return spec.family == "tuned" and any(options.get(k) is None for k in spec.required)


def _with(stem: Path, ext: str) -> Path:
    """``stem`` + ``ext`` (stems may contain dots, so not ``Path.with_suffix``)."""
    return stem.with_name(stem.name + ext)


def _json(obj: Any) -> str:
    return json.dumps(canonical(obj), indent=1)


def run_one(scenario: Scenario, name: str, options: dict[str, Any], *, data: Any,
            device: torch.device, files: Path | None = None,
            checkpoint_every: int | None = None, fresh: bool = False, progress: bool = True,
            max_steps: int = DEFAULT_MAX_STEPS, max_batch: int | None = None,
            ) -> tuple[pd.DataFrame, dict[str, Any]]:
    """One run (``files`` = path stem for its results, reused when they match)."""
    run = StreamRun(scenario, name, hparams=options, device=device, data=data,
                    max_steps=max_steps, max_batch=max_batch)
    try:
        done = _with(files, ".json") if files is not None else None
        if done is not None and done.is_file():
            saved = json.loads(done.read_text())
            diffs = differences(saved.get("identity", {}), run.identity)
            if not diffs and _with(files, ".parquet").is_file():
                logger.info("%s/%s seed %d: finished before, reused", scenario.name, run.label,
                            scenario.seed)
                return pd.read_parquet(_with(files, ".parquet")), saved["summary"]
            if diffs and not fresh:
                from .outdir import OutputExistsError

                raise OutputExistsError(f"{done} holds another run ({'; '.join(diffs)}); "
                                        "pass --fresh or write to another --out")
        ckpt = (_with(files, ".ckpt") if files is not None and checkpoint_every else None)
        if ckpt is not None:
            run.resume(ckpt, fresh=fresh)
        while not run.done:
            run.run(checkpoint_every or run.total_steps, progress=progress)
            if ckpt is not None:
                run.save_checkpoint(ckpt)
        trace, summary = run.trace(), run.summary()
    finally:
        run.close()
    if files is not None:
        with writing(_with(files, ".parquet")):
            trace.to_parquet(_with(files, ".parquet"), index=False)
        atomic_write_text(_with(files, ".json"), _json({"identity": run.identity,
                                                         "summary": summary}))
        if ckpt is not None:
            ckpt.unlink(missing_ok=True)
    return trace, summary


def run_scenario(scenario: Scenario, optimizers: str | Sequence[str | Entry], *,
                 out: str | Path | None = None, device: torch.device | str | None = None,
                 data: tuple[torch.Tensor, torch.Tensor, Any] | None = None,
                 seeds: Sequence[int] | None = None, grid: str = "full",
                 tuning_cache: str | Path | Cache | None = None,
                 baseline_hparams: Mapping[str, Mapping[str, float]] | None = None,
                 auto_hparams: str | Mapping[str, Any] | None = None,
                 checkpoint_every: int | None = None, fresh: bool = False,
                 progress: bool = True, max_steps: int = DEFAULT_MAX_STEPS,
                 max_batch: int | None = None,
                 check_only: bool = False) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Run ``optimizers`` on ``scenario`` for each seed; returns ``(trace, summary)`` and writes
    them to ``out``.

    ``optimizers`` is a spec list (``"autosgd,autoadam:eps=1e-3,sgd"``) or a list of spec
    strings / ``(name, options)``. ``seeds`` default to the scenario's own. Tuned optimizers
    without ``lr`` use ``baseline_hparams[name]`` when given, else are tuned on each seed's
    first segment with ``grid``. ``auto_hparams`` go to the Auto optimizers that take each
    key (see :func:`~autoopt_lab.streams.selection.apply_shared_options`). With
    ``checkpoint_every`` (>= 1) each run checkpoints that often and a rerun resumes.
    ``fresh`` replaces results of another configuration found in ``out``. ``check_only``
    validates everything and claims ``out``, then returns ``(empty frame, {})`` without running
    (the CLI checks every scenario's folder before it runs the first).
    """
    entries = apply_shared_options(parse_optimizers(optimizers), auto_hparams or {})
    if checkpoint_every is not None and checkpoint_every < 1:
        raise ValueError(f"checkpoint_every must be >= 1, got {checkpoint_every}")
    seeds = [scenario.seed] if seeds is None else sorted({int(s) for s in seeds})
    if not seeds:
        raise ValueError("no seeds given")
    dev = resolve_device(device)
    check_size(scenario, max_steps=max_steps, max_batch=max_batch)
    for name, _ in entries:
        registry.get(name).require_available()
    if data is None:
        from autoopt_lab.data import load_arrays

        data = load_arrays(scenario.dataset, train=True)
    check_size(scenario, max_steps=max_steps, data_size=int(data[0].shape[0]),
               max_batch=max_batch)
    keys = [entry_key(n, o) for n, o in entries]
    check_entries(entries)  # a bad value is refused before the folder is claimed
    outp = Path(out) if out is not None else None
    runs_dir = None
    if outp is not None:
        claim_output(outp, {
            "library": library_version(), "scenario": scenario_hash(scenario.reseeded(0)),
            "steps_scale": scenario.scale, "seeds": seeds, "optimizers": keys,
            "grid": grid, "baseline_hparams": baseline_hparams or {},
            "data": data_fingerprint(data[0], data[1]), "device": dev.type,
        }, fresh=fresh)
        runs_dir = outp / "runs"
        runs_dir.mkdir(exist_ok=True)
    if check_only:  # the folder stays locked for the run that follows in this process
        return pd.DataFrame(), {}
    try:
        return _run_all(scenario, entries, keys, seeds, outp, runs_dir, data, dev, grid,
                        tuning_cache, baseline_hparams, checkpoint_every, fresh, progress,
                        max_steps, max_batch)
    finally:
        if outp is not None:
            release_output(outp)


def check_entries(entries: Sequence[Entry]) -> None:
    """Build every optimizer once on a tiny module, so that a bad option value (``lr=-1``,
    ``ewma=5``) is one ``ValueError`` naming the optimizer before anything is written."""
    probe = torch.nn.Linear(2, 2)
    for name, opts in entries:
        options = dict(opts)
        spec = registry.get(name)
        if needs_tuning(name, options):
            options.update({k: 0.01 for k in spec.required if options.get(k) is None})
        try:
            registry.build(name, probe, **options).close()
        except (ValueError, TypeError) as exc:
            raise ValueError(f"optimizer {entry_key(name, opts)!r}: {exc}") from None


def _run_all(scenario, entries, keys, seeds, outp, runs_dir, data, dev, grid, tuning_cache,
             baseline_hparams, checkpoint_every, fresh, progress, max_steps, max_batch):
    cache = JsonCache(tuning_cache) if isinstance(tuning_cache, str | Path) else tuning_cache
    summary: dict[str, Any] = {
        "scenario": scenario.name, "source": scenario.source,
        "description": scenario.description, "total_steps": scenario.total_steps,
        "steps_scale": scenario.scale, "seeds": seeds,
        "data": getattr(data[2], "to_dict", lambda: {})(), "optimizers": {},
    }
    traces: list[pd.DataFrame] = []
    per_key: dict[str, dict[int, dict[str, Any]]] = {k: {} for k in keys}
    tuned: dict[str, dict[str, Any]] = {k: {} for k in keys}
    for seed in seeds:
        sc = scenario.reseeded(seed)
        for key, (name, opts) in zip(keys, entries, strict=True):
            options = dict(opts)
            if needs_tuning(name, options):
                if baseline_hparams and name in baseline_hparams:
                    options.update(baseline_hparams[name])
                else:
                    res = tune_baseline(sc, name, grid=tuning_grid(name, grid, options),
                                        data=data, device=dev, cache=cache, progress=progress)
                    options.update({**res["best"], **opts})
                    tuned[key][str(seed)] = res
            files = runs_dir / f"{file_slug(key)}-seed{seed}" if runs_dir is not None else None
            trace, s = run_one(sc, name, options, data=data, device=dev, files=files,
                               checkpoint_every=checkpoint_every, fresh=fresh,
                               progress=progress, max_steps=max_steps, max_batch=max_batch)
            trace["optimizer"] = key
            trace.insert(1, "seed", seed)
            traces.append(trace)
            per_key[key][seed] = s
            logger.info("%s seed %d %s: prequential error %s, %s", scenario.name, seed, key,
                        s["prequential_error"], s["health"]["status"])
    for key, (name, _) in zip(keys, entries, strict=True):
        spec = registry.get(name)
        first = per_key[key][seeds[0]]
        entry = {"optimizer": name, "label": first["label"], "family": spec.family,
                 "hparams": first["hparams"], **aggregate_seeds(per_key[key]),
                 "runs": {str(s): r for s, r in per_key[key].items()}}
        if tuned[key]:
            entry["tuning"] = tuned[key]
            entry["hparams_by_seed"] = {s: r["best"] for s, r in tuned[key].items()}
        summary["optimizers"][key] = entry
    full = pd.concat(traces, ignore_index=True)
    if outp is not None:
        with writing(outp / "trace.parquet"):
            full.to_parquet(outp / "trace.parquet", index=False)
        atomic_write_text(outp / "summary.json", _json(summary))
        pngs = []
        for key in keys:
            png = f"{file_slug(key)}.png"
            one = full[(full["optimizer"] == key) & (full["seed"] == seeds[0])]
            plot_run(one, scenario.reseeded(seeds[0]), path=outp / png,
                     health=per_key[key][seeds[0]]["health"])
            pngs.append(png)
        plot_comparison(full, scenario, path=outp / "comparison.png", summary=summary)
        record_files(outp, pngs)
    return full, summary
