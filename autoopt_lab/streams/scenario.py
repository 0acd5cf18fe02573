"""Scenario files: the TOML schema, loading and validation.

A scenario is data, not code: one TOML file per scenario in the ``streams/`` catalogue at the
repository root (format documented in ``streams/README.md``). Loading validates every field and
raises :class:`ScenarioError` naming the file, the field and what is allowed.

Example:

>>> text = '''
... name = "demo"
... dataset = "fashion-mnist"
... model = "mnist_cnn"
... seed = 0
... batch_size = 32
... [[segments]]
... name = "clean"
... steps = 100
... [[segments]]
... name = "rotated"
... steps = 100
... transition = { kind = "gradual", width = 40 }
... shifts = [{ kind = "rotation", degrees = 90 }]
... '''
>>> sc = parse_scenario(text, source="demo.toml")
>>> [s.name for s in sc.segments], sc.segments[1].transition.kind, sc.total_steps
(['clean', 'rotated'], 'gradual', 200)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import tomllib

__all__ = [
    "DATASETS",
    "SHIFT_KINDS",
    "SHIFT_KINDS_ALL",
    "TRANSITION_KINDS",
    "MetricsConfig",
    "Scenario",
    "ScenarioError",
    "Segment",
    "Shift",
    "Transition",
    "load_scenario",
    "parse_scenario",
]

#: Base data sets a scenario may name, with their number of classes.
DATASETS: dict[str, int] = {"mnist": 10, "fashion-mnist": 10, "cifar10": 10}

#: Shift kinds and, for each, its parameters: name -> (type, default or None if required).
SHIFT_KINDS: dict[str, dict[str, tuple[type, Any]]] = {
    "permutation": {"seed": (int, 0)},
    "rotation": {"degrees": (float, None)},
    "noise": {"std": (float, None)},
    "blur": {"sigma": (float, None)},
    "contrast": {"factor": (float, None)},
    "inversion": {"amount": (float, 1.0)},
    "prior": {"proportions": (list, None)},
    "concept": {"mapping": (list, None)},
    "class_incremental": {"classes": (list, None)},
}

#: Every shift kind a catalogue can exercise: the table kinds plus a batch-size change.
SHIFT_KINDS_ALL = frozenset(SHIFT_KINDS) | {"batch_size"}

TRANSITION_KINDS = ("sudden", "gradual", "incremental", "recurring")

#: The largest seed a file may give (run seeds and strides must still fit a torch seed).
MAX_SEED = 2**32 - 1

_TOP_KEYS = {
    "name", "description", "dataset", "model", "seed", "batch_size", "segments", "metrics",
}
_SEGMENT_KEYS = {"name", "steps", "batch_size", "shifts", "transition"}
_TRANSITION_KEYS = {"kind", "width", "to"}
_METRIC_KEYS = {"window", "margin", "warmup"}


class ScenarioError(ValueError):
    """A scenario file is invalid. The message names the file, the field and what is allowed."""

    def __init__(self, source: str, fieldname: str, problem: str, allowed: str) -> None:
        self.source, self.field, self.problem, self.allowed = source, fieldname, problem, allowed
        super().__init__(f"{source}: field '{fieldname}': {problem} (allowed: {allowed})")


@dataclass(frozen=True)
class Shift:
    """One shift applied in a segment, e.g. ``Shift("rotation", {"degrees": 90.0})``."""

    kind: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Transition:
    """How the stream enters a segment.

    ``sudden``: switch at the first step. ``gradual``: each sample comes from the new segment
    with probability ``1 / (1 + exp(-4 (t - start - width/2) / width))`` (river's
    ``ConceptDriftStream`` sigmoid, centred ``width/2`` steps into the segment). ``incremental``:
    numeric shift parameters move linearly from the previous segment's values over ``width``
    steps. ``recurring``: return to the data of the earlier segment ``to``; sudden when ``width``
    is 0, else sigmoid-mixed like ``gradual``.
    """

    kind: str = "sudden"
    width: int = 0
    to: str | None = None


@dataclass(frozen=True)
class Segment:
    """A stretch of the stream with one data distribution."""

    name: str
    steps: int
    batch_size: int
    shifts: tuple[Shift, ...] = ()
    transition: Transition = Transition()


@dataclass(frozen=True)
class MetricsConfig:
    """Rolling-metric window (samples), recovery margin (accuracy) and detector warm-up (steps)."""

    window: int = 1000
    margin: float = 0.02
    warmup: int = 100


@dataclass(frozen=True)
class Scenario:
    """A validated scenario: data set, model, seed and ordered segments."""

    name: str
    dataset: str
    model: str
    seed: int
    segments: tuple[Segment, ...]
    description: str = ""
    metrics: MetricsConfig = MetricsConfig()
    source: str = "<string>"
    scale: float = 1.0  # the product of every :meth:`scaled` factor applied to the file


    @property
    def num_classes(self) -> int:
        return DATASETS[self.dataset]

    @property
    def total_steps(self) -> int:
        return sum(s.steps for s in self.segments)

    @property
    def boundaries(self) -> list[int]:
        """First step of every segment after the first."""
        out, t = [], 0
        for seg in self.segments[:-1]:
            t += seg.steps
            out.append(t)
        return out

    def scaled(self, factor: float) -> Scenario:
        """The same scenario with every length (steps, widths, warm-up) scaled by ``factor``.

        >>> sc = parse_scenario('name="a"\\ndataset="mnist"\\nmodel="m"\\nseed=1\\nbatch_size=8\\n'
        ...                     '[[segments]]\\nname="s"\\nsteps=100\\n')
        >>> sc.scaled(0.25).total_steps
        25
        """
        if not (isinstance(factor, int | float) and math.isfinite(factor) and factor > 0):
            raise ValueError(f"steps scale must be a finite number > 0, got {factor!r}")

        def sc(n: int) -> int:
            return max(1, round(n * factor)) if n > 0 else 0

        segs = []
        for seg in self.segments:
            steps = sc(seg.steps)
            width = min(sc(seg.transition.width), steps)
            segs.append(replace(seg, steps=steps, transition=replace(seg.transition, width=width)))
        metrics = replace(self.metrics, warmup=min(sc(self.metrics.warmup), segs[0].steps))
        return replace(self, segments=tuple(segs), metrics=metrics, scale=self.scale * factor)

    def reseeded(self, seed: int) -> Scenario:
        """The same scenario with another seed (stream order, model init, shift draws)."""
        return self if seed == self.seed else replace(self, seed=int(seed))


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario TOML file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(str(path), "<file>", f"cannot read: {exc}", "a readable TOML file") from exc
    except UnicodeDecodeError as exc:
        raise ScenarioError(str(path), "<file>", f"not UTF-8 text (byte {exc.object[exc.start]:#04x} "
                            f"at offset {exc.start})", "a UTF-8 TOML file") from None
    return parse_scenario(text, source=str(path))


def parse_scenario(text: str, *, source: str = "<string>") -> Scenario:
    """Parse and validate scenario TOML text; ``source`` names the file in errors."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(source, "<file>", f"not valid TOML: {exc}", "TOML syntax") from exc
    return _Validator(source).scenario(raw)


class _Validator:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, fieldname: str, problem: str, allowed: str) -> ScenarioError:
        return ScenarioError(self.source, fieldname, problem, allowed)

    def unknown_keys(self, raw: dict, allowed: set[str], where: str) -> None:
        extra = sorted(set(raw) - allowed)
        if extra:
            name = f"{where}.{extra[0]}" if where else extra[0]
            raise self.fail(name, "unknown field", ", ".join(sorted(allowed)))

    def get(self, raw: dict, key: str, typ: type, where: str, default: Any = None) -> Any:
        name = f"{where}.{key}" if where else key
        if key not in raw:
            if default is None:
                raise self.fail(name, "missing", f"a value of type {typ.__name__}")
            return default
        value = raw[key]
        if typ is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
            raise self.fail(name, f"{value!r} has type {type(value).__name__}", typ.__name__)
        if typ is float and not math.isfinite(value):
            raise self.fail(name, f"{value!r} is not finite", "a finite number")
        return value

    def positive_int(self, raw: dict, key: str, where: str, default: Any = None,
                     minimum: int = 1) -> int:
        value = self.get(raw, key, int, where, default)
        if value < minimum:
            what = "negative" if value < 0 else "too small"
            raise self.fail(f"{where}.{key}" if where else key, f"{value} is {what}",
                            f"an integer >= {minimum}")
        return value

    def seed(self, raw: dict, key: str, where: str, default: Any) -> int:
        value = self.get(raw, key, int, where, default)
        if not 0 <= value <= MAX_SEED:
            raise self.fail(f"{where}.{key}" if where else key, f"{value} is out of range",
                            f"an integer 0 .. {MAX_SEED}")
        return value

    def scenario(self, raw: dict) -> Scenario:
        self.unknown_keys(raw, _TOP_KEYS, "")
        name = self.get(raw, "name", str, "", Path(self.source).stem)
        dataset = self.get(raw, "dataset", str, "")
        if dataset not in DATASETS:
            raise self.fail("dataset", f"unknown data set {dataset!r}", ", ".join(DATASETS))
        model = self.get(raw, "model", str, "")
        seed = self.seed(raw, "seed", "", None)
        batch = self.positive_int(raw, "batch_size", "", minimum=2)
        k = DATASETS[dataset]
        segs_raw = raw.get("segments")
        if not isinstance(segs_raw, list) or not segs_raw:
            raise self.fail("segments", "missing or empty", "a non-empty array of [[segments]] tables")
        segments: list[Segment] = []
        for i, seg_raw in enumerate(segs_raw):
            segments.append(self.segment(seg_raw, i, batch, k, segments))
        metrics = self.metrics(raw.get("metrics", {}), segments[0].steps)
        return Scenario(name=name, dataset=dataset, model=model, seed=seed,
                        segments=tuple(segments), metrics=metrics,
                        description=self.get(raw, "description", str, "", ""),
                        source=self.source)

    def metrics(self, raw: Any, first_steps: int) -> MetricsConfig:
        if not isinstance(raw, dict):
            raise self.fail("metrics", "not a table", "[metrics] with window, margin, warmup")
        self.unknown_keys(raw, _METRIC_KEYS, "metrics")
        d = MetricsConfig()
        window = self.positive_int(raw, "window", "metrics", d.window)
        margin = self.get(raw, "margin", float, "metrics", d.margin)
        if not 0 <= margin < 1:
            raise self.fail("metrics.margin", f"{margin} out of range", "0 <= margin < 1")
        warmup = self.positive_int(raw, "warmup", "metrics", min(d.warmup, first_steps), minimum=0)
        if warmup > first_steps:
            raise self.fail("metrics.warmup", f"{warmup} is longer than the first segment "
                            f"({first_steps} steps)", f"0 .. {first_steps}")
        return MetricsConfig(window=window, margin=margin, warmup=warmup)

    def segment(self, raw: Any, i: int, batch: int, k: int, previous: list[Segment]) -> Segment:
        where = f"segments[{i}]"
        if not isinstance(raw, dict):
            raise self.fail(where, "not a table", "a [[segments]] table")
        self.unknown_keys(raw, _SEGMENT_KEYS, where)
        name = self.get(raw, "name", str, where, f"segment{i}")
        if any(p.name == name for p in previous):
            raise self.fail(f"{where}.name", f"duplicate segment name {name!r}", "unique names")
        steps = self.positive_int(raw, "steps", where)
        seg_batch = self.positive_int(raw, "batch_size", where, batch, minimum=2)
        shifts_raw = raw.get("shifts", [])
        if not isinstance(shifts_raw, list):
            raise self.fail(f"{where}.shifts", "not an array", "an array of shift tables")
        shifts = tuple(self.shift(s, f"{where}.shifts[{j}]", k) for j, s in enumerate(shifts_raw))
        kinds = [s.kind for s in shifts]
        dup = {x for x in kinds if kinds.count(x) > 1}
        if dup:
            raise self.fail(f"{where}.shifts", f"kind {sorted(dup)[0]!r} given twice",
                            "each kind at most once per segment")
        if "prior" in kinds and "class_incremental" in kinds:
            raise self.fail(f"{where}.shifts", "both 'prior' and 'class_incremental'",
                            "one of them: class_incremental is prior with equal proportions")
        transition = self.transition(raw.get("transition", {}), where, steps, i, previous)
        if transition.kind == "recurring" and shifts:
            raise self.fail(f"{where}.shifts", "a recurring segment reuses the data of "
                            f"'{transition.to}' and cannot add shifts", "no shifts")
        if transition.kind == "incremental":
            prev_kinds = {s.kind for s in _effective_shifts(previous[-1], previous)}
            for kind in sorted((prev_kinds | set(kinds)) & _NON_NUMERIC):
                if _params_of(kind, previous, shifts):
                    raise self.fail(f"{where}.transition.kind",
                                    f"incremental transition cannot move shift {kind!r}",
                                    "incremental only for rotation, noise, blur, contrast, "
                                    "inversion, prior; use sudden or gradual")
        return Segment(name=name, steps=steps, batch_size=seg_batch, shifts=shifts,
                       transition=transition)

    def transition(self, raw: Any, where: str, steps: int, i: int,
                   previous: list[Segment]) -> Transition:
        where = f"{where}.transition"
        if isinstance(raw, str):
            raw = {"kind": raw}
        if not isinstance(raw, dict):
            raise self.fail(where, "not a table", "{ kind = ..., width = ..., to = ... }")
        self.unknown_keys(raw, _TRANSITION_KEYS, where)
        kind = self.get(raw, "kind", str, where, "sudden")
        if kind not in TRANSITION_KINDS:
            raise self.fail(f"{where}.kind", f"unknown transition kind {kind!r}",
                            ", ".join(TRANSITION_KINDS))
        if i == 0 and kind != "sudden":
            raise self.fail(f"{where}.kind", f"the first segment cannot have a {kind!r} "
                            "transition", "sudden (or no transition) for segments[0]")
        need_width = kind in ("gradual", "incremental")
        width = self.positive_int(raw, "width", where, None if need_width else 0,
                                  minimum=1 if need_width else 0)
        if kind == "sudden" and width:
            raise self.fail(f"{where}.width", "a sudden transition has no width",
                            "0, or kind = gradual / incremental")
        if width > steps:
            raise self.fail(f"{where}.width", f"transition width {width} is wider than its "
                            f"segment ({steps} steps)", f"1 .. {steps}")
        to = raw.get("to")
        if kind == "recurring":
            names = [p.name for p in previous]
            if not isinstance(to, str) or to not in names:
                raise self.fail(f"{where}.to", f"{to!r} is not an earlier segment",
                                ", ".join(names) or "an earlier segment name")
            target = next(p for p in previous if p.name == to)
            if target.transition.kind == "recurring":
                to = target.transition.to
        elif to is not None:
            raise self.fail(f"{where}.to", "only a recurring transition names a target",
                            "kind = recurring")
        return Transition(kind=kind, width=width, to=to)

    def shift(self, raw: Any, where: str, k: int) -> Shift:
        if not isinstance(raw, dict):
            raise self.fail(where, "not a table", "{ kind = ..., <parameters> }")
        kind = raw.get("kind")
        if kind not in SHIFT_KINDS:
            raise self.fail(f"{where}.kind", f"unknown shift kind {kind!r}",
                            ", ".join(SHIFT_KINDS))
        schema = SHIFT_KINDS[kind]
        self.unknown_keys(raw, set(schema) | {"kind"}, where)
        params = {p: self.get(raw, p, typ, where, default) for p, (typ, default) in schema.items()}
        if kind == "permutation":
            params["seed"] = self.seed(raw, "seed", where, 0)
        f = f"{where}."
        if kind == "noise" and params["std"] < 0:
            raise self.fail(f + "std", f"{params['std']} is negative", "std >= 0")
        if kind == "blur" and not params["sigma"] > 0:
            raise self.fail(f + "sigma", f"{params['sigma']} is not positive", "sigma > 0")
        if kind == "contrast" and params["factor"] < 0:
            raise self.fail(f + "factor", f"{params['factor']} is negative", "factor >= 0")
        if kind == "inversion" and not 0 <= params["amount"] <= 1:
            raise self.fail(f + "amount", f"{params['amount']} out of range", "0 <= amount <= 1")
        if kind == "prior":
            props = params["proportions"]
            if len(props) != k or not all(isinstance(p, (int, float)) and p >= 0 for p in props):
                raise self.fail(f + "proportions", f"{props!r}",
                                f"{k} non-negative numbers, one per class")
            total = float(sum(props))
            if abs(total - 1.0) > 1e-6:
                raise self.fail(f + "proportions", f"proportions sum to {total:g}, not 1",
                                "non-negative numbers summing to 1")
            params["proportions"] = [float(p) for p in props]
        if kind == "concept":
            pairs = params["mapping"]
            ok = all(isinstance(p, list) and len(p) == 2 for p in pairs) and pairs
            if not ok:
                raise self.fail(f + "mapping", f"{pairs!r}", "a non-empty array of [from, to] pairs")
            for a, b in pairs:
                for c in (a, b):
                    if not isinstance(c, int) or not 0 <= c < k:
                        raise self.fail(f + "mapping", f"class {c!r} out of range",
                                        f"integer classes 0 .. {k - 1}")
            sources = [a for a, _ in pairs]
            if len(set(sources)) != len(sources):
                raise self.fail(f + "mapping", "a class is mapped twice", "each source once")
        if kind == "class_incremental":
            classes = params["classes"]
            if not classes:
                raise self.fail(f + "classes", "empty", f"a non-empty list of classes 0 .. {k - 1}")
            for c in classes:
                if not isinstance(c, int) or isinstance(c, bool) or not 0 <= c < k:
                    raise self.fail(f + "classes", f"class {c!r} out of range",
                                    f"integer classes 0 .. {k - 1}")
            if len(set(classes)) != len(classes):
                raise self.fail(f + "classes", "a class is listed twice", "distinct classes")
        return Shift(kind=kind, params=params)


_NON_NUMERIC = {"permutation", "concept", "class_incremental"}


def _effective_shifts(seg: Segment, previous: list[Segment]) -> tuple[Shift, ...]:
    if seg.transition.kind == "recurring":
        return next(p for p in previous if p.name == seg.transition.to).shifts
    return seg.shifts


def _params_of(kind: str, previous: list[Segment], shifts: tuple[Shift, ...]) -> bool:
    """True when shift ``kind`` differs between the previous segment and ``shifts``."""
    before = {s.kind: s.params for s in _effective_shifts(previous[-1], previous)}
    after = {s.kind: s.params for s in shifts}
    return before.get(kind) != after.get(kind)
