"""REST routes under ``/lungseg`` (registered by the plugin; behind Orthanc's HTTP auth).

- ``GET /lungseg/status``: the worker process: state, pid, starts, why it stopped.
- ``GET /lungseg/jobs``: every job (``?limit=N``, default 1000), and the worker's status.
- ``GET /lungseg/series/{id}``: one series' job: state, reason, timings per stage.
- ``POST /lungseg/series/{id}/run``: queue the series again, even if already processed.
- ``GET /lungseg/model``: the model registry's active version and its recent history.
"""

from __future__ import annotations

import functools
import inspect
import json
import sqlite3
from collections.abc import Callable
from typing import Any

from orthanc_plugin.jobstore import JobStore
from orthanc_plugin.triage import triage

STATUS_ROUTE = "/lungseg/status"
JOBS_ROUTE = "/lungseg/jobs"
SERIES_ROUTE = "/lungseg/series/([0-9a-fA-F-]+)"
RUN_ROUTE = "/lungseg/series/([0-9a-fA-F-]+)/run"
MODEL_ROUTE = "/lungseg/model"
JSON = "application/json"


def _answer(output: Any, status: int, payload: object) -> None:
    body = json.dumps(payload, indent=1)  # ASCII: json.dumps escapes the rest
    if status == 200:
        output.AnswerBuffer(body, JSON)
    else:
        output.SendHttpStatus(status, body, len(body))  # orthanc-python wants (int, str, int)


def _store_errors_answered(route: Callable[..., None]) -> Callable[..., None]:
    """Answer 503 with the reason when the job store cannot be used (e.g. its disk is full)."""
    signature = inspect.signature(route)

    @functools.wraps(route)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            route(*args, **kwargs)
        except sqlite3.Error as exc:
            output = signature.bind_partial(*args, **kwargs).arguments["output"]
            _answer(output, 503, {"error": f"the lungseg job store cannot be used: {exc}"})

    return wrapper


def _method_ok(output: Any, request: dict[str, Any], allowed: str) -> bool:
    if request.get("method") != allowed:
        output.SendMethodNotAllowed(allowed)
        return False
    return True


@_store_errors_answered
def get_jobs(store: JobStore, output: Any, uri: str, *, worker: Any = None,
             **request: Any) -> None:
    """Answer ``GET /lungseg/jobs`` with ``{"jobs": [...], "worker": {...}}``.

    ``worker`` (a :class:`~orthanc_plugin.supervisor.WorkerSupervisor`) adds its status (see
    :func:`get_status`); a bad ``limit`` gives 400.
    """
    if not _method_ok(output, request, "GET"):
        return
    raw = (request.get("get") or {}).get("limit", "1000")
    try:
        limit = int(raw)
        jobs = store.list(limit)
    except ValueError:
        _answer(output, 400, {"error": f"limit must be a positive integer, got {raw!r}"})
        return
    payload: dict[str, Any] = {"jobs": [j.to_json() for j in jobs]}
    if worker is not None:
        payload["worker"] = worker.status()
    _answer(output, 200, payload)


@_store_errors_answered
def get_status(worker: Any, store: JobStore, output: Any, uri: str, **request: Any) -> None:
    """Answer ``GET /lungseg/status`` with the worker's status and the jobs per state.

    ``worker`` is ``{"state", "pid", "running", "starts", "failed_starts", "reason"}`` from
    :meth:`~orthanc_plugin.supervisor.WorkerSupervisor.status`: e.g. ``stopped`` with the
    reason when the model file is missing.
    """
    if not _method_ok(output, request, "GET"):
        return
    _answer(output, 200, {"worker": worker.status(), "jobs": store.counts()})


def get_model(registry: Any, output: Any, uri: str, **request: Any) -> None:
    """Answer ``GET /lungseg/model`` with the registry's active version.

    The answer holds ``registry``, ``active`` (null: the configured model runs) and the last
    ten ``history`` events; 500 with the reason when the pointer is broken.
    """
    from pipeline import registry as reg

    if not _method_ok(output, request, "GET"):
        return
    try:
        active = reg.active_version(registry)
    except ValueError as exc:
        _answer(output, 500, {"error": str(exc), "registry": str(registry)})
        return
    _answer(output, 200, {"registry": str(registry), "active": active,
                          "history": reg.history(registry)[-10:]})


@_store_errors_answered
def get_series(store: JobStore, output: Any, uri: str, **request: Any) -> None:
    """Answer ``GET /lungseg/series/{id}`` with the job, or 404 when the series has none."""
    if not _method_ok(output, request, "GET"):
        return
    series_id = request["groups"][0]
    job = store.get(series_id)
    if job is None:
        _answer(output, 404, {"error": "no lungseg job for this series", "series": series_id})
        return
    _answer(output, 200, job.to_json())


@_store_errors_answered
def post_run(api: Any, store: JobStore, output: Any, uri: str, **request: Any) -> None:
    """Answer ``POST /lungseg/series/{id}/run``: queue the series; 404 when Orthanc lacks it."""
    if not _method_ok(output, request, "POST"):
        return
    series_id = request["groups"][0]
    try:
        job = triage(api, store, series_id, "rest", force=True)
    except api.OrthancException:
        _answer(output, 404, {"error": "unknown series", "series": series_id})
        return
    if job is None:
        _answer(output, 400, {"error": "derived object (SEG/SR/...), not an input series",
                              "series": series_id})
        return
    _answer(output, 200, job.to_json())
