"""DICOM-SEG of the lesions, written with highdicom, pixel-aligned with the source series."""

from __future__ import annotations

from dataclasses import dataclass

import highdicom as hd
import numpy as np
import pydicom
from pydicom.sr.codedict import codes
from pydicom.uid import ExplicitVRLittleEndian

from pipeline.series import CTSeries
from pipeline.uids import derived_uid
from pipeline.version import __version__

MANUFACTURER = "lungseg"
RESEARCH_LABEL = "RESEARCH USE ONLY"
SEGMENT_LABEL = "Lung lesion"
SEGMENT_CATEGORY = codes.SCT.MorphologicallyAbnormalStructure
SEGMENT_TYPE = codes.SCT.Nodule
SEGMENT_REGION = codes.SCT.Lung
SEGMENT_COLOR_LAB = (56.0, 68.0, 58.0)
"""CIELab L*, a*, b* of the segment: orange-red, sRGB about (249, 64, 34), inside the sRGB
gamut so viewers draw the recommended colour without clipping."""


@dataclass(frozen=True)
class Algorithm:
    """Name and version of the algorithm that made a segmentation.

    Attributes
    ----------
    name : str
        e.g. ``"lungseg U-Net"`` or ``"lungseg threshold baseline"``.
    version : str
        Model or baseline version (enters the output UIDs).
    """

    name: str
    version: str

    def identification(self) -> hd.AlgorithmIdentificationSequence:
        """Return the AlgorithmIdentificationSequence (family: Artificial Intelligence)."""
        return hd.AlgorithmIdentificationSequence(
            name=self.name, family=codes.cid7162.ArtificialIntelligence, version=self.version
        )


def output_uids(series: CTSeries, algorithm: Algorithm, kind: str) -> tuple[str, str]:
    """Return the deterministic ``(SeriesInstanceUID, SOPInstanceUID)`` of an output object.

    Parameters
    ----------
    series : CTSeries
        The source series.
    algorithm : Algorithm
        The algorithm (its version enters the UIDs).
    kind : str
        ``"seg"`` or ``"sr"``.
    """
    parts = (series.series_instance_uid, algorithm.version, kind)
    return derived_uid(*parts, "series"), derived_uid(*parts, "instance")


def write_seg(
    series: CTSeries,
    labels: np.ndarray,
    algorithm: Algorithm,
    series_number: int = 9901,
) -> pydicom.Dataset | None:
    """Build a BINARY DICOM-SEG with one segment holding every lesion.

    Parameters
    ----------
    series : CTSeries
        The source series; frames are aligned with its slices.
    labels : ndarray
        ``(z, y, x)`` label map on the series' grid (any non-zero value is lesion).
    algorithm : Algorithm
        Written to the segment's AlgorithmIdentificationSequence.
    series_number : int
        SeriesNumber of the SEG.

    Returns
    -------
    pydicom.Dataset or None
        The SEG (highdicom Segmentation), or None when ``labels`` has no lesion (a SEG needs a
        non-empty segment).

    Raises
    ------
    ValueError
        If ``labels`` does not match the series' shape.
    """
    if labels.shape != series.hu.shape:
        raise ValueError(f"labels shape {labels.shape} differs from the series {series.hu.shape}")
    if not labels.any():
        return None
    series_uid, sop_uid = output_uids(series, algorithm, "seg")
    segment = hd.seg.SegmentDescription(
        segment_number=1,
        segment_label=SEGMENT_LABEL,
        segmented_property_category=SEGMENT_CATEGORY,
        segmented_property_type=SEGMENT_TYPE,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=algorithm.identification(),
        tracking_uid=derived_uid(series.series_instance_uid, algorithm.version, "segment-1"),
        tracking_id="lungseg lesions",
        anatomic_regions=[SEGMENT_REGION],
        display_color=hd.color.CIELabColor(*SEGMENT_COLOR_LAB),
    )
    seg = hd.seg.Segmentation(
        source_images=series.datasets,
        pixel_array=(labels > 0).astype(np.uint8),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[segment],
        series_instance_uid=series_uid,
        series_number=series_number,
        sop_instance_uid=sop_uid,
        instance_number=1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name=algorithm.name[:64],
        software_versions=__version__,
        device_serial_number="0",
        content_description=f"{RESEARCH_LABEL} {algorithm.name}"[:64],
        content_label="LESIONS",
        transfer_syntax_uid=ExplicitVRLittleEndian,
        omit_empty_frames=True,
    )
    seg.SeriesDescription = f"{RESEARCH_LABEL} - lung lesions"
    return seg
