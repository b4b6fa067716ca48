"""The wheel holds every product package and the shipped model files."""

from __future__ import annotations

import configparser
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _setup_cfg() -> configparser.ConfigParser:
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    return cfg


def _listed_packages() -> set[str]:
    cfg = _setup_cfg()
    return {p.strip() for p in cfg["options"]["packages"].split() if p.strip()}


def test_every_product_package_is_listed():
    from setuptools import find_packages

    found = set(find_packages(str(REPO), include=["engines*", "orthanc_plugin*", "pipeline*",
                                                  "trainer*"]))
    assert found | {"lungseg_models"} == _listed_packages()
    assert not any(p.startswith(("experiments", "benchmarks", "tests")) for p in _listed_packages())


@pytest.mark.slow
def test_wheel_in_a_fresh_venv_segments_the_demo_with_the_model(tmp_path):
    """Build the wheel, install it alone into a new venv and segment the demo series.

    The venv borrows the dependencies of this interpreter (its site folders on a ``.pth``)
    but not the checkout: it runs outside it, so the model must come from the wheel.
    """
    import json
    import site
    import subprocess
    import sys
    import venv

    demo = REPO / "demo" / "LIDC-IDRI-0001"
    if not demo.is_dir():
        pytest.skip("demo series absent")
    wheels = tmp_path / "whl"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "--no-build-isolation", "-w", str(wheels), str(REPO)], check=True)
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; "
                              "print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    deps = [p for p in sys.path if p.endswith("-packages") and Path(p).is_dir()]
    deps += [p for p in site.getsitepackages() if p not in deps]
    Path(purelib, "_deps.pth").write_text("\n".join(deps) + "\n")
    wheel = next(wheels.glob("lungseg-*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                    "--target", purelib, str(wheel)], check=True)
    out = tmp_path / "out"
    lungseg = "import sys; from pipeline.cli import main; sys.exit(main())"
    subprocess.run([str(python), "-c", lungseg, "segment", str(demo), "--out", str(out)],
                   cwd=tmp_path, check=True, capture_output=True, text=True)
    model = "import engines; print(engines.default_model_path())"
    where = subprocess.run([str(python), "-c", model], cwd=tmp_path, capture_output=True,
                           text=True, check=True).stdout
    assert where.strip().startswith(purelib)
    summary = json.loads((out / "lesions.json").read_text())
    assert summary["algorithm"]["name"] == "lungseg-unet"
    assert len(summary["lesions"]) == 1


def _requirements() -> list[str]:
    cfg = _setup_cfg()
    lines = cfg["options"]["install_requires"].split("\n")
    for extra in ("train", "test"):
        lines += cfg["options.extras_require"][extra].split("\n")
    return [line.strip() for line in lines if line.strip()]


def _pins() -> dict[str, str]:
    from packaging.utils import canonicalize_name

    pins = {}
    for line in (REPO / "deploy" / "constraints.txt").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, sep, version = line.partition("==")
        assert sep and version.strip(), f"constraints.txt: not NAME==VERSION: {line!r}"
        pins[canonicalize_name(name)] = version.strip()
    return pins


def test_constraints_pin_every_dependency_within_its_specifier():
    """deploy/constraints.txt pins each runtime, train and test requirement but torch
    (install.sh pins the CPU wheel itself), at a version setup.cfg allows."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    pins = _pins()
    assert "torch" not in pins
    for text in _requirements():
        req = Requirement(text)
        name = canonicalize_name(req.name)
        if name == "torch":
            continue
        assert name in pins, f"{req.name} has no pin in deploy/constraints.txt (make constraints)"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"{req.name}=={pins[name]} in deploy/constraints.txt is outside setup.cfg's {req}")


def test_install_names_a_missing_constraints_file(tmp_path):
    """install.sh stops before apt or pip when the constraints file does not exist."""
    import os
    import subprocess

    missing = tmp_path / "nowhere.txt"
    env = {**os.environ, "LUNGSEG_CONSTRAINTS": str(missing), "LUNGSEG_VENV": str(tmp_path / "v")}
    done = subprocess.run(["bash", str(REPO / "deploy" / "install.sh")], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert f"constraints file {missing} not found" in done.stderr
    assert not (tmp_path / "v").exists()
