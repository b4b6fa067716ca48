from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DATA = REPO.parent / "shared" / "data"
VOIS = DATA / "lidc-nodule-vois"
SERIES_0001 = DATA / "lidc-series" / "LIDC-IDRI-0001"
REFERENCE = DATA / "lidc-series" / "reference-masks"


@pytest.fixture
def tiny_vois(tmp_path: Path) -> Path:
    """A crop folder with a few real crops of six patients (copied to tmp, not the repo)."""
    if not (VOIS / "image").is_dir():
        pytest.skip(f"real crops not available at {VOIS}")
    import shutil

    names = ["LIDC-IDRI-0001_R_1", "LIDC-IDRI-0004_R_1", "LIDC-IDRI-0005_R_1",
             "LIDC-IDRI-0005_R_2", "LIDC-IDRI-0006_R_4", "LIDC-IDRI-0010_R_3",
             "LIDC-IDRI-1011_R_1"]
    root = tmp_path / "vois"
    for sub in ("image", "nodule_mask"):
        (root / sub).mkdir(parents=True)
        for n in names:
            shutil.copy(VOIS / sub / f"{n}.nii.gz", root / sub / f"{n}.nii.gz")
    shutil.copy(VOIS / "nodules.csv", root / "nodules.csv")
    return root
