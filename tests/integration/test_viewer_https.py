"""nginx in front of Orthanc (deploy/start-viewer.sh): OHIF's files, DICOMweb and the REST API
over HTTPS with a configured certificate (self-signed here), Orthanc's auth unchanged."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import urllib.error
import urllib.request

import pytest
from e2e_support import require_viewer, self_signed_certificate

from orthanc_plugin.local_server import REPO, free_port
from orthanc_plugin.orthanc_http import OrthancClient, OrthancHttpError

pytestmark = pytest.mark.integration
START, STOP = str(REPO / "deploy" / "start-viewer.sh"), str(REPO / "deploy" / "stop-viewer.sh")


@pytest.fixture()
def https_viewer(orthanc, tmp_path):
    require_viewer()
    cert, key = self_signed_certificate(tmp_path)
    env = {**os.environ, "LUNGSEG_VIEWER_PORT": str(free_port()),
           "LUNGSEG_HTTP_PORT": str(orthanc.http_port), "LUNGSEG_DATA_DIR": str(tmp_path),
           "LUNGSEG_TLS_CERT": str(cert), "LUNGSEG_TLS_KEY": str(key)}
    proc = subprocess.run([START], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    yield {"url": f"https://127.0.0.1:{env['LUNGSEG_VIEWER_PORT']}", "env": env,
           "ssl": ssl.create_default_context(cafile=str(cert)), "stdout": proc.stdout}
    subprocess.run([STOP], env=env, check=True, capture_output=True, timeout=30)


def get(url: str, context: ssl.SSLContext | None) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30, context=context) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_https_serves_ohif_and_forwards_dicomweb_and_the_rest_api(orthanc, processed,
                                                                   https_viewer):
    url, context = https_viewer["url"], https_viewer["ssl"]
    assert f"OHIF viewer:   {url}/" in https_viewer["stdout"]
    status, body = get(f"{url}/", context)
    assert status == 200 and b'<div id="root"' in body
    assert get(f"{url}/viewer", context)[1] == body  # an app route answers the app
    status, config = get(f"{url}/app-config.js", context)
    assert status == 200 and b"window.location.origin + '/dicom-web'" in config
    assert get(f"{url}/no-such-file.js", context)[0] == 404

    assert get(f"{url}/dicom-web/studies", context)[0] == 401  # auth forwarded, not bypassed
    client = OrthancClient(url, orthanc.user, orthanc.password, ssl_context=context)
    studies = json.loads(client.request("GET", "/dicom-web/studies"))
    assert processed.study_uid in [s["0020000D"]["Value"][0] for s in studies]
    assert get(f"{url}/orthanc/lungseg/jobs", context)[0] == 401
    job = client.get_json(f"/orthanc/lungseg/series/{processed.series_id}")
    assert job["state"] == "done"
    assert client.get_json("/orthanc/lungseg/status")["worker"]["state"] == "running"
    with pytest.raises(OrthancHttpError) as err:
        OrthancClient(url, orthanc.user, "wrong", ssl_context=context).get_json(
            "/orthanc/system")
    assert err.value.status == 401


def test_tls_uses_the_configured_certificate(https_viewer):
    url = https_viewer["url"]
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        get(f"{url}/", ssl.create_default_context())  # not signed by a system authority
    status, _ = get(url.replace("https://", "http://") + "/", None)
    assert status == 400  # nginx: plain HTTP sent to the HTTPS port


def test_clear_text_on_another_interface_is_refused(orthanc, tmp_path):
    require_viewer()
    env = {**os.environ, "LUNGSEG_VIEWER_PORT": str(free_port()),
           "LUNGSEG_HTTP_PORT": str(orthanc.http_port), "LUNGSEG_DATA_DIR": str(tmp_path),
           "LUNGSEG_VIEWER_HOST": "0.0.0.0"}
    env.pop("LUNGSEG_TLS_CERT", None)
    env.pop("LUNGSEG_TLS_KEY", None)
    proc = subprocess.run([START], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "passwords in clear text" in proc.stderr
    env["LUNGSEG_TLS_CERT"], env["LUNGSEG_TLS_KEY"] = str(tmp_path / "no.pem"), "/etc/hostname"
    proc = subprocess.run([START], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and f"LUNGSEG_TLS_CERT: cannot read {tmp_path}/no.pem" in (
        proc.stderr)
    assert not (tmp_path / "viewer.pid").exists()
