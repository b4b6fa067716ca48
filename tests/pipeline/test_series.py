"""Loading real CT series from files, bytes and datasets; rejection reasons."""

from __future__ import annotations

import copy

import numpy as np
import pydicom
import pytest

from pipeline.errors import SeriesRejected
from pipeline.series import dicom_files, load_series, load_series_dir


def _datasets(demo_dir):
    return [pydicom.dcmread(p) for p in sorted(demo_dir.glob("*.dcm"))]


def test_demo_series_is_sorted_along_the_normal_with_hu(demo_series, demo_dir):
    s = demo_series
    assert s.hu.shape == (32, 512, 512)
    assert s.spacing == pytest.approx((2.5, 0.703125, 0.703125))
    assert np.all(np.diff(s.z_positions_mm) > 0)
    ipp_z = [float(ds.ImagePositionPatient[2]) for ds in s.datasets]
    assert ipp_z == pytest.approx(list(s.z_positions_mm))
    # LIDC-IDRI-0001 counts InstanceNumber from head to feet; sorting by z reverses it.
    assert [int(ds.InstanceNumber) for ds in s.datasets] == list(range(58, 26, -1))
    raw = pydicom.dcmread(demo_dir / "044.dcm")
    k = [int(ds.InstanceNumber) for ds in s.datasets].index(44)
    expected = raw.pixel_array * float(raw.RescaleSlope) + float(raw.RescaleIntercept)
    np.testing.assert_array_equal(s.hu[k], expected)
    assert "PixelData" not in s.datasets[0]
    assert s.sop_instance_uids[k] == raw.SOPInstanceUID
    assert len(set(s.sop_instance_uids)) == 32


def test_bytes_datasets_and_shuffled_paths_give_the_same_volume(demo_series, demo_dir):
    paths = sorted(demo_dir.glob("*.dcm"))
    shuffled = [paths[i] for i in np.random.default_rng(0).permutation(len(paths))]
    for sources in (shuffled, [p.read_bytes() for p in paths], _datasets(demo_dir)):
        other = load_series(sources)
        np.testing.assert_array_equal(other.hu, demo_series.hu)
        assert other.sop_instance_uids == demo_series.sop_instance_uids


def test_exact_duplicate_is_dropped_and_recorded(demo_dir):
    datasets = _datasets(demo_dir)
    dup = copy.deepcopy(datasets[5])
    dup.SOPInstanceUID = pydicom.uid.generate_uid()
    dup.InstanceNumber = 999
    series = load_series([*datasets, dup])
    assert series.hu.shape[0] == 32
    assert series.dropped_duplicates == [dup.SOPInstanceUID]
    assert dup.SOPInstanceUID not in series.sop_instance_uids


def test_duplicate_position_with_other_pixels_is_rejected(demo_dir):
    datasets = _datasets(demo_dir)
    dup = copy.deepcopy(datasets[5])
    dup.SOPInstanceUID = pydicom.uid.generate_uid()
    arr = dup.pixel_array.copy()
    arr[0, 0] += 1
    dup.PixelData = arr.tobytes()
    with pytest.raises(SeriesRejected, match="same position"):
        load_series([*datasets, dup])


def test_mixed_series_is_rejected(demo_dir):
    datasets = _datasets(demo_dir)
    datasets[3].SeriesInstanceUID = pydicom.uid.generate_uid()
    with pytest.raises(SeriesRejected, match="mixed series.*SeriesInstanceUID"):
        load_series(datasets)


def test_non_ct_is_rejected(demo_dir):
    datasets = _datasets(demo_dir)
    for ds in datasets:
        ds.Modality = "MR"
    with pytest.raises(SeriesRejected, match="not a CT series.*'MR'"):
        load_series(datasets)


def test_gantry_tilt_is_rejected(demo_dir):
    datasets = _datasets(demo_dir)
    for i, ds in enumerate(sorted(datasets, key=lambda d: float(d.ImagePositionPatient[2]))):
        x, y, z = (float(v) for v in ds.ImagePositionPatient)
        ds.ImagePositionPatient = [x, y + 0.3 * i * 2.5, z]
    with pytest.raises(SeriesRejected, match="gantry tilt"):
        load_series(datasets)


def test_rounding_jitter_in_positions_is_not_a_tilt(demo_dir):
    datasets = _datasets(demo_dir)
    rng = np.random.default_rng(3)
    for ds in datasets:
        x, y, z = (float(v) for v in ds.ImagePositionPatient)
        dx, dy = rng.uniform(-0.02, 0.02, 2)
        ds.ImagePositionPatient = [round(x + dx, 3), round(y + dy, 3), z]
    assert load_series(datasets).hu.shape[0] == 32


def test_missing_slice_is_rejected_as_inconsistent_spacing(demo_dir):
    datasets = _datasets(demo_dir)
    del datasets[10]
    with pytest.raises(SeriesRejected, match="inconsistent slice spacing"):
        load_series(datasets)


def test_inconsistent_pixel_spacing_is_rejected(demo_dir):
    datasets = _datasets(demo_dir)
    datasets[2].PixelSpacing = [0.8, 0.8]
    with pytest.raises(SeriesRejected, match="PixelSpacing"):
        load_series(datasets)


def test_missing_pixel_data_is_rejected(demo_dir):
    datasets = _datasets(demo_dir)
    del datasets[0].PixelData
    with pytest.raises(SeriesRejected, match="no pixel data"):
        load_series(datasets)


def test_empty_inputs_and_wrong_types(tmp_path):
    with pytest.raises(SeriesRejected, match="empty"):
        load_series([])
    with pytest.raises(SeriesRejected, match="no DICOM files"):
        load_series_dir(tmp_path)
    with pytest.raises(FileNotFoundError):
        load_series_dir(tmp_path / "missing")
    with pytest.raises(TypeError, match="paths, bytes or pydicom Datasets"):
        load_series([42])
    with pytest.raises(TypeError, match="sequence"):
        load_series(b"DICM")


def test_non_dicom_file_is_named_in_the_error(demo_copy):
    bad = demo_copy / "notes.bin"
    bad.write_bytes(b"this is not DICOM")
    with pytest.raises(SeriesRejected, match="notes.bin"):
        load_series_dir(demo_copy)


def test_index_to_patient_matches_image_position(demo_series):
    ds = demo_series.datasets[7]
    got = demo_series.index_to_patient([7, 0, 0])[0]
    np.testing.assert_allclose(got, [float(v) for v in ds.ImagePositionPatient])
    got = demo_series.index_to_patient([7, 10, 20])[0]
    expected = np.array([float(v) for v in ds.ImagePositionPatient]) + [
        20 * 0.703125, 10 * 0.703125, 0,
    ]
    np.testing.assert_allclose(got, expected)


def test_reader_annotations_next_to_the_series_are_skipped(demo_copy, demo_series):
    (demo_copy / "069.xml").write_text("<LidcReadMessage/>")
    (demo_copy / ".hidden").write_bytes(b"x")
    files = dicom_files(demo_copy)
    assert len(files) == 32 and all(p.suffix == ".dcm" for p in files)
    assert load_series_dir(demo_copy).hu.shape == demo_series.hu.shape


def test_callers_datasets_keep_their_pixel_data(demo_dir):
    datasets = _datasets(demo_dir)
    series = load_series(datasets)
    assert all("PixelData" in ds for ds in datasets)
    assert all("PixelData" not in ds for ds in series.datasets)
    np.testing.assert_array_equal(load_series(sorted(demo_dir.glob("*.dcm"))).hu, series.hu)
