"""Start, watch and stop the worker process (the venv's Python, never Orthanc's own thread)."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orthanc_plugin.config import PluginConfig

REPO_ROOT = Path(__file__).resolve().parent.parent
WORKER_MODULE = "orthanc_plugin.worker"


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


class WorkerSupervisor:
    """Keep one worker process alive between Orthanc's start and stop.

    The configuration is handed to the worker on its standard input (so the internal password
    appears neither on the command line nor in a file). A worker that exits is started again
    after ``cfg.worker_restart_delay_s``.

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
        self._proc: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.starts = 0
        self._failures = 0
        self._spawned_at = 0.0

    def _spawn(self) -> None:
        self._spawned_at = time.monotonic()
        if not Path(self.cfg.worker_python).exists():
            self._log(f"lungseg: worker python {self.cfg.worker_python} does not exist "
                      "(LungSeg.WorkerPython; run deploy/install.sh)")
            return
        proc = self._popen(worker_command(self.cfg), stdin=subprocess.PIPE,
                           env=worker_environment(), cwd=str(REPO_ROOT))
        proc.stdin.write(self.cfg.to_json().encode())
        proc.stdin.close()
        self._proc = proc
        self._spawned_at = time.monotonic()
        self.starts += 1
        self._log(f"lungseg: worker process started (pid {proc.pid})")

    def _restart_delay(self) -> float:
        # quick successive failures (e.g. a missing model) back off up to a minute
        quick = time.monotonic() - self._spawned_at < 30.0
        self._failures = self._failures + 1 if quick else 1
        return min(60.0, self.cfg.worker_restart_delay_s * 2 ** (self._failures - 1))

    def _watch(self) -> None:
        while not self._stop.is_set():
            proc = self._proc
            if proc is None or proc.poll() is not None:
                delay = self._restart_delay()
                code = None if proc is None else proc.returncode
                self._log(f"lungseg: worker exited (code {code}); restarting in {delay:g} s")
                if self._stop.wait(delay):
                    return
                self._spawn()
            self._stop.wait(1.0)

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
        """Stop the watcher, terminate the worker (kill it after ``timeout_s``)."""
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
