"""Helpers of the integration tests: data paths, sending, the Orthanc requirement."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pydicom
import pytest

from orthanc_plugin.local_server import ORTHANC_BIN, REPO
from orthanc_plugin.orthanc_http import OrthancHttpError

SHARED = REPO.parent / "shared" / "data" / "lidc-series"
FULL_SERIES = sorted(SHARED.glob("LIDC-IDRI-0001/*/*/"))
DEMO_SERIES = REPO / "demo" / "LIDC-IDRI-0001"
CONSENSUS = SHARED / "reference-masks" / "LIDC-IDRI-0001_consensus50.nii.gz"
LUNGSEG = Path(sys.executable).parent / "lungseg"


def _ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_orthanc() -> None:
    """Skip without Orthanc locally; fail loudly on CI, where it must be installed."""
    missing = [p for p in (ORTHANC_BIN, Path("/usr/share/orthanc/plugins/libOrthancPython.so"),
                           Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so"))
               if not p.exists()]
    if missing:
        msg = f"Orthanc not installed ({', '.join(map(str, missing))}): run deploy/install.sh"
        if _ci():
            pytest.fail(msg + " (CI=true: integration tests must run)", pytrace=False)
        pytest.skip(msg)


def series_dir() -> Path:
    """The series to send: $LUNGSEG_TEST_SERIES if set, else the full 133-slice LIDC-IDRI-0001
    series when ../shared/data has it, else the demo subset."""
    if os.environ.get("LUNGSEG_TEST_SERIES"):
        return Path(os.environ["LUNGSEG_TEST_SERIES"])
    return FULL_SERIES[0] if FULL_SERIES else DEMO_SERIES


def dicom_only(folder: Path, dst: Path) -> Path:
    """Link the ``*.dcm`` files of ``folder`` into ``dst`` (the LIDC folder also has the XML)."""
    for path in sorted(folder.glob("*.dcm")):
        (dst / path.name).symlink_to(path.resolve())
    return dst


def send(path: Path, port: int) -> float:
    """Send a folder with ``lungseg send``; return the time the last C-STORE ended."""
    proc = subprocess.run([str(LUNGSEG), "send", str(path), "--host", "127.0.0.1",
                           "--port", str(port)], capture_output=True, text=True, timeout=300)
    end = time.time()
    assert proc.returncode == 0, f"lungseg send failed:\n{proc.stdout}\n{proc.stderr}"
    return end


@dataclass
class Processed:
    """A series sent to Orthanc and processed by the plugin."""

    folder: Path
    series_uid: str
    study_uid: str
    series_id: str
    job: dict
    sent_at: float


def copy_as_new_series(src: Path, dst: Path, count: int, uid_root: str,
                       modality: str = "CT") -> Path:
    """Copy the first ``count`` slices (by InstanceNumber) of ``src`` into ``dst`` as a new
    series: new series/instance UIDs, same study."""
    dst.mkdir(parents=True, exist_ok=True)
    datasets = sorted((pydicom.dcmread(p) for p in src.glob("*.dcm")),
                      key=lambda d: int(d.InstanceNumber))
    for k, ds in enumerate(datasets[:count]):
        ds.SeriesInstanceUID = f"{uid_root}.1"
        ds.SOPInstanceUID = f"{uid_root}.2.{k + 1}"
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.Modality = modality
        ds.SeriesNumber = 77
        ds.save_as(dst / f"{int(ds.InstanceNumber):04d}.dcm")
    return dst


def clean_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def sorted_slices(folder: Path) -> list[pydicom.Dataset]:
    """Read the ``*.dcm`` files of a folder, ordered by InstanceNumber."""
    return sorted((pydicom.dcmread(p) for p in folder.glob("*.dcm")),
                  key=lambda d: int(d.InstanceNumber))


def write_as_new_study(datasets: list[pydicom.Dataset], dst: Path, uid_root: str) -> Path:
    """Write ``datasets`` into ``dst`` as one series of a new study (new study, series and
    instance UIDs; pixels, positions and instance numbers kept)."""
    dst.mkdir(parents=True, exist_ok=True)
    for ds in datasets:
        ds.StudyInstanceUID = f"{uid_root}.1"
        ds.SeriesInstanceUID = f"{uid_root}.2"
        ds.SOPInstanceUID = f"{uid_root}.3.{int(ds.InstanceNumber)}"
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.save_as(dst / f"{int(ds.InstanceNumber):05d}.dcm")
    return dst


def stacked_series(src: Path, dst: Path, uid_root: str, count: int) -> Path:
    """Build a ``count``-slice series from the real slices of ``src``: the slices are used
    forwards, backwards, forwards... (so neighbours stay neighbours) and placed one slice
    spacing apart along the patient axis, with consecutive instance numbers."""
    slices = sorted_slices(src)
    zs = [float(d.ImagePositionPatient[2]) for d in slices]
    step = (zs[-1] - zs[0]) / (len(zs) - 1)
    order = list(range(len(slices))) + list(range(len(slices) - 2, 0, -1))
    for k in range(count):
        ds = slices[order[k % len(order)]].copy()
        ds.InstanceNumber = k + 1
        x, y, _ = (float(v) for v in ds.ImagePositionPatient)
        ds.ImagePositionPatient = [x, y, round(zs[0] + k * step, 4)]
        if "SliceLocation" in ds:
            ds.SliceLocation = round(zs[0] + k * step, 4)
        write_as_new_study([ds], dst, uid_root)
    return dst


def study_results(client, study_uid: str) -> dict[str, list[dict]]:
    """Series of a study by modality (``/studies/{id}/series`` entries)."""
    [study_id] = [h["ID"] for h in json.loads(client.request(
        "POST", "/tools/lookup", study_uid.encode(), "text/plain")) if h["Type"] == "Study"]
    by_modality: dict[str, list[dict]] = {}
    for series in client.get_json(f"/studies/{study_id}/series"):
        by_modality.setdefault(series["MainDicomTags"]["Modality"], []).append(series)
    return by_modality


def assert_one_seg_and_one_sr(client, study_uid: str, job: dict) -> None:
    """The study holds exactly one SEG and one SR series, one instance each, as the job
    recorded them."""
    found = study_results(client, study_uid)
    assert len(found.get("SEG", [])) == 1 and len(found.get("SR", [])) == 1, {
        m: len(s) for m, s in found.items()}
    for kind in ("SEG", "SR"):
        [series] = found[kind]
        assert len(series["Instances"]) == 1, f"{kind}: {len(series['Instances'])} instances"
        assert series["ID"] == job["result"][f"{kind.lower()}_series"], kind


def wait_for_state(client, series_id: str, states: tuple[str, ...], timeout_s: float,
                   poll_s: float = 0.05) -> dict:
    """Poll ``/lungseg/series/{id}`` until the job is in one of ``states``; return it."""
    deadline = time.monotonic() + timeout_s
    job: dict = {}
    while time.monotonic() < deadline:
        try:
            job = client.get_json(f"/lungseg/series/{series_id}")
        except OrthancHttpError as exc:
            if exc.status != 404:
                raise
        if job.get("state") in states:
            return job
        time.sleep(poll_s)
    raise TimeoutError(f"series {series_id}: not {states} within {timeout_s:g} s "
                       f"(last {job.get('state')!r} {job.get('reason', '')!r})")


NGINX = Path("/usr/sbin/nginx")
OHIF_INDEX = REPO / "deploy" / "ohif" / "app" / "index.html"


def require_viewer() -> None:
    """Skip without nginx, openssl or the OHIF app locally; fail on CI, where they must be."""
    missing = [str(p) for p in (NGINX, OHIF_INDEX) if not p.exists()]
    if shutil.which("openssl") is None:
        missing.append("openssl")
    if missing:
        msg = (f"viewer tools missing ({', '.join(missing)}): run deploy/install.sh and "
               "deploy/install-viewer.sh")
        if _ci():
            pytest.fail(msg + " (CI=true: the viewer tests must run)", pytrace=False)
        pytest.skip(msg)


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """Make a self-signed certificate for localhost and 127.0.0.1 with openssl; return
    (certificate, key). The certificate is also its own certificate authority."""
    cert, key = folder / "viewer-cert.pem", folder / "viewer-key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=localhost", "-addext",
                    "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert, key
