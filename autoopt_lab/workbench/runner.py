"""The background training runner: one thread steps the sources; Stop sets an event.

Why a thread: in Jupyter, a cell that loops over training blocks the kernel's shell channel,
so a click on *Stop* (a comm message) waits in the queue until the loop ends. Running the
loop in a daemon thread leaves the kernel free to handle widget events; *Stop* sets a
:class:`threading.Event` that the loop checks between steps, so it stops within one step.

Live drawing is throttled: the ``on_update`` callback runs at most every ``min_interval``
seconds, and the interval grows so that drawing takes at most ``max_draw_fraction`` of the
wall time. The time spent in callbacks is measured (:attr:`BackgroundRunner.draw_seconds`).

>>> from autoopt_lab.workbench.sources import StepRecord
>>> class Counter:  # any object with total_steps, boundaries, done, step(), close()
...     total_steps, boundaries, t = 5, [], 0
...     done = property(lambda self: self.t >= self.total_steps)
...     def step(self):
...         self.t += 1
...         return StepRecord(step=self.t - 1, loss=1.0 / self.t, accuracy=0.5, rolling_accuracy=0.5)
...     def close(self): pass
>>> runner = BackgroundRunner({"toy": Counter()})
>>> runner.start(); runner.join(timeout=30)
True
>>> runner.state, len(runner.records["toy"])
('finished', 5)
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from autoopt_lab.workbench.sources import StepRecord, StepSource

log = logging.getLogger(__name__)

#: Runner states, in the order a run goes through them.
STATES = ("idle", "running", "stopped", "finished", "failed")


class BackgroundRunner:
    """Step one or more sources in lockstep in a background thread until done or stopped.

    ``sources`` maps a lane label (e.g. the optimizer) to a step source; several lanes on the
    same stream give a side-by-side comparison. ``on_update(runner)`` (the live figure) is
    called from the training thread, throttled to ``max_draw_fraction`` of the time, the first
    time after ``draw_estimate`` seconds' worth of budget; ``on_progress(runner)`` (cheap: a
    progress bar) every ``min_interval`` seconds in between; ``on_finish(runner)`` once at the end (also after Stop or an
    error) in place of a last ``on_update``, timed apart in :attr:`finish_seconds`.
    """

    def __init__(
        self,
        sources: dict[str, StepSource],
        *,
        on_update: Callable[[BackgroundRunner], None] | None = None,
        on_finish: Callable[[BackgroundRunner], None] | None = None,
        on_progress: Callable[[BackgroundRunner], None] | None = None,
        min_interval: float = 0.5,
        max_draw_fraction: float = 0.1,
        draw_estimate: float = 0.0,
    ) -> None:
        if not sources:
            raise ValueError("sources is empty; give at least one lane {label: StepSource}")
        if min_interval < 0:
            raise ValueError(f"min_interval={min_interval} is invalid; it must be >= 0 seconds")
        if not 0 < max_draw_fraction < 1:
            raise ValueError(f"max_draw_fraction={max_draw_fraction} is invalid; allowed: (0, 1)")
        self.sources = dict(sources)
        self.records: dict[str, list[StepRecord]] = {k: [] for k in self.sources}
        self.on_update = on_update
        self.on_finish = on_finish
        self.on_progress = on_progress
        self.draw_estimate = max(0.0, draw_estimate)
        self.min_interval = min_interval
        self.max_draw_fraction = max_draw_fraction
        self.state = "idle"
        self.error: BaseException | None = None
        self.draw_seconds = 0.0
        self.step_seconds = 0.0
        self.wall_seconds = 0.0
        self.finish_seconds = 0.0
        self.updates = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = 0.0
        self._stop_asked: float | None = None
        self._loop_ended: float | None = None

    @property
    def total_steps(self) -> int:
        """The planned length of the run (the shortest lane)."""
        return min(s.total_steps for s in self.sources.values())

    @property
    def steps_done(self) -> int:
        """Steps every lane has completed so far."""
        return min(len(r) for r in self.records.values())

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def elapsed(self) -> float:
        """Seconds since :meth:`start` (the whole run once it has ended)."""
        if self._thread is None:
            return 0.0
        return time.perf_counter() - self._t0 if self.running else self.wall_seconds

    @property
    def draw_fraction(self) -> float:
        """Share of the training loop's time spent in ``on_update`` (live drawing)."""
        busy = self.step_seconds + self.draw_seconds
        return self.draw_seconds / busy if busy > 0 else 0.0

    def start(self) -> None:
        """Start the training thread. A runner runs once; build a new one for a new run."""
        if self.state != "idle":
            raise RuntimeError(f"this runner is {self.state}; create a new runner for a new run")
        self.state = "running"
        self._t0 = time.perf_counter()
        self._thread = threading.Thread(target=self._loop, name="workbench-runner", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to stop after the current step (returns at once)."""
        if not self._stop.is_set():
            self._stop_asked = time.perf_counter()
        self._stop.set()

    @property
    def stop_latency(self) -> float | None:
        """Seconds from :meth:`stop` to the end of the training loop (before the end-of-run
        callback writes its files); None unless a stop ended the run."""
        if self._stop_asked is None or self._loop_ended is None or self.state != "stopped":
            return None
        return max(0.0, self._loop_ended - self._stop_asked)

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread to end; True when it has ended."""
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.running

    def status_line(self) -> str:
        """One line of progress: state, steps, speed, drawing share, each lane's accuracy."""
        rate = self.steps_done / self.elapsed if self.elapsed > 0 else 0.0
        accs = ", ".join(
            f"{lbl}: acc {recs[-1].rolling_accuracy:.3f}" for lbl, recs in self.records.items() if recs
        )
        return (
            f"{self.state}: step {self.steps_done}/{self.total_steps} | {rate:.1f} steps/s | "
            f"{self.updates} frames, drawing {100 * self.draw_fraction:.1f}% of the time | {accs}"
        )

    def wait_for_steps(self, n: int, timeout: float = 60.0) -> bool:
        """Block until ``n`` steps are done or the run ends; True when ``n`` were reached."""
        deadline = time.monotonic() + timeout
        while self.steps_done < n and self.running and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.steps_done >= n

    def _update(self) -> float:
        t = time.perf_counter()
        try:
            if self.on_update is not None:
                self.on_update(self)
        finally:
            dt = time.perf_counter() - t
            self.draw_seconds += dt
            self.updates += 1
        return self._interval_for(dt)

    def _interval_for(self, draw_seconds: float) -> float:
        # Keep drawing under max_draw_fraction of the time: wait >= dt * (1 - f) / f.
        f = self.max_draw_fraction
        return max(self.min_interval, draw_seconds * (1 - f) / f)

    def _loop(self) -> None:
        interval = self._interval_for(self.draw_estimate)
        last = last_progress = time.perf_counter()
        try:
            while not self._stop.is_set() and self.steps_done < self.total_steps:
                t = time.perf_counter()
                for label, src in self.sources.items():
                    self.records[label].append(src.step())
                now = time.perf_counter()
                self.step_seconds += now - t
                if now - last >= interval:
                    interval = self._update()
                    last = last_progress = time.perf_counter()
                elif self.on_progress is not None and now - last_progress >= self.min_interval:
                    self.on_progress(self)
                    last_progress = time.perf_counter()
                    self.draw_seconds += last_progress - now
            self._loop_ended = time.perf_counter()
            self.state = "stopped" if self.steps_done < self.total_steps else "finished"
        except BaseException as exc:  # noqa: BLE001 - reported to the user, not swallowed
            log.exception("workbench run failed at step %d", self.steps_done)
            self.error = exc
            self.state = "failed"
        finally:
            for src in self.sources.values():
                try:
                    src.close()
                except Exception:  # pragma: no cover - cleanup must not mask the run's result
                    log.exception("closing a step source failed")
            self.wall_seconds = time.perf_counter() - self._t0
            try:
                if self.on_finish is not None:
                    t = time.perf_counter()
                    self.on_finish(self)
                    self.finish_seconds = time.perf_counter() - t
                else:
                    self._update()
            except Exception as exc:
                log.exception("the end-of-run callback failed")
                if self.error is None:
                    self.error = exc
                    self.state = "failed"
            self.wall_seconds = time.perf_counter() - self._t0
