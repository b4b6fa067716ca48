"""A stand-in for Orthanc's ``orthanc`` module: only what a test stubs works, the rest raises."""

from __future__ import annotations

import json
from typing import Any


class OrthancException(Exception):
    """Same role as ``orthanc.OrthancException``."""


class ChangeType:
    STABLE_SERIES = 9
    ORTHANC_STARTED = 10
    ORTHANC_STOPPED = 11
    NEW_INSTANCE = 1


class StubOrthanc:
    """Answers GET/POST from dicts keyed by URI; records logs and registrations.

    Any other attribute access raises AttributeError, so an unexpected call fails the test.
    """

    OrthancException = OrthancException
    ChangeType = ChangeType

    def __init__(self, get: dict[str, Any] | None = None,
                 post: dict[str, Any] | None = None) -> None:
        self.get = dict(get or {})
        self.post = dict(post or {})
        self.calls: list[tuple[str, str]] = []
        self.logs: list[str] = []
        self.change_callbacks: list[Any] = []
        self.rest_callbacks: dict[str, Any] = {}

    def RestApiGet(self, uri: str) -> bytes:  # noqa: N802
        self.calls.append(("GET", uri))
        if uri not in self.get:
            raise OrthancException(f"unknown resource {uri}")
        value = self.get[uri]
        return (value if isinstance(value, str) else json.dumps(value)).encode()

    def RestApiPost(self, uri: str, body: str | bytes) -> bytes:  # noqa: N802
        self.calls.append(("POST", uri))
        if uri not in self.post:
            raise OrthancException(f"unknown resource {uri}")
        return json.dumps(self.post[uri]).encode()

    def LogWarning(self, msg: str) -> None:  # noqa: N802
        self.logs.append(msg)

    LogError = LogWarning
    LogInfo = LogWarning

    def RegisterOnChangeCallback(self, cb: Any) -> None:  # noqa: N802
        self.change_callbacks.append(cb)

    def RegisterRestCallback(self, uri: str, cb: Any) -> None:  # noqa: N802
        self.rest_callbacks[uri] = cb


class StubOutput:
    """Records what a REST callback answers."""

    def __init__(self) -> None:
        self.status: int | None = None
        self.body: bytes = b""
        self.mime = ""

    def AnswerBuffer(self, body: str | bytes, mime: str) -> None:  # noqa: N802
        self.status, self.mime = 200, mime
        self.body = body if isinstance(body, bytes) else body.encode()

    def SendHttpStatus(self, status: int, body: str, size: int) -> None:  # noqa: N802
        if not isinstance(body, str) or size != len(body):  # as orthanc-python 4.0 checks
            raise TypeError("Bad types for the arguments (3 arguments expected)")
        self.status, self.body = status, body.encode()

    def SendMethodNotAllowed(self, allowed: str) -> None:  # noqa: N802
        self.status = 405

    def json(self) -> Any:
        return json.loads(self.body)


def series_info(modality: str, n: int, study: str = "study-1") -> dict[str, Any]:
    return {"MainDicomTags": {"Modality": modality}, "Instances": [f"i{k}" for k in range(n)],
            "ParentStudy": study}
