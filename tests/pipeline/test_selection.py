"""Declarative series-selection rules."""

from __future__ import annotations

import pydicom
import pytest

from pipeline.selection import DEFAULT_RULES, matches, series_attributes, slice_orientation


def _attrs(**overrides):
    attrs = {
        "Modality": "CT", "ImageType": ["ORIGINAL", "PRIMARY", "AXIAL"], "ImageType3": "AXIAL",
        "NumberOfSlices": 133, "SliceOrientation": "AXIAL", "SeriesDescription": "Chest",
    }
    attrs.update(overrides)
    return attrs


def test_default_rules_accept_an_axial_primary_ct():
    assert matches(DEFAULT_RULES, _attrs()) == (True, "")


def test_default_rules_accept_original_secondary_axial_ct():
    """Acquired CT re-exported as ORIGINAL\\SECONDARY\\AXIAL (as LIDC-IDRI-0002 is)."""
    assert matches(DEFAULT_RULES, _attrs(ImageType=["ORIGINAL", "SECONDARY", "AXIAL"])) == (
        True, "")


def test_default_rules_reject_derived_reformats():
    ok, why = matches(DEFAULT_RULES, _attrs(ImageType=["DERIVED", "SECONDARY", "AXIAL", "MIP"]))
    assert not ok and "ORIGINAL" in why


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"Modality": "SEG"}, "Modality 'SEG' does not match"),
        ({"Modality": "SR"}, "Modality 'SR'"),
        ({"ImageType": ["DERIVED", "SECONDARY"]}, "lacks required value ORIGINAL"),
        ({"ImageType": ["ORIGINAL", "PRIMARY", "LOCALIZER"]}, "excluded value LOCALIZER"),
        ({"ImageType3": "LOCALIZER"}, "ImageType3 'LOCALIZER'"),
        ({"NumberOfSlices": 3}, "NumberOfSlices 3 is not >= 10"),
        ({"SliceOrientation": "CORONAL"}, "SliceOrientation 'CORONAL'"),
        ({"Modality": None}, "Modality is missing"),
    ],
)
def test_default_rules_reject_with_a_reason(overrides, reason):
    ok, why = matches(DEFAULT_RULES, _attrs(**overrides))
    assert not ok
    assert reason in why


def test_optional_attributes_are_skipped_when_absent():
    attrs = _attrs(ImageType=["ORIGINAL", "PRIMARY"], ImageType3=None, SliceOrientation=None)
    assert matches(DEFAULT_RULES, attrs) == (True, "")


def test_numeric_ranges_operators_regex_and_backslash_values():
    assert matches({"SliceThickness": [0.5, 3]}, {"SliceThickness": "2.5"})[0]
    ok, why = matches({"SliceThickness": [0.5, 3]}, {"SliceThickness": 5})
    assert not ok and "not in [0.5, 3]" in why
    assert matches({"SliceThickness": [3, "<"]}, {"SliceThickness": 1.25})[0]
    assert not matches({"SliceThickness": [3, "<"]}, {"SliceThickness": 3})[0]
    assert matches({"SeriesDescription": "(?i)chest"}, {"SeriesDescription": "CT CHEST"})[0]
    assert not matches({"SeriesDescription": "chest"}, {"SeriesDescription": "CT CHEST"})[0]
    assert matches({"ImageType": ["PRIMARY", "!DERIVED"]}, {"ImageType": "ORIGINAL\\PRIMARY"})[0]
    assert not matches({"SliceThickness": [1, 2]}, {"SliceThickness": "thick"})[0]


def test_bad_rules_and_arguments_raise():
    with pytest.raises(ValueError, match="operator must be one of"):
        matches({"SliceThickness": [3, "=>"]}, {"SliceThickness": 1})
    with pytest.raises(ValueError, match="unsupported form"):
        matches({"SliceThickness": {"min": 1}}, {"SliceThickness": 1})
    with pytest.raises(TypeError, match="rules must be a mapping"):
        matches([("Modality", "CT")], {})
    with pytest.raises(TypeError, match="attributes must be a mapping"):
        matches({}, None)


def test_series_attributes_from_a_real_header(demo_dir):
    header = pydicom.dcmread(sorted(demo_dir.glob("*.dcm"))[0], stop_before_pixels=True)
    attrs = series_attributes(header, 32)
    assert attrs["Modality"] == "CT"
    assert attrs["SliceOrientation"] == "AXIAL"
    assert attrs["NumberOfSlices"] == 32
    assert matches(DEFAULT_RULES, attrs) == (True, "")


def test_slice_orientation():
    assert slice_orientation([1, 0, 0, 0, 1, 0]) == "AXIAL"
    assert slice_orientation([1, 0, 0, 0, 0, -1]) == "CORONAL"
    assert slice_orientation([0, 1, 0, 0, 0, -1]) == "SAGITTAL"
    assert slice_orientation([1, 0, 0, 0, 0.7071, 0.7071]) == "OBLIQUE"
    with pytest.raises(ValueError, match="6 values"):
        slice_orientation([1, 0, 0])
