"""The worker process: loads the segmenter, then runs queued jobs one after another.

Before each job it checks the model registry's active pointer
(:mod:`orthanc_plugin.active_model`) and loads a newly promoted model; Orthanc keeps running.

Started by :class:`orthanc_plugin.supervisor.WorkerSupervisor` as
``<venv>/bin/python -m orthanc_plugin.worker`` with the plugin configuration (JSON) on stdin.
It exits when Orthanc (its parent) is gone or on SIGTERM.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
from typing import Any

from orthanc_plugin.active_model import ActiveModel
from orthanc_plugin.config import PluginConfig, from_section
from orthanc_plugin.jobrunner import Outcome, run_job
from orthanc_plugin.jobstore import Job, JobStore
from orthanc_plugin.orthanc_http import OrthancClient
from pipeline.errors import ConfigError

LOG = logging.getLogger("lungseg.worker")


def pipeline_config(cfg: PluginConfig) -> Any:
    """Build the pipeline's configuration from the plugin's."""
    from pipeline.run import PipelineConfig

    return PipelineConfig(segmenter=cfg.segmenter, engine=cfg.engine, model_path=cfg.model_path,
                          threads=cfg.threads, engine_options=cfg.engine_options,
                          seg_series_number=cfg.seg_series_number,
                          sr_series_number=cfg.sr_series_number, min_slices=cfg.min_slices,
                          shape_gate=cfg.shape_gate)


def process_one(store: JobStore, client: OrthancClient, segmenter: Any, pconfig: Any,
                job: Job) -> Job:
    """Run a claimed job and record its outcome; errors become a ``failed`` job, never a crash."""
    started = time.perf_counter()
    try:
        outcome = run_job(client, segmenter, pconfig, job.series_id, job.result)
    except Exception as exc:
        LOG.exception("series %s failed", job.series_id)
        outcome = Outcome("failed", f"{type(exc).__name__}: {exc}", {}, job.result,
                          job.instance_count, str(getattr(segmenter, "version", "")))
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


def serve(cfg: PluginConfig, should_stop: Any = None) -> None:
    """Load the segmenter and process queued jobs until ``should_stop()`` is true.

    The segmenter follows the registry's active version (checked before each job).

    Raises
    ------
    LungSegError
        If the segmenter cannot be created (e.g. the model file is missing).
    """
    store = JobStore(cfg.job_db)
    client = OrthancClient(cfg.url, cfg.worker_user, cfg.worker_password)
    model = ActiveModel(cfg.registry_dir, pipeline_config(cfg))
    LOG.info("segmenter %s %s loaded", model.segmenter.name, model.segmenter.version)
    requeued = store.requeue_running()
    if requeued:
        LOG.info("%d interrupted job(s) queued again", requeued)
    parent = os.getppid()
    stop = should_stop or (lambda: os.getppid() != parent)
    while not stop():
        job = store.claim_next()
        if job is None:
            time.sleep(cfg.poll_interval_s)
            continue
        segmenter, pconfig = model.refresh()
        process_one(store, client, segmenter, pconfig, job)


def main() -> int:
    """Entry point: read the configuration from stdin and serve jobs."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s lungseg-worker %(levelname)s %(message)s")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        cfg = from_section(json.loads(sys.stdin.read()))
    except (ValueError, ConfigError) as exc:
        LOG.error("bad configuration on stdin: %s", exc)
        return 2
    serve(cfg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
