"""Awkward inputs through a real Orthanc: each ends processed or rejected with its reason, and a
rejection leaves no SEG or SR behind."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pydicom
import pytest
from e2e_support import DEMO_SERIES, send
from pydicom import uid

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import input_variants as variants  # noqa: E402

from orthanc_plugin.results import find_series, wait_for_job  # noqa: E402

pytestmark = pytest.mark.integration

REJECTED = {
    "raw-no-rescale": "RescaleSlope/RescaleIntercept missing and the stored values are not HU",
    "multi-frame": "multi-frame CT is not supported: Legacy Converted Enhanced CT",
    "interleaved": "two acquisitions in one series: AcquisitionNumber 1 and 2",
}


@pytest.fixture(scope="module")
def inputs(orthanc, tmp_path_factory):
    """Send every variant, then wait for each job; return name -> (series UID, job)."""
    root = tmp_path_factory.mktemp("inputs")
    folders = {
        "jpeg-lossless-sv1": variants.compressed(DEMO_SERIES, root / "sv1", uid.JPEGLosslessSV1),
        "hu-no-rescale": variants.without_rescale(DEMO_SERIES, root / "hu", store_hu=True),
        "raw-no-rescale": variants.without_rescale(DEMO_SERIES, root / "raw", store_hu=False),
        "multi-frame": variants.multi_frame(DEMO_SERIES, root / "mf"),
        "interleaved": variants.interleaved_acquisitions(DEMO_SERIES, root / "two"),
    }
    client = orthanc.client()
    uids = {}
    for name, folder in folders.items():
        send(folder, orthanc.dicom_port)
        header = pydicom.dcmread(next(folder.glob("*.dcm")), stop_before_pixels=True)
        uids[name] = str(header.SeriesInstanceUID)
    jobs = {}
    for name, series_uid in uids.items():
        series_id = find_series(client, series_uid)
        assert series_id, f"{name}: the sent series is not in Orthanc"
        jobs[name] = (series_uid, wait_for_job(client, series_id, timeout_s=600))
    return jobs


def test_jpeg_lossless_sv1_series_is_processed(orthanc, inputs):
    series_uid, job = inputs["jpeg-lossless-sv1"]
    assert job["state"] == "done" and job["reason"] == "", job
    client = orthanc.client()
    [instance] = client.get_json(f"/series/{job['result']['sr_series']}/instances")
    tags = client.get_json(f"/instances/{instance['ID']}/tags?simplify")
    assert _evidence_series(tags) == {series_uid}
    source = client.get_json(f"/series/{find_series(client, series_uid)}/instances")
    syntax = client.request("GET", f"/instances/{source[0]['ID']}/metadata/TransferSyntax")
    assert syntax.decode() == uid.JPEGLosslessSV1


def test_hu_stored_without_rescale_is_processed_with_a_warning(orthanc, inputs):
    _, job = inputs["hu-no-rescale"]
    assert job["state"] == "done", job
    assert job["reason"].startswith("RescaleSlope/RescaleIntercept missing: the stored values "
                                    "were used as HU")
    assert job["result"]["warnings"] == [job["reason"]]
    client = orthanc.client()
    [instance] = client.get_json(f"/series/{job['result']['sr_series']}/instances")
    tags = client.get_json(f"/instances/{instance['ID']}/tags?simplify")
    assert tags["SeriesDescription"].endswith("HU assumed, no rescale")
    assert "HU-WITHOUT-RESCALE" in json.dumps(tags["ContentSequence"])


@pytest.mark.parametrize("name", sorted(REJECTED))
def test_rejected_with_reason_and_no_result(orthanc, inputs, name):
    series_uid, job = inputs[name]
    assert job["state"] == "rejected", job
    assert REJECTED[name] in job["reason"]
    assert job["result"] == {}
    assert f"{REJECTED[name]}" in orthanc.log()
    client = orthanc.client()
    study = client.get_json(f"/series/{find_series(client, series_uid)}/study")
    for series in client.get_json(f"/studies/{study['ID']}/series"):
        if series["MainDicomTags"].get("Modality") not in ("SEG", "SR"):
            continue
        [instance] = client.get_json(f"/series/{series['ID']}/instances")
        tags = client.get_json(f"/instances/{instance['ID']}/tags?simplify")
        assert series_uid not in _evidence_series(tags) | _seg_sources(tags)


def _evidence_series(tags: dict) -> set[str]:
    return {s["SeriesInstanceUID"]
            for study in tags.get("CurrentRequestedProcedureEvidenceSequence", [])
            for s in study["ReferencedSeriesSequence"]}


def _seg_sources(tags: dict) -> set[str]:
    return {s["SeriesInstanceUID"] for s in tags.get("ReferencedSeriesSequence", [])}
