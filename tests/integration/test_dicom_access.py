"""Only configured senders may C-STORE: AE title, calling host and called AE title are checked
by a real Orthanc rendered by deploy/start-orthanc.sh (LUNGSEG_SENDERS)."""

from __future__ import annotations

import importlib.util
import json

import pydicom
import pytest
from e2e_support import DEMO_SERIES
from pydicom import uid
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage

from orthanc_plugin.local_server import REPO

pytestmark = pytest.mark.integration


def _instance() -> pydicom.Dataset:
    ds = pydicom.dcmread(sorted(DEMO_SERIES.glob("*.dcm"))[0])
    ds.StudyInstanceUID = uid.generate_uid()  # the demo's study keeps its series
    ds.SeriesInstanceUID = uid.generate_uid()
    ds.SOPInstanceUID = uid.generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return ds


def _store(port: int, calling: str, called: str = "ORTHANC",
           source: str = "127.0.0.1") -> tuple[bool, int | None, str]:
    """C-STORE one new instance; return (association accepted, status, SOPInstanceUID)."""
    ae = AE(ae_title=calling)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 15
    ae.add_requested_context(CTImageStorage, uid.ExplicitVRLittleEndian)
    ds = _instance()
    assoc = ae.associate("127.0.0.1", port, ae_title=called, bind_address=(source, 0))
    if not assoc.is_established:
        return False, None, ds.SOPInstanceUID
    try:
        status = assoc.send_c_store(ds)
        return True, int(status.Status) if "Status" in status else None, ds.SOPInstanceUID
    finally:
        assoc.release()


def _stored(client, sop_uid: str) -> bool:
    hits = json.loads(client.request("POST", "/tools/lookup", sop_uid.encode(), "text/plain"))
    return any(h["Type"] == "Instance" for h in hits)


def test_rendered_config_admits_only_listed_senders(orthanc):
    config = json.loads((orthanc.data_dir / "orthanc.json").read_text())
    assert config["DicomCheckCalledAet"] is True and config["DicomCheckModalityHost"] is True
    for kind in ("Store", "Echo", "Find", "FindWorklist", "Get", "Move"):
        assert config[f"DicomAlwaysAllow{kind}"] is False, kind
    assert [(m["AET"], m["Host"], m["AllowStore"], m["AllowFind"], m["AllowMove"])
            for m in config["DicomModalities"].values()] == [
        ("LUNGSEG", "127.0.0.1", True, False, False)]
    assert config["ExecuteLuaEnabled"] is False
    assert config["RestApiWriteToFileSystemEnabled"] is False


def test_known_sender_stores(orthanc):
    accepted, status, sop = _store(orthanc.dicom_port, "LUNGSEG")
    assert accepted and status == 0x0000
    assert _stored(orthanc.client(), sop)


@pytest.mark.parametrize("calling, called, source, logged", [
    ("STRANGER", "ORTHANC", "127.0.0.1", "Rejected association for remote AET STRANGER on IP "
                                         "127.0.0.1"),
    ("LUNGSEG", "NOTORTHANC", "127.0.0.1", "bad called AET in the request (NOTORTHANC)"),
    ("LUNGSEG", "ORTHANC", "127.0.0.2", "Rejected association for remote AET LUNGSEG on IP "
                                        "127.0.0.2"),
], ids=["unknown-aet", "wrong-called-aet", "known-aet-other-host"])
def test_unknown_sender_wrong_called_aet_or_host_is_refused(orthanc, calling, called, source,
                                                            logged):
    accepted, status, sop = _store(orthanc.dicom_port, calling, called, source)
    assert not accepted, f"association accepted (C-STORE status {status})"
    assert not _stored(orthanc.client(), sop)
    assert logged in orthanc.log()


def test_modality_added_over_rest_may_store_until_removed(orthanc):
    client = orthanc.client()
    entry = {"AET": "NEWCT", "Host": "127.0.0.1", "Port": 104, "AllowStore": True,
             "AllowEcho": True, "AllowFind": False, "AllowMove": False, "AllowGet": False}
    assert not _store(orthanc.dicom_port, "NEWCT")[0]
    client.request("PUT", "/modalities/newct", json.dumps(entry).encode(), "application/json")
    try:
        accepted, status, sop = _store(orthanc.dicom_port, "NEWCT")
        assert accepted and status == 0x0000 and _stored(client, sop)
    finally:
        client.delete("/modalities/newct")
    assert not _store(orthanc.dicom_port, "NEWCT")[0]


def _senders():
    spec = importlib.util.spec_from_file_location("senders", REPO / "deploy" / "senders.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sender_list_is_parsed_and_checked():
    senders = _senders()
    modalities, check_host = senders.parse_senders("CT1@10.0.0.5, ROUTER@10.0.0.9:11112,")
    assert check_host
    assert modalities["ct1"]["AET"] == "CT1" and modalities["ct1"]["Host"] == "10.0.0.5"
    assert modalities["router"]["Port"] == 11112
    assert all(m["AllowStore"] and not m["AllowFind"] and not m["AllowMove"]
               for m in modalities.values())
    assert senders.parse_senders("CT1,CT2") == (senders.parse_senders("CT1,CT2")[0], False)
    assert senders.parse_senders("") == ({}, False)
    for bad, message in (("CT1@10.0.0.5,CT2", "some senders name a host"),
                         ("CT1@ct.example", "must be an IP address"),
                         ("CT1@10.0.0.5:0", "port must be 1-65535"),
                         ("A B", "AE title"), ("X" * 17, "AE title"),
                         ("CT1,CT1", "listed twice")):
        with pytest.raises(senders.SenderError, match=message):
            senders.parse_senders(bad)
