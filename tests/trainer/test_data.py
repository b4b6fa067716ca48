import pytest

from trainer.data.datasets import (
    HELD_OUT_PATIENTS,
    label_subset,
    list_crops,
    patient_split,
    read_crop,
)


def test_empty_and_malformed_folders(tmp_path):
    with pytest.raises(FileNotFoundError, match="image"):
        list_crops(tmp_path)
    (tmp_path / "image").mkdir()
    (tmp_path / "nodule_mask").mkdir()
    with pytest.raises(ValueError, match="no \\*.nii.gz images"):
        list_crops(tmp_path)
    (tmp_path / "image" / "scan1.nii.gz").write_bytes(b"")
    with pytest.raises(ValueError, match="PATIENT_R_K"):
        list_crops(tmp_path)
    (tmp_path / "image" / "scan1.nii.gz").unlink()
    (tmp_path / "image" / "site_case_R_1.nii.gz").write_bytes(b"")  # '_' is not in a patient
    with pytest.raises(ValueError, match="PATIENT_R_K"):
        list_crops(tmp_path)
    (tmp_path / "image" / "site_case_R_1.nii.gz").unlink()
    (tmp_path / "image" / "LIDC-IDRI-0003_R_1.nii.gz").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="mask missing"):
        list_crops(tmp_path)


def test_real_crops_read(tiny_vois):
    records = list_crops(tiny_vois)
    assert len(records) == 7
    first = records[0]
    assert first.patient == "LIDC-IDRI-0001" and first.texture == "solid"
    hu, mask, spacing, z = read_crop(first)
    assert hu.shape == mask.shape and mask.any() and hu.min() < -500
    assert spacing[0] == pytest.approx(2.5) and (z[1:] > z[:-1]).all()


def test_patient_split_disjoint_and_held_out():
    patients = [f"LIDC-IDRI-{i:04d}" for i in range(1, 41)]
    split = patient_split(patients, 0.2, 0.1, seed=0)
    sets = [set(v) for v in split.values()]
    assert sum(len(s) for s in sets) == 40 and len(set.union(*sets)) == 40
    assert set(HELD_OUT_PATIENTS) <= set(split["test"])
    small = label_subset(split["train"], 0.1, 0)
    assert set(small) <= set(label_subset(split["train"], 0.5, 0)) <= set(split["train"])
    with pytest.raises(ValueError):
        label_subset(split["train"], 0.0, 0)
