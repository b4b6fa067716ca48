"""DICOM TLS through Orthanc's own options, rendered by deploy/start-orthanc.sh: a sender with a
trusted certificate stores over TLS; plain DICOM, no client certificate and an untrusted one are
refused. Certificates are made with openssl for the test."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from e2e_support import DEMO_SERIES, LUNGSEG, require_orthanc

from orthanc_plugin.local_server import REPO, OrthancServer
from pipeline.dimse import send_files, tls_context

pytestmark = pytest.mark.integration

START = str(REPO / "deploy" / "start-orthanc.sh")


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _authority(folder: Path, name: str) -> None:
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
             f"/CN={name}", "-keyout", f"{name}.key", "-out", f"{name}.crt", cwd=folder)


def _certificate(folder: Path, name: str, ca: str) -> None:
    (folder / f"{name}.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
             "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=folder)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
             "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext",
             "-out", f"{name}.crt", cwd=folder)


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> Path:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    folder = tmp_path_factory.mktemp("certs")
    _authority(folder, "site-ca")
    _authority(folder, "other-ca")
    _certificate(folder, "orthanc", "site-ca")
    _certificate(folder, "sender", "site-ca")
    _certificate(folder, "intruder", "other-ca")
    return folder


@pytest.fixture(scope="module")
def tls_orthanc(certs, tmp_path_factory):
    require_orthanc()
    server = OrthancServer(tmp_path_factory.mktemp("tls-orthanc"), extra_env={
        "LUNGSEG_DICOM_TLS_CERT": str(certs / "orthanc.crt"),
        "LUNGSEG_DICOM_TLS_KEY": str(certs / "orthanc.key"),
        "LUNGSEG_DICOM_TLS_TRUSTED": str(certs / "site-ca.crt"),
        "LUNGSEG_SEGMENTER": "threshold",
    })
    output = server.start()
    assert "(TLS)" in output
    yield server
    server.stop()


def _send(server, certs, client: str | None, tls: bool = True):
    files = sorted(DEMO_SERIES.glob("*.dcm"))[:2]
    context = None
    if tls:
        context = tls_context(certs / "site-ca.crt",
                              certs / f"{client}.crt" if client else None,
                              certs / f"{client}.key" if client else None)
    return send_files(files, "127.0.0.1", server.dicom_port, timeout_s=10, tls=context)


def _instances(server) -> int:
    return len(server.client().get_json("/instances"))


def test_trusted_sender_stores_over_tls(tls_orthanc, certs):
    config = json.loads((tls_orthanc.data_dir / "orthanc.json").read_text())
    assert config["DicomTlsEnabled"] is True
    assert config["DicomTlsRemoteCertificateRequired"] is True
    report = _send(tls_orthanc, certs, "sender")
    assert report.sent == 2 and not report.failures
    assert _instances(tls_orthanc) == 2


@pytest.mark.parametrize("client, tls, logged", [
    (None, False, "TLS error: wrong version number"),
    (None, True, "TLS error: peer did not return a certificate"),
    ("intruder", True, "TLS error: certificate verify failed"),
], ids=["plain-dicom", "no-client-certificate", "untrusted-certificate"])
def test_plain_or_untrusted_sender_is_refused(tls_orthanc, certs, client, tls, logged):
    before = _instances(tls_orthanc)
    report = _send(tls_orthanc, certs, client, tls)
    assert report.sent == 0 and len(report.failures) == 2
    assert _instances(tls_orthanc) == before
    assert f"Receiving Association failed: {logged}" in tls_orthanc.log()


def test_lungseg_send_speaks_tls(tls_orthanc, certs):
    args = [str(LUNGSEG), "send", str(DEMO_SERIES), "--host", "127.0.0.1",
            "--port", str(tls_orthanc.dicom_port), "--tls-ca", str(certs / "site-ca.crt")]
    proc = subprocess.run(args + ["--tls-cert", str(certs / "sender.crt"),
                                  "--tls-key", str(certs / "sender.key")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "sent 32 of 32" in proc.stdout
    bad = subprocess.run(args + ["--tls-cert", str(certs / "sender.crt")],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "cert_file and key_file must be given together" in bad.stderr


@pytest.mark.parametrize("env, message", [
    ({"LUNGSEG_DICOM_TLS_CERT": "/nonexistent/orthanc.crt"}, "LUNGSEG_DICOM_TLS_KEY must be set"),
    ({"LUNGSEG_DICOM_TLS_KEY": "/tmp/k.pem"}, "LUNGSEG_DICOM_TLS_CERT is not"),
    ({"LUNGSEG_DICOM_TLS_REQUIRE_CLIENT_CERT": "yes"}, "must be 0 or 1"),
])
def test_incomplete_tls_settings_fail_with_a_message(tmp_path, env, message):
    server = OrthancServer(tmp_path, extra_env=env)
    proc = subprocess.run([START], env=server.env, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and message in proc.stderr


def test_unreadable_certificate_fails_with_a_message(tmp_path, certs):
    server = OrthancServer(tmp_path, extra_env={
        "LUNGSEG_DICOM_TLS_CERT": str(tmp_path / "missing.crt"),
        "LUNGSEG_DICOM_TLS_KEY": str(certs / "orthanc.key"),
        "LUNGSEG_DICOM_TLS_TRUSTED": str(certs / "site-ca.crt")})
    proc = subprocess.run([START], env=server.env, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert f"LUNGSEG_DICOM_TLS_CERT: cannot read '{tmp_path / 'missing.crt'}'" in proc.stderr
