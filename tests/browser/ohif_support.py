"""Helpers of the browser test: tool checks, the study as the viewer shows it, the Chromium run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pydicom
import pytest

REPO = Path(__file__).resolve().parents[2]
BROWSER_DIR = Path(__file__).resolve().parent
OHIF_APP = REPO / "deploy" / "ohif" / "app"
CHROMIUM = Path("/usr/bin/chromium")
PLAYWRIGHT = BROWSER_DIR / "node_modules" / "playwright-core" / "package.json"
NODULE_INSTANCE = 44
"""LIDC-IDRI-0001's nodule: centre near column 315, row 365 of InstanceNumber 44
(../shared/data/README.md; the demo subset holds InstanceNumber 27-58)."""
NODULE_ROW_COL = (365, 315)
CONTROL_ROW_COL = (365, 197)
"""Control spot: same row, mirrored column, in the right lung (no lesion there)."""


def _ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_browser_tools() -> None:
    """Skip without Chromium / node / OHIF locally; fail on CI, where they must be installed."""
    node = shutil.which("node")
    missing = [str(p) for p in (CHROMIUM, PLAYWRIGHT, OHIF_APP / "index.html") if not p.exists()]
    if node is None:
        missing.append("node")
    if missing:
        msg = f"browser test tools missing ({', '.join(missing)}): run deploy/install-viewer.sh"
        if _ci():
            pytest.fail(msg + " (CI=true: the browser test must run)", pytrace=False)
        pytest.skip(msg)


@dataclass
class StudyInViewer:
    """The processed study as the viewer shows it, with our SEG and SR read from Orthanc."""

    viewer_url: str
    user: str
    password: str
    study_uid: str
    ct_headers: dict[int, pydicom.Dataset]
    seg: pydicom.Dataset
    sr: pydicom.Dataset


def run_ohif_check(spec: dict, out_dir: Path) -> dict:
    """Run ohif_check.mjs with ``spec``; return its JSON result (screenshots in ``out_dir``)."""
    spec = {**spec, "outDir": str(out_dir), "chromium": str(CHROMIUM),
            # the test's nginx has a self-signed certificate
            "ignoreHTTPSErrors": spec["baseUrl"].startswith("https://")}
    spec_file = out_dir / "spec.json"
    spec_file.write_text(json.dumps(spec))
    proc = subprocess.run(["node", str(BROWSER_DIR / "ohif_check.mjs"), str(spec_file)],
                          cwd=BROWSER_DIR, capture_output=True, text=True, timeout=240)
    lines = proc.stdout.strip().splitlines()
    assert lines, f"ohif_check.mjs printed nothing (rc {proc.returncode}):\n{proc.stderr}"
    result = json.loads(lines[-1])
    assert proc.returncode == 0 and not result.get("error"), (
        f"OHIF check failed: {result.get('error')}\nlog: {result.get('log')}\n"
        f"screenshot: {result.get('errorScreenshot')}\n{proc.stderr}")
    copy_to = os.environ.get("LUNGSEG_SCREENSHOTS_DIR")
    if copy_to:
        Path(copy_to).mkdir(parents=True, exist_ok=True)
        for png in out_dir.glob("*.png"):
            shutil.copy(png, Path(copy_to) / f"ohif-{png.name}")
    return result
