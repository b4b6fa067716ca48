"""Helpers of the retraining tests: site copies of the demo series, readers' SEGs, STOW."""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
from pydicom.sr.codedict import codes

from pipeline.series import load_series_dir


def site_copy(src: Path, dst: Path, patient_id: str, patient_name: str, root: str) -> Path:
    """Copy a series as a new patient's study: new study, series and instance UIDs."""
    dst.mkdir(parents=True, exist_ok=True)
    for path in sorted(src.glob("*.dcm")):
        ds = pydicom.dcmread(path)
        ds.PatientID, ds.PatientName = patient_id, patient_name
        ds.StudyInstanceUID, ds.SeriesInstanceUID = f"{root}.1", f"{root}.2"
        ds.SOPInstanceUID = f"{root}.3.{int(ds.InstanceNumber)}"
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.save_as(dst / path.name)
    return dst


def ball(shape: tuple[int, ...], centre: tuple[int, int, int], radius: float) -> np.ndarray:
    """A ball (voxels, z counted 3x) in volume order, as the trainer tests' demo nodule."""
    z, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
    cz, cy, cx = centre
    return (z - cz) ** 2 * 9 + (y - cy) ** 2 + (x - cx) ** 2 <= radius**2


def reader_seg(folder: Path, mask: np.ndarray, label: str = "Lesion",
               manufacturer: str = "OHIF", uid: str | None = None) -> pydicom.Dataset:
    """A SEG as a viewer saves it: MANUAL segment, the viewer as manufacturer."""
    series = load_series_dir(folder)
    segment = hd.seg.SegmentDescription(
        segment_number=1, segment_label=label,
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=codes.SCT.Nodule,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL)
    return hd.seg.Segmentation(
        source_images=series.datasets, pixel_array=mask.astype(np.uint8),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[segment], series_instance_uid=uid or hd.UID(),
        series_number=300, sop_instance_uid=hd.UID(), instance_number=1,
        manufacturer=manufacturer, manufacturer_model_name="viewer",
        software_versions="3.13", device_serial_number="1", omit_empty_frames=False)


def stow(url: str, user: str, password: str, datasets: list[pydicom.Dataset]) -> None:
    """Store instances over DICOMweb STOW-RS, as OHIF does."""
    from dicomweb_client import DICOMwebClient
    from dicomweb_client.session_utils import create_session_from_user_pass

    client = DICOMwebClient(f"{url}/dicom-web",
                            session=create_session_from_user_pass(user, password))
    client.store_instances(datasets)
