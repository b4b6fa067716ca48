"""Colour conversion for segment display colours (DICOM encoded CIELab -> sRGB)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

D65_WHITE = np.array([0.950456, 1.0, 1.088754])
SRGB_FROM_XYZ = np.array([[3.2406, -1.5372, -0.4986],
                          [-0.9689, 1.8758, 0.0415],
                          [0.0557, -0.2040, 1.0570]])


def dicom_lab_to_srgb(value: Sequence[int]) -> np.ndarray:
    """Convert an encoded DICOM CIELab value to sRGB 0..255, not clipped.

    This is the conversion viewers (OHIF/dcmjs) apply to ``RecommendedDisplayCIELabValue``;
    components outside 0..255 mean the colour is outside sRGB and gets clipped on screen.

    Parameters
    ----------
    value : sequence of int
        Three uint16 values (L*, a*, b* scaled to 0..65535 as in DICOM).

    Returns
    -------
    ndarray
        ``(3,)`` float sRGB components.

    Raises
    ------
    ValueError
        If ``value`` does not have three components.
    """
    lab = np.asarray(value, dtype=float) / 65535.0
    if lab.shape != (3,):
        raise ValueError(f"value must have 3 components, got {value!r}")
    lightness, a, b = lab[0] * 100.0, lab[1] * 255.0 - 128.0, lab[2] * 255.0 - 128.0
    fy = (lightness + 16.0) / 116.0
    f = np.array([fy + a / 500.0, fy, fy - b / 200.0])
    xyz = D65_WHITE * np.where(f > 6 / 29, f**3, (f - 4 / 29) * 3 * (6 / 29) ** 2)
    linear = SRGB_FROM_XYZ @ xyz
    srgb = np.where(linear > 0.0031308, 1.055 * np.abs(linear) ** (1 / 2.4) - 0.055, 12.92 * linear)
    return srgb * 255.0
