"""LIDC-IDRI reader XML: nodule contours per radiologist -> masks on the series grid.

Only nodules of 3 mm or more (those with contours of several points) are rasterised, as in
the LIDC convention; consensus is the set of voxels marked by at least ``min_readers``.
Masks are ``(z, y, x)`` on the series' voxel grid, slices ordered like the series.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

NS = {"n": "http://www.nih.gov"}


@dataclass(frozen=True)
class Roi:
    """One contour on one slice (``points`` are ``(n, 2)`` x/column, y/row pixel indices)."""

    z_position: float
    sop_uid: str
    inclusion: bool
    points: np.ndarray


@dataclass
class NoduleRead:
    """One reader's annotation of one nodule."""

    nodule_id: str
    characteristics: dict[str, str]
    rois: list[Roi] = field(default_factory=list)

    @property
    def is_large(self) -> bool:
        """True for nodules >= 3 mm (contoured with more than one point)."""
        return any(len(r.points) > 1 for r in self.rois)


@dataclass
class ReaderRead:
    """All nodule annotations of one radiologist's reading session."""

    reader_id: str
    nodules: list[NoduleRead] = field(default_factory=list)


def _text(elem: ET.Element, path: str, default: str = "") -> str:
    found = elem.find(path, NS)
    return found.text.strip() if found is not None and found.text else default


def _roi(elem: ET.Element, point_tag: str = "n:edgeMap") -> Roi:
    """Read a contour (``roi``, points in ``edgeMap``) or a non-nodule (``locus``)."""
    pts = [(int(_text(e, "n:xCoord")), int(_text(e, "n:yCoord")))
           for e in elem.findall(point_tag, NS)]
    return Roi(float(_text(elem, "n:imageZposition", "nan")), _text(elem, "n:imageSOP_UID"),
               _text(elem, "n:inclusion", "TRUE").upper() == "TRUE",
               np.array(pts, dtype=np.int64).reshape(-1, 2))


def _sessions(path: str | Path) -> list[ET.Element]:
    """Return the ``readingSession`` elements of a LIDC ``LidcReadMessage`` file.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If it is not well-formed XML or holds no reading session.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"LIDC XML not found: {path}")
    try:
        sessions = ET.parse(path).getroot().findall("n:readingSession", NS)
    except ET.ParseError as exc:
        raise ValueError(f"malformed LIDC XML {path}: {exc}") from exc
    if not sessions:
        raise ValueError(f"{path} holds no readingSession: not LIDC reader XML")
    return sessions


def parse_lidc_xml(path: str | Path) -> list[ReaderRead]:
    """Parse a LIDC ``LidcReadMessage`` file.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If it is not LIDC reader XML (no reading session) or a coordinate is malformed.
    """
    sessions, reads = _sessions(path), []
    try:
        for session in sessions:
            read = ReaderRead(_text(session, "n:servicingRadiologistID"))
            for nod in session.findall("n:unblindedReadNodule", NS):
                chars = nod.find("n:characteristics", NS)
                char_dict = {c.tag.split("}")[-1]: (c.text or "").strip()
                             for c in (chars if chars is not None else [])}
                read.nodules.append(NoduleRead(
                    _text(nod, "n:noduleID"), char_dict,
                    [_roi(r) for r in nod.findall("n:roi", NS)]))
            reads.append(read)
    except ValueError as exc:
        raise ValueError(f"malformed LIDC XML {path}: {exc}") from exc
    return reads


def read_all_marks(path: str | Path) -> list[Roi]:
    """Return every place any reader marked: nodule outlines of any size and non-nodules.

    Nodules under 3 mm are single points, non-nodules (``nonNodule`` ``locus``) too. What
    no reader marked is the only part of a LIDC series that can be called lesion-free.

    Raises
    ------
    FileNotFoundError, ValueError
        As :func:`parse_lidc_xml`.
    """
    sessions, marks = _sessions(path), []
    try:
        for session in sessions:
            for nod in session.findall("n:unblindedReadNodule", NS):
                marks += [_roi(r) for r in nod.findall("n:roi", NS)]
            marks += [_roi(other, "n:locus") for other in session.findall("n:nonNodule", NS)]
    except ValueError as exc:
        raise ValueError(f"malformed LIDC XML {path}: {exc}") from exc
    return marks


def _polygon(points: np.ndarray, shape_yx: tuple[int, int]) -> np.ndarray:
    from PIL import Image, ImageDraw

    img = Image.new("1", (shape_yx[1], shape_yx[0]), 0)
    ImageDraw.Draw(img).polygon([tuple(map(int, p)) for p in points], fill=1, outline=1)
    return np.array(img, dtype=bool)


def slice_index(roi: Roi, sop_index: dict[str, int], z_positions: np.ndarray) -> int | None:
    """Slice of ``roi``: by SOP Instance UID, else by z position within 0.1 mm (or None)."""
    if roi.sop_uid in sop_index:
        return sop_index[roi.sop_uid]
    k = int(np.argmin(np.abs(z_positions - roi.z_position)))
    return k if abs(z_positions[k] - roi.z_position) < 0.1 else None


def reader_masks(
    reads: list[ReaderRead], sop_uids: list[str], z_positions: np.ndarray,
    shape: tuple[int, int, int],
) -> np.ndarray:
    """Rasterise each reader's nodules (>= 3 mm) to a ``(readers, z, y, x)`` bool array.

    Contours are filled including their boundary; exclusion contours are removed.

    Raises
    ------
    ValueError
        If ``sop_uids``/``z_positions`` do not have one entry per slice of ``shape``.
    """
    if len(sop_uids) != shape[0] or len(z_positions) != shape[0]:
        raise ValueError(f"need {shape[0]} sop_uids and z_positions, got {len(sop_uids)}, "
                         f"{len(z_positions)}")
    sop_index = {uid: i for i, uid in enumerate(sop_uids)}
    z_positions = np.asarray(z_positions, dtype=np.float64)
    out = np.zeros((len(reads), *shape), dtype=bool)
    for r, read in enumerate(reads):
        for nodule in (n for n in read.nodules if n.is_large):
            for roi in sorted(nodule.rois, key=lambda q: not q.inclusion):
                k = slice_index(roi, sop_index, z_positions)
                if k is None:
                    continue
                poly = _polygon(roi.points, shape[1:])
                if roi.inclusion:
                    out[r, k] |= poly
                else:
                    out[r, k] &= ~poly
    return out


def consensus_mask(masks: np.ndarray, min_readers: int = 2) -> np.ndarray:
    """Voxels marked by at least ``min_readers`` readers.

    Raises
    ------
    ValueError
        If ``min_readers`` < 1.
    """
    if min_readers < 1:
        raise ValueError(f"min_readers must be >= 1, got {min_readers}")
    return masks.sum(axis=0) >= min_readers
