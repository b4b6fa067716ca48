"""Suite-wide checks: under CI, a missing ../shared/data fails the run instead of skipping."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
"""The real data beside the checkout (see its README); tests that need it skip without it."""


def in_ci() -> bool:
    """Return whether ``CI`` is set to a true value (as CI services set it)."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def shared_data_problem(root: Path = SHARED_DATA) -> str | None:
    """Return why the shared data cannot serve the tests, or None when it can."""
    if not root.is_dir():
        return f"shared data not found at {root}"
    missing = [name for name in ("lidc-nodule-vois", "lidc-series") if not (root / name).is_dir()]
    if missing:
        return f"shared data at {root} lacks {', '.join(missing)}"
    return None


def pytest_sessionstart(session: pytest.Session) -> None:
    """Stop a CI run at once when the shared data is missing: its tests would only skip."""
    problem = shared_data_problem()
    if problem and in_ci():
        raise pytest.UsageError(f"{problem} (CI=true: the tests that need it must run)")
