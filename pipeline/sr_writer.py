"""TID 1500 measurement report (Comprehensive 3D SR) with one planar group per lesion.

Each lesion is a TID 1410 group with a tracking identifier and a deterministic tracking UID,
a SCOORD POLYLINE outline on the lesion's key slice (the slice of largest area) referencing
that source image, and its measurements. Viewers such as OHIF v3 draw such groups; a group
without a SCOORD (e.g. TID 1411 referencing only a SEG segment) blanks OHIF's whole panel, so
the volume is reported inside the planar group instead.
"""

from __future__ import annotations

import highdicom as hd
import numpy as np
import pydicom
from pydicom.sr.codedict import codes

from pipeline.measure import Lesion
from pipeline.seg_writer import MANUFACTURER, RESEARCH_LABEL, Algorithm, output_uids
from pipeline.series import CTSeries
from pipeline.uids import derived_uid
from pipeline.version import __version__

PRIVATE_SCHEME = "99LUNGSEG"
LONG_AXIS = hd.sr.CodedConcept("103339001", "SCT", "Long Axis")
SHORT_AXIS = hd.sr.CodedConcept("103340004", "SCT", "Short Axis")
ATTENUATION = hd.sr.CodedConcept("112031", "DCM", "Attenuation Coefficient")
MINIMUM = hd.sr.CodedConcept("255605001", "SCT", "Minimum")
MAXIMUM = hd.sr.CodedConcept("56851009", "SCT", "Maximum")
NECROTIC_FRACTION = hd.sr.CodedConcept(
    "NECROTIC-FRACTION", PRIVATE_SCHEME, "Fraction of lesion voxels from -10 to 40 HU"
)
CAVITARY_FRACTION = hd.sr.CodedConcept(
    "CAVITARY-FRACTION", PRIVATE_SCHEME, "Fraction of filled lesion below -500 HU"
)
CT_CHEST = hd.sr.CodedConcept("24627-2", "LN", "CT Chest")
MM = hd.sr.CodedConcept("mm", "UCUM", "millimeter")
MM3 = hd.sr.CodedConcept("mm3", "UCUM", "cubic millimeter")
HU = hd.sr.CodedConcept("[hnsf'U]", "UCUM", "Hounsfield unit")
PERCENT = hd.sr.CodedConcept("%", "UCUM", "percent")
LESION_COUNT = hd.sr.CodedConcept("LESION-COUNT", PRIVATE_SCHEME, "Number of lesions detected")
COUNT = hd.sr.CodedConcept("{lesions}", "UCUM", "lesions")
INPUT_QUALITY = hd.sr.CodedConcept("INPUT-QUALITY", PRIVATE_SCHEME, "Input image quality")
HU_WITHOUT_RESCALE = hd.sr.CodedConcept(
    "HU-WITHOUT-RESCALE", PRIVATE_SCHEME, "No RescaleSlope/Intercept: stored values used as HU"
)
NO_RESCALE_LABEL = "HU assumed, no rescale"
"""Added to the SR's SeriesDescription when the source had no rescale (fits its 64 characters)."""


def tracking_uid(series: CTSeries, algorithm: Algorithm, lesion: Lesion) -> str:
    """Deterministic tracking UID of a lesion (source series, algorithm version, label)."""
    return derived_uid(series.series_instance_uid, algorithm.version, f"lesion-{lesion.label}")


def library_images(series: CTSeries, lesions: list[Lesion]) -> list[pydicom.Dataset]:
    """Return the images of the report's Image Library: the lesions' key slices.

    With no lesion, the middle slice of the series stands for it. Listing all slices would
    add about 15 content items per slice for nothing a viewer uses (every SCOORD names its
    image); the whole series is still listed as evidence.
    """
    keys = sorted({lesion.key_slice for lesion in lesions}) or [len(series.datasets) // 2]
    return [series.datasets[k] for k in keys]


def write_sr(
    series: CTSeries,
    lesions: list[Lesion],
    algorithm: Algorithm,
    series_number: int = 9902,
) -> pydicom.Dataset:
    """Build the Comprehensive 3D SR measurement report of ``lesions``.

    Parameters
    ----------
    series : CTSeries
        The source series (evidence and Image Library).
    lesions : list of Lesion
        Measured lesions. With none, the report holds a single TID 1501 group (no SCOORD)
        whose "Number of lesions detected" is 0, since TID 1500 needs at least one group.
        When ``series.rescale_missing``, every group carries the qualitative evaluation
        "Input image quality" = :data:`HU_WITHOUT_RESCALE` and the SeriesDescription ends
        with :data:`NO_RESCALE_LABEL`.
    algorithm : Algorithm
        Observer device and algorithm identification.
    series_number : int
        SeriesNumber of the SR.

    Returns
    -------
    pydicom.Dataset
        The SR (highdicom Comprehensive3DSR).

    Raises
    ------
    ValueError
        If a lesion's key slice is outside the series.
    """
    evaluations = _input_evaluations(series)
    groups = [_group(series, lesion, algorithm, evaluations) for lesion in lesions]
    report = hd.sr.MeasurementReport(
        observation_context=_observation_context(algorithm),
        procedure_reported=CT_CHEST,
        imaging_measurements=groups or [_no_lesion_group(series, algorithm, evaluations)],
        referenced_images=library_images(series, lesions),
    )
    series_uid, sop_uid = output_uids(series, algorithm, "sr")
    sr = hd.sr.Comprehensive3DSR(
        evidence=series.datasets,
        content=report,
        series_instance_uid=series_uid,
        series_number=series_number,
        sop_instance_uid=sop_uid,
        instance_number=1,
        manufacturer=MANUFACTURER,
        is_complete=True,
    )
    sr.SeriesDescription = f"{RESEARCH_LABEL} - lung lesion report"
    if series.rescale_missing:
        sr.SeriesDescription += f" - {NO_RESCALE_LABEL}"
    sr.SoftwareVersions = __version__
    sr.CodingSchemeIdentificationSequence = [_private_scheme()]
    return sr


def _input_evaluations(series: CTSeries) -> list[hd.sr.QualitativeEvaluation]:
    """Return the coded warnings about the source values (empty for a normal series)."""
    if not series.rescale_missing:
        return []
    return [hd.sr.QualitativeEvaluation(name=INPUT_QUALITY, value=HU_WITHOUT_RESCALE)]


def _no_lesion_group(
    series: CTSeries, algorithm: Algorithm, evaluations: list[hd.sr.QualitativeEvaluation]
) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    """Return a TID 1501 group stating that no lesion was found (TID 1500 needs a group)."""
    tracking = hd.sr.TrackingIdentifier(
        uid=derived_uid(series.series_instance_uid, algorithm.version, "no-lesion"),
        identifier="No lesion detected",
    )
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=tracking,
        finding_sites=[hd.sr.FindingSite(codes.SCT.Lung)],
        algorithm_id=hd.sr.AlgorithmIdentification(name=algorithm.name, version=algorithm.version),
        measurements=[hd.sr.Measurement(name=LESION_COUNT, value=0, unit=COUNT)],
        qualitative_evaluations=evaluations or None,
    )


def _private_scheme() -> pydicom.Dataset:
    item = pydicom.Dataset()
    item.CodingSchemeDesignator = PRIVATE_SCHEME
    item.CodingSchemeName = "lungseg measurement codes"
    item.CodingSchemeResponsibleOrganization = "lungseg project"
    return item


def _observation_context(algorithm: Algorithm) -> hd.sr.ObservationContext:
    device = hd.sr.DeviceObserverIdentifyingAttributes(
        uid=derived_uid("lungseg-device", algorithm.name, algorithm.version),
        name=algorithm.name,
        manufacturer_name=MANUFACTURER,
        model_name=algorithm.name[:64],
    )
    return hd.sr.ObservationContext(
        observer_device_context=hd.sr.ObserverContext(
            observer_type=codes.DCM.Device, observer_identifying_attributes=device
        )
    )


def _group(
    series: CTSeries, lesion: Lesion, algorithm: Algorithm,
    evaluations: list[hd.sr.QualitativeEvaluation],
) -> hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations:
    if not 0 <= lesion.key_slice < len(series.datasets):
        raise ValueError(
            f"lesion {lesion.label} key_slice {lesion.key_slice} is outside the series "
            f"(0..{len(series.datasets) - 1})"
        )
    source = hd.sr.SourceImageForRegion.from_source_image(series.datasets[lesion.key_slice])
    region = hd.sr.ImageRegion(
        graphic_type=hd.sr.GraphicTypeValues.POLYLINE,
        graphic_data=np.asarray(lesion.contour, dtype=np.float64),
        source_image=source,
    )
    tracking = hd.sr.TrackingIdentifier(
        uid=tracking_uid(series, algorithm, lesion), identifier=f"Lesion {lesion.label}"
    )
    return hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=tracking,
        referenced_region=region,
        finding_type=codes.SCT.Nodule,
        finding_sites=[hd.sr.FindingSite(codes.SCT.Lung)],
        algorithm_id=hd.sr.AlgorithmIdentification(name=algorithm.name, version=algorithm.version),
        measurements=_measurements(lesion),
        qualitative_evaluations=evaluations or None,
    )


def _measurements(lesion: Lesion) -> list[hd.sr.Measurement]:
    rows = [
        (LONG_AXIS, lesion.long_axis_mm, MM, None),
        (SHORT_AXIS, lesion.short_axis_mm, MM, None),
        (codes.SCT.Volume, lesion.volume_mm3, MM3, None),
        (ATTENUATION, lesion.mean_hu, HU, codes.SCT.Mean),
        (ATTENUATION, lesion.min_hu, HU, MINIMUM),
        (ATTENUATION, lesion.max_hu, HU, MAXIMUM),
        (NECROTIC_FRACTION, 100.0 * lesion.necrotic_fraction, PERCENT, None),
        (CAVITARY_FRACTION, 100.0 * lesion.cavitary_fraction, PERCENT, None),
    ]
    return [
        hd.sr.Measurement(name=name, value=round(float(value), 3), unit=unit, derivation=derivation)
        for name, value, unit, derivation in rows
    ]
