from pathlib import Path

import numpy as np
import pytest

from experiments.two_scale import COARSE_MODEL, MASS_MM, join_scales, main, mass_components

SPACING = (1.0, 1.0, 1.0)
DEMO = Path(__file__).resolve().parents[2] / "demo" / "LIDC-IDRI-0001"


def _ball(shape: tuple[int, int, int], centre: tuple[int, int, int], radius: float) -> np.ndarray:
    zz, yy, xx = np.indices(shape)
    return (zz - centre[0]) ** 2 + (yy - centre[1]) ** 2 + (xx - centre[2]) ** 2 <= radius ** 2


def test_only_components_of_mass_size_are_kept():
    shape = (60, 60, 120)
    big = _ball(shape, (30, 30, 30), MASS_MM / 2 + 2)   # long axis about 34 mm
    small = _ball(shape, (30, 30, 90), 6)               # about 12 mm
    labels = big.astype(np.int32) + 2 * small.astype(np.int32)
    kept = mass_components(labels, np.zeros(shape, np.float32), SPACING)
    assert kept[big].all()
    assert not kept[small].any()


def test_joined_components_are_named_by_the_scale_that_found_them():
    shape = (60, 60, 120)
    mass = _ball(shape, (30, 30, 30), 18)
    nodule = _ball(shape, (30, 30, 90), 5)
    partial = _ball(shape, (30, 30, 30), 8) | nodule  # the fine model sees part of the mass
    joined, findings = join_scales(partial, mass, np.zeros(shape, np.float32), SPACING)
    assert np.array_equal(joined, mass | nodule)
    assert sorted(f.scale for f in findings) == ["mass", "nodule"]
    found_mass = next(f for f in findings if f.scale == "mass")
    assert found_mass.volume_mm3 == pytest.approx(mass.sum())


def test_demo_series_gives_its_nodule_and_the_model_files_are_present(capsys):
    assert COARSE_MODEL.is_file() and COARSE_MODEL.with_suffix(".json").is_file()
    if not DEMO.is_dir():
        pytest.skip("demo series absent")
    assert main(["--series", str(DEMO), "--threads", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    volumes = [float(line.split()[3]) for line in lines if line.startswith(("nodule", "mass"))]
    # the 23 mm nodule of LIDC-IDRI-0001 (the product's demo gives about 7.5-7.8 cm3; here the
    # coarse model's outline of it joins the fine one, so it may be named a mass)
    assert any(5000.0 <= v <= 12000.0 for v in volumes), lines


def test_missing_series_is_named(tmp_path, capsys):
    assert main(["--series", str(tmp_path / "nowhere")]) == 2
    assert "nowhere" in capsys.readouterr().err
