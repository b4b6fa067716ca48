"""The script Orthanc's Python plugin loads (``PythonScript`` in Orthanc's configuration).

It only makes the venv importable (``LungSeg.SitePackages``), imports the plugin with a clear
error when that fails, and registers the callbacks. All logic lives in :mod:`orthanc_plugin`.
"""

import json
import site
import sys
from pathlib import Path

import orthanc

_HERE = Path(__file__).resolve().parent
_REPO = _HERE.parent


def _prepare_path() -> None:
    # Orthanc puts this script's folder first on sys.path; its module names must not shadow others.
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
    section = json.loads(orthanc.GetConfiguration()).get("LungSeg")
    if not isinstance(section, dict):
        raise RuntimeError("lungseg: Orthanc configuration has no 'LungSeg' section")
    paths = section.get("SitePackages", [])
    if not isinstance(paths, list):
        raise RuntimeError(f"lungseg: LungSeg.SitePackages must be a list, got {paths!r}")
    for path in paths:
        site.addsitedir(str(path))
    if str(_REPO) not in sys.path:
        sys.path.append(str(_REPO))


def _load() -> object:
    _prepare_path()
    try:
        from orthanc_plugin.plugin import register
    except ImportError as exc:
        orthanc.LogError(f"lungseg: cannot import the plugin ({exc}); check LungSeg.SitePackages "
                         "and run deploy/install.sh")
        raise
    try:
        return register(orthanc, orthanc.GetConfiguration())
    except Exception as exc:
        orthanc.LogError(f"lungseg: plugin not started: {type(exc).__name__}: {exc}")
        raise


STATE = _load()
