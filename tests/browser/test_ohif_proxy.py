"""deploy/ohif/ohif_proxy.py: app files with the single-page fallback, /dicom-web forwarded
with its credentials to an upstream HTTP server (a real one on a free port)."""

from __future__ import annotations

import base64
import http.client
import importlib.util
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("ohif_proxy", REPO / "deploy/ohif/ohif_proxy.py")
proxy = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(proxy)


class Upstream(BaseHTTPRequestHandler):
    """Answers what it received as JSON; ``/dicom-web/chunked`` answers chunked."""

    protocol_version = "HTTP/1.1"

    def _answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        seen = {"method": self.command, "path": self.path, "body": body.decode(),
                "auth": self.headers.get("Authorization"), "host": self.headers.get("Host"),
                "forwarded": self.headers.get("Forwarded")}
        data = json.dumps(seen).encode()
        self.send_response(207 if self.command == "POST" else 200)
        self.send_header("Content-Type", "application/dicom+json")
        if self.path.endswith("/chunked"):
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (data[:5], data[5:]):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
            return
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _answer  # noqa: N815

    def log_message(self, *args) -> None:
        pass


def serve(server: ThreadingHTTPServer):
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server


@pytest.fixture()
def app_dir(tmp_path):
    app = tmp_path / "app"
    (app / "assets").mkdir(parents=True)
    (app / "index.html").write_text("<html>ohif</html>")
    (app / "app.bundle.js").write_text("console.log(1)")
    (app / "decoder.wasm").write_bytes(b"\0asm")
    (tmp_path / "app-config.js").write_text("window.config = {};")
    return app


@pytest.fixture()
def viewer(app_dir):
    upstream = serve(ThreadingHTTPServer(("127.0.0.1", 0), Upstream))
    server = serve(proxy.build_server("127.0.0.1", 0, f"http://127.0.0.1:{upstream.server_port}",
                                      app_dir, app_dir.parent / "app-config.js"))
    yield server.server_port
    for s in (server, upstream):
        s.shutdown()
        s.server_close()


def fetch(port: int, path: str, method: str = "GET", body: bytes | None = None,
          headers: dict | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response, data


def test_resolve_static_falls_back_to_index_for_app_routes(app_dir):
    index = app_dir / "index.html"
    assert proxy.resolve_static(app_dir, "/") == index
    assert proxy.resolve_static(app_dir, "/viewer") == index
    assert proxy.resolve_static(app_dir, "/viewer/dicomweb") == index
    assert proxy.resolve_static(app_dir, "/app.bundle.js") == (app_dir / "app.bundle.js").resolve()
    assert proxy.resolve_static(app_dir, "/missing.bundle.js") is None
    assert proxy.resolve_static(app_dir, "/../../etc/passwd") == index


def test_parse_upstream_rejects_other_urls():
    assert proxy.parse_upstream("http://127.0.0.1:8042") == ("127.0.0.1", 8042)
    for bad in ("https://h:1", "http://h:1/orthanc", "127.0.0.1:8042", "http://:80"):
        with pytest.raises(ValueError, match="orthanc"):
            proxy.parse_upstream(bad)


def test_build_server_validates_its_arguments(app_dir, tmp_path):
    config = tmp_path / "app-config.js"
    with pytest.raises(ValueError, match="port"):
        proxy.build_server("127.0.0.1", 70000, "http://127.0.0.1:1", app_dir, config)
    with pytest.raises(ValueError, match="app_dir"):
        proxy.build_server("127.0.0.1", 0, "http://127.0.0.1:1", tmp_path / "none", config)
    with pytest.raises(ValueError, match="config_file"):
        proxy.build_server("127.0.0.1", 0, "http://127.0.0.1:1", app_dir, tmp_path / "x.js")


def test_serves_app_files_config_and_routes(viewer):
    response, data = fetch(viewer, "/viewer?StudyInstanceUIDs=1.2.3")
    assert (response.status, data) == (200, b"<html>ohif</html>")
    assert response.getheader("Content-Type") == "text/html"
    response, data = fetch(viewer, "/app-config.js")
    assert data == b"window.config = {};"
    assert response.getheader("Content-Type") == "text/javascript"
    response, _ = fetch(viewer, "/decoder.wasm")
    assert response.getheader("Content-Type") == "application/wasm"
    assert fetch(viewer, "/missing.bundle.js")[0].status == 404


def test_forwards_dicomweb_with_credentials_and_host(viewer):
    auth = "Basic " + base64.b64encode(b"user:secret").decode()
    response, data = fetch(viewer, "/dicom-web/studies?PatientID=x",
                           headers={"Authorization": auth})
    seen = json.loads(data)
    assert response.status == 200
    assert response.getheader("Content-Type") == "application/dicom+json"
    assert seen["path"] == "/dicom-web/studies?PatientID=x"
    assert seen["auth"] == auth
    assert seen["host"] == f"127.0.0.1:{viewer}"
    assert seen["forwarded"] == f"proto=http;host=127.0.0.1:{viewer}"


def test_tells_orthanc_the_scheme_of_a_tls_terminator(viewer):
    _, data = fetch(viewer, "/dicom-web/studies", headers={"X-Forwarded-Proto": "https",
                                                            "Host": "pacs.example.org"})
    assert json.loads(data)["forwarded"] == "proto=https;host=pacs.example.org"


def test_relays_chunked_answers_and_post_bodies(viewer):
    response, data = fetch(viewer, "/dicom-web/chunked")
    assert response.status == 200 and json.loads(data)["path"] == "/dicom-web/chunked"
    response, data = fetch(viewer, "/dicom-web/studies", "POST", b"payload",
                           {"Content-Type": "application/dicom"})
    assert response.status == 207 and json.loads(data)["body"] == "payload"
    assert fetch(viewer, "/tools/reset", "POST", b"")[0].status == 405


def test_unreachable_orthanc_gives_502(app_dir):
    with ThreadingHTTPServer(("127.0.0.1", 0), Upstream) as probe:
        dead_port = probe.server_port
    server = serve(proxy.build_server("127.0.0.1", 0, f"http://127.0.0.1:{dead_port}",
                                      app_dir, app_dir.parent / "app-config.js"))
    try:
        assert fetch(server.server_port, "/dicom-web/studies")[0].status == 502
    finally:
        server.shutdown()
        server.server_close()
