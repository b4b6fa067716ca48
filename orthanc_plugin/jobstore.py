"""Durable job store: one sqlite row per source series, shared by the plugin and its worker.

States: ``queued`` -> ``running`` -> ``done`` | ``rejected`` | ``failed``. A series enqueued again
while it runs is flagged and goes back to ``queued`` when the running attempt finishes.

A running job whose attempt broke off (the worker process died, Orthanc became unreachable) is
queued again after a delay that doubles with each such attempt, and failed with the reason once
:attr:`RetryPolicy.max_attempts` attempts broke off in a row. The store also keeps the worker
process' own state (``starting``, ``ready``, ``failed`` with the reason), which the plugin's
supervisor reads when the worker exits.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STATES = ("queued", "running", "done", "rejected", "failed")
FINAL_STATES = ("done", "rejected", "failed")
WORKER_STATES = ("starting", "ready", "failed")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    series_id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    trigger TEXT NOT NULL DEFAULT '',
    instance_count INTEGER NOT NULL DEFAULT 0,
    model_version TEXT NOT NULL DEFAULT '',
    timings TEXT NOT NULL DEFAULT '{}',
    result TEXT NOT NULL DEFAULT '{}',
    attempts INTEGER NOT NULL DEFAULT 0,
    rerun INTEGER NOT NULL DEFAULT 0,
    queued_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL
);
CREATE TABLE IF NOT EXISTS worker (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    pid INTEGER NOT NULL,
    state TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    updated_at REAL NOT NULL
);
"""
# Columns added after the first release: added to an older job file when it is opened.
_ADDED_COLUMNS = {
    "broken": "INTEGER NOT NULL DEFAULT 0",
    "not_before": "REAL NOT NULL DEFAULT 0",
}


@dataclass(frozen=True)
class RetryPolicy:
    """How often, and how soon, a job whose attempt broke off is tried again.

    Attributes
    ----------
    max_attempts : int
        Attempts of one request that may break off (worker died, Orthanc unreachable) before
        the job is failed; 1 fails it at the first.
    delay_s : float
        Wait before the second attempt; it doubles for each further one.
    """

    max_attempts: int = 3
    delay_s: float = 10.0

    def __post_init__(self) -> None:
        if not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            raise ValueError(f"max_attempts must be an integer >= 1, got {self.max_attempts!r}")
        if not isinstance(self.delay_s, (int, float)) or self.delay_s < 0:
            raise ValueError(f"delay_s must be a number >= 0, got {self.delay_s!r}")

    def delay(self, broken: int) -> float:
        """Seconds to wait after the ``broken``-th attempt in a row broke off (``broken`` >= 1)."""
        return float(self.delay_s) * 2 ** (max(1, broken) - 1)


@dataclass(frozen=True)
class Job:
    """One row of the job store.

    ``timings`` holds seconds per stage; ``result`` holds what was stored (Orthanc IDs of the
    SEG/SR series, lesion count); times are UNIX seconds.
    """

    series_id: str
    state: str
    reason: str
    trigger: str
    instance_count: int
    model_version: str
    timings: dict[str, float] = field(default_factory=dict)
    result: dict[str, Any] = field(default_factory=dict)
    attempts: int = 0
    rerun: bool = False
    queued_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    broken: int = 0
    not_before: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict (the REST routes answer with it).

        ``broken_attempts`` counts the attempts of the current request that broke off;
        ``retry_at`` (UNIX time) is when a queued job may start again, or None.
        """
        return {
            "series": self.series_id, "state": self.state, "reason": self.reason,
            "trigger": self.trigger, "instance_count": self.instance_count,
            "model_version": self.model_version, "timings": self.timings,
            "result": self.result, "attempts": self.attempts, "rerun_pending": self.rerun,
            "queued_at": self.queued_at, "started_at": self.started_at,
            "finished_at": self.finished_at, "broken_attempts": self.broken,
            "retry_at": self.not_before if self.state == "queued" and self.not_before else None,
        }


def _check_series_id(series_id: object) -> str:
    if not isinstance(series_id, str) or not series_id:
        raise ValueError(f"series_id must be a non-empty string, got {series_id!r}")
    return series_id


class JobStore:
    """Job table in a sqlite file; safe to use from several processes.

    Parameters
    ----------
    path : str or Path
        sqlite file; its folder is created if needed.

    Raises
    ------
    ValueError
        If ``path`` is empty.
    """

    def __init__(self, path: str | Path) -> None:
        if not str(path):
            raise ValueError(f"path must be a file path, got {path!r}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)
            have = {row["name"] for row in db.execute("PRAGMA table_info(jobs)")}
            for name, decl in _ADDED_COLUMNS.items():
                if name not in have:
                    db.execute(f"ALTER TABLE jobs ADD COLUMN {name} {decl}")

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        db.row_factory = sqlite3.Row
        try:
            yield db
        finally:
            db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def enqueue(self, series_id: str, instance_count: int = 0, trigger: str = "") -> Job:
        """Queue a series (again); a running series is flagged to run once more afterwards.

        Raises
        ------
        ValueError
            If ``series_id`` is empty or ``instance_count`` negative.
        """
        _check_series_id(series_id)
        if not isinstance(instance_count, int) or instance_count < 0:
            raise ValueError(f"instance_count must be an integer >= 0, got {instance_count!r}")
        now = time.time()
        with self._transaction() as db:
            row = db.execute("SELECT state FROM jobs WHERE series_id=?", (series_id,)).fetchone()
            if row is None:
                db.execute(
                    "INSERT INTO jobs (series_id, state, trigger, instance_count, queued_at) "
                    "VALUES (?, 'queued', ?, ?, ?)", (series_id, trigger, instance_count, now))
            elif row["state"] == "running":
                db.execute("UPDATE jobs SET rerun=1, trigger=? WHERE series_id=?",
                           (trigger, series_id))
            else:
                db.execute(
                    "UPDATE jobs SET state='queued', reason='', trigger=?, instance_count=?, "
                    "queued_at=?, rerun=0, broken=0, not_before=0 WHERE series_id=?",
                    (trigger, instance_count, now, series_id))
        return self.get(series_id)

    def reject(self, series_id: str, reason: str, instance_count: int = 0,
               trigger: str = "") -> Job:
        """Record a series that is not processed, with the reason.

        Raises
        ------
        ValueError
            If ``series_id`` or ``reason`` is empty.
        """
        _check_series_id(series_id)
        if not reason:
            raise ValueError("reason must be a non-empty string")
        now = time.time()
        with self._transaction() as db:
            db.execute(
                "INSERT INTO jobs (series_id, state, reason, trigger, instance_count, queued_at, "
                "finished_at) VALUES (?, 'rejected', ?, ?, ?, ?, ?) ON CONFLICT(series_id) DO "
                "UPDATE SET state='rejected', reason=excluded.reason, trigger=excluded.trigger, "
                "instance_count=excluded.instance_count, finished_at=excluded.finished_at",
                (series_id, reason, trigger, instance_count, now, now))
        return self.get(series_id)

    def claim_next(self) -> Job | None:
        """Move the oldest queued job that is due to ``running`` and return it (None if none).

        A job waiting for a retry (``not_before`` in the future) is not due yet.
        """
        now = time.time()
        with self._transaction() as db:
            row = db.execute("SELECT series_id FROM jobs WHERE state='queued' AND not_before<=? "
                             "ORDER BY queued_at LIMIT 1", (now,)).fetchone()
            if row is None:
                return None
            db.execute("UPDATE jobs SET state='running', started_at=?, attempts=attempts+1, "
                       "rerun=0 WHERE series_id=?", (now, row["series_id"]))
        return self.get(row["series_id"])

    def finish(self, series_id: str, state: str, reason: str = "", *,
               timings: dict[str, float] | None = None, result: dict[str, Any] | None = None,
               instance_count: int | None = None, model_version: str = "") -> Job:
        """Record the outcome of a running job; a flagged job is queued again.

        Raises
        ------
        ValueError
            If ``state`` is not a final state or the series has no job.
        """
        _check_series_id(series_id)
        if state not in FINAL_STATES:
            raise ValueError(f"state must be one of {FINAL_STATES}, got {state!r}")
        with self._transaction() as db:
            row = db.execute("SELECT rerun, instance_count FROM jobs WHERE series_id=?",
                             (series_id,)).fetchone()
            if row is None:
                raise ValueError(f"series_id {series_id!r} has no job")
            count = row["instance_count"] if instance_count is None else instance_count
            now = time.time()
            db.execute(
                "UPDATE jobs SET state=?, reason=?, timings=?, result=?, instance_count=?, "
                "model_version=?, finished_at=?, broken=0, not_before=0 WHERE series_id=?",
                (state, reason, json.dumps(timings or {}), json.dumps(result or {}), count,
                 model_version, now, series_id))
            if row["rerun"]:
                db.execute("UPDATE jobs SET state='queued', rerun=0, queued_at=? "
                           "WHERE series_id=?", (now, series_id))
        return self.get(series_id)

    def retry(self, series_id: str, reason: str, policy: RetryPolicy) -> Job:
        """Record that the running attempt of a job broke off: queue it again or fail it.

        The job waits ``policy.delay(n)`` seconds after the ``n``-th attempt in a row that broke
        off; after ``policy.max_attempts`` of them it is ``failed`` with ``reason``. A job
        flagged to run again (its series grew meanwhile) is queued as a new request.

        Raises
        ------
        ValueError
            If ``series_id`` or ``reason`` is empty, or the series has no running job.
        """
        _check_series_id(series_id)
        if not reason:
            raise ValueError("reason must be a non-empty string")
        with self._transaction() as db:
            self._retry_one(db, series_id, reason, policy)
        return self.get(series_id)

    def _retry_one(self, db: sqlite3.Connection, series_id: str, reason: str,
                   policy: RetryPolicy) -> None:
        row = db.execute("SELECT state, broken, rerun FROM jobs WHERE series_id=?",
                         (series_id,)).fetchone()
        if row is None or row["state"] != "running":
            raise ValueError(f"series_id {series_id!r} has no running job")
        now, broken = time.time(), row["broken"] + 1
        if row["rerun"]:
            db.execute("UPDATE jobs SET state='queued', reason='', rerun=0, broken=0, "
                       "not_before=0, queued_at=? WHERE series_id=?", (now, series_id))
        elif broken >= policy.max_attempts:
            db.execute("UPDATE jobs SET state='failed', reason=?, broken=?, not_before=0, "
                       "finished_at=? WHERE series_id=?",
                       (f"{reason} (attempt {broken} of {policy.max_attempts}; given up)",
                        broken, now, series_id))
        else:
            wait = policy.delay(broken)
            db.execute("UPDATE jobs SET state='queued', reason=?, broken=?, not_before=? "
                       "WHERE series_id=?",
                       (f"{reason} (attempt {broken} of {policy.max_attempts}; "
                        f"retry in {wait:g} s)", broken, now + wait, series_id))

    def requeue_running(self, reason: str = "the worker process stopped during the job",
                        policy: RetryPolicy | None = None) -> int:
        """Apply :meth:`retry` to every job left ``running`` (its worker died); return how many.

        Without ``policy`` the jobs are queued again at once and the attempt does not count.
        """
        with self._transaction() as db:
            if policy is None:
                cur = db.execute("UPDATE jobs SET state='queued', queued_at=? "
                                 "WHERE state='running'", (time.time(),))
                return cur.rowcount
            running = [r["series_id"] for r in
                       db.execute("SELECT series_id FROM jobs WHERE state='running'")]
            for series_id in running:
                self._retry_one(db, series_id, reason, policy)
            return len(running)

    def release(self, series_id: str) -> Job | None:
        """Put a running job back in the queue without counting the attempt (clean shutdown).

        Returns the job, or None when the series has no running job.
        """
        _check_series_id(series_id)
        with self._transaction() as db:
            cur = db.execute("UPDATE jobs SET state='queued', attempts=MAX(attempts-1, 0) "
                             "WHERE series_id=? AND state='running'", (series_id,))
            if cur.rowcount == 0:
                return None
        return self.get(series_id)

    def set_worker(self, pid: int, state: str, reason: str = "") -> None:
        """Record the worker process' state (``starting``, ``ready`` or ``failed``).

        Raises
        ------
        ValueError
            If ``state`` is not one of :data:`WORKER_STATES` or ``pid`` is not positive.
        """
        if state not in WORKER_STATES:
            raise ValueError(f"state must be one of {WORKER_STATES}, got {state!r}")
        if not isinstance(pid, int) or pid <= 0:
            raise ValueError(f"pid must be a positive integer, got {pid!r}")
        with self._transaction() as db:
            db.execute("INSERT INTO worker (id, pid, state, reason, updated_at) "
                       "VALUES (1, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET pid=excluded.pid, "
                       "state=excluded.state, reason=excluded.reason, "
                       "updated_at=excluded.updated_at", (pid, state, reason, time.time()))

    def worker(self) -> dict[str, Any] | None:
        """Return the last recorded worker state (``pid``, ``state``, ``reason``), or None."""
        with self._connect() as db:
            row = db.execute("SELECT pid, state, reason, updated_at FROM worker").fetchone()
        return None if row is None else dict(row)

    def get(self, series_id: str) -> Job | None:
        """Return the job of a series, or None."""
        _check_series_id(series_id)
        with self._connect() as db:
            row = db.execute("SELECT * FROM jobs WHERE series_id=?", (series_id,)).fetchone()
        return None if row is None else _job(row)

    def counts(self) -> dict[str, int]:
        """Return the number of jobs in each state (every state listed, 0 when none)."""
        with self._connect() as db:
            rows = db.execute("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state").fetchall()
        return {**dict.fromkeys(STATES, 0), **{r["state"]: r["n"] for r in rows}}

    def list(self, limit: int = 1000) -> list[Job]:
        """Return up to ``limit`` jobs, most recently queued first.

        Raises
        ------
        ValueError
            If ``limit`` is not a positive integer.
        """
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise ValueError(f"limit must be a positive integer, got {limit!r}")
        with self._connect() as db:
            rows = db.execute("SELECT * FROM jobs ORDER BY queued_at DESC LIMIT ?",
                              (limit,)).fetchall()
        return [_job(r) for r in rows]


def _job(row: sqlite3.Row) -> Job:
    return Job(
        series_id=row["series_id"], state=row["state"], reason=row["reason"],
        trigger=row["trigger"], instance_count=row["instance_count"],
        model_version=row["model_version"], timings=json.loads(row["timings"]),
        result=json.loads(row["result"]), attempts=row["attempts"], rerun=bool(row["rerun"]),
        queued_at=row["queued_at"], started_at=row["started_at"],
        finished_at=row["finished_at"], broken=row["broken"], not_before=row["not_before"],
    )
