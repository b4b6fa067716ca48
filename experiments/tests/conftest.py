"""Make the repository importable for the experiments' tests; share the trainer's fixtures."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = str(Path(__file__).resolve().parents[2])
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from tests.trainer.conftest import tiny_vois  # noqa: E402, F401
