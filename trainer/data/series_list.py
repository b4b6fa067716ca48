"""Whole CT series of any source, listed in a JSON file: lesion crops and lesion-free windows.

``negative_series`` takes LIDC series, whose reader XML says where the lesions are. A site's
own chest CT has no such XML; a series list says it instead, one object per series::

    [{"series": "ct/case-a", "lesions": "ct/case-a-lesions.nii.gz", "patient": "P017"},
     {"series": "ct/case-b", "lesion_free": true, "patient": "P018"}]

- ``lesions``: a mask in which every lesion of the series is marked: NIfTI on the series'
  grid (same slice count and size, slices matched by position), or a DICOM-SEG of the
  series (all its segments; e.g. lungseg's own SEG, corrected by a reader).
- ``lesion_free: true``: a reader found no lesion in the series.
- ``patient`` (optional): a pseudonym, never the real ID (letters, digits, ``.`` and ``-``);
  series of one patient must share it, so that a patient split keeps them together.
  Default ``case-<index>``.

The list serves twice: ``trainer crops`` cuts every lesion of the ``lesions`` entries into
the crop layout (:mod:`trainer.data.crops`), and ``negative_list`` (for ``trainer cache``) takes
lesion-free windows from every entry: the lung grown by
:data:`trainer.data.negatives.LUNG_MARGIN_MM`, less the lesion mask grown by
:data:`trainer.data.negatives.EXCLUDE_MM`. Relative paths are read from the list file's folder.
Cache entries are named ``series-list-<index>``, never by their folder, which may carry a
patient's name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.series import CTSeries, load_series_dir
from trainer.data.datasets import PATIENT_RE, read_reference_mask
from trainer.data.negatives import centres_away_from


@dataclass(frozen=True)
class ListedSeries:
    """One entry of a series list.

    Attributes
    ----------
    name : str
        ``series-list-<index>``.
    series : Path
        The series folder.
    lesions : Path or None
        The lesion mask; None for a series declared lesion-free.
    patient : str
        The entry's pseudonym (``case-<index>`` when none is given).
    """

    name: str
    series: Path
    lesions: Path | None
    patient: str


def read_series_list(path: str | Path) -> list[ListedSeries]:
    """Read and check a series list (see the module docstring).

    Raises
    ------
    FileNotFoundError
        If the list, a series folder or a mask does not exist.
    ValueError
        If the file is not a JSON list of such objects; the message names the entry.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"series list not found: {path}")
    try:
        entries = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"series list {path} is not valid JSON: {exc}") from exc
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"series list {path} must be a non-empty JSON list of objects")
    return [_entry(path, i, entry) for i, entry in enumerate(entries)]


def _entry(path: Path, index: int, entry: object) -> ListedSeries:
    where = f"series list {path}, entry {index}"
    if not isinstance(entry, dict) or not isinstance(entry.get("series"), str):
        raise ValueError(f"{where}: needs an object with a \"series\" folder")
    unknown = set(entry) - {"series", "lesions", "lesion_free", "patient"}
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}")
    has_mask, free = "lesions" in entry, entry.get("lesion_free", False)
    if free not in (True, False) or has_mask == free:
        raise ValueError(f"{where}: give either \"lesions\" (a mask of every lesion) or "
                         "\"lesion_free\": true; without one nothing can be called lesion-free")
    series = _resolve(path, entry["series"])
    if not series.is_dir():
        raise FileNotFoundError(f"{where}: series folder not found: {series}")
    lesions = None
    if has_mask:
        if not isinstance(entry["lesions"], str):
            raise ValueError(f"{where}: \"lesions\" must be a file name")
        lesions = _resolve(path, entry["lesions"])
        if not lesions.is_file():
            raise FileNotFoundError(f"{where}: lesion mask not found: {lesions}")
    patient = entry.get("patient", f"case-{index}")
    if not isinstance(patient, str) or not PATIENT_RE.fullmatch(patient):
        raise ValueError(f"{where}: \"patient\" must be a pseudonym of letters, digits, '.' "
                         "and '-'")
    return ListedSeries(f"series-list-{index}", series, lesions, patient)


def _resolve(list_path: Path, name: str) -> Path:
    target = Path(name)
    return target if target.is_absolute() else list_path.parent / target


def load_listed(entry: ListedSeries) -> tuple[CTSeries, np.ndarray | None]:
    """Load a listed series and its lesion mask (in volume order; None if lesion-free).

    Raises
    ------
    ValueError
        If the folder is not one CT series, or the mask cannot be read or does not fit it.
    """
    series = load_series_dir(entry.series)
    if entry.lesions is None:
        return series, None
    if not entry.lesions.name.endswith((".nii", ".nii.gz")):
        return series, read_seg_lesions(entry, series)
    try:
        lesions = read_reference_mask(entry.lesions, series.z_positions_mm, series.hu.shape)
    except RuntimeError as exc:  # SimpleITK cannot read the file
        raise ValueError(f"{entry.name}: cannot read lesion mask {entry.lesions}: {exc}") from exc
    except ValueError as exc:
        raise ValueError(f"{entry.name}: {exc}") from exc
    return series, lesions


def read_seg_lesions(entry: ListedSeries, series: CTSeries) -> np.ndarray:
    """Read a DICOM-SEG of the series (every segment) as a boolean mask in volume order.

    Raises
    ------
    ValueError
        If the file is not a DICOM-SEG, it references images outside the series (a SEG of
        another series would otherwise read as an empty, lesion-free mask), or its frames
        are not the size of the series' images.
    """
    import highdicom as hd
    from pydicom.errors import InvalidDicomError

    try:
        seg = hd.seg.segread(entry.lesions)
    except (InvalidDicomError, ValueError, AttributeError) as exc:
        raise ValueError(f"{entry.name}: {entry.lesions} is neither NIfTI (.nii, .nii.gz) "
                         f"nor a readable DICOM-SEG: {exc}") from exc
    ours = set(series.sop_instance_uids)
    referenced = {uid for _, _, uid in seg.get_source_image_uids()}
    if not referenced or not referenced <= ours:
        raise ValueError(f"{entry.name}: the DICOM-SEG {entry.lesions} references "
                         f"{len(referenced - ours)} of its {len(referenced)} source images "
                         "outside this series")
    if (int(seg.Rows), int(seg.Columns)) != series.hu.shape[1:]:
        raise ValueError(f"{entry.name}: the DICOM-SEG {entry.lesions} has frames of "
                         f"{seg.Rows} x {seg.Columns}, the series {series.hu.shape[1:]}")
    # frames reference their source images and have their size; tools that do not state
    # that spatial locations are preserved (dcmqi) are read frame by source frame too
    labels = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=series.sop_instance_uids, combine_segments=True,
        skip_overlap_checks=True, assert_missing_frames_are_empty=True,
        ignore_spatial_locations=True)
    return np.asarray(labels) > 0


def read_listed_series(entry: ListedSeries) -> tuple[CTSeries, np.ndarray]:
    """Load a listed series and where its lesion-free windows may be centred.

    Returns
    -------
    series : CTSeries
    centres : ndarray
        Boolean ``(z, y, x)``: :func:`trainer.data.negatives.centres_away_from` the lesion mask.

    Raises
    ------
    ValueError
        As :func:`load_listed`.
    """
    series, lesions = load_listed(entry)
    return series, centres_away_from(series, lesions)
