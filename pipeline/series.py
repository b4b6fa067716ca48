"""Load one CT series from DICOM files, bytes or datasets into a sorted HU volume.

The volume is ``(z, y, x)``: ``z`` follows the slice normal (row direction x column direction
of ImageOrientationPatient), ``y`` is the DICOM row index and ``x`` the column index, so
voxel ``[k, r, c]`` is pixel ``(r, c)`` of ``datasets[k]``.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.pixels import pixel_array

from pipeline.errors import SeriesRejected
from pipeline.hu_check import hu_profile
from pipeline.transfer_syntax import check_decodable

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
ENHANCED_CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2.1"
LEGACY_ENHANCED_CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2.2"
MULTI_FRAME_CT = {ENHANCED_CT_IMAGE_STORAGE: "Enhanced CT Image Storage",
                  LEGACY_ENHANCED_CT_IMAGE_STORAGE: "Legacy Converted Enhanced CT Image Storage"}
_TILT_TOLERANCE = 2e-3
"""Largest allowed lateral offset of a slice per mm along the normal (about 0.11 degrees)."""
_LATERAL_TOLERANCE_MM = 0.1
"""Lateral offset always allowed (rounding of ImagePositionPatient)."""
_SPACING_TOLERANCE = 0.05
"""Largest allowed relative deviation of one slice gap from the median gap."""

Source = str | Path | bytes | pydicom.Dataset


@dataclass
class CTSeries:
    """A CT series as a volume in HU plus its source headers.

    Attributes
    ----------
    hu : ndarray
        ``(z, y, x)`` int16 (or float32 for non-integer rescale) CT values in HU, sorted by
        position along the slice normal.
    spacing : tuple of float
        ``(z, y, x)`` voxel spacing in mm; ``z`` is the median slice gap.
    z_positions_mm : ndarray
        ``(z,)`` strictly increasing positions of the slices along the normal (mm).
    datasets : list of pydicom.Dataset
        Source headers in volume order, pixel data removed.
    dropped_duplicates : list of str
        SOPInstanceUIDs left out because another slice had the same position and pixels.
    warnings : list of str
        What the reader should know about the values (e.g. HU assumed without a rescale).
    rescale_missing : bool
        The instances had no RescaleSlope/RescaleIntercept and their stored values passed
        the HU check (:mod:`pipeline.hu_check`); the SR says so.
    """

    hu: np.ndarray
    spacing: tuple[float, float, float]
    z_positions_mm: np.ndarray
    datasets: list[pydicom.Dataset]
    dropped_duplicates: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    rescale_missing: bool = False

    @property
    def series_instance_uid(self) -> str:
        """SeriesInstanceUID of the source series."""
        return str(self.datasets[0].SeriesInstanceUID)

    @property
    def study_instance_uid(self) -> str:
        """StudyInstanceUID of the source series."""
        return str(self.datasets[0].StudyInstanceUID)

    @property
    def frame_of_reference_uid(self) -> str:
        """FrameOfReferenceUID of the source series."""
        return str(self.datasets[0].FrameOfReferenceUID)

    @property
    def sop_instance_uids(self) -> list[str]:
        """SOPInstanceUIDs in volume order."""
        return [str(ds.SOPInstanceUID) for ds in self.datasets]

    def index_to_patient(self, zyx: np.ndarray) -> np.ndarray:
        """Map ``(n, 3)`` voxel indices ``(z, y, x)`` to patient coordinates (mm).

        Returns
        -------
        ndarray
            ``(n, 3)`` LPS coordinates in mm.
        """
        zyx = np.atleast_2d(np.asarray(zyx, dtype=np.float64))
        iop = np.asarray(self.datasets[0].ImageOrientationPatient, dtype=np.float64)
        row_dir, col_dir = iop[:3], iop[3:]
        k = np.clip(np.round(zyx[:, 0]).astype(int), 0, len(self.datasets) - 1)
        origins = np.array(
            [self.datasets[i].ImagePositionPatient for i in k], dtype=np.float64
        )
        frac = zyx[:, 0] - k
        normal = np.cross(row_dir, col_dir)
        return (
            origins
            + frac[:, None] * self.spacing[0] * normal
            + zyx[:, 2:3] * self.spacing[2] * row_dir
            + zyx[:, 1:2] * self.spacing[1] * col_dir
        )


def read_dataset(source: Source) -> pydicom.Dataset:
    """Read one DICOM object from a path, bytes or an existing dataset.

    Raises
    ------
    TypeError
        If ``source`` is of another type.
    SeriesRejected
        If the file or bytes are not DICOM.
    """
    if isinstance(source, pydicom.Dataset):
        return source
    try:
        if isinstance(source, bytes | bytearray):
            return pydicom.dcmread(io.BytesIO(source))
        if isinstance(source, str | Path):
            return pydicom.dcmread(source)
    except (InvalidDicomError, EOFError, OSError, ValueError) as exc:
        name = "<bytes>" if isinstance(source, bytes | bytearray) else str(source)
        raise SeriesRejected(f"not a readable DICOM file: {name} ({exc})") from exc
    raise TypeError(
        f"sources must be paths, bytes or pydicom Datasets, got {type(source).__name__}"
    )


def load_series(sources: Sequence[Source], threads: int = 4) -> CTSeries:
    """Load a single-frame CT series into a sorted HU volume.

    Parameters
    ----------
    sources : sequence of str, Path, bytes or pydicom.Dataset
        One item per instance.
    threads : int
        Threads used to read and decode the instances.

    Returns
    -------
    CTSeries

    Raises
    ------
    TypeError
        If an item of ``sources`` has an unsupported type.
    SeriesRejected
        If the series is empty, mixed, not CT, multi-frame, has no pixel data, pixel data in
        a transfer syntax no installed decoder reads, a gantry tilt, inconsistent geometry or
        spacing, two acquisitions whose slices overlap, conflicting slices at the same position,
        or values that are not HU (missing or implausible rescale; see
        :mod:`pipeline.hu_check`).
    """
    if isinstance(sources, str | Path | bytes | pydicom.Dataset):
        raise TypeError("sources must be a sequence of instances, not a single instance")
    if len(sources) == 0:
        raise SeriesRejected("the series is empty: no DICOM instances were given")
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads!r}")
    with ThreadPoolExecutor(max_workers=threads) as pool:
        datasets = list(pool.map(read_dataset, sources))
    _check_uniform(datasets)
    check_decodable(datasets)
    rescaled = _has_rescale(datasets)
    positions = _positions_along_normal(datasets)
    _check_acquisitions(datasets, positions)
    # Pixel data of the datasets read here is dropped once decoded (the caller's own
    # datasets are left alone), so the encoded and decoded series are not held together.
    owned = [not isinstance(source, pydicom.Dataset) for source in sources]
    with ThreadPoolExecutor(max_workers=threads) as pool:
        slices = list(pool.map(_slice_hu, datasets, owned))
    order = np.lexsort((np.array([_instance_number(ds) for ds in datasets]), positions))
    keep, dropped = _deduplicate(order, positions, slices, datasets)
    z = positions[keep]
    spacing_z = _slice_spacing(z)
    hu = _stack_releasing(slices, keep)
    warnings = _check_hu(hu, rescaled)
    # The datasets read here lost their pixel data in _slice_hu and serve as headers as they
    # are; copying them would convert every raw element (about 2 ms per instance).
    headers = [datasets[i] if owned[i] else _strip_pixels(datasets[i]) for i in keep]
    row_mm, col_mm = (float(v) for v in datasets[0].PixelSpacing)
    return CTSeries(hu, (spacing_z, row_mm, col_mm), z.astype(np.float64), headers, dropped,
                    warnings, not rescaled)


NON_DICOM_SUFFIXES = frozenset({".xml", ".txt", ".json", ".md"})
"""Files with these suffixes (reader annotations, notes) are skipped in series folders."""


def dicom_files(path: str | Path) -> list[Path]:
    """List the candidate DICOM files of a folder (recursively), sorted by path.

    Hidden files, ``ATTRIBUTION`` and files with a suffix in :data:`NON_DICOM_SUFFIXES`
    are skipped; anything else is returned and must be DICOM.

    Raises
    ------
    FileNotFoundError
        If ``path`` is not a folder.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"DICOM folder not found: {folder}")
    return sorted(
        p for p in folder.rglob("*")
        if p.is_file() and not p.name.startswith(".")
        and p.suffix.lower() not in NON_DICOM_SUFFIXES and p.name != "ATTRIBUTION"
    )


def load_series_dir(path: str | Path, threads: int = 4) -> CTSeries:
    """Load every file of a folder (recursively) as one CT series.

    Files that are not DICOM (e.g. ``DICOMDIR``) are rejected with their name; the files
    :func:`dicom_files` skips are ignored.

    Raises
    ------
    FileNotFoundError
        If ``path`` is not a folder.
    SeriesRejected
        See :func:`load_series`; also when the folder holds no files.
    """
    files = dicom_files(path)
    if not files:
        raise SeriesRejected(f"the folder {path} holds no DICOM files")
    return load_series(files, threads=threads)


def _instance_number(ds: pydicom.Dataset) -> int:
    value = ds.get("InstanceNumber")
    return int(value) if value not in (None, "") else 0


def _check_uniform(datasets: list[pydicom.Dataset]) -> None:
    first = datasets[0]
    for ds in datasets:
        modality = ds.get("Modality", "")
        if modality != "CT":
            raise SeriesRejected(f"not a CT series: Modality is {modality!r}")
        reason = multi_frame_reason(ds)
        if reason:
            raise SeriesRejected(reason)
        if "PixelData" not in ds:
            raise SeriesRejected(f"instance {ds.get('InstanceNumber', '?')} has no pixel data")
    for key in ("SeriesInstanceUID", "StudyInstanceUID", "FrameOfReferenceUID"):
        values = {str(ds.get(key, "")) for ds in datasets}
        if len(values) > 1:
            raise SeriesRejected(f"mixed series: {len(values)} different {key} values")
        if values == {""}:
            raise SeriesRejected(f"{key} is missing")
    for key in ("Rows", "Columns"):
        if len({int(ds.get(key, 0)) for ds in datasets}) > 1:
            raise SeriesRejected(f"inconsistent geometry: {key} differs between instances")
    for key in ("ImageOrientationPatient", "PixelSpacing"):
        ref = _float_tuple(first, key)
        for ds in datasets[1:]:
            if not np.allclose(_float_tuple(ds, key), ref, atol=1e-4):
                raise SeriesRejected(f"inconsistent geometry: {key} differs between instances")


def multi_frame_reason(header: Any) -> str:
    """Say why ``header`` is a multi-frame CT lungseg does not read; empty when single-frame.

    Parameters
    ----------
    header : pydicom.Dataset or mapping
        One instance (keyword access: SOPClassUID, NumberOfFrames).
    """
    sop_class = str(header.get("SOPClassUID") or "")
    frames = header.get("NumberOfFrames")
    try:
        n_frames = int(frames) if frames not in (None, "") else 1
    except (TypeError, ValueError):
        n_frames = 1
    if sop_class not in MULTI_FRAME_CT and n_frames <= 1:
        return ""
    kind = MULTI_FRAME_CT.get(sop_class, f"SOP class {sop_class or 'unknown'}")
    return (f"multi-frame CT is not supported: {kind}, {n_frames} frames in one instance "
            "(send the series as single-frame CT Image Storage instances)")


def _has_rescale(datasets: list[pydicom.Dataset]) -> bool:
    """Tell whether every instance (True) or none (False) has RescaleSlope and -Intercept."""
    have = [all(ds.get(key) not in (None, "") for key in ("RescaleSlope", "RescaleIntercept"))
            for ds in datasets]
    if all(have) or not any(have):
        return all(have)
    raise SeriesRejected(
        f"RescaleSlope/RescaleIntercept missing in {have.count(False)} of {len(have)} instances"
    )


def _check_hu(hu: np.ndarray, rescaled: bool) -> list[str]:
    """Refuse values that are not HU; return the warnings of a series that stores HU untagged."""
    try:
        profile = hu_profile(hu)
    except ValueError as exc:
        raise SeriesRejected(f"no CT values to check: {exc}") from exc
    if rescaled and not profile.plausible:
        raise SeriesRejected(
            f"implausible HU values after RescaleSlope/RescaleIntercept: {profile.describe()}"
        )
    if rescaled:
        return []
    if not profile.plausible:
        raise SeriesRejected(
            "RescaleSlope/RescaleIntercept missing and the stored values are not HU: "
            f"{profile.describe()}"
        )
    return ["RescaleSlope/RescaleIntercept missing: the stored values were used as HU "
            f"(air/lung and soft-tissue check passed: {profile.describe()})"]


def _check_acquisitions(datasets: list[pydicom.Dataset], positions: np.ndarray) -> None:
    """Refuse acquisitions whose slice ranges overlap (several scans of one body region)."""
    groups: dict[str, list[float]] = {}
    for ds, z in zip(datasets, positions, strict=True):
        number = ds.get("AcquisitionNumber")
        groups.setdefault("(none)" if number in (None, "") else str(number), []).append(float(z))
    if len(groups) < 2:
        return
    spans = sorted((min(z), max(z), number) for number, z in groups.items())
    for (_, end, first), (start, _, second) in zip(spans, spans[1:], strict=False):
        if start < end - 1e-3:
            numbers = sorted(groups, key=_acquisition_key)
            named = ", ".join(numbers[:-1]) + f" and {numbers[-1]}"
            count = "two" if len(numbers) == 2 else str(len(numbers))
            raise SeriesRejected(
                f"{count} acquisitions in one series: AcquisitionNumber {named} "
                f"(the slices of acquisitions {first} and {second} overlap from "
                f"{start:.1f} to {end:.1f} mm along the slice normal)"
            )


def _acquisition_key(number: str) -> tuple[int, float, str]:
    try:
        return (0, float(number), number)
    except ValueError:
        return (1, 0.0, number)


def _float_tuple(ds: pydicom.Dataset, key: str) -> np.ndarray:
    value = ds.get(key)
    if value is None:
        raise SeriesRejected(f"{key} is missing in instance {ds.get('InstanceNumber', '?')}")
    return np.asarray([float(v) for v in value], dtype=np.float64)


def _positions_along_normal(datasets: list[pydicom.Dataset]) -> np.ndarray:
    iop = _float_tuple(datasets[0], "ImageOrientationPatient")
    normal = np.cross(iop[:3], iop[3:])
    ipp = np.stack([_float_tuple(ds, "ImagePositionPatient") for ds in datasets])
    positions = ipp @ normal
    first = int(np.argmin(positions))
    along = positions - positions[first]
    lateral = np.linalg.norm((ipp - ipp[first]) - along[:, None] * normal, axis=1)
    allowed = _LATERAL_TOLERANCE_MM + _TILT_TOLERANCE * along
    if np.any(lateral > allowed):
        k = int(np.argmax(lateral - allowed))
        angle = float(np.degrees(np.arctan2(lateral[k], along[k])))
        raise SeriesRejected(
            f"gantry tilt or sheared volume: slices are offset {angle:.2f} degrees from the "
            "slice normal"
        )
    return positions


def _slice_hu(ds: pydicom.Dataset, release: bool = False) -> np.ndarray:
    """Decode one slice to HU; with ``release``, delete its pixel data from ``ds``."""
    try:
        pixels = pixel_array(ds)
    except Exception as exc:  # pydicom raises many types for undecodable pixel data
        raise SeriesRejected(
            f"pixel data of instance {ds.get('InstanceNumber', '?')} cannot be decoded: {exc}"
        ) from exc
    if release:
        del ds.PixelData
    if pixels.ndim != 2:
        raise SeriesRejected(f"expected single-frame greyscale slices, got shape {pixels.shape}")
    slope = float(ds.get("RescaleSlope", 1.0))
    intercept = float(ds.get("RescaleIntercept", 0.0))
    if slope == int(slope) and intercept == int(intercept):
        hu = pixels.astype(np.int32) * int(slope) + int(intercept)
        if hu.min() >= -32768 and hu.max() <= 32767:
            return hu.astype(np.int16)
    return (pixels.astype(np.float32) * slope + intercept).astype(np.float32)


def _deduplicate(
    order: np.ndarray,
    positions: np.ndarray,
    slices: list[np.ndarray],
    datasets: list[pydicom.Dataset],
) -> tuple[list[int], list[str]]:
    keep: list[int] = []
    dropped: list[str] = []
    for i in order:
        if keep and abs(positions[i] - positions[keep[-1]]) < 1e-3:
            if not np.array_equal(slices[i], slices[keep[-1]]):
                raise SeriesRejected(
                    f"two instances at the same position ({positions[i]:.2f} mm) differ in "
                    "content (several acquisitions or reconstructions in one series)"
                )
            dropped.append(str(datasets[i].SOPInstanceUID))
            continue
        keep.append(int(i))
    return keep, dropped


def _stack_releasing(slices: list[np.ndarray | None], keep: list[int]) -> np.ndarray:
    """Stack ``slices[keep]`` like ``np.stack``, dropping each slice once copied."""
    first = slices[keep[0]]
    dtype = np.result_type(*(slices[i] for i in keep))
    hu = np.empty((len(keep), *first.shape), dtype=dtype)
    for k, i in enumerate(keep):
        hu[k] = slices[i]
        slices[i] = None
    return hu


def _slice_spacing(z: np.ndarray) -> float:
    if z.size < 2:
        raise SeriesRejected(f"a volume needs at least 2 slice positions, got {z.size}")
    gaps = np.diff(z)
    median = float(np.median(gaps))
    worst = float(np.max(np.abs(gaps - median)))
    if worst > _SPACING_TOLERANCE * median:
        raise SeriesRejected(
            f"inconsistent slice spacing: gaps from {gaps.min():.3f} to {gaps.max():.3f} mm "
            "(missing slices or variable spacing)"
        )
    return median


def _strip_pixels(ds: pydicom.Dataset) -> pydicom.Dataset:
    header = pydicom.Dataset()
    header.file_meta = getattr(ds, "file_meta", pydicom.dataset.FileMetaDataset())
    for elem in ds:
        if elem.tag != 0x7FE00010:
            header.add(elem)
    return header
