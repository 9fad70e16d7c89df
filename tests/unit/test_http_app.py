"""The HTTP view's WSGI app on its own: what no real store makes happen."""

from __future__ import annotations

import io
import json
from typing import Any
from wsgiref.util import setup_testing_defaults

import pytest

from msgarchive.v1 import archive_service_pb2 as pb
from msgarchive_server.domain import describe
from msgarchive_server.domain.archive import Archiver
from msgarchive_server.domain.reads import Reader
from msgarchive_server.edge.http import ViewApp, reference_view
from msgarchive_server.edge.reads import Described, ReadCalls
from msgarchive_server.telemetry.logs import configure_logging, flush_logs
from tests import samples
from tests.unit.fakes import FakeStore


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


def test_no_log_line_carries_the_path_and_every_refusal_has_a_reason(
    capsys: pytest.CaptureFixture[str], restores_logging: None
) -> None:
    configure_logging("info", "json")
    app = ViewApp(CrashingReads())
    address = "@".join(["jane.doe", "example.com"])
    for method, path, expected in (
        ("GET", f"/v1/archival/messages/{address}", "404 Not Found"),
        ("POST", f"/v1/archival/view/{address}", "404 Not Found"),
        ("GET", "/v1/archival/view", "405 Method Not Allowed"),
    ):
        status, body = call(app, method, path)
        assert status == expected
        assert (body["status"], body["reason"]) == (False, "INVALID_LOOKUP")
    status, body = call(app, "POST", "/v1/archival/view", b"x" * (65 * 1024))
    assert (status, body["reason"]) == ("413 Content Too Large", "INVALID_LOOKUP")
    flush_logs()
    out = capsys.readouterr().out
    assert address not in out
    methods = [json.loads(line).get("method") for line in out.splitlines()]
    assert "GET (other)" in methods
    assert "POST (other)" in methods


def test_the_reference_answer_spells_the_platform_lowercase() -> None:
    store = FakeStore()
    request = samples.push_request()
    request.push.platform = pb.PLATFORM_ANDROID
    ack = Archiver(store).archive(request)
    copy = Reader(store).get(ack.key)
    assert copy.fields["platform"] == "Android"  # the copy keeps the contract's spelling
    viewed = Described(copy, describe.details(copy) | {"event_id": ""}, describe.content(copy))
    assert reference_view(viewed)["message_details"]["platform"] == "android"
