"""Lesion-free training windows from whole LIDC series: the lung minus every reader's mark.

A whole chest series shows what nodule crops and single slices do not: hila, bronchial
walls, the diaphragm dome, fissures and the chest wall, in their real surroundings. In a
LIDC series only what no reader marked can be called lesion-free, so every mark of the
reader XML (nodules of any size, non-nodules) is grown by :data:`EXCLUDE_MM` and left out;
negative windows are centred on the rest of the lung, grown by :data:`LUNG_MARGIN_MM` as the
pipeline's lung gate is, so that the pleura, hila and diaphragm are included.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.lungs import dilate, fast_lung_mask
from pipeline.series import CTSeries, load_series_dir
from trainer.data.lidc import Roi, read_all_marks, slice_index

EXCLUDE_MM = 30.0
"""Growth of every reader mark (mm, box): a 64-pixel window (50 mm at 0.78 mm) centred
outside the grown mark does not contain the mark's box in-plane, and its 2.5D channels
(+-2 mm) do not reach it along z."""

LUNG_MARGIN_MM = 5.0
"""Growth of the lung mask where window centres may lie (the pipeline's gate margin)."""


def marks_box_mask(
    marks: list[Roi], sop_uids: list[str], z_positions: np.ndarray, shape: tuple[int, int, int]
) -> np.ndarray:
    """Rasterise the in-plane bounding box of each mark on its slice.

    Parameters
    ----------
    marks : list of Roi
        From :func:`trainer.data.lidc.read_all_marks`.
    sop_uids : list of str
        SOP Instance UID of every slice, in volume order.
    z_positions : ndarray
        ``(z,)`` slice positions (mm), used for marks whose UID is not in the series.
    shape : tuple of int
        ``(z, y, x)`` of the volume.

    Returns
    -------
    ndarray
        Boolean ``(z, y, x)`` mask; marks on no slice of the series are ignored.
    """
    sop_index = {uid: i for i, uid in enumerate(sop_uids)}
    out = np.zeros(shape, dtype=bool)
    for roi in marks:
        k = slice_index(roi, sop_index, np.asarray(z_positions, dtype=np.float64))
        if k is None or roi.points.size == 0:
            continue
        (x0, y0), (x1, y1) = roi.points.min(axis=0), roi.points.max(axis=0)
        out[k, max(y0, 0) : y1 + 1, max(x0, 0) : x1 + 1] = True
    return out


def negative_centres(
    series: CTSeries, marks: list[Roi], lungs: np.ndarray | None = None
) -> np.ndarray:
    """Return where lesion-free windows of ``series`` may be centred.

    Parameters
    ----------
    series : CTSeries
        The whole series.
    marks : list of Roi
        Every reader's mark (:func:`trainer.data.lidc.read_all_marks`).
    lungs : ndarray, optional
        The series' lung mask when the caller has it already
        (:func:`pipeline.lungs.fast_lung_mask`); computed otherwise.

    Returns
    -------
    ndarray
        Boolean ``(z, y, x)``: the lung mask grown by :data:`LUNG_MARGIN_MM`, minus every
        mark grown by :data:`EXCLUDE_MM`.
    """
    uids = [str(d.SOPInstanceUID) for d in series.datasets]
    marked = marks_box_mask(marks, uids, series.z_positions_mm, series.hu.shape)
    return centres_away_from(series, marked, lungs)


def centres_away_from(
    series: CTSeries, marked: np.ndarray | None, lungs: np.ndarray | None = None
) -> np.ndarray:
    """Return where lesion-free windows may be centred, given what must stay out.

    The lung (``lungs`` when the caller has it, computed otherwise) grown by
    :data:`LUNG_MARGIN_MM`, less ``marked`` grown by :data:`EXCLUDE_MM`; nothing is left
    out when ``marked`` is None.
    """
    if lungs is None:
        lungs = fast_lung_mask(series.hu, series.spacing)
    allowed = dilate(lungs, series.spacing, LUNG_MARGIN_MM)
    if marked is None:
        return allowed
    return allowed & ~dilate(marked, series.spacing, EXCLUDE_MM)


def reader_xml(folder: str | Path) -> Path:
    """Return the one LIDC reader XML under ``folder`` (searched recursively).

    Raises
    ------
    FileNotFoundError
        If the folder does not exist.
    ValueError
        If it holds no reader XML (without one nothing can be called lesion-free) or more
        than one.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"negative series folder not found: {folder}")
    xml = sorted(folder.rglob("*.xml"))
    if len(xml) != 1:
        raise ValueError(
            f"{folder}: expected one LIDC reader XML, found {len(xml)}; without the readers' "
            "marks no region of a series can be called lesion-free"
        )
    return xml[0]


def read_negative_series(folder: str | Path) -> tuple[CTSeries, np.ndarray]:
    """Load a whole LIDC series and where its lesion-free windows may be centred.

    Parameters
    ----------
    folder : str or Path
        A folder holding one CT series and its LIDC reader XML (:func:`reader_xml`).

    Returns
    -------
    series : CTSeries
    centres : ndarray
        See :func:`negative_centres`.

    Raises
    ------
    FileNotFoundError, ValueError
        As :func:`reader_xml`, or for a folder that is not one CT series.
    """
    xml = reader_xml(folder)
    series = load_series_dir(folder)
    return series, negative_centres(series, read_all_marks(xml))
