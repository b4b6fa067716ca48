"""Run one job in the worker: export the series from Orthanc, validate, segment, store results."""

from __future__ import annotations

import calendar
import io
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pydicom

from orthanc_plugin.orthanc_http import OrthancClient, OrthancHttpError
from orthanc_plugin.triage import METADATA_NAME
from pipeline.errors import SeriesRejected
from pipeline.selection import DEFAULT_RULES, matches, series_attributes
from pipeline.series import multi_frame_reason

DOWNLOAD_THREADS = 4
"""Parallel instance downloads from Orthanc (its HTTP server answers them concurrently)."""


@dataclass
class Outcome:
    """What a job produced: final state, reason, timings (s) per stage, stored result."""

    state: str
    reason: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    result: dict[str, Any] = field(default_factory=dict)
    instance_count: int = 0
    model_version: str = ""
    last_update: float | None = None  # UNIX time of the series' last new instance


def parse_last_update(value: object) -> float | None:
    """Convert Orthanc's ``LastUpdate`` (``YYYYMMDDTHHMMSS``, UTC) to UNIX time; None if absent.

    Raises
    ------
    ValueError
        If ``value`` is a string in another format.
    """
    if not value:
        return None
    if not isinstance(value, str):
        raise ValueError(f"LastUpdate must be a string, got {value!r}")
    return calendar.timegm(time.strptime(value, "%Y%m%dT%H%M%S"))


@contextmanager
def _timed(timings: dict[str, float], stage: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[stage] = round(time.perf_counter() - start, 4)


LESION_FIELDS = ("label", "volume_mm3", "long_axis_mm", "short_axis_mm", "mean_hu", "min_hu",
                 "max_hu", "necrotic_fraction", "cavitary_fraction", "key_slice", "centroid_mm")


def lesion_summary(lesion: dict[str, Any]) -> dict[str, Any]:
    """Keep the measurement fields of ``Lesion.to_json()`` that the job store records."""
    return {k: lesion[k] for k in LESION_FIELDS if k in lesion}


def selection_rules(min_slices: int) -> dict[str, Any]:
    """Return the default selection rules with the configured minimum number of slices.

    Raises
    ------
    ValueError
        If ``min_slices`` < 2.
    """
    if not isinstance(min_slices, int) or min_slices < 2:
        raise ValueError(f"min_slices must be an integer >= 2, got {min_slices!r}")
    return {**DEFAULT_RULES, "NumberOfSlices": [min_slices, ">="]}


def export_series(client: OrthancClient, series_id: str) -> tuple[dict[str, Any], list[bytes]]:
    """Download a series' description and the DICOM file of each instance.

    The files come in ``DOWNLOAD_THREADS`` parallel requests, in the order of the
    series' instance list.

    Raises
    ------
    OrthancHttpError
        If Orthanc answers with an error.
    """
    info = client.get_json(f"/series/{series_id}")
    with ThreadPoolExecutor(max_workers=DOWNLOAD_THREADS) as pool:
        files = list(pool.map(
            lambda instance: client.request("GET", f"/instances/{instance}/file"),
            info["Instances"],
        ))
    return info, files


def check_selection(files: list[bytes], min_slices: int) -> None:
    """Apply the selection rules to the series' first header.

    A multi-frame CT is refused as such before the rules count its single instance as one
    slice.

    Raises
    ------
    SeriesRejected
        If the series is multi-frame or does not meet the rules (the message says which one).
    """
    if not files:
        raise SeriesRejected("the series has no instances")
    header = pydicom.dcmread(io.BytesIO(files[0]), stop_before_pixels=True)
    reason = multi_frame_reason(header)
    if reason:
        raise SeriesRejected(reason)
    ok, reason = matches(selection_rules(min_slices), series_attributes(header, len(files)))
    if not ok:
        raise SeriesRejected(reason)


class StoreFailed(RuntimeError):
    """Storing a result in Orthanc failed; what this attempt had stored was removed again.

    ``status`` is the HTTP status of the failed call (0: Orthanc unreachable).
    """

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status

    @property
    def transient(self) -> bool:
        """True when Orthanc could not be reached or was unavailable (worth trying again)."""
        return self.status in (0, 502, 503, 504)


def _dicom_bytes(ds: pydicom.Dataset) -> bytes:
    buf = io.BytesIO()
    pydicom.dcmwrite(buf, ds, enforce_file_format=True)
    return buf.getvalue()


def _delete_previous(client: OrthancClient, study_id: str, previous: dict[str, Any],
                     new_series_uids: set[str]) -> None:
    for key in ("seg_series", "sr_series"):
        if previous.get(key):
            client.delete(f"/series/{previous[key]}")
    for series in client.get_json(f"/studies/{study_id}/series"):
        if series.get("MainDicomTags", {}).get("SeriesInstanceUID") in new_series_uids:
            client.delete(f"/series/{series['ID']}")


def store_results(client: OrthancClient, study_id: str, outputs: list[pydicom.Dataset],
                  previous: dict[str, Any]) -> dict[str, Any]:
    """Replace the previous SEG/SR of the source series with ``outputs``.

    Parameters
    ----------
    client : OrthancClient
        Orthanc REST client.
    study_id : str
        Orthanc ID of the study (the results must land in it).
    outputs : list of pydicom.Dataset
        The new SEG (when lesions were found) and SR.
    previous : dict
        The last stored result of this series (``seg_series``/``sr_series`` Orthanc IDs).

    Returns
    -------
    dict
        ``{"seg_series": id or None, "sr_series": id, "seg_instance": ..., "sr_instance": ...}``.

    Raises
    ------
    OrthancHttpError
        If deleting the previous results fails.
    StoreFailed
        If Orthanc refuses or fails to store an output (e.g. its disk is full); the outputs
        this call had stored are deleted again, so no SEG stays without its SR.
    RuntimeError
        If Orthanc files an output outside ``study_id``.
    """
    _delete_previous(client, study_id, previous,
                     {str(ds.SeriesInstanceUID) for ds in outputs})
    stored: dict[str, Any] = {"seg_series": None, "seg_instance": None}
    for ds in outputs:
        try:
            answer = client.store_instance(_dicom_bytes(ds))
        except OrthancHttpError as exc:
            _remove_partial(client, stored)
            raise StoreFailed(f"storing the {ds.Modality} in Orthanc failed (HTTP {exc.status}: "
                              f"{exc.detail})", exc.status) from exc
        if answer.get("ParentStudy") != study_id:
            raise RuntimeError(f"{ds.Modality} was stored outside the source study")
        kind = "seg" if ds.Modality == "SEG" else "sr"
        stored[f"{kind}_series"] = answer["ParentSeries"]
        stored[f"{kind}_instance"] = answer["ID"]
    return stored


def _remove_partial(client: OrthancClient, stored: dict[str, Any]) -> None:
    for key in ("seg_series", "sr_series"):
        if stored.get(key):
            try:
                client.delete(f"/series/{stored[key]}")
            except OrthancHttpError:
                pass  # Orthanc gone meanwhile: the next attempt deletes it by its UID


def run_job(client: OrthancClient, segmenter: Any, pipeline_config: Any, series_id: str,
            previous: dict[str, Any]) -> Outcome:
    """Process one series end to end and store the results in Orthanc.

    Parameters
    ----------
    client : OrthancClient
        Orthanc REST client (internal worker user).
    segmenter : pipeline.run.Segmenter
        Loaded once per worker.
    pipeline_config : pipeline.run.PipelineConfig
        Pipeline settings (``min_slices`` is used for selection).
    series_id : str
        Orthanc ID of the source series.
    previous : dict
        The series' last stored result (to replace).

    Returns
    -------
    Outcome
        ``done`` (its reason lists the input warnings, e.g. HU assumed without a rescale;
        ``result["warnings"]`` holds them one by one) or ``rejected`` (with the reason).

    Raises
    ------
    OrthancHttpError
        On REST failures (the caller records the job as failed).
    """
    from pipeline.run import process_series

    timings: dict[str, float] = {}
    with _timed(timings, "export"):
        info, files = export_series(client, series_id)
    count, version = len(files), str(segmenter.version)
    last_update = parse_last_update(info.get("LastUpdate"))
    try:
        with _timed(timings, "select"):
            check_selection(files, pipeline_config.min_slices)
        result = process_series(files, segmenter, pipeline_config)
    except SeriesRejected as exc:
        return Outcome("rejected", str(exc), timings, {}, count, version, last_update)
    timings.update({("pipeline" if k == "total" else k): round(float(v), 4)
                    for k, v in result.timings.items()})
    outputs = [ds for ds in (result.seg, result.sr) if ds is not None]
    with _timed(timings, "store"):
        stored = store_results(client, info["ParentStudy"], outputs, previous)
        marker = {"model_version": version, "instances": count, "lesions": len(result.lesions)}
        client.put_metadata("series", series_id, METADATA_NAME, json.dumps(marker))
    warnings = list(result.series.warnings) if result.series is not None else []
    stored.update(lesions=[lesion_summary(lesion.to_json()) for lesion in result.lesions],
                  segmenter=segmenter.name, warnings=warnings)
    return Outcome("done", "; ".join(warnings), timings, stored, count, version, last_update)
