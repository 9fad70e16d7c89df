"""The HTTP view's WSGI app on its own: what no real store makes happen."""

from __future__ import annotations

import io
import json
from typing import Any
from wsgiref.util import setup_testing_defaults

from msgarchive_server.edge.http import ViewApp
from msgarchive_server.edge.reads import ReadCalls


class CrashingReads(ReadCalls):
    def __init__(self) -> None:
        pass

    def run(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug")


def call(app: ViewApp, method: str, path: str, body: bytes = b"") -> tuple[str, Any]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
    }
    setup_testing_defaults(environ)
    answered: list[str] = []
    chunks = app(environ, lambda status, headers: answered.append(status))
    return answered[0], json.loads(b"".join(chunks))


def test_a_crash_is_a_500_envelope(restores_logging: None) -> None:
    status, body = call(ViewApp(CrashingReads()), "POST", "/v1/archival/view", b'{"user_id": "1"}')
    assert status == "500 Internal Server Error"
    assert (body["status"], body["reason"]) == (False, "INTERNAL_ERROR")
    assert body["error_message"] == "internal error: the read failed; retrying may help"


def test_the_openapi_document_needs_no_credentials() -> None:
    status, body = call(ViewApp(CrashingReads()), "GET", "/v1/archival/openapi.json")
    assert status == "200 OK"
    assert body["openapi"] == "3.1.0"
