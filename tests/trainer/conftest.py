import json
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
DATA = REPO.parent / "shared" / "data"
VOIS = DATA / "lidc-nodule-vois"
SERIES_0001 = DATA / "lidc-series" / "LIDC-IDRI-0001"
REFERENCE = DATA / "lidc-series" / "reference-masks"
TINY = str(REPO / "trainer" / "configs" / "tiny.yaml")
"""A few iterations of a small network (tests only)."""
DEMO = REPO / "demo" / "LIDC-IDRI-0001"
"""The demo series shipped in the repository (a subset of LIDC-IDRI-0001)."""


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


@pytest.fixture(scope="module")
def demo_series():
    """The demo series (in the repository)."""
    from pipeline.series import load_series_dir

    return load_series_dir(DEMO)


def write_mask(series, mask: np.ndarray, path) -> None:
    """Write ``mask`` (volume order) as NIfTI on the series' grid (ascending z)."""
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(mask.astype(np.uint8))
    dz, dy, dx = series.spacing
    first = series.datasets[0].ImagePositionPatient
    img.SetSpacing((dx, dy, dz))
    img.SetOrigin((float(first[0]), float(first[1]), float(series.z_positions_mm[0])))
    sitk.WriteImage(img, str(path))


def write_list(tmp_path, entries) -> str:
    """Write a series list (JSON) into ``tmp_path``; return its path."""
    path = tmp_path / "series.json"
    path.write_text(json.dumps(entries))
    return str(path)


@pytest.fixture
def demo_vois(demo_series, tmp_path) -> tuple[Path, str]:
    """A crop folder cut from the demo series (a ball on its nodule) for three pseudonyms,
    and the series list it was cut from: trainer runs without the shared data."""
    from trainer.cli import main

    z, y, x = np.ogrid[: demo_series.hu.shape[0], :512, :512]
    write_mask(demo_series, (z - 14) ** 2 * 9 + (y - 365) ** 2 + (x - 315) ** 2 <= 8**2,
               tmp_path / "nodule.nii.gz")
    listed = write_list(tmp_path, [{"series": str(DEMO), "lesions": "nodule.nii.gz",
                                    "patient": f"P{k}"} for k in range(3)])
    assert main(["crops", "--list", listed, "--out", str(tmp_path / "demo-vois")]) == 0
    return tmp_path / "demo-vois", listed
