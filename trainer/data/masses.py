"""Synthetic lung masses made from real tissue, set against the chest wall or the hilum.

Two annotated masses cannot teach a model what a mass is, so training also sees masses
inserted into the lesion-free lung field of whole series: the shape of a real LIDC nodule
(its contoured mask, lobulation and spiculation included) scaled to 3-10 cm, filled with
soft tissue whose texture is smoothed noise around a solid tumour's density, often with a
necrotic (fluid-density) centre and sometimes an air cavity inside it, and placed so that
it rests on the chest wall or on the hilum and is clipped by them, as a tumour that grew
there is. The host's own lung, vessels and wall stay around it.

Arrays are ``(z, y, x)``; spacings ``(z, y, x)`` in mm; values in HU.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from pipeline.lungs import dilate
from pipeline.preprocess import to_image

DIAMETER_RANGE_MM = (30.0, 100.0)
"""Equivalent diameters drawn for a synthetic mass (a mass is a lesion over 3 cm)."""
SOLID_HU = (25.0, 55.0)
"""Mean density range of the viable (solid) tumour, unenhanced to mildly enhanced."""
NECROTIC_HU = (5.0, 25.0)
"""Mean density range of a necrotic centre (fluid-like)."""
CAVITY_HU = -920.0
"""Density of air in a cavity (the noise is added on top)."""
TEXTURE_SD_HU, TEXTURE_SMOOTH_MM = 18.0, 1.5
"""Standard deviation and correlation length of the tissue texture."""
MIN_INSIDE = 0.7
"""Share of a mass that must land inside the lung field (else another place is drawn)."""
PLACEMENT_TRIES = 8
"""Places drawn for one mass before giving up."""
INWARD_RADII = 0.9
"""The centre of a mass lies this many radii inside the field from its contact point."""
Z_MARGIN = 0.15
"""Contact points are drawn from the middle of the field along z, leaving out this share at
the apex and at the base, where the lung is too small to hold a mass."""
WALL_CONTACT_MM = 3.0
"""A mass may extend this far beyond the lung field (into the pleura it rests on)."""


@dataclass(frozen=True)
class MassRecipe:
    """What one synthetic mass looks like."""

    diameter_mm: float
    necrotic: bool
    cavity: bool
    attach: str  # 'wall' or 'hilum'
    solid_hu: float
    necrotic_hu: float


def draw_recipe(rng: np.random.Generator) -> MassRecipe:
    """Draw a mass: diameter 3-10 cm, necrotic in 60 %, cavitary in 30 %, on the hilum in 25 %."""
    necrotic = bool(rng.random() < 0.6)
    return MassRecipe(
        diameter_mm=float(rng.uniform(*DIAMETER_RANGE_MM)),
        necrotic=necrotic,
        cavity=bool(rng.random() < (0.45 if necrotic else 0.15)),
        attach="hilum" if rng.random() < 0.25 else "wall",
        solid_hu=float(rng.uniform(*SOLID_HU)),
        necrotic_hu=float(rng.uniform(*NECROTIC_HU)),
    )


def scaled_shape(
    source: np.ndarray,
    source_spacing: tuple[float, float, float],
    diameter_mm: float,
    spacing: tuple[float, float, float],
    rng: np.random.Generator,
) -> np.ndarray:
    """Scale a nodule mask to ``diameter_mm`` (equivalent sphere) on a grid of ``spacing``.

    Parameters
    ----------
    source : ndarray
        Boolean ``(z, y, x)`` nodule mask (not empty).
    source_spacing, spacing : tuple of float
        ``(z, y, x)`` spacing of the source and of the output grid, mm.
    diameter_mm : float
        Equivalent-sphere diameter of the result.
    rng : numpy.random.Generator
        Draws random flips of the three axes.

    Returns
    -------
    ndarray
        Boolean mask on the output grid, tightly cropped.

    Raises
    ------
    ValueError
        If ``source`` is empty or ``diameter_mm`` is not positive.
    """
    if not source.any():
        raise ValueError("source nodule mask is empty")
    if diameter_mm <= 0:
        raise ValueError(f"diameter_mm must be > 0, got {diameter_mm!r}")
    volume = float(source.sum() * np.prod(source_spacing))
    scale = diameter_mm / float(np.cbrt(6.0 * volume / np.pi))
    flips = [bool(f) for f in rng.random(3) < 0.5]
    src = to_image(source.astype(np.float32), tuple(s * scale for s in source_spacing))
    src = sitk.Flip(src, flips[::-1])
    size = [int(np.ceil(n * s / t)) + 2 for n, s, t in
            zip(src.GetSize(), src.GetSpacing(), (spacing[2], spacing[1], spacing[0]), strict=True)]
    out = sitk.Resample(src, size, sitk.Transform(), sitk.sitkLinear, src.GetOrigin(),
                        (spacing[2], spacing[1], spacing[0]), src.GetDirection(), 0.0)
    mask = sitk.GetArrayFromImage(out) > 0.5
    if not mask.any():
        raise ValueError(f"a {diameter_mm} mm mass vanishes on a grid of {spacing} mm")
    box = tuple(slice(int(a.min()), int(a.max()) + 1) for a in np.nonzero(mask))
    return mask[box]


def mass_texture(
    mask: np.ndarray, spacing: tuple[float, float, float], recipe: MassRecipe,
    rng: np.random.Generator,
) -> np.ndarray:
    """Return HU values for every voxel of ``mask`` (``(z, y, x)`` float32, 0 outside).

    Solid tumour around ``recipe.solid_hu``; a necrotic centre (the inner part, by distance
    to the outline, with an irregular border) around ``recipe.necrotic_hu``; a cavity (an
    irregular air pocket inside the centre) at ``CAVITY_HU``; smoothed noise throughout.
    """
    noise = _smooth_noise(mask.shape, spacing, rng)
    hu = recipe.solid_hu + TEXTURE_SD_HU * noise
    depth = _depth(mask, spacing)
    radius = max(float(depth.max()), 1e-3)
    wobble = _smooth_noise(mask.shape, spacing, rng, smooth_mm=radius / 3.0)
    if recipe.necrotic:
        core = mask & (depth + 0.25 * radius * wobble > 0.45 * radius)
        hu[core] = recipe.necrotic_hu + 0.5 * TEXTURE_SD_HU * noise[core]
    if recipe.cavity:
        cavity = mask & (depth + 0.25 * radius * wobble > 0.7 * radius)
        hu[cavity] = CAVITY_HU + 40.0 * noise[cavity]
    return np.where(mask, hu, 0.0).astype(np.float32)


def _depth(mask: np.ndarray, spacing: tuple[float, float, float]) -> np.ndarray:
    """Distance (mm) of each voxel inside ``mask`` to its outline; 0 outside."""
    padded = np.pad(mask, 1)
    dist = sitk.SignedMaurerDistanceMap(to_image(padded.astype(np.uint8), spacing),
                                        insideIsPositive=True, squaredDistance=False,
                                        useImageSpacing=True)
    return np.clip(sitk.GetArrayFromImage(dist)[1:-1, 1:-1, 1:-1], 0.0, None)


def _smooth_noise(
    shape: tuple[int, ...], spacing: tuple[float, float, float], rng: np.random.Generator,
    smooth_mm: float = TEXTURE_SMOOTH_MM,
) -> np.ndarray:
    """Gaussian-smoothed white noise scaled to unit standard deviation."""
    white = to_image(rng.standard_normal(shape).astype(np.float32), spacing)
    smooth = sitk.GetArrayFromImage(sitk.SmoothingRecursiveGaussian(white, float(smooth_mm)))
    return (smooth / max(float(smooth.std()), 1e-6)).astype(np.float32)


def attachment_centre(
    field: np.ndarray, avoid: np.ndarray, recipe: MassRecipe, size_vox: np.ndarray,
    spacing: tuple[float, float, float], rng: np.random.Generator,
) -> np.ndarray | None:
    """Where a mass's bounding box starts so that it rests on the wall or the hilum.

    A point of the field's outline is drawn (on the lateral and posterior wall for
    ``attach='wall'``, the most medial tenth of each lung's outline for ``'hilum'``), away
    from ``avoid`` and from the apex and base (``Z_MARGIN``); the mass's centre goes
    ``INWARD_RADII`` of its radius into the field from there.

    Returns
    -------
    ndarray or None
        ``(z, y, x)`` start index of the mass's box, or None when no point fits.
    """
    edge = field & ~_eroded_inplane(field)
    if avoid.any():
        edge &= ~dilate(avoid, spacing, recipe.diameter_mm / 2 + 10.0)
    slices = np.flatnonzero(field.any(axis=(1, 2)))
    if slices.size == 0:
        return None
    span = slices[-1] - slices[0]
    edge[: int(slices[0] + Z_MARGIN * span)] = False
    edge[int(slices[-1] - Z_MARGIN * span) + 1 :] = False
    points = np.argwhere(edge)
    if len(points) == 0:
        return None
    middle_x = (np.flatnonzero(field.any(axis=(0, 1)))[[0, -1]].mean())
    lateral = np.abs(points[:, 2] - middle_x)
    if recipe.attach == "hilum":
        points = points[lateral <= np.quantile(lateral, 0.1)]
    else:
        points = points[lateral >= np.quantile(lateral, 0.3)]
    p = points[int(rng.integers(len(points)))]
    inward = _inward(field[p[0]], p[1:])
    radius_vox = 0.5 * recipe.diameter_mm / np.array(spacing[1:])
    centre_yx = p[1:] + inward * INWARD_RADII * radius_vox
    centre = np.array([p[0], *centre_yx])
    return np.round(centre - size_vox / 2.0).astype(int)


def _eroded_inplane(mask: np.ndarray) -> np.ndarray:
    out = mask.copy()
    out[:, 1:, :] &= mask[:, :-1, :]
    out[:, :-1, :] &= mask[:, 1:, :]
    out[:, :, 1:] &= mask[:, :, :-1]
    out[:, :, :-1] &= mask[:, :, 1:]
    return out


def _inward(plane: np.ndarray, point: np.ndarray) -> np.ndarray:
    """Return the unit ``(y, x)`` direction from ``point`` to the centre of its lung."""
    ys, xs = np.nonzero(plane)
    side = xs < point[1] + 1 if point[1] < plane.shape[1] / 2 else xs > point[1] - 1
    target = np.array([ys[side].mean(), xs[side].mean()]) if side.any() else np.array(
        [ys.mean(), xs.mean()])
    vector = target - point
    norm = float(np.hypot(*vector))
    return vector / norm if norm > 0 else np.array([0.0, 1.0])


def insert_mass(
    hu: np.ndarray, spacing: tuple[float, float, float], field: np.ndarray,
    shape: np.ndarray, texture: np.ndarray, start: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Set a mass into a copy of ``hu``; return it and the mass's mask on ``hu``'s grid.

    The mass is clipped to the field grown by ``WALL_CONTACT_MM``: where it meets the chest
    wall or the mediastinum it is flattened against them, as a tumour that grew there.

    Raises
    ------
    ValueError
        If ``shape`` and ``texture`` differ in shape or nothing of the mass lands in ``hu``.
    """
    if shape.shape != texture.shape:
        raise ValueError(f"shape {shape.shape} and texture {texture.shape} must match")
    mask = np.zeros(hu.shape, dtype=bool)
    values = np.zeros(hu.shape, dtype=np.float32)
    dst, src = [], []
    for s, n, size in zip(start, shape.shape, hu.shape, strict=True):
        lo, hi = max(0, int(s)), min(size, int(s) + n)
        if hi <= lo:
            raise ValueError(f"the mass at {tuple(start)} lies outside the volume {hu.shape}")
        dst.append(slice(lo, hi))
        src.append(slice(lo - int(s), hi - int(s)))
    mask[tuple(dst)] = shape[tuple(src)]
    values[tuple(dst)] = texture[tuple(src)]
    mask &= dilate(field, spacing, WALL_CONTACT_MM)
    if not mask.any():
        raise ValueError("the mass does not overlap the lung field")
    out = hu.astype(np.float32, copy=True)
    out[mask] = values[mask]
    return out, mask


def synthesize(
    hu: np.ndarray, spacing: tuple[float, float, float], field: np.ndarray, avoid: np.ndarray,
    source: np.ndarray, source_spacing: tuple[float, float, float], rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, MassRecipe] | None:
    """Draw a recipe and insert one synthetic mass into a copy of ``hu``.

    Parameters
    ----------
    hu : ndarray
        Host CT, ``(z, y, x)`` HU.
    spacing : tuple of float
        Host spacing, mm.
    field : ndarray
        Host lung field (:func:`pipeline.lungfield.lung_field`).
    avoid : ndarray
        Host voxels the mass must stay away from (real lesions).
    source : ndarray
        A real nodule's mask, giving the mass its shape.
    source_spacing : tuple of float
        Its spacing, mm.
    rng : numpy.random.Generator

    Returns
    -------
    tuple or None
        ``(hu with the mass, mass mask, recipe)``; None when no place holds at least
        ``MIN_INSIDE`` of the mass in the field.
    """
    recipe = draw_recipe(rng)
    shape = scaled_shape(source, source_spacing, recipe.diameter_mm, spacing, rng)
    texture = mass_texture(shape, spacing, recipe, rng)
    for _ in range(PLACEMENT_TRIES):
        start = attachment_centre(field, avoid, recipe, np.array(shape.shape), spacing, rng)
        if start is None:
            return None
        try:
            out, mask = insert_mass(hu, spacing, field, shape, texture, start)
        except ValueError:
            continue
        if mask.sum() >= MIN_INSIDE * shape.sum():
            return out, mask, recipe
    return None
