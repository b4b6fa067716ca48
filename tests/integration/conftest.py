"""Fixtures: a real Orthanc with the lungseg plugin on free ports, auth on, temp data dir."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pydicom
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from e2e_support import Processed, dicom_only, require_orthanc, send, series_dir  # noqa: E402

from orthanc_plugin.local_server import OrthancServer  # noqa: E402
from orthanc_plugin.results import find_series, wait_for_job  # noqa: E402


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory):
    require_orthanc()
    server = OrthancServer(tmp_path_factory.mktemp("orthanc"), stable_age=2,
                           extra_env={"LUNGSEG_SEGMENTER": os.environ.get(
                               "LUNGSEG_TEST_SEGMENTER", "auto")})
    server.start()
    yield server
    server.stop()
    log = server.log()
    if "Traceback" in log:
        print("\northanc.log tracebacks:\n" + log[log.index("Traceback"):][:4000])


@pytest.fixture(scope="session")
def processed(orthanc, tmp_path_factory) -> Processed:
    folder = dicom_only(series_dir(), tmp_path_factory.mktemp("series"))
    first = pydicom.dcmread(next(folder.glob("*.dcm")), stop_before_pixels=True)
    sent_at = send(folder, orthanc.dicom_port)
    client = orthanc.client()
    series_id = find_series(client, first.SeriesInstanceUID)
    assert series_id, "the sent series is not in Orthanc"
    job = wait_for_job(client, series_id, timeout_s=600)
    assert job["state"] == "done", f"job not done: {job}"
    return Processed(folder, first.SeriesInstanceUID, first.StudyInstanceUID, series_id, job,
                     sent_at)


