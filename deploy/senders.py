"""Turn LUNGSEG_SENDERS into Orthanc's DicomModalities: the only nodes allowed to C-STORE.

Format: comma-separated ``AET[@HOST[:PORT]]`` items, e.g. ``CT1@10.1.2.3,ROUTER@10.1.2.9:11112``.
HOST must be an IP address (Orthanc compares it with the caller's address as text); PORT is
where Orthanc would reach the node (not used for receiving; default 104). Each sender may
C-STORE and C-ECHO, nothing else (no C-FIND, C-MOVE, C-GET). Orthanc checks the calling host
for every sender or for none (``DicomCheckModalityHost``), so either every item names a host
or none does.

Usage: senders.py SPEC  ->  prints ``{"modalities": {...}, "check_host": true|false}``;
exit status 2 with a message naming the faulty item.
"""

from __future__ import annotations

import ipaddress
import json
import re
import sys

DEFAULT_PORT = 104
_AET = re.compile(r"^[\x21-\x5b\x5d-\x7e]{1,16}$")
"""1-16 printable characters without backslash or space (DICOM AE title, trimmed)."""


class SenderError(ValueError):
    """An item of the sender list is malformed."""


def parse_senders(spec: str) -> tuple[dict[str, dict[str, object]], bool]:
    """Parse a sender list.

    Parameters
    ----------
    spec : str
        ``AET[@HOST[:PORT]]`` items separated by commas (blank items are ignored).

    Returns
    -------
    modalities : dict
        Orthanc ``DicomModalities`` entries keyed by a name derived from the AE title.
    check_host : bool
        True when every sender names a host (then Orthanc checks it).

    Raises
    ------
    SenderError
        If an item is malformed, an AE title repeats, or some items name a host and others
        do not.
    """
    modalities: dict[str, dict[str, object]] = {}
    with_host, without_host = [], []
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        aet, host, port = _parse_item(item)
        if any(m["AET"] == aet for m in modalities.values()):
            raise SenderError(f"sender {aet!r} is listed twice")
        (with_host if host else without_host).append(aet)
        modalities[_name(aet, modalities)] = {
            "AET": aet, "Host": host or "0.0.0.0", "Port": port,
            "AllowEcho": True, "AllowStore": True, "AllowFind": False, "AllowMove": False,
            "AllowGet": False, "AllowStorageCommitment": False,
        }
    if with_host and without_host:
        raise SenderError(
            f"some senders name a host ({', '.join(with_host)}) and others do not "
            f"({', '.join(without_host)}); Orthanc checks the calling host for every sender or "
            "for none: give every sender its IP address, or none"
        )
    return modalities, bool(with_host)


def _parse_item(item: str) -> tuple[str, str, int]:
    aet, _, address = item.partition("@")
    if not _AET.match(aet):
        raise SenderError(f"{item!r}: the AE title must be 1-16 characters without spaces or "
                          "backslashes")
    if not address:
        return aet, "", DEFAULT_PORT
    host, port = address, str(DEFAULT_PORT)
    if address.count(":") == 1:  # IPv4:port; an IPv6 address alone has several colons
        host, port = address.split(":")
    elif address.startswith("[") and "]:" in address:
        host, port = address[1:].split("]:")
    try:
        ipaddress.ip_address(host)
    except ValueError as exc:
        raise SenderError(f"{item!r}: the host must be an IP address (Orthanc compares it with "
                          f"the caller's address), got {host!r}") from exc
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise SenderError(f"{item!r}: the port must be 1-65535, got {port!r}")
    return aet, host, int(port)


def _name(aet: str, taken: dict[str, object]) -> str:
    base = re.sub(r"[^A-Za-z0-9_-]", "_", aet).lower() or "sender"
    name, k = base, 2
    while name in taken:
        name, k = f"{base}-{k}", k + 1
    return name


def main(argv: list[str]) -> int:
    """Print the rendered senders of ``argv[1]`` as JSON."""
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        modalities, check_host = parse_senders(argv[1])
    except SenderError as exc:
        print(f"LUNGSEG_SENDERS: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"modalities": modalities, "check_host": check_host}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
