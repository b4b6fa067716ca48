"""A small client for Orthanc's REST API over HTTP (used by the worker process)."""

from __future__ import annotations

import base64
import json
import ssl
import urllib.error
import urllib.request
from typing import Any


class OrthancHttpError(RuntimeError):
    """An Orthanc REST call failed; ``status`` is the HTTP status (0 when unreachable).

    ``detail`` is Orthanc's own error message when its answer has one (e.g. "Cannot write to
    file"), else the start of the answer or the network error.
    """

    def __init__(self, method: str, path: str, status: int, detail: str) -> None:
        super().__init__(f"{method} {path} failed with HTTP {status}: {detail[:300]}")
        self.status = status
        self.detail = _orthanc_message(detail)

    @property
    def transient(self) -> bool:
        """True when Orthanc could not be reached or was unavailable (worth trying again)."""
        return self.status in (0, 502, 503, 504)


def _orthanc_message(text: str) -> str:
    try:
        answer = json.loads(text)
    except ValueError:
        return text[:300]
    if isinstance(answer, dict):
        parts = [str(answer[k]) for k in ("Message", "Details") if answer.get(k)]
        if parts:
            return ": ".join(parts)[:300]
    return text[:300]


class OrthancClient:
    """Basic-auth HTTP client for one Orthanc server.

    Parameters
    ----------
    url : str
        Base URL, e.g. ``http://127.0.0.1:8042``.
    user, password : str
        Credentials of a registered Orthanc user.
    timeout_s : float
        Per-request timeout in seconds.
    ssl_context : ssl.SSLContext, optional
        For an ``https`` URL: the context that verifies the server (e.g. with a site's own
        certificate authority); default: the system's trusted authorities.

    Raises
    ------
    ValueError
        If ``url`` is not an http(s) URL or ``timeout_s`` is not positive.
    """

    def __init__(self, url: str, user: str, password: str, timeout_s: float = 120.0,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValueError(f"url must be an http(s) URL, got {url!r}")
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s!r}")
        self.url = url.rstrip("/")
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        self._headers = {"Authorization": f"Basic {token}"}
        self.timeout_s = timeout_s
        self._ssl_context = ssl_context

    def request(self, method: str, path: str, body: bytes | None = None,
                content_type: str = "application/octet-stream") -> bytes:
        """Send one request and return the response body.

        Raises
        ------
        OrthancHttpError
            On an HTTP error status or when Orthanc cannot be reached.
        """
        headers = dict(self._headers)
        if body is not None:
            headers["Content-Type"] = content_type
        req = urllib.request.Request(self.url + path, data=body, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s,
                                        context=self._ssl_context) as resp:
                return resp.read()
        except urllib.error.HTTPError as exc:
            raise OrthancHttpError(method, path, exc.code,
                                   exc.read().decode(errors="replace")) from exc
        except (urllib.error.URLError, OSError) as exc:
            raise OrthancHttpError(method, path, 0, str(exc)) from exc

    def get_json(self, path: str) -> Any:
        """GET and decode JSON.

        Raises
        ------
        OrthancHttpError
            As :meth:`request`.
        """
        return json.loads(self.request("GET", path))

    def post_json(self, path: str, payload: object) -> Any:
        """POST a JSON body and decode the JSON answer.

        Raises
        ------
        OrthancHttpError
            As :meth:`request`.
        """
        return json.loads(self.request("POST", path, json.dumps(payload).encode(),
                                       "application/json"))

    def store_instance(self, data: bytes) -> dict[str, Any]:
        """POST a DICOM file to ``/instances`` and return Orthanc's answer (ID, ParentSeries...).

        Raises
        ------
        OrthancHttpError
            As :meth:`request`.
        """
        return json.loads(self.request("POST", "/instances", data, "application/dicom"))

    def delete(self, path: str, missing_ok: bool = True) -> bool:
        """DELETE a resource; return False when it did not exist and ``missing_ok``.

        Raises
        ------
        OrthancHttpError
            As :meth:`request`, except 404 when ``missing_ok``.
        """
        try:
            self.request("DELETE", path)
        except OrthancHttpError as exc:
            if missing_ok and exc.status == 404:
                return False
            raise
        return True

    def put_metadata(self, level: str, resource_id: str, name: str, value: str) -> None:
        """Set a metadata item (``PUT /{level}/{id}/metadata/{name}``).

        Raises
        ------
        OrthancHttpError
            As :meth:`request`.
        """
        self.request("PUT", f"/{level}/{resource_id}/metadata/{name}", value.encode(),
                     "text/plain")
