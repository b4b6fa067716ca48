"""Serve the OHIF Viewer and forward DICOMweb to Orthanc on the same origin.

The prebuilt OHIF app (``deploy/ohif/install-ohif.sh``) is a single-page
application: every path that is not a file of the app (``/viewer``,
``/segmentation``...) answers ``index.html``. Requests under ``/dicom-web`` are
forwarded to Orthanc, including the ``Authorization`` header, so Orthanc keeps
checking the user's credentials and the browser never makes a cross-origin call.
Only the Python standard library is used, so the proxy runs with any Python 3.

Usage::

    python3 deploy/ohif/ohif_proxy.py --orthanc http://127.0.0.1:8042 --port 8043
"""

from __future__ import annotations

import argparse
import http.client
import mimetypes
import posixpath
import sys
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent
DICOMWEB_PREFIX = "/dicom-web"
CHUNK = 256 * 1024
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
EXTRA_TYPES = {
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".wasm": "application/wasm",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".woff2": "font/woff2",
}


def parse_upstream(url: str) -> tuple[str, int]:
    """Split an ``http://host:port`` URL into host and port.

    Parameters
    ----------
    url : str
        Orthanc's HTTP root, for example ``http://127.0.0.1:8042``.

    Returns
    -------
    tuple of (str, int)
        Host name and port.

    Raises
    ------
    ValueError
        If the URL is not plain ``http`` with a host, or carries a path.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"orthanc: expected http://host:port, got {url!r}")
    if parts.path not in ("", "/") or parts.query:
        raise ValueError(f"orthanc: must not carry a path or query, got {url!r}")
    return parts.hostname, parts.port or 80


def content_type(path: Path) -> str:
    """Return the MIME type to serve a file of the app with.

    Parameters
    ----------
    path : Path
        File to serve.

    Returns
    -------
    str
        MIME type; ``application/octet-stream`` when unknown.
    """
    suffix = path.suffix.lower()
    if suffix in EXTRA_TYPES:
        return EXTRA_TYPES[suffix]
    guessed, _ = mimetypes.guess_type(path.name)
    return guessed or "application/octet-stream"


def resolve_static(app_dir: Path, url_path: str) -> Path | None:
    """Map a URL path to a file of the app, with the single-page fallback.

    Parameters
    ----------
    app_dir : Path
        Folder of the built app (contains ``index.html``).
    url_path : str
        Decoded URL path, without query string.

    Returns
    -------
    Path or None
        The file to serve; ``index.html`` for app routes (a last path segment
        without a dot); None for a missing asset (answer 404).
    """
    clean = posixpath.normpath("/" + url_path).lstrip("/")
    if clean in ("", "."):
        return app_dir / "index.html"
    candidate = (app_dir / clean).resolve()
    if app_dir.resolve() not in candidate.parents:
        return None
    if candidate.is_file():
        return candidate
    if "." in clean.rsplit("/", 1)[-1]:
        return None
    return app_dir / "index.html"


class ViewerHandler(BaseHTTPRequestHandler):
    """Answer app files and forward ``/dicom-web`` to Orthanc."""

    protocol_version = "HTTP/1.1"
    server_version = "lungseg-viewer"
    app_dir: Path = HERE / "app"
    config_file: Path = HERE / "app-config.js"
    upstream: tuple[str, int] = ("127.0.0.1", 8042)
    timeout_s: float = 300.0

    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        """Serve a GET request."""
        self._dispatch(send_body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        """Serve a HEAD request."""
        self._dispatch(send_body=False)

    def do_POST(self) -> None:  # noqa: N802
        """Forward a POST (STOW-RS) to Orthanc."""
        self._forward_or_refuse()

    def do_PUT(self) -> None:  # noqa: N802
        """Forward a PUT to Orthanc."""
        self._forward_or_refuse()

    def do_DELETE(self) -> None:  # noqa: N802
        """Forward a DELETE to Orthanc."""
        self._forward_or_refuse()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        """Log requests without query strings (they may carry study UIDs)."""
        sys.stderr.write(f"{self.address_string()} {format % args}".split("?")[0] + "\n")

    def _is_dicomweb(self) -> bool:
        path = urllib.parse.urlsplit(self.path).path
        return path == DICOMWEB_PREFIX or path.startswith(DICOMWEB_PREFIX + "/")

    def _forward_or_refuse(self) -> None:
        if self._is_dicomweb():
            self._forward()
        else:
            self.send_error(405, "Only /dicom-web accepts this method")

    def _dispatch(self, send_body: bool) -> None:
        if self._is_dicomweb():
            self._forward()
            return
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        if path == "/app-config.js":
            target: Path | None = self.config_file
        else:
            target = resolve_static(self.app_dir, path)
        if target is None or not target.is_file():
            self.send_error(404, "Not found")
            return
        self._send_file(target, send_body)

    def _send_file(self, target: Path, send_body: bool) -> None:
        data = target.read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", content_type(target))
        self.send_header("Content-Length", str(len(data)))
        cache = (
            "no-cache"
            if target.suffix in (".html", "") or target == self.config_file
            else "max-age=3600"
        )
        self.send_header("Cache-Control", cache)
        self.end_headers()
        if send_body:
            self.wfile.write(data)

    def _request_body(self) -> bytes | None:
        length = self.headers.get("Content-Length")
        if length is None:
            return None
        return self.rfile.read(int(length))

    def _upstream_headers(self) -> dict[str, str]:
        """Request headers for Orthanc: the client's, plus where the request came from.

        Orthanc's DICOMweb plugin builds the BulkDataURIs of its answers from ``Forwarded``
        (else ``Host``); a TLS terminator in front of this proxy tells the scheme with
        ``X-Forwarded-Proto``, so the URIs point back at the address the browser used.
        """
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        chain = self.headers.get("X-Forwarded-For")
        client = self.client_address[0]
        headers["X-Forwarded-For"] = f"{chain}, {client}" if chain else client
        if "Forwarded" not in self.headers:
            proto = self.headers.get("X-Forwarded-Proto", "http").split(",")[0].strip()
            headers["Forwarded"] = f"proto={proto};host={self.headers.get('Host', '')}"
        return headers

    def _forward(self) -> None:
        host, port = self.upstream
        conn = http.client.HTTPConnection(host, port, timeout=self.timeout_s)
        try:
            conn.request(
                self.command, self.path, body=self._request_body(), headers=self._upstream_headers()
            )
            response = conn.getresponse()
        except OSError as exc:
            conn.close()
            self.send_error(502, f"Orthanc unreachable at {host}:{port}: {exc}")
            return
        try:
            self._relay(response)
        finally:
            conn.close()

    def _relay(self, response: http.client.HTTPResponse) -> None:
        self.send_response(response.status, response.reason)
        length = response.getheader("Content-Length")
        for key, value in response.getheaders():
            if key.lower() not in HOP_BY_HOP:
                self.send_header(key, value)
        has_body = self.command != "HEAD" and response.status not in (204, 304)
        chunked = has_body and length is None
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if not has_body:
            return
        while block := response.read(CHUNK):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(block), block) if chunked else block)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")


def build_server(
    host: str, port: int, orthanc: str, app_dir: Path, config_file: Path
) -> ThreadingHTTPServer:
    """Create the threaded viewer server (not yet serving).

    Parameters
    ----------
    host : str
        Interface to bind.
    port : int
        TCP port to bind (0 picks a free one).
    orthanc : str
        Orthanc's HTTP root, ``http://host:port``.
    app_dir : Path
        Folder of the installed OHIF app.
    config_file : Path
        The ``app-config.js`` served in place of the package's own.

    Returns
    -------
    ThreadingHTTPServer
        Bound server; call ``serve_forever()``.

    Raises
    ------
    ValueError
        If ``port`` is out of range, ``orthanc`` is not an http URL, or
        ``app_dir`` / ``config_file`` is missing.
    """
    if not 0 <= port <= 65535:
        raise ValueError(f"port: expected 0..65535, got {port}")
    if not (app_dir / "index.html").is_file():
        raise ValueError(f"app_dir: no index.html in {app_dir} (run deploy/ohif/install-ohif.sh)")
    if not config_file.is_file():
        raise ValueError(f"config_file: not found: {config_file}")
    handler = type(
        "BoundViewerHandler",
        (ViewerHandler,),
        {"app_dir": app_dir, "config_file": config_file, "upstream": parse_upstream(orthanc)},
    )
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


def main(argv: list[str] | None = None) -> int:
    """Run the viewer server until interrupted.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status: 0 after Ctrl-C, 2 on invalid arguments.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8043, help="port to bind (default 8043)")
    parser.add_argument("--orthanc", default="http://127.0.0.1:8042", help="Orthanc HTTP root")
    parser.add_argument("--app-dir", type=Path, default=HERE / "app", help="installed OHIF app")
    parser.add_argument(
        "--config", type=Path, default=HERE / "app-config.js", help="app-config.js to serve"
    )
    args = parser.parse_args(argv)
    try:
        server = build_server(args.host, args.port, args.orthanc, args.app_dir, args.config)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    bound = f"http://{args.host}:{server.server_address[1]}/"
    print(f"OHIF viewer on {bound} -> {args.orthanc}/dicom-web", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
