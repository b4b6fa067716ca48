"""The SEG's RecommendedDisplayCIELabValue must be a colour a screen can show: viewers convert
it to sRGB (OHIF with dcmjs' dicomlab2RGB) and clip what falls outside, so an out-of-gamut
CIELab value is drawn in a different colour than the one recommended."""

from __future__ import annotations

import highdicom as hd
import numpy as np
import pytest

from pipeline.seg_writer import SEGMENT_COLOR_LAB

D65_WHITE = np.array([0.950456, 1.0, 1.088754])
SRGB_FROM_XYZ = np.array([[3.2406, -1.5372, -0.4986],
                          [-0.9689, 1.8758, 0.0415],
                          [0.0557, -0.2040, 1.0570]])


def dicom_lab_to_srgb(value) -> np.ndarray:
    """Encoded DICOM CIELab (3 x uint16) -> sRGB 0..255, not clipped."""
    lab = np.asarray(value, dtype=float) / 65535.0
    lightness, a, b = lab[0] * 100.0, lab[1] * 255.0 - 128.0, lab[2] * 255.0 - 128.0
    fy = (lightness + 16.0) / 116.0
    f = np.array([fy + a / 500.0, fy, fy - b / 200.0])
    xyz = D65_WHITE * np.where(f > 6 / 29, f**3, (f - 4 / 29) * 3 * (6 / 29) ** 2)
    linear = SRGB_FROM_XYZ @ xyz
    srgb = np.where(linear > 0.0031308, 1.055 * np.abs(linear) ** (1 / 2.4) - 0.055, 12.92 * linear)
    return srgb * 255.0


@pytest.mark.parametrize(("lab", "rgb"), [
    ((100.0, 0.0, 0.0), (255, 255, 255)),
    ((0.0, 0.0, 0.0), (0, 0, 0)),
    ((53.24, 80.09, 67.20), (255, 0, 0)),
    ((87.73, -86.18, 83.18), (0, 255, 0)),
])
def test_conversion_reproduces_known_colours(lab, rgb):
    encoded = hd.color.CIELabColor(*lab).value
    assert np.allclose(dicom_lab_to_srgb(encoded), rgb, atol=1.5)


def test_segment_colour_is_inside_srgb():
    encoded = hd.color.CIELabColor(*SEGMENT_COLOR_LAB).value
    rgb = dicom_lab_to_srgb(encoded)
    assert np.all(rgb >= 0.0) and np.all(rgb <= 255.0), (
        f"SEGMENT_COLOR_LAB {SEGMENT_COLOR_LAB} is sRGB {np.round(rgb, 1)}: outside 0..255")


def test_segment_colour_stands_out_on_grey_ct():
    rgb = dicom_lab_to_srgb(hd.color.CIELabColor(*SEGMENT_COLOR_LAB).value)
    assert rgb.max() - rgb.min() > 120, f"sRGB {np.round(rgb)} is too close to grey"
