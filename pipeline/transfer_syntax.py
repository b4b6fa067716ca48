"""Refuse, before decoding, the transfer syntaxes no installed pixel decoder can read.

pydicom decodes the uncompressed syntaxes itself and the compressed ones through plugins: RLE
natively, JPEG Lossless (Process 14 and its Selection Value 1), JPEG baseline/extended, JPEG-LS,
JPEG 2000 and High-Throughput JPEG 2000 through pylibjpeg (``pylibjpeg-libjpeg``,
``pylibjpeg-openjpeg``), with Pillow and pyjpegls as alternatives. Anything else (video
syntaxes, JPIP references, a syntax newer than the installed pydicom) is refused with its UID
and name.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import pydicom
from pydicom.pixels import get_decoder
from pydicom.uid import UID

from pipeline.errors import SeriesRejected


def transfer_syntax(ds: pydicom.Dataset) -> UID | None:
    """Return the transfer syntax of ``ds`` (from its file meta), or None when unknown."""
    meta = getattr(ds, "file_meta", None)
    value = meta.get("TransferSyntaxUID") if meta is not None else None
    return UID(str(value)) if value else None


def undecodable_reason(syntax: UID) -> str | None:
    """Say why pixel data in ``syntax`` cannot be decoded here; None when it can.

    Returns
    -------
    str or None
        ``"transfer syntax <UID> (<name>) ..."`` with what is missing, or None.
    """
    label = f"transfer syntax {syntax} ({syntax.name})" if syntax.name != str(syntax) else (
        f"transfer syntax {syntax} (unknown to pydicom {pydicom.__version__})")
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError:
        return f"{label} cannot be decoded: no pixel data decoder exists for it"
    if decoder.is_available:
        return None
    missing = "; ".join(decoder.missing_dependencies) or "no decoder plugin"
    return f"{label} cannot be decoded: no decoder plugin is installed ({missing})"


def check_decodable(datasets: Sequence[pydicom.Dataset]) -> None:
    """Refuse the series when the pixel data of any instance cannot be decoded.

    Datasets without file meta (built in memory) are left to the decoder.

    Raises
    ------
    SeriesRejected
        Naming the transfer syntax (UID and name), what is missing and how many instances use it.
    """
    counts = Counter(ts for ts in (transfer_syntax(ds) for ds in datasets) if ts is not None)
    for syntax, count in counts.items():
        reason = undecodable_reason(syntax)
        if reason is not None:
            raise SeriesRejected(f"{reason}; {count} of {len(datasets)} instances use it")
