"""Which DICOM-SEG in the archive is a reader's correction (pure rules, no I/O).

A SEG counts as a **correction** of the CT series it references when it is not lungseg's own
untouched output, that is when any of these holds:

1. its ``Manufacturer`` is not ``lungseg`` (OHIF, 3D Slicer, any other tool wrote it);
2. a segment's ``SegmentAlgorithmType`` is ``MANUAL`` or ``SEMIAUTOMATIC``;
3. it carries a ``ContentCreatorName`` (lungseg never writes one);
4. it claims to be lungseg's (``Manufacturer`` ``lungseg``, every segment ``AUTOMATIC``) but
   its ``SeriesInstanceUID`` is not the one lungseg derives from (source series, model
   version), and its pixels differ from lungseg's own SEG of that series (or lungseg has no
   SEG of it in the archive): a copy edited by a tool that kept the header.

lungseg's own SEG, the one whose ``SeriesInstanceUID`` is
:func:`pipeline.seg_writer.output_uids` of its source series and version, is never a
correction.

**No lesion**: a reader who finds no lesion in a series stores a SEG (by the rule above) with
a segment labelled ``No lesion`` (case and surrounding spaces ignored; ``No lesions`` and
``Lesion free`` count too). What that segment covers is ignored, as every other segment
of that SEG: the series becomes a ``lesion_free`` entry of the series list.

When one CT series has several corrections, the newest wins: by ``ContentDate`` +
``ContentTime`` (else ``SeriesDate`` + ``SeriesTime``), then by SOPInstanceUID.
"""

from __future__ import annotations

from dataclasses import dataclass

import pydicom

from pipeline.seg_writer import MANUFACTURER
from pipeline.uids import derived_uid

NO_LESION_LABELS = frozenset({"no lesion", "no lesions", "lesion free", "lesion-free"})
"""Segment labels (lower case) that mark a series as free of lesions."""
READER_ALGORITHM_TYPES = frozenset({"MANUAL", "SEMIAUTOMATIC"})


@dataclass(frozen=True)
class SegInfo:
    """What the rules need of one SEG instance.

    Attributes
    ----------
    study_uid, series_uid, sop_uid : str
        The SEG's own UIDs.
    source_series_uid : str
        The CT series it references (``ReferencedSeriesSequence``).
    manufacturer : str
    algorithm_types : tuple of str
        ``SegmentAlgorithmType`` of each segment.
    versions : tuple of str
        ``AlgorithmVersion`` of each segment's algorithm identification (may be empty).
    labels : tuple of str
        ``SegmentLabel`` of each segment.
    has_creator : bool
        Whether ``ContentCreatorName`` is present and not empty.
    when : str
        ``YYYYMMDDHHMMSS`` of its content (or series) date and time; ``""`` if absent.
    """

    study_uid: str
    series_uid: str
    sop_uid: str
    source_series_uid: str
    manufacturer: str
    algorithm_types: tuple[str, ...]
    versions: tuple[str, ...]
    labels: tuple[str, ...]
    has_creator: bool
    when: str

    @property
    def no_lesion(self) -> bool:
        """True when a segment is labelled as "no lesion" (see the module docstring)."""
        return any(label.strip().lower() in NO_LESION_LABELS for label in self.labels)

    @property
    def date(self) -> str:
        """``YYYYMMDD`` of :attr:`when` (``""`` if unknown)."""
        return self.when[:8]


def seg_info(ds: pydicom.Dataset) -> SegInfo:
    """Read the rule's attributes from a SEG dataset.

    Raises
    ------
    ValueError
        If ``ds`` is not a SEG or references no (or more than one) series.
    """
    if getattr(ds, "Modality", None) != "SEG":
        raise ValueError(f"instance {getattr(ds, 'SOPInstanceUID', '?')} is not a SEG")
    refs = [str(item.SeriesInstanceUID) for item in getattr(ds, "ReferencedSeriesSequence", [])]
    if len(set(refs)) != 1:
        raise ValueError(f"SEG {ds.SOPInstanceUID} references {len(set(refs))} series, "
                         "not one (ReferencedSeriesSequence)")
    segments = list(getattr(ds, "SegmentSequence", []))
    versions = tuple(str(item.AlgorithmVersion) for s in segments
                     for item in getattr(s, "SegmentationAlgorithmIdentificationSequence", [])
                     if getattr(item, "AlgorithmVersion", None))
    return SegInfo(
        study_uid=str(ds.StudyInstanceUID), series_uid=str(ds.SeriesInstanceUID),
        sop_uid=str(ds.SOPInstanceUID), source_series_uid=refs[0],
        manufacturer=str(getattr(ds, "Manufacturer", "") or ""),
        algorithm_types=tuple(str(getattr(s, "SegmentAlgorithmType", "")) for s in segments),
        versions=versions, labels=tuple(str(getattr(s, "SegmentLabel", "")) for s in segments),
        has_creator=bool(str(getattr(ds, "ContentCreatorName", "") or "")),
        when=_when(ds))


def _when(ds: pydicom.Dataset) -> str:
    for date, time in (("ContentDate", "ContentTime"), ("SeriesDate", "SeriesTime")):
        day = str(getattr(ds, date, "") or "")
        if day:
            clock = str(getattr(ds, time, "") or "").split(".")[0]
            return (day + clock + "000000")[:14]
    return ""


def is_lungseg_own(info: SegInfo) -> bool:
    """Tell whether the SEG is lungseg's own output (its series UID is the one lungseg derives)."""
    if info.manufacturer != MANUFACTURER:
        return False
    return any(info.series_uid == derived_uid(info.source_series_uid, version, "seg", "series")
               for version in info.versions)


def correction_reason(info: SegInfo, differs_from_own: bool | None) -> str | None:
    """Why the SEG is a reader's correction (rules 1-4 of the module), or None if it is not.

    Parameters
    ----------
    info : SegInfo
    differs_from_own : bool or None
        For rule 4: whether its pixels differ from lungseg's own SEG of the series; None when
        the archive holds no such SEG.
    """
    if is_lungseg_own(info):
        return None
    if info.manufacturer != MANUFACTURER:
        return f"written by {info.manufacturer or 'a tool that names no manufacturer'}"
    reader_types = READER_ALGORITHM_TYPES & set(info.algorithm_types)
    if reader_types:
        return f"segment algorithm type {sorted(reader_types)[0]}"
    if info.has_creator:
        return "ContentCreatorName is set"
    if differs_from_own is None:
        return "lungseg-like SEG with a foreign series UID, no lungseg SEG to compare"
    return "pixels differ from lungseg's own SEG" if differs_from_own else None


def newest(infos: list[SegInfo]) -> SegInfo:
    """Pick the newest SEG (content date and time, then SOPInstanceUID).

    Raises
    ------
    ValueError
        If ``infos`` is empty.
    """
    if not infos:
        raise ValueError("no SEG to choose from")
    return max(infos, key=lambda i: (i.when, i.sop_uid))
