"""Helpers of the integration tests: data paths, sending, the Orthanc requirement."""

from __future__ import annotations

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
