"""Fixtures of the pipeline tests: the shipped demo series, the shared full series, phantoms."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
DEMO_DIR = REPO / "demo" / "LIDC-IDRI-0001"
SHARED = REPO.parent / "shared" / "data"
FULL_SERIES_ROOT = SHARED / "lidc-series" / "LIDC-IDRI-0001"
CONSENSUS = SHARED / "lidc-series" / "reference-masks" / "LIDC-IDRI-0001_consensus50.nii.gz"
SPACING = (2.5, 0.7, 0.7)


def full_series_dir() -> Path | None:
    """Return the shared 133-slice LIDC-IDRI-0001 series folder, or None when absent."""
    if not FULL_SERIES_ROOT.is_dir():
        return None
    folders = sorted(p.parent for p in FULL_SERIES_ROOT.rglob("*.dcm"))
    return folders[0] if folders else None


@pytest.fixture(scope="session")
def demo_dir() -> Path:
    if not DEMO_DIR.is_dir():
        pytest.fail(f"the demo series is part of the repository and missing: {DEMO_DIR}")
    return DEMO_DIR


@pytest.fixture(scope="session")
def full_dir() -> Path:
    folder = full_series_dir()
    if folder is None:
        pytest.skip(f"shared LIDC-IDRI-0001 series not present under {FULL_SERIES_ROOT}")
    return folder


@pytest.fixture(scope="session")
def demo_series(demo_dir):
    from pipeline.series import load_series_dir

    return load_series_dir(demo_dir)


@pytest.fixture(scope="session")
def demo_result(demo_series):
    from pipeline.run import PipelineConfig, Segmenter, process_series

    config = PipelineConfig(segmenter="threshold")
    return process_series(demo_series, Segmenter.create(config), config)


@pytest.fixture()
def demo_copy(demo_dir, tmp_path) -> Path:
    out = tmp_path / "series"
    shutil.copytree(demo_dir, out)
    return out


def ball(shape, spacing, centre_mm, radius_mm) -> np.ndarray:
    """Boolean ball on a ``(z, y, x)`` grid; centre and radius in mm."""
    axes = [np.arange(n) * s for n, s in zip(shape, spacing, strict=True)]
    grids = np.meshgrid(*axes, indexing="ij")
    dist2 = sum((g - c) ** 2 for g, c in zip(grids, centre_mm, strict=True))
    return dist2 <= radius_mm**2


def chest_phantom(nodule_radius_mm: float = 6.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A small synthetic chest: body, two lungs, a nodule in the left lung, a thin vessel.

    Returns
    -------
    hu : ndarray
        ``(40, 128, 128)`` int16 HU on ``SPACING``.
    nodule : ndarray
        Boolean truth of the nodule.
    vessel : ndarray
        Boolean truth of the vessel.
    """
    shape = (40, 128, 128)
    z, y, x = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    hu = np.full(shape, -1000, dtype=np.int16)
    hu[((y - 64) / 58.0) ** 2 + ((x - 64) / 60.0) ** 2 <= 1] = 40
    for cx in (38, 90):
        lung = ((y - 64) / 40.0) ** 2 + ((x - cx) / 20.0) ** 2 <= 1
        hu[lung & (z >= 4) & (z < 36)] = -850
    nodule = ball(shape, SPACING, (20 * 2.5, 64 * 0.7, 38 * 0.7), nodule_radius_mm)
    hu[nodule] = 30
    vessel = ((y - 64) ** 2 + (x - 90) ** 2 <= 1) & (z >= 6) & (z < 34)
    hu[vessel] = 40
    return hu, nodule, vessel
