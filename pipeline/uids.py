"""Deterministic DICOM UIDs, so that re-running a series replaces instead of duplicating."""

from __future__ import annotations

import hashlib


def derived_uid(*parts: str) -> str:
    """Return a ``2.25.<integer>`` UID derived from ``parts`` (same parts, same UID).

    The integer is the first 128 bits of the SHA-256 of the parts joined by ``|``, the
    form DICOM PS3.5 B.2 allows for UUID-derived UIDs (at most 44 characters).

    Parameters
    ----------
    *parts : str
        Identifying strings, e.g. the source SeriesInstanceUID, the algorithm version and
        the kind of object ("seg", "sr").

    Returns
    -------
    str
        A valid UID.

    Raises
    ------
    ValueError
        If no part is given or a part is empty.
    TypeError
        If a part is not a string.
    """
    if not parts:
        raise ValueError("derived_uid needs at least one part, got none")
    for part in parts:
        if not isinstance(part, str):
            raise TypeError(f"derived_uid parts must be str, got {type(part).__name__}")
        if not part:
            raise ValueError("derived_uid parts must be non-empty strings, got ''")
    digest = hashlib.sha256("|".join(parts).encode("utf-8")).digest()
    return "2.25." + str(int.from_bytes(digest[:16], "big"))
