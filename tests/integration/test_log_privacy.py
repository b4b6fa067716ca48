"""No patient name, ID or birth date reaches Orthanc's log or the worker's (its stderr goes to
the same file) while series with real-looking identities are processed and rejected."""

from __future__ import annotations

import sys
from pathlib import Path

import pydicom
import pytest
from e2e_support import DEMO_SERIES, send

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import input_variants as variants  # noqa: E402

from orthanc_plugin.results import find_series, wait_for_job  # noqa: E402

pytestmark = pytest.mark.integration

PATIENTS = {
    "processed": ("Wojciechowska^Henrietta^Marguerite", "MRN-4417-2093-X", "19470316"),
    "rejected": ("Abernathy-Quist^Leopold", "PID88120457", "19520729"),
}


def _identities(name: str, patient_id: str, birth_date: str) -> list[str]:
    family, given, *_ = name.split("^") + [""]
    return [name, family, given, patient_id, birth_date,
            f"{birth_date[:4]}-{birth_date[4:6]}-{birth_date[6:]}"]


def test_no_patient_identity_in_any_log(orthanc, tmp_path):
    client = orthanc.client()
    folders = {
        "processed": variants.retag_patient(DEMO_SERIES, tmp_path / "p", *PATIENTS["processed"]),
        "rejected": variants.retag_patient(
            variants.without_rescale(DEMO_SERIES, tmp_path / "raw", store_hu=False),
            tmp_path / "r", *PATIENTS["rejected"]),
    }
    states = {}
    for kind, folder in folders.items():
        send(folder, orthanc.dicom_port)
        header = pydicom.dcmread(next(folder.glob("*.dcm")), stop_before_pixels=True)
        assert str(header.PatientName) == PATIENTS[kind][0]
        series_id = find_series(client, header.SeriesInstanceUID)
        states[kind] = wait_for_job(client, series_id, timeout_s=600)["state"]
    assert states == {"processed": "done", "rejected": "rejected"}
    logs = {path.name: path.read_text(errors="replace")
            for path in orthanc.data_dir.rglob("*.log")}
    assert "orthanc.log" in logs and "lungseg-worker INFO series" in logs["orthanc.log"]
    for kind, identity in PATIENTS.items():
        for text in _identities(*identity):
            for name, log in logs.items():
                assert text.lower() not in log.lower(), f"{kind} patient's {text!r} in {name}"
