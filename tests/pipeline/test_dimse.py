"""C-STORE sender against a real pynetdicom Storage SCP on a free local port."""

from __future__ import annotations

import socket
import time

import pytest
from pynetdicom import AE, AllStoragePresentationContexts, evt

import pipeline.dimse as dimse
from pipeline.cli import main
from pipeline.dimse import send_files


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def scp():
    received: dict[str, str] = {}
    refuse: set[str] = set()
    stalls: dict[str, int] = {}

    def on_store(event):
        ds = event.dataset
        if ds.SOPInstanceUID in refuse:
            return 0xA700
        if stalls.get(ds.SOPInstanceUID, 0) > 0:
            stalls[ds.SOPInstanceUID] -= 1
            time.sleep(2.0)
            return 0x0000
        received[ds.SOPInstanceUID] = event.assoc.requestor.ae_title
        return 0x0000

    ae = AE(ae_title="TESTSCP")
    ae.supported_contexts = AllStoragePresentationContexts
    port = _free_port()
    server = ae.start_server(
        ("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_STORE, on_store)]
    )
    yield port, received, refuse, stalls
    server.shutdown()


def test_send_files_stores_every_instance_with_nodelay(scp, demo_dir, monkeypatch):
    port, received, _, _ = scp
    nodelay = []
    original = dimse._set_nodelay

    def spy(event):
        original(event)
        sock = event.assoc.dul.socket.socket
        nodelay.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    monkeypatch.setattr(dimse, "_set_nodelay", spy)
    paths = sorted(demo_dir.glob("*.dcm"))
    report = send_files(paths, "127.0.0.1", port, "LUNGSEG", "TESTSCP")
    assert report.sent == len(paths) == len(received)
    assert report.failures == []
    assert all(i.status == 0 for i in report.instances)
    assert set(received.values()) == {"LUNGSEG"}
    assert nodelay and all(v != 0 for v in nodelay)


def test_cli_send_reports_every_instance(scp, demo_dir, capsys):
    port, received, _, _ = scp
    args = ["send", str(demo_dir), "--host", "127.0.0.1", "--port", str(port),
            "--called-aet", "TESTSCP", "--verbose"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert out.count("stored ") == 32 and "(status 0x0000)" in out
    assert "sent 32 of 32 instance(s) to TESTSCP@127.0.0.1" in out
    assert len(received) == 32


def test_refused_and_unreadable_instances_are_listed(scp, demo_dir, tmp_path):
    port, received, refuse, _ = scp
    import pydicom

    paths = sorted(demo_dir.glob("*.dcm"))[:3]
    refuse.add(pydicom.dcmread(paths[1], stop_before_pixels=True).SOPInstanceUID)
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"not dicom")
    report = send_files([*paths, junk], "127.0.0.1", port, called_aet="TESTSCP")
    assert report.sent == 2
    failed = {f.path: f for f in report.failures}
    assert set(failed) == {str(paths[1]), str(junk)}
    assert failed[str(paths[1])].status == 0xA700
    assert failed[str(junk)].status is None and "not sent" in failed[str(junk)].message


def test_no_listener_lists_every_instance_and_cli_exits_non_zero(demo_dir, capsys):
    port = _free_port()
    paths = sorted(demo_dir.glob("*.dcm"))[:2]
    report = send_files(paths, "127.0.0.1", port, timeout_s=5)
    assert report.sent == 0 and len(report.failures) == 2
    assert "association" in report.failures[0].message
    code = main(["send", str(demo_dir), "--host", "127.0.0.1", "--port", str(port)])
    err = capsys.readouterr().err
    assert code == 1
    assert err.count("FAILED") == 32


def test_send_validates_arguments(demo_dir):
    with pytest.raises(ValueError, match="paths"):
        send_files([], "127.0.0.1", 104)
    with pytest.raises(ValueError, match="port"):
        send_files([demo_dir / "027.dcm"], "127.0.0.1", 70000)
    with pytest.raises(ValueError, match="called_aet"):
        send_files([demo_dir / "027.dcm"], "127.0.0.1", 104, called_aet="X" * 17)


def test_unanswered_instance_is_sent_again_on_a_new_association(scp, demo_dir):
    port, received, _, stalls = scp
    import pydicom

    paths = sorted(demo_dir.glob("*.dcm"))[:4]
    stalled = pydicom.dcmread(paths[1], stop_before_pixels=True).SOPInstanceUID
    stalls[stalled] = 1
    report = send_files(paths, "127.0.0.1", port, called_aet="TESTSCP", timeout_s=1)
    assert report.failures == []
    assert report.sent == len(paths) == len(received)
    attempts = {i.sop_instance_uid: i.attempts for i in report.instances}
    assert attempts[stalled] == 2
    assert sorted(attempts.values()) == [1, 2, 2, 2]


def test_an_instance_unanswered_twice_is_reported_as_failed(scp, demo_dir):
    port, _, _, stalls = scp
    import pydicom

    path = sorted(demo_dir.glob("*.dcm"))[0]
    stalls[pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID] = 2
    report = send_files([path], "127.0.0.1", port, called_aet="TESTSCP", timeout_s=1)
    assert report.sent == 0 and len(report.instances) == 1
    failed = report.failures[0]
    assert failed.attempts == 2 and failed.unanswered and "no response" in failed.message
