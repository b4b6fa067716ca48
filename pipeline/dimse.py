"""Send DICOM files to a DICOM node with C-STORE (pynetdicom), reporting every instance."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError
from pynetdicom import AE, DEFAULT_TRANSFER_SYNTAXES, evt
from pynetdicom.events import Event

MAX_CONTEXTS = 128
SEND_ATTEMPTS = 2


@dataclass
class InstanceStatus:
    """Outcome of one C-STORE: ``status`` is the DIMSE status (None: not sent).

    ``attempts`` counts associations the instance was offered on; ``unanswered`` marks an
    instance that got no reply because the association timed out or was aborted.
    """

    path: str
    sop_instance_uid: str
    status: int | None
    message: str = ""
    attempts: int = 1
    unanswered: bool = False

    @property
    def ok(self) -> bool:
        """True for Success (0x0000) and the warning statuses (0xB000, 0xB007, 0xB006)."""
        return self.status in (0x0000, 0xB000, 0xB006, 0xB007)


@dataclass
class SendReport:
    """Per-instance results of :func:`send_files`."""

    instances: list[InstanceStatus] = field(default_factory=list)

    @property
    def sent(self) -> int:
        """Number of instances stored successfully."""
        return sum(1 for i in self.instances if i.ok)

    @property
    def failures(self) -> list[InstanceStatus]:
        """Instances that were not stored."""
        return [i for i in self.instances if not i.ok]


def _set_nodelay(event: Event) -> None:
    sock = event.assoc.dul.socket.socket
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def send_files(
    paths: Sequence[str | Path],
    host: str,
    port: int,
    calling_aet: str = "LUNGSEG",
    called_aet: str = "ORTHANC",
    timeout_s: float = 30.0,
    tls: ssl.SSLContext | None = None,
) -> SendReport:
    """Send DICOM files with C-STORE over one association (TCP_NODELAY set).

    Instances left without an answer (DIMSE timeout, association aborted part-way) are sent
    once more over a new association. A receiver stores a repeated SOP Instance UID once, and a
    reply can go missing without any network fault: pynetdicom's association reactor can take
    a C-STORE response off the queue before ``send_c_store`` reads it when the machine is busy
    (pynetdicom issue #875).

    Parameters
    ----------
    paths : sequence of str or Path
        DICOM files.
    host : str
        Destination host.
    port : int
        Destination DICOM port.
    calling_aet, called_aet : str
        Our and the destination's AE titles.
    timeout_s : float
        Network and DIMSE timeout.
    tls : ssl.SSLContext, optional
        Send over DICOM TLS with this client context (see :func:`tls_context`); the
        certificate of ``host`` is checked against it.

    Returns
    -------
    SendReport
        One entry per file; failures carry the reason (unreadable file, rejected context,
        association refused, DIMSE failure status).

    Raises
    ------
    ValueError
        If ``paths`` is empty, ``port`` is out of range or an AE title is invalid.
    """
    if not paths:
        raise ValueError("paths must name at least one file, got none")
    if not 0 < int(port) < 65536:
        raise ValueError(f"port must be in 1..65535, got {port!r}")
    for name, aet in (("calling_aet", calling_aet), ("called_aet", called_aet)):
        if not aet or len(aet) > 16:
            raise ValueError(f"{name} must be 1-16 characters, got {aet!r}")
    report = SendReport()
    pending = _read_headers(paths, report)
    ae = AE(ae_title=calling_aet)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout_s
    for sop_class, syntaxes in requested_contexts([h for _, h in pending]):
        ae.add_requested_context(sop_class, syntaxes)
    for attempt in range(1, SEND_ATTEMPTS + 1):
        if not pending:
            break
        results = _send_over_one_association(ae, host, int(port), called_aet, pending, tls)
        retry = attempt < SEND_ATTEMPTS and any(r.unanswered for r in results)
        for result in results:
            result.attempts = attempt
        report.instances.extend(r for r in results if not (retry and r.unanswered))
        again = [retry and r.unanswered for r in results]
        pending = [item for item, send in zip(pending, again, strict=True) if send]
    return report


def requested_contexts(
    headers: Sequence[pydicom.Dataset],
) -> list[tuple[str, list[str]]]:
    """Return the presentation contexts to propose for ``headers``: (SOP class, syntaxes).

    Files in an uncompressed syntax share one context per SOP class that offers pynetdicom's
    default syntaxes (implicit and explicit VR little endian, explicit big endian); each
    compressed syntax (JPEG Lossless, JPEG-LS, JPEG 2000, RLE...) gets its own context, since
    such files are sent as they are and the receiver must accept exactly that syntax. At most
    ``MAX_CONTEXTS`` contexts are proposed.
    """
    pairs = set()
    for header in headers:
        meta = getattr(header, "file_meta", None)
        syntax = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
        uncompressed = not syntax or syntax in DEFAULT_TRANSFER_SYNTAXES
        pairs.add((str(header.SOPClassUID), "" if uncompressed else syntax))
    return [(sop_class, [syntax] if syntax else list(DEFAULT_TRANSFER_SYNTAXES))
            for sop_class, syntax in sorted(pairs)[:MAX_CONTEXTS]]


def tls_context(ca_file: str | Path, cert_file: str | Path | None = None,
                key_file: str | Path | None = None) -> ssl.SSLContext:
    """Build the client context for DICOM TLS.

    Parameters
    ----------
    ca_file : str or Path
        PEM certificate(s) the receiver's certificate must chain to; the receiver's host name
        or IP address must be in its certificate.
    cert_file, key_file : str or Path, optional
        Our own certificate and private key (PEM), for a receiver that requires one.

    Returns
    -------
    ssl.SSLContext

    Raises
    ------
    ValueError
        If only one of ``cert_file`` and ``key_file`` is given.
    OSError, ssl.SSLError
        If a file cannot be read or is not a PEM certificate/key.
    """
    if (cert_file is None) != (key_file is None):
        raise ValueError("cert_file and key_file must be given together")
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca_file))
    if cert_file is not None:
        context.load_cert_chain(str(cert_file), str(key_file))
    return context


def _send_over_one_association(
    ae: AE, host: str, port: int, called_aet: str, headers: list[tuple[Path, pydicom.Dataset]],
    tls: ssl.SSLContext | None = None,
) -> list[InstanceStatus]:
    assoc = ae.associate(
        host, port, ae_title=called_aet, evt_handlers=[(evt.EVT_CONN_OPEN, _set_nodelay)],
        tls_args=(tls, host) if tls is not None else None,
    )
    if not assoc.is_established:
        reason = (f"association from {ae.ae_title} to {called_aet}@{host}:{port} was rejected "
                  "or failed (a receiver that checks senders must list this AE title and host)")
        return [InstanceStatus(str(p), str(h.SOPInstanceUID), None, reason) for p, h in headers]
    try:
        return [_store_one(assoc, path, header) for path, header in headers]
    finally:
        assoc.release()


def _read_headers(
    paths: Sequence[str | Path], report: SendReport
) -> list[tuple[Path, pydicom.Dataset]]:
    headers = []
    for p in paths:
        path = Path(p)
        try:
            header = pydicom.dcmread(path, stop_before_pixels=True)
            str(header.SOPClassUID), str(header.SOPInstanceUID)
        except (InvalidDicomError, OSError, AttributeError) as exc:
            report.instances.append(InstanceStatus(str(path), "", None, f"not sent: {exc}"))
            continue
        headers.append((path, header))
    return headers


def _store_one(assoc: object, path: Path, header: pydicom.Dataset) -> InstanceStatus:
    uid = str(header.SOPInstanceUID)
    try:
        status = assoc.send_c_store(pydicom.dcmread(path))
    except (ValueError, RuntimeError, OSError) as exc:
        return InstanceStatus(str(path), uid, None, f"not sent: {exc}",
                              unanswered=not assoc.is_established)
    if not status or "Status" not in status:
        return InstanceStatus(str(path), uid, None, "no response (timeout or aborted)",
                              unanswered=True)
    code = int(status.Status)
    message = "" if code == 0 else str(status.get("ErrorComment", f"status 0x{code:04X}"))
    return InstanceStatus(str(path), uid, code, message)
