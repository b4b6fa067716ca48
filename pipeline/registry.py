"""The model registry: a folder of versioned models and a pointer to the active one.

Layout (``LUNGSEG_REGISTRY``, default ``<Orthanc data dir>/model-registry``)::

    <registry>/<version>/lungseg-unet.onnx        the model (its sidecar .json beside it,
                                                   an int8 sibling if there is one)
    <registry>/<version>/MODEL_CARD.md            what it is, what it was trained on
    <registry>/<version>/compare-report.json      the comparison that admitted it
    <registry>/active                             the active version (one line)
    <registry>/history.jsonl                      every activation and rollback

The ``active`` file is replaced atomically (written beside it, then renamed), so a reader
sees the old or the new version, never a torn one. The worker stats it before every job
(:func:`active_stamp`) and loads the new model when it changed. Promotion and rollback
rules live in :mod:`trainer.retrain.registry_ops`; this module only reads and writes the
folder, with the standard library, so that the worker needs nothing more.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

REGISTRY_ENV = "LUNGSEG_REGISTRY"
DEFAULT_NAME = "model-registry"
ACTIVE_FILE = "active"
HISTORY_FILE = "history.jsonl"
MODEL_FILE = "lungseg-unet.onnx"
VERSION_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")


def registry_dir(data_dir: str | Path | None = None) -> Path:
    """Return the registry folder: ``$LUNGSEG_REGISTRY``, else ``<data_dir>/model-registry``.

    ``data_dir`` defaults to ``$LUNGSEG_DATA_DIR``, else ``<checkout>/var/orthanc`` (the
    default of ``deploy/start-orthanc.sh``).
    """
    if os.environ.get(REGISTRY_ENV):
        return Path(os.environ[REGISTRY_ENV])
    if data_dir is None:
        data_dir = os.environ.get("LUNGSEG_DATA_DIR") or (
            Path(__file__).resolve().parents[1] / "var" / "orthanc")
    return Path(data_dir) / DEFAULT_NAME


def check_version(version: str) -> str:
    """Return ``version`` if it can name a registry folder.

    Raises
    ------
    ValueError
        If it is not 1-64 letters, digits, ``.``, ``_``, ``+`` or ``-`` starting with a
        letter or digit.
    """
    if not isinstance(version, str) or not VERSION_RE.fullmatch(version):
        raise ValueError(f"model version {version!r} cannot name a registry folder (letters, "
                         "digits, '.', '_', '+', '-')")
    return version


def model_path(registry: str | Path, version: str) -> Path:
    """Return the ``.onnx`` file of ``version`` in the registry."""
    return Path(registry) / check_version(version) / MODEL_FILE


def versions(registry: str | Path) -> list[str]:
    """Return every registered version (sorted)."""
    root = Path(registry)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir()
                  if p.is_dir() and VERSION_RE.fullmatch(p.name) and (p / MODEL_FILE).is_file())


def active_stamp(registry: str | Path) -> tuple[int, int, int] | None:
    """Return a cheap fingerprint of the ``active`` file (inode, size, mtime); None without one."""
    try:
        st = os.stat(Path(registry) / ACTIVE_FILE)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def active_version(registry: str | Path) -> str | None:
    """Return the active version, or None when nothing was ever activated.

    Raises
    ------
    ValueError
        If the pointer names no registered model.
    """
    try:
        version = (Path(registry) / ACTIVE_FILE).read_text().strip()
    except FileNotFoundError:
        return None
    if not model_path(registry, version).is_file():
        raise ValueError(f"the registry {registry} points at {version!r}, which has no "
                         f"{MODEL_FILE}")
    return version


def history(registry: str | Path) -> list[dict]:
    """Return every recorded activation and rollback, oldest first."""
    path = Path(registry) / HISTORY_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def set_active(registry: str | Path, version: str, action: str, reason: str = "",
               extra: dict | None = None) -> dict:
    """Record ``action`` in the history, then point ``active`` at ``version`` atomically.

    Raises
    ------
    ValueError
        If ``version`` is not registered.
    """
    root = Path(registry)
    if not model_path(root, version).is_file():
        raise ValueError(f"version {version!r} is not in the registry {root}")
    previous = active_version(root)
    event = {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "action": action,
             "version": version, "previous": previous, "reason": reason, **(extra or {})}
    with open(root / HISTORY_FILE, "a") as f:
        f.write(json.dumps(event) + "\n")
    tmp = root / f".{ACTIVE_FILE}.{os.getpid()}.tmp"
    tmp.write_text(version + "\n")
    os.replace(tmp, root / ACTIVE_FILE)
    return event
