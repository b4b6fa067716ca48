"""Fixtures of the browser test: Orthanc with the plugin, the processed LIDC-IDRI-0001 study,
the OHIF viewer behind nginx over HTTPS with a self-signed certificate (deploy/start-viewer.sh)
and one headless Chromium run over it."""

from __future__ import annotations

import io
import json
import os
import ssl
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "integration"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from e2e_support import (  # noqa: E402
    dicom_only,
    require_orthanc,
    require_viewer,
    self_signed_certificate,
    send,
    series_dir,
)
from ohif_support import StudyInViewer, require_browser_tools  # noqa: E402

from orthanc_plugin.local_server import OrthancServer, free_port  # noqa: E402
from orthanc_plugin.orthanc_http import OrthancClient  # noqa: E402
from orthanc_plugin.results import find_series, wait_for_job  # noqa: E402


def _download_series(client: OrthancClient, series_uid: str) -> pydicom.Dataset:
    series_id = find_series(client, series_uid)
    assert series_id, f"series {series_uid} not found in Orthanc"
    instances = client.get_json(f"/series/{series_id}/instances")
    assert len(instances) == 1, f"expected one instance in {series_uid}, got {len(instances)}"
    raw = client.request("GET", f"/instances/{instances[0]['ID']}/file")
    return pydicom.dcmread(io.BytesIO(raw))


def _qido_series(viewer: dict, user: str, password: str, study_uid: str) -> dict[str, str]:
    """SeriesInstanceUID by modality, queried through nginx's /dicom-web."""
    proxied = OrthancClient(viewer["url"], user, password, ssl_context=viewer["ssl"])
    found = json.loads(proxied.request("GET", f"/dicom-web/studies/{study_uid}/series"))
    return {s["00080060"]["Value"][0]: s["0020000E"]["Value"][0] for s in found}


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory):
    require_orthanc()
    require_browser_tools()
    require_viewer()
    segmenter = os.environ.get("LUNGSEG_TEST_SEGMENTER", "threshold")
    server = OrthancServer(tmp_path_factory.mktemp("orthanc-browser"), stable_age=2,
                           extra_env={"LUNGSEG_SEGMENTER": segmenter})
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def viewer(orthanc, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("viewer")
    cert, key = self_signed_certificate(data_dir)
    env = {**os.environ, "LUNGSEG_VIEWER_PORT": str(free_port()),
           "LUNGSEG_HTTP_PORT": str(orthanc.http_port), "LUNGSEG_DATA_DIR": str(data_dir),
           "LUNGSEG_TLS_CERT": str(cert), "LUNGSEG_TLS_KEY": str(key)}
    proc = subprocess.run([str(REPO / "deploy" / "start-viewer.sh")], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"start-viewer.sh failed:\n{proc.stdout}\n{proc.stderr}"
    yield {"url": f"https://127.0.0.1:{env['LUNGSEG_VIEWER_PORT']}", "env": env,
           "ssl": ssl.create_default_context(cafile=str(cert))}
    subprocess.run([str(REPO / "deploy" / "stop-viewer.sh")], env=env, check=True,
                   capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def study(orthanc, viewer, tmp_path_factory) -> StudyInViewer:
    folder = dicom_only(series_dir(), tmp_path_factory.mktemp("series"))
    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in sorted(folder.glob("*.dcm"))]
    first = headers[0]
    send(folder, orthanc.dicom_port)
    client = orthanc.client()
    series_id = find_series(client, first.SeriesInstanceUID)
    assert series_id, "the sent series is not in Orthanc"
    job = wait_for_job(client, series_id, timeout_s=600)
    assert job["state"] == "done", f"job not done: {job}"
    by_modality = _qido_series(viewer, orthanc.user, orthanc.password,
                               first.StudyInstanceUID)
    assert {"CT", "SEG", "SR"} <= set(by_modality), f"series in the study: {by_modality}"
    return StudyInViewer(
        viewer_url=viewer["url"], user=orthanc.user, password=orthanc.password,
        study_uid=first.StudyInstanceUID,
        ct_headers={int(h.InstanceNumber): h for h in headers},
        seg=_download_series(client, by_modality["SEG"]),
        sr=_download_series(client, by_modality["SR"]),
    )
