"""``trainer pull``: download readers' corrected SEGs and their CT series from an archive.

Read-only DICOMweb (QIDO-RS searches, WADO-RS retrievals; never STOW or DELETE) against, for
example, Orthanc's ``/dicom-web``. Which SEG is a correction and how a reader marks "no
lesion": :mod:`trainer.retrain.corrections`. For every CT series with a correction, the
newest one is kept; the CT and that SEG are written into ``OUT``::

    OUT/series/<entry>/0001.dcm ...   the CT series
    OUT/seg/<entry>.dcm               the corrected SEG (absent for a lesion-free entry)
    OUT/series-list.json              the series list (trainer/data/series_list.py)
    OUT/manifest.json                 what was pulled, from where, when
    OUT/.pseudonym-salt               the secret of the pseudonyms (keep it with OUT)

``<entry>`` is ``<pseudonym>-<8 hex of the CT series UID>``; the pseudonym is
``<SITE>-<8 hex of HMAC-SHA256(salt, PatientID)>``: the same patient gets the same
pseudonym in every pull into ``OUT``, and no patient name or ID appears in a file name, the
list, the manifest or the log (the DICOM files themselves keep their headers).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import shutil
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import pydicom

from trainer.retrain.corrections import (
    SegInfo,
    correction_reason,
    is_lungseg_own,
    newest,
    seg_info,
)

LOG = logging.getLogger("lungseg.pull")
SITE_RE = re.compile(r"[A-Za-z0-9]{1,16}")
SALT_FILE = ".pseudonym-salt"
LIST_FILE = "series-list.json"
MANIFEST_FILE = "manifest.json"


@dataclass(frozen=True)
class PulledEntry:
    """One pulled CT series (a row of the manifest; UIDs, no patient identifiers)."""

    name: str
    patient: str
    study_uid: str
    ct_series_uid: str
    n_instances: int
    seg_series_uid: str
    seg_sop_uid: str
    seg_when: str
    reason: str
    lesion_free: bool


def connect(url: str, user: str | None = None, password: str | None = None) -> Any:
    """Return a ``dicomweb_client.DICOMwebClient`` for ``url`` (HTTP basic auth if given).

    Raises
    ------
    ValueError
        If ``url`` is not an http(s) URL or only one of user and password is given.
    """
    from dicomweb_client import DICOMwebClient
    from dicomweb_client.session_utils import create_session_from_user_pass

    if not url.startswith(("http://", "https://")):
        raise ValueError(f"--url must be an http(s) DICOMweb URL, got {public_url(url)!r}")
    if (user is None) != (password is None):
        raise ValueError("give both --user and --password, or neither")
    session = create_session_from_user_pass(user, password) if user is not None else None
    return DICOMwebClient(url.rstrip("/"), session=session, timeout=120)


def public_url(url: str) -> str:
    """``url`` without any ``user:password@`` part (for the manifest and logs)."""
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def pseudonym(salt: bytes, patient_id: str, site: str) -> str:
    """``<site>-<8 hex>`` of HMAC-SHA256(salt, patient ID)."""
    digest = hmac.new(salt, patient_id.encode("utf-8"), hashlib.sha256).hexdigest()
    return f"{site}-{digest[:8]}"


def _salt(out: Path) -> bytes:
    path = out / SALT_FILE
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    return bytes.fromhex(path.read_text().strip())


def _check_out(out: Path) -> None:
    if out.exists() and any(out.iterdir()) and not (out / MANIFEST_FILE).is_file():
        raise ValueError(f"{out} is not empty and holds no {MANIFEST_FILE} of an earlier pull; "
                         "choose a new folder")
    out.mkdir(parents=True, exist_ok=True)


def find_corrections(client: Any, since: str | None = None
                     ) -> tuple[list[tuple[SegInfo, Any, str]], list[dict]]:
    """Search the archive's SEGs; return the newest correction of each CT series.

    Parameters
    ----------
    client : dicomweb_client.DICOMwebClient
    since : str, optional
        ``YYYYMMDD``: only corrections of that day or later.

    Returns
    -------
    corrections : list of (SegInfo, pydicom.Dataset, str)
        One per CT series (the SEG, its dataset, why it counts), sorted by CT series UID.
    skipped : list of dict
        SEG series left out and why (UIDs only).
    """
    infos, skipped = [], []
    for found in client.search_for_series(search_filters={"Modality": "SEG"},
                                          get_remaining=True):
        study, series = found["0020000D"]["Value"][0], found["0020000E"]["Value"][0]
        for ds in client.retrieve_series(study, series):
            try:
                infos.append((seg_info(ds), ds))
            except ValueError as exc:
                skipped.append({"seg_series_uid": series, "why": str(exc)})
    own = {i.source_series_uid: ds for i, ds in infos if is_lungseg_own(i)}
    by_source: dict[str, list[tuple[SegInfo, Any]]] = {}
    for info, ds in infos:
        other = own.get(info.source_series_uid)
        differs = None if other is None or other is ds else not same_pixels(ds, other)
        reason = correction_reason(info, differs)
        if reason is None:
            continue
        if since and (not info.date or info.date < since):
            skipped.append({"seg_series_uid": info.series_uid, "why": f"before {since}"})
            continue
        by_source.setdefault(info.source_series_uid, []).append((info, ds, reason))
    chosen = []
    for source in sorted(by_source):
        best = newest([i for i, _, _ in by_source[source]])
        _, ds, reason = next(c for c in by_source[source] if c[0] is best)
        chosen.append((best, ds, reason))
    return chosen, skipped


def seg_frames(ds: pydicom.Dataset) -> dict[str, np.ndarray]:
    """Every segment of a SEG combined, as a boolean frame per source SOPInstanceUID."""
    import highdicom as hd

    seg = hd.seg.Segmentation.from_dataset(ds, copy=True)
    uids = sorted({uid for _, _, uid in seg.get_source_image_uids()})
    frames = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=uids, combine_segments=True, skip_overlap_checks=True,
        assert_missing_frames_are_empty=True, ignore_spatial_locations=True)
    return {uid: np.asarray(frame) > 0 for uid, frame in zip(uids, frames, strict=True)}


def same_pixels(a: pydicom.Dataset, b: pydicom.Dataset) -> bool:
    """Tell whether two SEGs mark the same pixels of the same source images (any segment)."""
    fa, fb = seg_frames(a), seg_frames(b)
    for uid in set(fa) | set(fb):
        pa, pb = fa.get(uid), fb.get(uid)
        if pa is None or pb is None:
            if (pa if pa is not None else pb).any():
                return False
        elif pa.shape != pb.shape or not np.array_equal(pa, pb):
            return False
    return True


def _write_series(datasets: list[pydicom.Dataset], folder: Path) -> None:
    partial = folder.with_name(f".{folder.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    ordered = sorted(datasets, key=lambda d: int(getattr(d, "InstanceNumber", 0) or 0))
    for k, ds in enumerate(ordered, start=1):
        ds.save_as(partial / f"{k:04d}.dcm", enforce_file_format=True)
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)


def pull(client: Any, out: str | Path, source: str, since: str | None = None,
         site: str = "SITE") -> dict:
    """Pull every corrected series into ``out`` (see the module docstring).

    Parameters
    ----------
    client : dicomweb_client.DICOMwebClient
        Read-only use: searches and retrievals.
    out : str or Path
        Empty folder, or the folder of an earlier pull (updated in place).
    source : str
        The archive's URL, recorded without credentials.
    since : str, optional
        ``YYYY-MM-DD`` or ``YYYYMMDD``: only corrections made that day or later.
    site : str
        Prefix of the pseudonyms (letters and digits).

    Returns
    -------
    dict
        The manifest (also written to ``out/manifest.json``); ``series_list`` is the list's
        path, or None when nothing was found (no list is written then).

    Raises
    ------
    ValueError
        On a bad ``site`` or ``since``, or an ``out`` that is not a pull folder.
    """
    if not SITE_RE.fullmatch(site):
        raise ValueError(f"--site must be 1-16 letters or digits, got {site!r}")
    day = _since(since)
    out = Path(out)
    _check_out(out)
    salt = _salt(out)
    corrections, skipped = find_corrections(client, day)
    entries = []
    for info, seg, reason in corrections:
        entry = _pull_one(client, out, salt, site, info, seg, reason, skipped)
        if entry is not None:
            entries.append(entry)
            LOG.info("pulled %s (%d images, %s)", entry.name, entry.n_instances,
                     "lesion-free" if entry.lesion_free else "corrected SEG")
    listed = out / LIST_FILE
    if entries:
        listed.write_text(json.dumps([_list_row(e) for e in entries], indent=1))
    elif listed.exists():
        listed.unlink()
    manifest = {"source": public_url(source), "pulled_at": _now(), "since": day,
                "rule": "trainer/retrain/corrections.py", "site": site,
                "series_list": str(listed) if entries else None,
                "entries": [asdict(e) for e in entries], "skipped": skipped}
    _write_json(out / MANIFEST_FILE, manifest)
    LOG.info("pull: %d series (%d lesion-free), %d SEG series skipped", len(entries),
             sum(e.lesion_free for e in entries), len(skipped))
    return manifest


def _pull_one(client, out, salt, site, info, seg, reason, skipped) -> PulledEntry | None:
    datasets = client.retrieve_series(info.study_uid, info.source_series_uid)
    modalities = {str(getattr(d, "Modality", "")) for d in datasets}
    if modalities != {"CT"}:
        skipped.append({"seg_series_uid": info.series_uid,
                        "why": f"references a series of modality {sorted(modalities)}, not CT"})
        return None
    patient = pseudonym(salt, str(getattr(datasets[0], "PatientID", "") or ""), site)
    name = f"{patient}-{hashlib.sha256(info.source_series_uid.encode()).hexdigest()[:8]}"
    _write_series(datasets, out / "series" / name)
    seg_path = out / "seg" / f"{name}.dcm"
    if info.no_lesion:
        seg_path.unlink(missing_ok=True)
    else:
        seg_path.parent.mkdir(exist_ok=True)
        seg.save_as(seg_path, enforce_file_format=True)
    return PulledEntry(name, patient, info.study_uid, info.source_series_uid, len(datasets),
                       info.series_uid, info.sop_uid, info.when, reason, info.no_lesion)


def _list_row(entry: PulledEntry) -> dict:
    row: dict[str, Any] = {"series": f"series/{entry.name}", "patient": entry.patient}
    if entry.lesion_free:
        row["lesion_free"] = True
    else:
        row["lesions"] = f"seg/{entry.name}.dcm"
    return row


def _since(text: str | None) -> str | None:
    if not text:
        return None
    for fmt in ("%Y-%m-%d", "%Y%m%d"):
        try:
            return datetime.strptime(text, fmt).strftime("%Y%m%d")
        except ValueError:
            continue
    raise ValueError(f"--since must be a date YYYY-MM-DD, got {text!r}")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)
