"""``ResultsStore``: one SQLite file holding one row per run and the run's step trace.

Layout (WAL mode; every write is one transaction, so a process killed at any moment, even
by ``kill -9``, leaves either the whole run or none of it):

* ``runs``: one row per run. Key = the config hash. Config fields and headline metrics as
  columns (for SQL), plus the full config and metrics as JSON. ``status`` is ``done`` or
  ``failed``; only ``done`` runs count as finished.
* ``epochs``: per-epoch train/test error and loss.
* ``traces``: the per-step trace as a Parquet blob beside the row, written in the same
  transaction.

>>> import tempfile, pandas as pd
>>> store = ResultsStore(tempfile.mkdtemp() + "/results.sqlite")
>>> rid = store.add_run({"dataset": "mnist", "lr": 0.1}, {"final_test_err_pct": 2.5},
...                     pd.DataFrame({"step": [1, 2], "loss": [2.3, 2.1]}))
>>> store.runs()[["dataset", "lr", "final_test_err_pct"]].values.tolist()
[['mnist', 0.1, 2.5]]
>>> store.trace(rid)["loss"].tolist()
[2.3, 2.1]
"""

from __future__ import annotations

import datetime as _dt
import errno
import io
import json
import math
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from autoopt_lab.identity import config_key

from .config import RunConfig

SCHEMA_VERSION = "2"
#: Run states: ``done`` (finished; the only one a sweep skips), ``failed`` (raised; retried
#: by the next sweep), ``stopped`` (stopped by the user before the end, e.g. in the
#: workbench). Schema 1 stores knew only the first two; they are migrated when opened.
STATUSES: tuple[str, ...] = ("done", "failed", "stopped")
CONFIG_COLUMNS = {
    "dataset": "TEXT",
    "model": "TEXT",
    "optimizer": "TEXT",
    "lr": "REAL",
    "momentum": "REAL",
    "batch_size": "INTEGER",
    "epochs": "INTEGER",
    "seed": "INTEGER",
    "device": "TEXT",
    "max_train_samples": "INTEGER",
    "max_test_samples": "INTEGER",
}
METRIC_COLUMNS = {
    "final_train_err_pct": "REAL",
    "final_test_err_pct": "REAL",
    "diverged": "INTEGER",
    "wall_time_s": "REAL",
    "data_source": "TEXT",
}
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    status TEXT NOT NULL CHECK (status IN ('done', 'failed', 'stopped')),
    sweep TEXT,
    {", ".join(f"{k} {t}" for k, t in {**CONFIG_COLUMNS, **METRIC_COLUMNS}.items())},
    config_json TEXT NOT NULL,
    metrics_json TEXT NOT NULL,
    error TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_by_setting ON runs (dataset, optimizer, batch_size);
CREATE TABLE IF NOT EXISTS epochs (
    run_id TEXT NOT NULL, epoch INTEGER NOT NULL,
    train_err_pct REAL, test_err_pct REAL, train_loss REAL, test_loss REAL,
    PRIMARY KEY (run_id, epoch)
);
CREATE TABLE IF NOT EXISTS traces (
    run_id TEXT PRIMARY KEY, format TEXT NOT NULL, n_rows INTEGER NOT NULL, data BLOB NOT NULL
);
"""


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, (set, tuple)):
        return list(obj)
    return str(obj)


def _finite_or_none(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _migrate_v1(con: sqlite3.Connection) -> None:
    """Schema 1's ``runs`` table refuses ``status='stopped'``: rebuild it (rows kept)."""
    row = con.execute("SELECT sql FROM sqlite_master WHERE type='table' AND name='runs'").fetchone()
    if row is None or "'stopped'" in row[0]:
        return
    runs_table = _SCHEMA[_SCHEMA.index("CREATE TABLE IF NOT EXISTS runs") :].split(";")[0]
    con.executescript(  # one transaction: all of it or nothing
        "BEGIN; DROP INDEX IF EXISTS runs_by_setting; ALTER TABLE runs RENAME TO runs_schema1; "
        f"{runs_table}; INSERT INTO runs SELECT * FROM runs_schema1; DROP TABLE runs_schema1; "
        "COMMIT;"
    )


class StoreDamagedError(OSError):
    """The results store is not a readable SQLite database; the message says how to recover."""


def _damaged(path: Path, exc: BaseException) -> StoreDamagedError:
    return StoreDamagedError(
        f"results store {path} is damaged or not an SQLite database ({exc}); nothing was "
        f"written to it. Recover its runs with `sqlite3 {path} .recover | sqlite3 "
        f"{path.with_suffix('.recovered.sqlite')}` and pass that file as --store, or give a "
        "new --store path to start afresh"
    )


class StoreLockedError(OSError):
    """Another process holds the store's write lock for longer than the busy timeout."""


class ForeignStoreError(ValueError):
    """An SQLite file of another program (tables a results store does not have)."""


#: The tables of a results store (``runs_schema1`` only inside a migration).
OWN_TABLES = frozenset({"meta", "runs", "epochs", "traces", "runs_schema1"})
_RUN_COLUMNS = frozenset({"run_id", "status", "config_json", "metrics_json"})


def _check_ours(con: sqlite3.Connection, path: Path) -> None:
    """Refuse an SQLite database that is not a results store, before writing to it."""
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    runs = {r[1] for r in con.execute("PRAGMA table_info(runs)")} if "runs" in tables else None
    foreign = sorted(tables - OWN_TABLES)
    if foreign or (runs is not None and not _RUN_COLUMNS <= runs):
        what = (f"tables {', '.join(foreign[:5])}" if foreign
                else "a 'runs' table of another layout")
        raise ForeignStoreError(
            f"{path} is an SQLite database of another program ({what}), not a results "
            "store; nothing was written to it. Give a new --store path")


def _holders(path: Path) -> str:
    """Processes that have ``path`` (or its WAL) open, from ``/proc`` (best effort)."""
    targets = {str(path.resolve()), f"{path.resolve()}-wal", f"{path.resolve()}-shm"}
    pids = []
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        if fd_dir.parent.name == str(os.getpid()):
            continue
        try:
            if any(os.readlink(fd) in targets for fd in fd_dir.iterdir()):
                pids.append(fd_dir.parent.name)
        except OSError:
            continue
    return f" (open in process {', '.join(pids)})" if pids else ""


class ResultsStore:
    """Runs and their traces in one SQLite file (see the module docstring for the layout).

    Safe to use from several processes: each call opens its own connection, and SQLite
    serialises the writers. A file that is not an SQLite database (truncated, or something
    else) raises :class:`StoreDamagedError` (an ``OSError``) naming it, before anything is
    written.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise IsADirectoryError(f"results store {self.path} is a directory; give a file path")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OSError(f"cannot create the folder of results store {self.path}: {exc}") from exc
        with self._connect() as con:
            _check_ours(con, self.path)
            con.execute("PRAGMA journal_mode=WAL")
            _migrate_v1(con)
            con.executescript(_SCHEMA)
            con.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
                (SCHEMA_VERSION,),
            )

    #: Seconds a write waits for another process's write lock before it is refused.
    busy_timeout_s: float = 15.0

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            con = sqlite3.connect(self.path, timeout=self.busy_timeout_s)
        except sqlite3.OperationalError as exc:
            raise OSError(f"cannot open results store {self.path}: {exc}") from exc
        try:
            con.execute("PRAGMA synchronous=NORMAL")
            with con:  # one transaction: commit on success, roll back on any error
                yield con
        except sqlite3.DatabaseError as exc:
            raise self._error(exc) from exc
        finally:
            con.close()

    def _error(self, exc: sqlite3.DatabaseError) -> Exception:
        """An SQLite error as one sentence naming the store (or ``exc`` itself: a bug)."""
        text = str(exc)
        if type(exc) is sqlite3.DatabaseError:  # "not a database", "malformed" ...
            return _damaged(self.path, exc)
        if not isinstance(exc, sqlite3.OperationalError):
            return exc
        if "readonly" in text:
            return OSError(f"results store {self.path} is read-only: {exc}")
        if "locked" in text or "busy" in text:
            return StoreLockedError(
                f"results store {self.path} is locked by another process{_holders(self.path)} "
                f"for over {self.busy_timeout_s:g} s; nothing was written. Wait for it to "
                "finish, or give another --store")
        if "disk is full" in text:
            return OSError(errno.ENOSPC, f"No space left on device for results store "
                           f"{self.path} ({exc}); the runs written before are kept. Free "
                           "space and rerun the same command to resume", str(self.path))
        return exc

    # -- writing ---------------------------------------------------------------------------

    def add_run(
        self,
        config: dict[str, Any] | RunConfig,
        metrics: dict[str, Any],
        trace: pd.DataFrame | None = None,
        *,
        run_id: str | None = None,
        status: str = "done",
        sweep: str | None = None,
        error: str | None = None,
    ) -> str:
        """Write one run atomically (replacing an earlier row with the same id); return its id.

        ``run_id`` defaults to the config's hash (:meth:`RunConfig.run_id` for a RunConfig).
        """
        if status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}, got {status!r}")
        if isinstance(config, RunConfig):
            run_id = run_id or config.run_id()
            config = config.to_dict()
        run_id = run_id or config_key(config)
        metrics = dict(metrics)
        blob = None
        if trace is not None:
            buf = io.BytesIO()
            trace.to_parquet(buf, index=False)
            blob = buf.getvalue()
        row = {
            "run_id": run_id,
            "status": status,
            "sweep": sweep,
            **{k: _finite_or_none(config.get(k)) for k in CONFIG_COLUMNS},
            **{k: _finite_or_none(metrics.get(k)) for k in METRIC_COLUMNS},
            "config_json": json.dumps(config, default=_json_default, sort_keys=True),
            "metrics_json": json.dumps(metrics, default=_json_default, sort_keys=True),
            "error": error,
            "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        epochs = list(
            zip(
                metrics.get("train_err_pct_per_epoch", []),
                metrics.get("test_err_pct_per_epoch", []),
                metrics.get("train_loss_per_epoch", []) or [None] * 10**6,
                metrics.get("test_loss_per_epoch", []) or [None] * 10**6,
                strict=False,
            )
        )
        with self._connect() as con:
            for table in ("runs", "epochs", "traces"):
                con.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))
            con.execute(f"INSERT INTO runs ({cols}) VALUES ({marks})", tuple(row.values()))
            con.executemany(
                "INSERT INTO epochs VALUES (?, ?, ?, ?, ?, ?)",
                [(run_id, i + 1, *map(_finite_or_none, e)) for i, e in enumerate(epochs)],
            )
            if blob is not None:
                con.execute(
                    "INSERT INTO traces VALUES (?, 'parquet', ?, ?)", (run_id, len(trace), blob)
                )
        return run_id

    def add_failure(
        self, config: dict[str, Any] | RunConfig, error: str, *, sweep: str | None = None
    ) -> str:
        """Record a run that raised; a restarted sweep will try it again."""
        return self.add_run(config, {}, None, status="failed", sweep=sweep, error=error)

    # -- reading ---------------------------------------------------------------------------

    def done_ids(self) -> set[str]:
        """Ids of finished runs."""
        with self._connect() as con:
            return {r[0] for r in con.execute("SELECT run_id FROM runs WHERE status = 'done'")}

    def diverged_ids(self) -> set[str]:
        """Ids of finished runs that diverged."""
        with self._connect() as con:
            q = "SELECT run_id FROM runs WHERE status = 'done' AND diverged = 1"
            return {r[0] for r in con.execute(q)}

    def has_run(self, run_id: str) -> bool:
        """True if ``run_id`` finished."""
        with self._connect() as con:
            q = "SELECT 1 FROM runs WHERE run_id = ? AND status = 'done'"
            return con.execute(q, (run_id,)).fetchone() is not None

    def count(self, status: str | None = "done") -> int:
        """Number of rows (of a status, or all with ``status=None``)."""
        with self._connect() as con:
            if status is None:
                return con.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
            return con.execute("SELECT COUNT(*) FROM runs WHERE status = ?", (status,)).fetchone()[
                0
            ]

    def __len__(self) -> int:
        return self.count()

    def runs(self, status: str | None = "done") -> pd.DataFrame:
        """One row per run: id, status, sweep, time, every config key, and every metric
        (dicts flattened one level with ``.``; colliding metric names get ``metric.``)."""
        with self._connect() as con:
            q = "SELECT run_id, status, sweep, created_at, error, config_json, metrics_json FROM runs"
            args: tuple = ()
            if status is not None:
                q += " WHERE status = ?"
                args = (status,)
            rows = con.execute(q + " ORDER BY created_at, run_id", args).fetchall()
        records = []
        for run_id, st, sweep, created, error, cfg, met in rows:
            rec: dict[str, Any] = {
                "run_id": run_id,
                "status": st,
                "sweep": sweep,
                "created_at": created,
                "error": error,
            }
            rec.update(json.loads(cfg))
            for k, v in json.loads(met).items():
                key = f"metric.{k}" if k in rec else k
                if isinstance(v, dict):
                    rec.update({f"{key}.{kk}": vv for kk, vv in v.items()})
                else:
                    rec[key] = v
            records.append(rec)
        return pd.DataFrame.from_records(records)

    def epochs(self) -> pd.DataFrame:
        """Per-epoch errors and losses of every finished run."""
        with self._connect() as con:
            return pd.read_sql_query(
                "SELECT e.* FROM epochs e JOIN runs r USING (run_id) "
                "WHERE r.status = 'done' ORDER BY e.run_id, e.epoch",
                con,
            )

    def trace(self, run_id: str) -> pd.DataFrame:
        """The per-step trace of a run (KeyError if it has none)."""
        with self._connect() as con:
            row = con.execute("SELECT data FROM traces WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            raise KeyError(f"no trace for run {run_id!r} in {self.path}")
        return pd.read_parquet(io.BytesIO(row[0]))
