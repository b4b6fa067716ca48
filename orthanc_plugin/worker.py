"""The worker process: loads the segmenter, then runs queued jobs one after another.

Before each job it checks the model registry's active pointer
(:mod:`orthanc_plugin.active_model`) and loads a newly promoted model; Orthanc keeps running.

Started by :class:`orthanc_plugin.supervisor.WorkerSupervisor` as
``<venv>/bin/python -m orthanc_plugin.worker`` with the plugin configuration (JSON) on stdin.
It records in the job store that it is starting, ready, or why it cannot start (then it exits
with :data:`EXIT_CANNOT_START`). It exits when Orthanc (its parent) is gone or on SIGTERM,
putting the job it was running back in the queue.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

from orthanc_plugin.active_model import ActiveModel
from orthanc_plugin.config import PluginConfig, from_section
from orthanc_plugin.jobrunner import Outcome, StoreFailed, run_job
from orthanc_plugin.jobstore import Job, JobStore, RetryPolicy
from orthanc_plugin.orthanc_http import OrthancClient, OrthancHttpError
from pipeline.errors import ConfigError

LOG = logging.getLogger("lungseg.worker")
EXIT_BAD_CONFIG = 2
EXIT_CANNOT_START = 3
"""Exit status when the segmenter cannot be loaded (the reason is in the job store)."""


def pipeline_config(cfg: PluginConfig) -> Any:
    """Build the pipeline's configuration from the plugin's."""
    from pipeline.run import PipelineConfig

    return PipelineConfig(segmenter=cfg.segmenter, engine=cfg.engine, model_path=cfg.model_path,
                          threads=cfg.threads, engine_options=cfg.engine_options,
                          seg_series_number=cfg.seg_series_number,
                          sr_series_number=cfg.sr_series_number, min_slices=cfg.min_slices,
                          shape_gate=cfg.shape_gate)


def load_model(cfg: PluginConfig) -> ActiveModel:
    """Create the segmenter the configuration (or the registry's active version) asks for.

    A ``ModelPath`` that is set must name an existing file, also with ``Segmenter`` ``auto``.

    Raises
    ------
    ConfigError
        If the configured model file does not exist.
    LungSegError
        If the segmenter cannot be created (e.g. the model file is corrupt).
    """
    if cfg.model_path and cfg.segmenter in ("auto", "model") and not Path(cfg.model_path).is_file():
        raise ConfigError(f"model file not found: {cfg.model_path} (LungSeg.ModelPath)")
    return ActiveModel(cfg.registry_dir, pipeline_config(cfg))


def limit_memory(limit_mb: int | None) -> None:
    """Cap the worker's address space (``RLIMIT_AS``) at ``limit_mb`` MiB; None: no cap.

    Raises
    ------
    ValueError
        If ``limit_mb`` is not None or a positive integer.
    """
    if limit_mb is None:
        return
    if not isinstance(limit_mb, int) or limit_mb <= 0:
        raise ValueError(f"limit_mb must be None or a positive integer, got {limit_mb!r}")
    limit = limit_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def free_space_note(path: str | Path) -> str:
    """Return e.g. ``"12.5 MB free on /var/lib/lungseg"`` (empty when it cannot be read)."""
    try:
        free = shutil.disk_usage(path).free
    except OSError:
        return ""
    return f"{free / 1e6:.1f} MB free on {path}"


def _failure(exc: Exception, job: Job, disk: str | None) -> tuple[str, dict[str, Any]]:
    """Reason of a failed attempt and the result that still stands in Orthanc."""
    reason = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, StoreFailed):
        note = free_space_note(disk) if disk else ""
        return reason + (f" ({note})" if note else ""), {}  # the previous result was replaced
    if isinstance(exc, MemoryError):
        return reason + " (the worker ran out of memory; see LungSeg.WorkerMemoryLimitMB)", \
            job.result
    return reason, job.result


def process_one(store: JobStore, client: OrthancClient, segmenter: Any, pconfig: Any,
                job: Job, policy: RetryPolicy | None = None,
                storage_dir: str | None = None) -> Job:
    """Run a claimed job and record its outcome; errors become a ``failed`` job, never a crash.

    When Orthanc cannot be reached (e.g. it is stopping), the attempt is retried according to
    ``policy`` (default: none, the job fails at once). ``storage_dir`` is Orthanc's storage
    folder, whose free space a failed store reports.
    """
    started = time.perf_counter()
    try:
        outcome = run_job(client, segmenter, pconfig, job.series_id, job.result)
    except Exception as exc:
        LOG.exception("series %s failed", job.series_id)
        transient = isinstance(exc, (OrthancHttpError, StoreFailed)) and exc.transient
        reason, result = _failure(exc, job, storage_dir)
        if transient and policy is not None:
            return store.retry(job.series_id, reason, policy)
        outcome = Outcome("failed", reason, {}, result, job.instance_count,
                          str(getattr(segmenter, "version", "")))
    timings = dict(outcome.timings)
    if job.trigger == "stable" and outcome.last_update is not None:
        # Orthanc's StableAge wait (1 s resolution: LastUpdate has whole seconds)
        timings["stable_wait"] = round(max(0.0, job.queued_at - outcome.last_update), 4)
    if job.started_at is not None:
        timings["queue_wait"] = round(max(0.0, job.started_at - job.queued_at), 4)
    timings["total"] = round(time.perf_counter() - started, 4)
    LOG.info("series %s: %s %s (%.1f s)", job.series_id, outcome.state, outcome.reason,
             timings["total"])
    return store.finish(job.series_id, outcome.state, outcome.reason, timings=timings,
                        result=outcome.result, instance_count=outcome.instance_count,
                        model_version=outcome.model_version)


def serve(cfg: PluginConfig, should_stop: Any = None, model: ActiveModel | None = None) -> None:
    """Process queued jobs until ``should_stop()`` is true (default: until Orthanc is gone).

    ``model`` defaults to :func:`load_model`; the segmenter follows the registry's active
    version (checked before each job). A job interrupted by SIGTERM (Orthanc stopping) goes
    back to the queue without counting as an attempt.

    Raises
    ------
    LungSegError
        If the segmenter cannot be created (e.g. the model file is missing).
    """
    store = JobStore(cfg.job_db)
    client = OrthancClient(cfg.url, cfg.worker_user, cfg.worker_password)
    model = model if model is not None else load_model(cfg)
    LOG.info("segmenter %s %s loaded", model.segmenter.name, model.segmenter.version)
    requeued = store.requeue_running("the worker stopped during this job", cfg.retry_policy)
    if requeued:
        LOG.info("%d interrupted job(s) retried or failed", requeued)
    parent = os.getppid()
    stop = should_stop or (lambda: os.getppid() != parent)
    while not stop():
        job = store.claim_next()
        if job is None:
            time.sleep(cfg.poll_interval_s)
            continue
        segmenter, pconfig = model.refresh()
        try:
            process_one(store, client, segmenter, pconfig, job, cfg.retry_policy,
                        cfg.storage_dir or cfg.data_dir)
        except BaseException:  # SIGTERM (SystemExit) mid-job: the job is not lost
            store.release(job.series_id)
            LOG.warning("series %s interrupted: queued again", job.series_id)
            raise


def _start(cfg: PluginConfig) -> int:
    store = JobStore(cfg.job_db)
    pid = os.getpid()
    store.set_worker(pid, "starting")
    try:
        limit_memory(cfg.worker_memory_limit_mb)
        model = load_model(cfg)
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}"
        LOG.error("cannot start: %s", reason)
        store.set_worker(pid, "failed", reason)
        return EXIT_CANNOT_START
    store.set_worker(pid, "ready")
    serve(cfg, model=model)
    return 0


def main() -> int:
    """Entry point: read the configuration from stdin and serve jobs."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s lungseg-worker %(levelname)s %(message)s")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        cfg = from_section(json.loads(sys.stdin.read()))
    except (ValueError, ConfigError) as exc:
        LOG.error("bad configuration on stdin: %s", exc)
        return EXIT_BAD_CONFIG
    return _start(cfg)


if __name__ == "__main__":
    sys.exit(main())
