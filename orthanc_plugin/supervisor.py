"""Start, watch and stop the worker process (the venv's Python, never Orthanc's own thread).

A worker that dies while serving (killed, out of memory) is started again at once and the job it
was running is retried with a delay, up to ``LungSeg.MaxAttempts`` attempts. A worker that cannot
start (model file missing or unreadable, bad environment) is started again after a delay that
doubles up to ``MAX_RESTART_DELAY_S``, at most ``LungSeg.WorkerMaxStarts`` times in a row; then the
supervisor gives up and ``GET /lungseg/status`` says why. Orthanc keeps serving either way.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orthanc_plugin.config import PluginConfig
from orthanc_plugin.jobstore import JobStore

REPO_ROOT = Path(__file__).resolve().parent.parent
WORKER_MODULE = "orthanc_plugin.worker"
MAX_RESTART_DELAY_S = 60.0
"""Longest wait before starting a worker that failed to start."""


def worker_command(cfg: PluginConfig) -> list[str]:
    """Return the command line of the worker process."""
    return [cfg.worker_python, "-m", WORKER_MODULE]


def worker_environment(base: dict[str, str] | None = None) -> dict[str, str]:
    """Return the worker's environment.

    That is ``base`` (default ``os.environ``) with the checkout first on ``PYTHONPATH``, so the
    worker runs this checkout's code.
    """
    env = dict(os.environ if base is None else base)
    parts = [str(REPO_ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(parts)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def describe_exit(code: int | None) -> str:
    """Say how a process ended from its return code (negative: killed by that signal)."""
    if code is None:
        return "not started"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = "unknown signal"
        return f"killed by signal {-code} ({name})"
    return f"exit code {code}"


class WorkerSupervisor:
    """Keep one worker process alive between Orthanc's start and stop.

    The configuration is handed to the worker on its standard input (so the internal password
    appears neither on the command line nor in a file). The worker records in the job store
    when it is ready to serve, or why it could not start; from that the supervisor tells a
    crash while serving (restart now, retry the job) from a failed start (back off, give up
    after ``cfg.worker_max_starts`` in a row).

    Parameters
    ----------
    cfg : PluginConfig
        Plugin configuration.
    log : callable
        Takes one message string (e.g. ``orthanc.LogWarning``).
    popen : callable
        ``subprocess.Popen`` or a replacement with the same signature.

    Raises
    ------
    TypeError
        If ``log`` or ``popen`` is not callable.
    """

    def __init__(self, cfg: PluginConfig, log: Callable[[str], Any],
                 popen: Callable[..., Any] = subprocess.Popen) -> None:
        if not callable(log) or not callable(popen):
            raise TypeError("log and popen must be callables")
        self.cfg = cfg
        self._log = log
        self._popen = popen
        self._store = JobStore(cfg.job_db)
        self._proc: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.starts = 0
        self.failed_starts = 0
        self.given_up = False
        self.reason = ""

    def _spawn(self) -> None:
        if not Path(self.cfg.worker_python).exists():
            self.reason = (f"worker python {self.cfg.worker_python} does not exist "
                           "(LungSeg.WorkerPython; run deploy/install.sh)")
            self._log(f"lungseg: {self.reason}")
            return
        proc = self._popen(worker_command(self.cfg), stdin=subprocess.PIPE,
                           env=worker_environment(), cwd=str(REPO_ROOT))
        proc.stdin.write(self.cfg.to_json().encode())
        proc.stdin.close()
        self._proc = proc
        self.starts += 1
        self._log(f"lungseg: worker process started (pid {proc.pid})")

    def _recorded(self, pid: int | None) -> dict[str, Any] | None:
        """Return the worker's own record in the job store when it is about process ``pid``."""
        try:
            row = self._store.worker()
        except sqlite3.Error as exc:
            self._log(f"lungseg: cannot read the worker state: {exc}")
            return None
        return row if row is not None and pid is not None and row["pid"] == pid else None

    def _after_exit(self, proc: Any) -> float | None:
        """Handle a worker that exited; return the delay before the next start, None to stop."""
        pid = None if proc is None else proc.pid
        how = describe_exit(None if proc is None else proc.returncode)
        recorded = self._recorded(pid)
        if recorded is not None and recorded["state"] == "ready":
            self.failed_starts = 0
            self.reason = f"the worker process died ({how}); started again"
            self._retry_running_jobs(f"the worker process died ({how}) during this job")
            self._log(f"lungseg: worker exited ({how}) while serving; restarting")
            return float(self.cfg.worker_restart_delay_s)
        if proc is not None:
            why = recorded["reason"] if recorded and recorded["reason"] else how
            self.reason = f"the worker process could not start: {why}"
        self.failed_starts += 1
        if self.failed_starts >= self.cfg.worker_max_starts:
            self.given_up = True
            self.reason += (f" (gave up after {self.failed_starts} failed starts; jobs stay "
                            "queued: fix the cause and restart Orthanc)")
            self._log(f"lungseg: {self.reason}")
            return None
        delay = min(MAX_RESTART_DELAY_S,
                    self.cfg.worker_restart_delay_s * 2 ** (self.failed_starts - 1))
        self._log(f"lungseg: {self.reason}; starting it again in {delay:g} s "
                  f"(failed start {self.failed_starts} of {self.cfg.worker_max_starts})")
        return delay

    def _retry_running_jobs(self, reason: str) -> None:
        try:
            count = self._store.requeue_running(reason, self.cfg.retry_policy)
        except sqlite3.Error as exc:  # e.g. the disk is full: the next worker tries again
            self._log(f"lungseg: cannot record the interrupted job: {exc}")
            return
        if count:
            self._log(f"lungseg: {count} interrupted job(s) retried or failed")

    def _watch(self) -> None:
        while not self._stop.is_set():
            proc = self._proc
            if proc is None or proc.poll() is not None:
                self._proc = None
                delay = self._after_exit(proc)
                if delay is None or self._stop.wait(delay):
                    return
                self._spawn()
            self._stop.wait(0.5)

    def start(self) -> None:
        """Start the worker and the watcher thread (no-op when already started)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._spawn()
        self._thread = threading.Thread(target=self._watch, name="lungseg-supervisor",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the watcher, terminate the worker (kill it after ``timeout_s``).

        The worker puts the job it was running back in the queue when it is terminated.
        """
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout_s)
        self._log("lungseg: worker process stopped")

    @property
    def pid(self) -> int | None:
        """PID of the running worker, or None."""
        proc = self._proc
        return None if proc is None or proc.poll() is not None else proc.pid

    def status(self) -> dict[str, Any]:
        """Return the worker's state for the REST API.

        ``state`` is ``running`` (ready to serve), ``starting`` (loading the model),
        ``restarting`` (waiting to start again), ``stopped`` (given up, or Orthanc stopping)
        or ``not started``; ``reason`` says what went wrong last.
        """
        pid = self.pid
        if pid is not None:
            recorded = self._recorded(pid)
            state = "running" if recorded and recorded["state"] == "ready" else "starting"
        elif self.given_up or (self._stop.is_set() and self.starts):
            state = "stopped"
        elif self._thread is None:
            state = "not started"
        else:
            state = "restarting"
        return {"state": state, "pid": pid, "running": pid is not None, "starts": self.starts,
                "failed_starts": self.failed_starts, "reason": self.reason}
