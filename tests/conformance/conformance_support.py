"""Helpers of the conformance tests: data paths, dciodvfy, SEG frame geometry and masks."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "data"
FULL_SERIES = sorted((SHARED / "lidc-series").glob("LIDC-IDRI-0001/*/*/"))
DEMO_SERIES = REPO / "demo" / "LIDC-IDRI-0001"
REFERENCE_SEG = (SHARED / "dicom-reference" / "lidc-0001-seg-qiicr" / "dcm_segmentation"
                 / "nodule_01_annotation_0.dcm")
DCIODVFY = shutil.which("dciodvfy")

KNOWN_WARNINGS = {
    r"Missing attribute or value that would be needed to build DICOMDIR - Study (Time|ID)$":
        "StudyTime and StudyID are empty in the source CT (LIDC de-identification); the study "
        "module is copied from it, as the same study must be referenced.",
    r"Unrecognized defined term <99LUNGSEG> for value 1 of attribute <Coding Scheme Designator>$":
        "our private coding scheme for the necrotic/cavitary fractions and the lesion count, "
        "declared in CodingSchemeIdentificationSequence; dciodvfy knows only standard schemes.",
}
"""dciodvfy warnings that our objects may carry, with the reason (also in docs/conformance.md)."""


def series_dir() -> Path:
    """The full LIDC-IDRI-0001 series when ../shared/data has it, else the demo subset."""
    return FULL_SERIES[0] if FULL_SERIES else DEMO_SERIES


@dataclass
class Verification:
    """dciodvfy's verdict on one file."""

    errors: list[str]
    warnings: list[str]
    output: str

    def unexplained_warnings(self) -> list[str]:
        """Warnings that match none of ``KNOWN_WARNINGS``."""
        return [w for w in self.warnings
                if not any(re.search(p, w) for p in KNOWN_WARNINGS)]


def dciodvfy(ds: pydicom.Dataset, folder: Path, name: str) -> Verification:
    """Write ``ds`` to ``folder/name`` and verify it with dciodvfy (dicom3tools)."""
    path = folder / name
    ds.save_as(path, enforce_file_format=True)
    proc = subprocess.run([DCIODVFY, str(path)], capture_output=True, text=True, timeout=120)
    out = proc.stdout + proc.stderr
    lines = [line.strip() for line in out.splitlines()]
    return Verification(errors=[x for x in lines if x.startswith("Error")],
                        warnings=[x for x in lines if x.startswith("Warning")], output=out)


def frame_sources(seg: pydicom.Dataset) -> list[str]:
    """SOPInstanceUID of the source image of each frame (DerivationImageSequence)."""
    out = []
    for frame in seg.PerFrameFunctionalGroupsSequence:
        derivation = frame.DerivationImageSequence[0]
        out.append(derivation.SourceImageSequence[0].ReferencedSOPInstanceUID)
    return out


def frame_positions(seg: pydicom.Dataset) -> list[np.ndarray]:
    """ImagePositionPatient of each frame (mm)."""
    return [np.asarray(f.PlanePositionSequence[0].ImagePositionPatient, dtype=float)
            for f in seg.PerFrameFunctionalGroupsSequence]


def shared_geometry(seg: pydicom.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """(ImageOrientationPatient, PixelSpacing) from the shared functional groups."""
    shared = seg.SharedFunctionalGroupsSequence[0]
    iop = np.asarray(shared.PlaneOrientationSequence[0].ImageOrientationPatient, dtype=float)
    spacing = np.asarray(shared.PixelMeasuresSequence[0].PixelSpacing, dtype=float)
    return iop, spacing


def mask_on_series(seg: pydicom.Dataset, sop_uids: list[str],
                   trust_geometry: bool = False) -> np.ndarray:
    """``(z, y, x)`` bool union of all segments, on the slices ``sop_uids`` (in that order).

    ``trust_geometry`` indexes frames by source image even without SpatialLocationsPreserved
    (the dcmqi SEG omits it; its frame positions are checked against the source separately).
    """
    pixels = hd.seg.Segmentation.from_dataset(seg).get_pixels_by_source_instance(
        sop_uids, assert_missing_frames_are_empty=True, ignore_spatial_locations=trust_geometry)
    return pixels.any(axis=-1)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice overlap of two boolean masks (1.0 when both are empty)."""
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total
