"""What each predicted lesion of a whole-series evaluation is: a table and PNG views.

``trainer evaluate --series ... --components DIR`` lists every component the product path
keeps, whether it overlaps the reference (``lesion_detection``'s rule), and saves three
axial views through its largest slice, so false positives can be looked at and named.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.measure import measure_lesions
from trainer.evaluation.metrics import label_components

FIELD_MM = 100.0
"""Side of the square field shown around a component, in mm."""
VIEW_OFFSETS_MM = (-5.0, 0.0, 5.0)
"""Slices shown, relative to the component's largest slice."""
LUNG_WINDOW_HU = (-1000.0, 400.0)
"""Display window (HU) of the views."""


def describe_components(labels: np.ndarray, ref: np.ndarray, hu: np.ndarray,
                        prob: np.ndarray, spacing: tuple[float, float, float],
                        index_to_patient=None) -> list[dict]:
    """One row per predicted component: measurements, overlap and peak probability.

    Parameters
    ----------
    labels : ndarray
        ``(z, y, x)`` label map of the kept components (0 background).
    ref : ndarray
        Boolean reference mask, same shape.
    hu, prob : ndarray
        CT in HU and the model's probabilities, same shape.
    spacing : tuple of float
        ``(z, y, x)`` mm.
    index_to_patient : callable, optional
        Voxel indices to patient coordinates (:meth:`pipeline.series.CTSeries.index_to_patient`).

    Returns
    -------
    list of dict
        In label order: ``label``, ``true_positive``, ``reference_lesions`` (how many
        reference components it overlaps), ``volume_mm3``, ``long_axis_mm``, ``slices``,
        ``key_slice``, ``centroid_zyx``, ``centroid_mm``, ``mean_hu``, ``peak_probability``.

    Raises
    ------
    ValueError
        If the shapes differ.
    """
    if not labels.shape == ref.shape == hu.shape == prob.shape:
        raise ValueError(f"labels {labels.shape}, ref {ref.shape}, hu {hu.shape} and "
                         f"prob {prob.shape} must have one shape")
    ref_labels = label_components(ref)[0]
    rows = []
    for lesion in measure_lesions(labels, hu, spacing, index_to_patient):
        mask = labels == lesion.label
        z = np.nonzero(mask.any(axis=(1, 2)))[0]
        hit = np.setdiff1d(np.unique(ref_labels[mask]), [0])
        rows.append({
            "label": lesion.label, "true_positive": bool(hit.size),
            "reference_lesions": int(hit.size),
            "volume_mm3": round(lesion.volume_mm3, 1),
            "long_axis_mm": round(lesion.long_axis_mm, 1),
            "slices": int(z[-1] - z[0] + 1), "key_slice": lesion.key_slice,
            "centroid_zyx": [round(v, 1) for v in lesion.centroid_zyx],
            "centroid_mm": (None if lesion.centroid_mm is None
                            else [round(v, 1) for v in lesion.centroid_mm]),
            "mean_hu": round(lesion.mean_hu, 1),
            "peak_probability": round(float(prob[mask].max()), 3),
        })
    return rows


def view_box(centre_yx: tuple[float, float], spacing_yx: tuple[float, float],
             shape_yx: tuple[int, int], field_mm: float = FIELD_MM) -> tuple[slice, slice]:
    """Return the in-plane window of ``field_mm`` around ``centre_yx``, clipped to the image."""
    out = []
    for c, s, n in zip(centre_yx, spacing_yx, shape_yx, strict=True):
        half = int(round(field_mm / 2 / s))
        lo = int(np.clip(round(c) - half, 0, max(n - 1, 0)))
        out.append(slice(lo, int(min(lo + 2 * half, n))))
    return out[0], out[1]


def view_slices(key_slice: int, spacing_z: float, n_slices: int,
                offsets_mm: tuple[float, ...] = VIEW_OFFSETS_MM) -> list[int]:
    """Return the slice indices ``offsets_mm`` away from ``key_slice``, clipped to the series."""
    return [int(np.clip(key_slice + round(o / spacing_z), 0, n_slices - 1)) for o in offsets_mm]


def render_components(rows: list[dict], labels: np.ndarray, ref: np.ndarray, hu: np.ndarray,
                      spacing: tuple[float, float, float], out_dir: str | Path) -> list[Path]:
    """Save one PNG per row of :func:`describe_components`.

    Each shows three axial slices (``VIEW_OFFSETS_MM`` from the largest one) of a
    ``FIELD_MM`` field, the component outlined in red and the reference in green; the
    file is ``component_NN_tp.png`` or ``component_NN_fp.png``. Nothing identifying the
    patient is drawn.

    Returns
    -------
    list of Path
        The files written, in row order.
    """
    from trainer.evaluation.plots import headless_pyplot

    plt = headless_pyplot()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for row in rows:
        mask = labels == row["label"]
        box = view_box(tuple(row["centroid_zyx"][1:]), spacing[1:], hu.shape[1:])
        zs = view_slices(row["key_slice"], spacing[0], hu.shape[0])
        fig, axes = plt.subplots(1, len(zs), figsize=(3 * len(zs), 3.2))
        for ax, z, off in zip(np.atleast_1d(axes), zs, VIEW_OFFSETS_MM, strict=True):
            ax.imshow(hu[z][box], cmap="gray", vmin=LUNG_WINDOW_HU[0], vmax=LUNG_WINDOW_HU[1])
            for layer, colour in ((ref, "lime"), (mask, "red")):
                if layer[z][box].any():
                    ax.contour(layer[z][box], levels=[0.5], colors=colour, linewidths=0.8)
            ax.set_title(f"{off:+.0f} mm", fontsize=8)
            ax.axis("off")
        kind = "tp" if row["true_positive"] else "fp"
        fig.suptitle(f"component {row['label']} ({kind}): {row['volume_mm3']:.0f} mm3, "
                     f"peak p {row['peak_probability']:.2f}", fontsize=9)
        path = out_dir / f"component_{row['label']:02d}_{kind}.png"
        fig.savefig(path, dpi=80, bbox_inches="tight")
        plt.close(fig)
        paths.append(path)
    return paths
