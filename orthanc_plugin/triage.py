"""Decide, cheaply and on Orthanc's thread, whether a stored series becomes a job.

Only main DICOM tags and the instance count are read (one REST call inside Orthanc); the full
validation (image type, geometry, slice count) happens in the worker process.
"""

from __future__ import annotations

import json
from typing import Any

from orthanc_plugin.jobstore import FINAL_STATES, Job, JobStore

METADATA_NAME = "LungSegResult"
METADATA_INDEX = 1024
# Derived objects that are never inputs (our own SEG/SR among them): ignored without a job.
MAX_ATTEMPTS = 3
"""A failed job is retried by the start-up scan until it has run this often."""
DERIVED_MODALITIES = frozenset({"SEG", "SR", "KO", "PR", "RTSTRUCT", "RTPLAN", "RTDOSE", "REG"})


def series_summary(api: Any, series_id: str) -> tuple[str, int]:
    """Return (Modality, number of instances) of an Orthanc series.

    Parameters
    ----------
    api : module or adapter
        The ``orthanc`` module (``RestApiGet``).
    series_id : str
        Orthanc ID of the series.

    Raises
    ------
    ValueError
        If ``series_id`` is empty.
    api.OrthancException
        If the series does not exist.
    """
    if not isinstance(series_id, str) or not series_id:
        raise ValueError(f"series_id must be a non-empty string, got {series_id!r}")
    info = json.loads(api.RestApiGet(f"/series/{series_id}"))
    modality = str(info.get("MainDicomTags", {}).get("Modality", "")).strip().upper()
    return modality, len(info.get("Instances", []))


def processed_count(api: Any, series_id: str) -> int | None:
    """Return the instance count recorded in the series' result marker, or None without one."""
    try:
        text = api.RestApiGet(f"/series/{series_id}/metadata/{METADATA_NAME}")
    except api.OrthancException:
        return None
    try:
        return int(json.loads(text)["instances"])
    except (ValueError, KeyError, TypeError):
        return None


def _already_handled(api: Any, job: Job | None, series_id: str, count: int,
                     trigger: str) -> bool:
    # A result counts only while its marker is on the series: a series deleted and sent again
    # (marker gone with it) is processed again.
    if job is not None and job.state == "failed" and trigger == "startup-scan":
        return job.attempts >= MAX_ATTEMPTS  # e.g. Orthanc stopped during the job: retry
    if job is not None and job.state != "done":
        return job.state in FINAL_STATES and job.instance_count == count
    return processed_count(api, series_id) == count


def triage(api: Any, store: JobStore, series_id: str, trigger: str,
           force: bool = False) -> Job | None:
    """Queue a CT series, reject another modality, ignore derived objects and finished work.

    A series processed (or rejected) with the same number of instances is not queued again
    unless ``force``; one that has grown since is. The start-up scan also retries failed jobs
    (up to ``MAX_ATTEMPTS`` runs).

    Parameters
    ----------
    api : module or adapter
        The ``orthanc`` module.
    store : JobStore
        Job store.
    series_id : str
        Orthanc ID of the series.
    trigger : str
        What caused the call (``stable``, ``startup-scan``, ``rest``), recorded with the job.
    force : bool
        Queue even when the series was already handled.

    Returns
    -------
    Job or None
        The job as recorded, or None when nothing was recorded.

    Raises
    ------
    ValueError
        If ``series_id`` is empty.
    api.OrthancException
        If the series does not exist.
    """
    modality, count = series_summary(api, series_id)
    if modality in DERIVED_MODALITIES:
        return None
    job = store.get(series_id)
    if not force and _already_handled(api, job, series_id, count, trigger):
        return None
    if modality != "CT":
        return store.reject(series_id, f"Modality is {modality or 'missing'!r}, not 'CT'",
                            count, trigger)
    return store.enqueue(series_id, count, trigger)


def scan_ct_series(api: Any, store: JobStore) -> int:
    """Queue every CT series that has no finished result for its current size; return how many.

    Raises
    ------
    api.OrthancException
        If Orthanc's REST API fails.
    """
    query = json.dumps({"Level": "Series", "Query": {"Modality": "CT"}})
    queued = 0
    for series_id in json.loads(api.RestApiPost("/tools/find", query)):
        try:
            job = triage(api, store, series_id, "startup-scan")
        except api.OrthancException:
            continue  # deleted meanwhile
        queued += job is not None and job.state == "queued"
    return queued
