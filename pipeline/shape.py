"""Shape plausibility gate: drop predicted components shaped unlike any training nodule.

The limits are percentiles of the shapes the model itself predicts on the nodules of its
training patients (``trainer shape-limits`` writes them into the model sidecar), so the gate
removes flat plates (such as diaphragm-dome cross-sections a few slices thick), long tubes
and ragged branching shapes (vessel segments and junctions) while keeping the shapes
nodules take.

Shape measures, on the physical grid:

- elongation: sqrt(largest / middle principal second moment);
- flatness: sqrt(middle / smallest principal second moment);
- roundness: surface of the equal-volume sphere / surface of the component (1 for a ball),
  from SimpleITK's ``LabelShapeStatisticsImageFilter``;

each on the component with its holes filled slice by slice (a cavitary or necrotic lesion
whose centre the model leaves out keeps the shape of its outline).

The limits come from nodules, so two measures are not judged where nodules say nothing:
roundness of a mass (equivalent diameter of ``MASS_DIAMETER_MM`` or more: a lobulated or
spiculated tumour of several centimetres is less round than any training nodule), and
flatness and roundness of a component on at most ``THIN_COMPONENT_SLICES`` slices of
``THICK_SLICE_MM`` or more (there the slice thickness, not the lesion, sets the smallest
extent and so both measures); elongation, in-plane for such a component, is still judged.

The moments count each voxel as a solid box (its own variance, spacing^2 / 12 per axis, is
added). SimpleITK's moments treat voxels as points, so a component one slice thick has a
zero smallest moment and its flatness comes out as 0 or as a huge number from rounding;
with solid voxels it is the physical ratio, finite for every component.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from engines.spec import check_shape_limits
from pipeline.morphology import fill_holes


@dataclass(frozen=True)
class ComponentShape:
    """Physical shape measures of one connected component (see the module docstring)."""

    volume_mm3: float
    elongation: float
    flatness: float
    roundness: float
    thickness_limited: bool = False
    """True when the component lies on few thick slices (judged on elongation only)."""

    @property
    def diameter_mm(self) -> float:
        """Diameter of the sphere of the same volume."""
        return float(np.cbrt(6.0 * self.volume_mm3 / np.pi))


MASS_DIAMETER_MM = 30.0
"""Lesions of this equivalent diameter or more are masses; their roundness is not judged."""

THICK_SLICE_MM = 3.0
"""Slices at least this thick (mm) can hide a lesion's true extent along z."""

THIN_COMPONENT_SLICES = 2
"""A component on this many thick slices or fewer is judged on its elongation only."""


def component_shapes(labels: np.ndarray, spacing: Sequence[float]) -> dict[int, ComponentShape]:
    """Measure every labelled component of a ``(z, y, x)`` label map.

    Each component is measured with its holes filled slice by slice, so a cavity or a
    necrotic centre that the model leaves out does not make a lesion look ragged.

    Parameters
    ----------
    labels : ndarray
        Integer label map, 0 background.
    spacing : sequence of float
        ``(z, y, x)`` voxel spacing in mm.

    Returns
    -------
    dict
        Label value to :class:`ComponentShape`; empty when ``labels`` has no component.

    Raises
    ------
    ValueError
        If ``labels`` is not 3-D or ``spacing`` is not three positive numbers.
    """
    if labels.ndim != 3:
        raise ValueError(f"labels must be a (z, y, x) array, got shape {labels.shape}")
    if len(spacing) != 3 or min(spacing) <= 0:
        raise ValueError(f"spacing must be three positive numbers (mm), got {spacing!r}")
    if not labels.any():
        return {}
    boxes = sitk.LabelShapeStatisticsImageFilter()
    boxes.Execute(sitk.GetImageFromArray(np.ascontiguousarray(labels)))
    shapes = {}
    for k in boxes.GetLabels():
        x, y, z, nx, ny, nz = boxes.GetBoundingBox(k)
        component = labels[z:z + nz, y:y + ny, x:x + nx] == k
        shapes[int(k)] = mask_shape(fill_holes(component, per_slice=True), spacing)
    return shapes


def mask_shape(mask: np.ndarray, spacing: Sequence[float]) -> ComponentShape:
    """Shape of one non-empty boolean ``(z, y, x)`` mask taken as a single component."""
    img = sitk.GetImageFromArray(mask.astype(np.uint8))
    img.SetSpacing([float(s) for s in reversed(spacing)])
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.ComputePerimeterOn()
    stats.Execute(img)
    small, middle, large = _principal_moments(mask, spacing)
    slices = int(mask.any(axis=(1, 2)).sum())
    thin = slices <= THIN_COMPONENT_SLICES and float(spacing[0]) >= THICK_SLICE_MM
    return ComponentShape(stats.GetPhysicalSize(1), float(np.sqrt(large / middle)),
                          float(np.sqrt(middle / small)), stats.GetRoundness(1), thin)


def _principal_moments(mask: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
    """Ascending principal second moments (mm2) of a mask, voxels counted as solid boxes."""
    scale = np.asarray(spacing, dtype=np.float64)
    points = np.stack(np.nonzero(mask), axis=1) * scale
    cov = np.cov(points, rowvar=False, bias=True) if len(points) > 1 else np.zeros((3, 3))
    return np.linalg.eigvalsh(cov + np.diag(scale**2 / 12.0))


def largest_component_shape(mask: np.ndarray, spacing: Sequence[float]) -> ComponentShape | None:
    """Shape of the largest 26-connected component of a boolean mask (None when empty)."""
    if not mask.any():
        return None
    labels = sitk.GetArrayFromImage(
        sitk.ConnectedComponent(sitk.GetImageFromArray(mask.astype(np.uint8)), True))
    shapes = component_shapes(labels, spacing)
    return max(shapes.values(), key=lambda s: s.volume_mm3)


def check_percent(percent: float) -> None:
    """Raise ValueError unless ``percent`` (a tail, in percent) is in (0, 50)."""
    if not 0.0 < percent < 50.0:
        raise ValueError(f"percent must be in (0, 50), got {percent!r}")


def limits_from_shapes(shapes: Sequence[ComponentShape], percent: float) -> dict[str, float]:
    """Gate limits at ``percent`` from each tail of the shape distribution.

    Parameters
    ----------
    shapes : sequence of ComponentShape
        Shapes of predicted nodules (e.g. of the training patients' crops).
    percent : float
        Tail kept out per measure, in percent (0.5: the 99.5th percentile of elongation
        and flatness, the 0.5th of roundness).

    Returns
    -------
    dict
        ``max_elongation``, ``max_flatness``, ``min_roundness``.

    Raises
    ------
    ValueError
        If ``shapes`` is empty or ``percent`` is not in (0, 50).
    """
    check_percent(percent)
    if not shapes:
        raise ValueError("limits_from_shapes needs at least one shape, got none")
    high = 100.0 - percent
    return {
        "max_elongation": float(np.percentile([s.elongation for s in shapes], high)),
        "max_flatness": float(np.percentile([s.flatness for s in shapes], high)),
        "min_roundness": float(np.percentile([s.roundness for s in shapes], percent)),
    }


def is_implausible(shape: ComponentShape, limits: Mapping[str, float]) -> bool:
    """Return True when ``shape`` lies outside any of ``limits`` (see :func:`drop_implausible`).

    Roundness is not judged for masses, nor flatness and roundness for components on a few
    thick slices (module docstring).
    """
    if shape.elongation > limits.get("max_elongation", np.inf):
        return True
    if shape.thickness_limited:
        return False
    flat = shape.flatness > limits.get("max_flatness", np.inf)
    ragged = (shape.diameter_mm < MASS_DIAMETER_MM
              and shape.roundness < limits.get("min_roundness", -np.inf))
    return flat or ragged


def drop_implausible(
    labels: np.ndarray, spacing: Sequence[float], limits: Mapping[str, float]
) -> np.ndarray:
    """Remove the components whose shape is outside ``limits``; renumber the rest 1..m.

    The order of the remaining labels is kept (``label_lesions`` sorts by size). Pass the
    label map cropped to its components (as ``label_lesions`` does): the work scales with
    the array size.

    Parameters
    ----------
    labels : ndarray
        ``(z, y, x)`` label map, 0 background.
    spacing : sequence of float
        ``(z, y, x)`` voxel spacing in mm.
    limits : mapping
        Any of ``max_elongation``, ``max_flatness``, ``min_roundness``; empty: no gate.

    Returns
    -------
    ndarray
        Label map of the same shape and dtype.

    Raises
    ------
    ValueError
        If ``limits`` has an unknown key or a value that is not a positive number.
    """
    check_shape_limits(dict(limits))
    if not limits or not labels.any():
        return labels
    shapes = component_shapes(labels, spacing)
    kept = [k for k in sorted(shapes) if not is_implausible(shapes[k], limits)]
    if len(kept) == len(shapes):
        return labels
    lookup = np.zeros(int(labels.max()) + 1, dtype=labels.dtype)
    lookup[kept] = np.arange(1, len(kept) + 1, dtype=labels.dtype)
    return lookup[labels]
