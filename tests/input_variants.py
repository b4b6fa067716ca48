"""Awkward inputs made from a real CT series: other transfer syntaxes, no rescale, multi-frame,
two interleaved acquisitions. Used by the pipeline and the integration tests.

Each builder reads the ``*.dcm`` files of ``src`` and writes a new series into ``dst`` with new
Study, Series and SOP Instance UIDs (same patient), so that Orthanc files it as a study of its
own and the source's study keeps its series.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom import uid

DCMTK_ENCODERS = {
    uid.JPEGLosslessSV1: ["dcmcjpeg", "+e1"],
    uid.JPEGLossless: ["dcmcjpeg", "+el"],
}
"""Syntaxes pydicom cannot encode: JPEG Lossless (Process 14, and its Selection Value 1)."""


def require_tool(name: str) -> str:
    """Return the path of a command-line tool; skip without it (fail on CI)."""
    path = shutil.which(name)
    if path is None:
        msg = f"{name} (Debian package dcmtk) is not installed: deploy/install.sh installs it"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(msg + " (CI=true)", pytrace=False)
        pytest.skip(msg)
    return path


def read_series(src: Path) -> list[pydicom.Dataset]:
    """Read the ``*.dcm`` files of ``src`` sorted by InstanceNumber."""
    return sorted((pydicom.dcmread(p) for p in sorted(src.glob("*.dcm"))),
                  key=lambda ds: int(ds.InstanceNumber))


def renew_uids(datasets: list[pydicom.Dataset]) -> list[pydicom.Dataset]:
    """Give the datasets a new Study and SeriesInstanceUID and new SOPInstanceUIDs (in place)."""
    study_uid, series_uid = uid.generate_uid(), uid.generate_uid()
    for ds in datasets:
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.SOPInstanceUID = uid.generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return datasets


def write(datasets: list[pydicom.Dataset], dst: Path) -> Path:
    """Write each dataset as ``dst/NNNN.dcm``; return ``dst``."""
    dst.mkdir(parents=True, exist_ok=True)
    for k, ds in enumerate(datasets):
        ds.save_as(dst / f"{k + 1:04d}.dcm", enforce_file_format=True)
    return dst


def compressed(src: Path, dst: Path, syntax: str) -> Path:
    """Write ``src`` as a new series in ``syntax`` (dcmtk for JPEG Lossless, else pydicom).

    Skips (fails on CI) when the JPEG Lossless encoder ``dcmcjpeg`` is missing.
    """
    syntax = uid.UID(syntax)
    datasets = renew_uids(read_series(src))
    if syntax in DCMTK_ENCODERS:
        tool, flag = DCMTK_ENCODERS[syntax]
        plain = write(datasets, dst.with_name(dst.name + "-plain"))
        dst.mkdir(parents=True, exist_ok=True)
        for path in sorted(plain.glob("*.dcm")):
            subprocess.run([require_tool(tool), flag, str(path), str(dst / path.name)],
                           check=True, capture_output=True, timeout=60)
        shutil.rmtree(plain)
        return dst
    for ds in datasets:
        if syntax.is_compressed:
            ds.compress(syntax)
        else:
            ds.file_meta.TransferSyntaxUID = syntax
    return write(datasets, dst)


def without_rescale(src: Path, dst: Path, store_hu: bool) -> Path:
    """Write ``src`` without RescaleSlope/RescaleIntercept (and RescaleType).

    With ``store_hu`` the pixels are first rewritten to HU (signed 16 bit), so that the stored
    values are HU; without it the stored values stay as they are (for LIDC: air about 0).
    """
    datasets = renew_uids(read_series(src))
    for ds in datasets:
        if store_hu:
            hu = ds.pixel_array.astype(np.int32) * int(ds.RescaleSlope) + int(ds.RescaleIntercept)
            ds.PixelRepresentation = 1
            ds.BitsAllocated = ds.BitsStored = 16
            ds.HighBit = 15
            ds.PixelData = hu.astype(np.int16).tobytes()
            for key in ("SmallestImagePixelValue", "LargestImagePixelValue", "PixelPaddingValue"):
                if key in ds:
                    del ds[key]
        for key in ("RescaleSlope", "RescaleIntercept", "RescaleType"):
            if key in ds:
                del ds[key]
    return write(datasets, dst)


def interleaved_acquisitions(src: Path, dst: Path, offset_mm: float = 1.0) -> Path:
    """Write ``src`` twice into one series: AcquisitionNumber 1 as it is, AcquisitionNumber 2
    moved ``offset_mm`` along the patient's z axis (a second scan of the same range)."""
    first = renew_uids(read_series(src))
    second = [pydicom.dcmread(p) for p in sorted(src.glob("*.dcm"))]
    for ds in first:
        ds.AcquisitionNumber = 1
    for ds in second:
        ds.StudyInstanceUID = first[0].StudyInstanceUID
        ds.SeriesInstanceUID = first[0].SeriesInstanceUID
        ds.SOPInstanceUID = uid.generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.AcquisitionNumber = 2
        x, y, z = (float(v) for v in ds.ImagePositionPatient)
        ds.ImagePositionPatient = [x, y, z + offset_mm]
        ds.InstanceNumber = int(ds.InstanceNumber) + 1000
    return write(first + second, dst)


def multi_frame(src: Path, dst: Path) -> Path:
    """Write ``src`` as one Legacy Converted Enhanced CT instance (highdicom's converter)."""
    import highdicom as hd

    datasets = renew_uids(read_series(src))
    image = hd.legacy.LegacyConvertedEnhancedCTImage(
        legacy_datasets=datasets, series_instance_uid=uid.generate_uid(), series_number=98,
        sop_instance_uid=uid.generate_uid(), instance_number=1,
    )
    dst.mkdir(parents=True, exist_ok=True)
    image.save_as(dst / "0001.dcm", enforce_file_format=True)
    return dst


def retag_patient(src: Path, dst: Path, name: str, patient_id: str, birth_date: str) -> Path:
    """Write ``src`` as a new series whose PatientName, PatientID and PatientBirthDate are set."""
    datasets = renew_uids(read_series(src))
    for ds in datasets:
        ds.PatientName = name
        ds.PatientID = patient_id
        ds.PatientBirthDate = birth_date
    return write(datasets, dst)
