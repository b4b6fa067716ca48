"""The SEG's RecommendedDisplayCIELabValue must be a colour a screen can show: viewers convert
it to sRGB (OHIF with dcmjs' dicomlab2RGB) and clip what falls outside, so an out-of-gamut
CIELab value is drawn in a different colour than the one recommended."""

from __future__ import annotations

import highdicom as hd
import numpy as np
import pytest

from pipeline.colour import dicom_lab_to_srgb
from pipeline.seg_writer import SEGMENT_COLOR_LAB


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
