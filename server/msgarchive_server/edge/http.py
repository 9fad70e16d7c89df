"""The reference view API over HTTP/JSON: `POST /v1/archival/view`.

Scripts written against the reference view API (Basic auth with the account id
and API key, the `MOE-APPKEY` header, its JSON body) work unchanged against
`--http-listen`. The request is the gRPC `ViewMessageRequest` in JSON (the same
field names), and the answer is the reference envelope:

    {"status": true, "data": {"message_details": …, "message_content": …, "file_info": …}}
    {"status": false, "error_message": "…", "reason": "…"}

The lookup, auth, rate limit, audit line and metrics are `ReadCalls` and
`view`, as for the `ViewMessage` RPC; this module only parses and writes JSON.
The server is edge/httpserver.py (asyncio and h11: a thread only for a
request that has fully arrived), with the gRPC listener's TLS settings. The
OpenAPI document is `GET /v1/archival/openapi.json`.
"""

from __future__ import annotations

import json
import math
import ssl
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import resources
from typing import Any

import structlog
from google.protobuf import json_format

from msgarchive.v1 import archive_service_pb2 as pb
from msgarchive_server import addresses
from msgarchive_server.domain.errors import DomainError, InternalError, InvalidLookup
from msgarchive_server.edge.access import is_local_address
from msgarchive_server.edge.httpserver import HttpServer, Limits
from msgarchive_server.edge.interceptors import REQUEST_ID_HEADER, new_request_id
from msgarchive_server.edge.reads import Described, ReadCalls, view
from msgarchive_server.edge.status import grpc_code, http_status
from msgarchive_server.telemetry import tracing

log = structlog.get_logger("msgarchive.rpc")

VIEW_PATH = "/v1/archival/view"
OPENAPI_PATH = "/v1/archival/openapi.json"
RPC_LABEL = "POST " + VIEW_PATH  # the `rpc` label of msgarchive_reads
OTHER_ROUTE = "(other)"  # what is logged for a path that is no route
MAX_BODY_BYTES = 64 * 1024
THREADS = 8
_TRACE_HEADERS = (("traceparent", "HTTP_TRACEPARENT"), ("tracestate", "HTTP_TRACESTATE"))

StartResponse = Callable[[str, list[tuple[str, str]]], Any]
_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Content Too Large",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


class HttpFailure(Exception):
    """A request refused before it reached the read: its status and message."""

    def __init__(self, status: int, message: str, reason: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.reason = reason


def openapi_document() -> bytes:
    return resources.files(__package__).joinpath("openapi.json").read_bytes()


class ViewApp:
    """The WSGI application: the view, the OpenAPI document, JSON errors for the rest."""

    def __init__(self, reads: ReadCalls, *, unix_socket: bool = False) -> None:
        self.reads = reads
        self.unix_socket = unix_socket
        self.openapi = openapi_document()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        structlog.contextvars.clear_contextvars()
        header_id = str(environ.get("HTTP_" + REQUEST_ID_HEADER.upper().replace("-", "_"), ""))
        request_id = header_id[:128] or new_request_id()
        method, path = environ.get("REQUEST_METHOD", ""), environ.get("PATH_INFO", "")
        headers = [("X-Request-Id", request_id)]
        if path == OPENAPI_PATH and method in ("GET", "HEAD"):
            start_response(
                "200 OK",
                [
                    *headers,
                    ("Content-Type", "application/json"),
                    ("Content-Length", str(len(self.openapi))),
                ],
            )
            return [self.openapi]
        # The route, never the raw path: a URL can carry an address.
        route = path if path in (VIEW_PATH, OPENAPI_PATH) else OTHER_ROUTE
        structlog.contextvars.bind_contextvars(request_id=request_id, method=f"{method} {route}")
        start = time.perf_counter()
        trace_headers = {name: str(environ[key]) for name, key in _TRACE_HEADERS if key in environ}
        attributes = {"http.request.method": method, "http.route": route}
        # Span names stay few: the route, or the method alone for any other path.
        name = f"{method} {VIEW_PATH}" if path == VIEW_PATH else method
        with tracing.server_span(name, trace_headers, attributes) as span:
            status, body, code = self._answer(environ, method, path, headers)
            tracing.annotate(span, {"http.response.status_code": status})
            if status >= 500:  # a client's mistake does not fail the server's span
                tracing.failed(span, code)
        log.info(
            "rpc",
            code=code,
            http_status=status,
            duration_ms=round((time.perf_counter() - start) * 1000, 3),
        )
        structlog.contextvars.clear_contextvars()
        data = json.dumps(body, ensure_ascii=False).encode()
        start_response(
            f"{status} {_REASONS.get(status, '')}",
            [
                *headers,
                ("Content-Type", "application/json; charset=utf-8"),
                ("Content-Length", str(len(data))),
                # Copies are personal data: no cache keeps them.
                ("Cache-Control", "no-store"),
            ],
        )
        return [data]

    def _answer(
        self, environ: dict[str, Any], method: str, path: str, headers: list[tuple[str, str]]
    ) -> tuple[int, dict[str, Any], str]:
        """The HTTP status, body and gRPC-style code name; adds headers an error needs."""
        try:
            return 200, self._route(environ, method, path), "OK"
        except DomainError as err:
            if err.retry_after is not None:
                headers.append(("Retry-After", str(max(1, math.ceil(err.retry_after)))))
            status = http_status(err)
            if status == 401:
                headers.append(("WWW-Authenticate", 'Basic realm="msgarchive"'))
            return status, _failure(err.message, err.reason_name, err), grpc_code(err).name
        except HttpFailure as err:
            if err.status == 405:
                headers.append(("Allow", "POST"))
            return err.status, _failure(err.message, err.reason), "INVALID_ARGUMENT"
        except Exception:
            log.exception("http view crashed")
            fault = InternalError(reading=True)
            return 500, _failure(fault.message, fault.reason_name), "INTERNAL"

    def _route(self, environ: dict[str, Any], method: str, path: str) -> dict[str, Any]:
        if path != VIEW_PATH:
            raise HttpFailure(
                404, f"no such endpoint; the view is POST {VIEW_PATH}", "INVALID_LOOKUP"
            )
        if method != "POST":
            raise HttpFailure(405, f"{VIEW_PATH} takes POST, not {method}", "INVALID_LOOKUP")
        request = _view_request(environ)
        structlog.contextvars.bind_contextvars(campaign_id=request.campaign_id)
        local = self.unix_socket or is_local_address(str(environ.get("REMOTE_ADDR") or ""))
        viewed = self.reads.run(
            RPC_LABEL,
            str(environ.get("HTTP_AUTHORIZATION", "")),
            local,
            lambda reader: view(reader, request),
            account_id=str(environ.get("HTTP_MOE_APPKEY", "")).strip(),
        )
        return {"status": True, "data": reference_view(viewed)}


def _view_request(environ: dict[str, Any]) -> pb.ViewMessageRequest:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise HttpFailure(400, "Content-Length is not a number", "INVALID_LOOKUP") from None
    if length > MAX_BODY_BYTES:
        raise HttpFailure(413, f"the body is over {MAX_BODY_BYTES} bytes", "INVALID_LOOKUP")
    # Without a length (a chunked body), up to one byte past the limit.
    raw = environ["wsgi.input"].read(length or MAX_BODY_BYTES + 1)
    if len(raw) > MAX_BODY_BYTES:
        raise HttpFailure(413, f"the body is over {MAX_BODY_BYTES} bytes", "INVALID_LOOKUP")
    try:
        body = json.loads(raw)
    except ValueError as err:
        raise InvalidLookup([], f"the body is not JSON: {err}") from None
    if not isinstance(body, dict):
        raise InvalidLookup([], "the body must be a JSON object with the view's fields")
    try:
        return json_format.ParseDict(body, pb.ViewMessageRequest(), ignore_unknown_fields=True)
    except json_format.ParseError as err:
        raise InvalidLookup([], str(err)) from None


def _failure(message: str, reason: str, err: DomainError | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"status": False, "error_message": message}
    if reason:
        body["reason"] = reason
    if err is not None and err.violations:
        body["field_violations"] = [
            {"field": v.field, "description": v.description} for v in err.violations
        ]
    return body


def reference_view(viewed: Described) -> dict[str, Any]:
    """A view's answer with the reference's field names (and a few of our own)."""
    details = dict(viewed.details)
    event_id = details.pop("event_id")
    stored = viewed.copy.stored
    retention = None
    if stored.retention_mode or stored.legal_hold:
        retention = {
            "mode": stored.retention_mode or None,
            "retain_until_ms": stored.retain_until_ms or None,
            "legal_hold": stored.legal_hold,
        }
    # The reference spells the platform lowercase ("android", "ios", "web").
    details["platform"] = str(details.get("platform", "")).lower()
    return {
        "message_details": {
            "message_type": "campaign",
            **details,
            "moe_event_id": event_id or None,
        },
        "message_content": viewed.content,
        "file_info": {
            "version": stored.version_id or None,
            "file_name": viewed.copy.key.rsplit("/", 1)[-1],
            "bucket": viewed.copy.bucket,
            "key": viewed.copy.key,
            "etag": stored.etag,
            "size_bytes": len(stored.body),
            "retention": retention,
        },
        "archived_json": viewed.copy.json_text,
    }


class HttpListener:
    """The HTTP view on `address` (HOST:PORT or unix:PATH), bound at construction.

    Served by `HttpServer` (edge/httpserver.py): idle, slow and malformed
    clients are bounded by deadlines and limits there and never hold a thread.
    """

    def __init__(
        self,
        address: str,
        reads: ReadCalls,
        tls: TlsFiles | None = None,
        shutdown_timeout: float = 10.0,
        timeout: float = 10.0,
    ) -> None:
        where = addresses.parse(address)
        self.shutdown_timeout = shutdown_timeout
        self.server = HttpServer(
            where,
            ViewApp(reads, unix_socket=where.unix),
            _refusal,
            ssl_context=tls.context() if tls is not None else None,
            limits=Limits(
                head_timeout=timeout,
                body_timeout=timeout,
                write_timeout=timeout,
                max_body_bytes=MAX_BODY_BYTES,
                threads=THREADS,
            ),
        )
        self.port = self.server.port

    def start(self) -> None:
        self.server.start()

    def stop(self) -> None:
        """Stop taking connections; requests in progress get the shutdown timeout."""
        self.server.stop(self.shutdown_timeout)


def _refusal(status: int, message: str) -> bytes:
    """The envelope of a request the server refused before the view saw it."""
    reason = "INTERNAL_ERROR" if status >= 500 else "INVALID_LOOKUP"
    return json.dumps(_failure(message, reason)).encode()


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """The gRPC listener's TLS files, which the HTTP listener serves with too."""

    cert: str
    key: str
    client_ca: str | None = None  # with it, a client certificate is required (mTLS)

    def context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        if self.client_ca:
            context.load_verify_locations(self.client_ca)
            context.verify_mode = ssl.CERT_REQUIRED
        return context
