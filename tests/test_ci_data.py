"""Under CI=true a run without ../shared/data fails at once; without CI it runs and skips."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from .conftest import shared_data_problem

REPO = Path(__file__).resolve().parents[1]


def test_problem_names_the_missing_folder(tmp_path):
    assert "not found" in shared_data_problem(tmp_path / "none")
    (tmp_path / "lidc-series").mkdir()
    assert shared_data_problem(tmp_path).endswith("lacks lidc-nodule-vois")
    (tmp_path / "lidc-nodule-vois").mkdir()
    assert shared_data_problem(tmp_path) is None


def _run_copy(tmp_path, ci: str) -> subprocess.CompletedProcess:
    """Run a tiny suite under a copy of this conftest, in a checkout with no data beside it."""
    tests = tmp_path / f"ci-{ci or 'unset'}" / "checkout" / "tests"
    tests.mkdir(parents=True)
    (tests / "conftest.py").write_text((REPO / "tests" / "conftest.py").read_text())
    (tests / "test_one.py").write_text("def test_one():\n    assert True\n")
    env = {"PATH": "/usr/bin:/bin", "CI": ci}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           str(tests)], cwd=tests, env=env, capture_output=True, text=True)


def test_ci_without_shared_data_fails_the_run(tmp_path):
    ci = _run_copy(tmp_path, "true")
    assert ci.returncode != 0
    assert "shared data not found" in ci.stdout + ci.stderr and "CI=true" in ci.stdout + ci.stderr
    local = _run_copy(tmp_path, "")
    assert local.returncode == 0, local.stdout + local.stderr
