"""A fault-injecting HTTP proxy between the sidecar and the S3 server.

The sidecar's S3 endpoint points here; each request is relayed to SeaweedFS
unchanged (Host header included, so signatures still match) unless a fault
is due. Faults hit object writes (PUT) only, either queued for the next N
writes or drawn at a rate from a seeded random source:

- SLOWDOWN       answer 503 SlowDown            (throttling)
- ERROR_500      answer 500 InternalError
- ACCESS_DENIED  answer 403 AccessDenied
- RESET          read half the body, then reset the connection
- CORRUPT        flip one byte of the body and relay it (the store must refuse it)
- DELAY          wait `delay` seconds, then relay
- LOST_RESPONSE  relay (the store writes), then reset instead of answering
- IGNORE_CONDITIONAL  act as a store that ignores If-None-Match: delete the object
                 first (with `delete`), so the signed write replaces it
- PRECONDITION_FAILED  answer 412 to a write, though the key holds nothing
- HOLD           hold the write until the test sets `release` (then pass it on):
                 "in flight" is then an event, not a duration

`refuse_conditional = True` answers 501 NotImplemented to every write that
carries If-None-Match (a store that does not do conditional writes and says so).

Reads of copies (GETs below `sent_messages/`) are counted in `copy_reads`, and
`fault_reads(after, fault)` applies ERROR_500 or HOLD to every read of a copy
after the first `after`; `read_held` is set when a read is held.

`stop()` closes the listener and every open connection: the store is down.
"""

from __future__ import annotations

import contextlib
import enum
import http.client
import random
import socket
import struct
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Fault(enum.Enum):
    SLOWDOWN = "slowdown"
    ERROR_500 = "error_500"
    ACCESS_DENIED = "access_denied"
    RESET = "reset"
    CORRUPT = "corrupt"
    DELAY = "delay"
    LOST_RESPONSE = "lost_response"
    IGNORE_CONDITIONAL = "ignore_conditional"
    PRECONDITION_FAILED = "precondition_failed"
    HOLD = "hold"


_ERRORS = {
    Fault.SLOWDOWN: (503, "SlowDown", "Please reduce your request rate."),
    Fault.ERROR_500: (500, "InternalError", "We encountered an internal error."),
    Fault.ACCESS_DENIED: (403, "AccessDenied", "Access Denied"),
    # A 412 to If-None-Match for a key that holds nothing when read back (a copy
    # deleted between the write and the read, or a store that lies).
    Fault.PRECONDITION_FAILED: (
        412,
        "PreconditionFailed",
        "At least one of the pre-conditions you specified did not hold",
    ),
}
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "expect", "proxy-connection"}


class FaultProxy:
    def __init__(
        self,
        upstream_port: int,
        seed: int = 7,
        delete: Callable[[str, str], object] | None = None,
    ) -> None:
        self.upstream_port = upstream_port
        # delete(bucket, key), for IGNORE_CONDITIONAL: a store's own view of "replace".
        self.delete = delete
        self.port = 0
        self.delay = 1.0
        self.applied: Counter[Fault] = Counter()
        self.writes = 0
        # Writes being relayed now, and the most there ever were at once.
        self.concurrent_writes = 0
        self.max_concurrent_writes = 0
        self.release = threading.Event()  # lets every HOLD write through
        self.refuse_conditional = False  # 501 to every write with If-None-Match
        self.written_paths: list[str] = []  # each write's request path, in order
        self.copy_reads = 0
        self.copies_read: list[str] = []  # the paths of the reads of copies let through
        self.read_held = threading.Event()
        self._read_rule: tuple[int, Fault] | None = None
        self._queue: list[Fault | None] = []
        self._rates: dict[Fault, float] = {}
        self._random = random.Random(seed)  # noqa: S311 (fault rates, not secrets)
        self._lock = threading.Lock()
        self._writing = threading.Condition(self._lock)
        self._server: ThreadingHTTPServer | None = None
        self._connections: set[socket.socket] = set()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def queue(self, fault: Fault | None, count: int = 1) -> None:
        """Apply `fault` to each of the next `count` writes (None: let them through)."""
        with self._lock:
            self._queue += [fault] * count

    def set_rates(self, rates: dict[Fault, float]) -> None:
        """Apply each fault to a write with its probability (in order, at most one)."""
        with self._lock:
            self._rates = dict(rates)

    def fault_reads(self, after: int, fault: Fault) -> None:
        """Apply `fault` (ERROR_500 or HOLD) to each read of a copy after `after` more."""
        with self._lock:
            self._read_rule = (self.copy_reads + after, fault)

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()
            self._rates.clear()
            self._read_rule = None

    def pick_read(self, path: str) -> Fault | None:
        if "/sent_messages/" not in path:
            return None
        with self._lock:
            self.copy_reads += 1
            if self._read_rule is None or self.copy_reads <= self._read_rule[0]:
                self.copies_read.append(path)
                return None
            fault = self._read_rule[1]
            self.applied[fault] += 1
        if fault is Fault.HOLD:
            self.read_held.set()
        return fault

    def start(self) -> FaultProxy:
        self.release.clear()
        proxy = self

        class Handler(_RelayHandler):
            owner = proxy

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Close the listener and every connection: the store is unreachable."""
        if self._server is None:
            return
        self.release.set()  # no held write outlives the proxy
        self._server.shutdown()
        self._server.server_close()
        self._server = None
        with self._lock:
            for conn in list(self._connections):
                # shutdown() acts at once; close() would wait for the handler's files.
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
            self._connections.clear()

    def pick(self, method: str) -> Fault | None:
        if method != "PUT":
            return None
        with self._lock:
            self.writes += 1
            fault = self._queue.pop(0) if self._queue else None
            if fault is None:
                for candidate, rate in self._rates.items():
                    if self._random.random() < rate:
                        fault = candidate
                        break
            if fault is not None:
                self.applied[fault] += 1
            return fault

    def write_started(self, path: str = "") -> None:
        with self._lock:
            self.written_paths.append(path)
            self.concurrent_writes += 1
            self.max_concurrent_writes = max(self.max_concurrent_writes, self.concurrent_writes)
            self._writing.notify_all()

    def wait_for_write(self, timeout: float = 30.0, count: int = 1) -> bool:
        """Wait until `count` writes are passing through the proxy at once; False
        if they did not in time."""
        with self._writing:
            return self._writing.wait_for(lambda: self.concurrent_writes >= count, timeout)

    def write_ended(self) -> None:
        with self._lock:
            self.concurrent_writes -= 1

    def track(self, conn: socket.socket, alive: bool) -> None:
        with self._lock:
            if alive:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)


def _reset(conn: socket.socket) -> None:
    """Close with RST rather than FIN: the peer sees a connection reset."""
    try:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()
    except OSError:
        pass


class _RelayHandler(BaseHTTPRequestHandler):
    owner: FaultProxy
    protocol_version = "HTTP/1.1"
    _upstream: http.client.HTTPConnection | None = None
    _writing = False  # a PUT passing through, not yet answered

    def setup(self) -> None:
        super().setup()
        self.owner.track(self.connection, alive=True)

    def finish(self) -> None:
        self.owner.track(self.connection, alive=False)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests count faults instead."""

    def do_GET(self) -> None:
        self._writing = self.command == "PUT"
        if self._writing:
            self.owner.write_started(urllib.parse.unquote(self.path.split("?")[0]))
        try:
            self._relay()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the sidecar hung up (a deadline passed)
        finally:
            self._write_ended()

    def _write_ended(self) -> None:
        """A write counts as over once its answer is about to go back: the
        sidecar may start its next write as soon as it reads the answer, before
        this thread returns, and the two must not be counted as concurrent."""
        if self._writing:
            self._writing = False
            self.owner.write_ended()

    do_PUT = do_HEAD = do_POST = do_DELETE = do_GET  # noqa: N815

    def _relay(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        fault = self.owner.pick(self.command)
        if self.command == "GET":
            fault = self.owner.pick_read(urllib.parse.unquote(self.path.split("?")[0]))
        if fault is Fault.RESET:
            self.rfile.read(length // 2)
            self._reset()
            return
        body = self.rfile.read(length) if length else b""
        if self.owner.refuse_conditional and self.headers.get("If-None-Match"):
            self._answer_error(501, "NotImplemented", "A header you provided is not implemented")
            return
        if fault in _ERRORS:
            self._answer_error(*_ERRORS[fault])
            return
        if fault is Fault.DELAY:
            time.sleep(self.owner.delay)
        if fault is Fault.HOLD:
            assert self.owner.release.wait(120), "a held write was never released"
        if fault is Fault.CORRUPT and body:
            middle = len(body) // 2
            body = body[:middle] + bytes([body[middle] ^ 0x01]) + body[middle + 1 :]
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        if fault is Fault.IGNORE_CONDITIONAL and "if-none-match" in map(str.lower, headers):
            assert self.owner.delete is not None, "IGNORE_CONDITIONAL needs delete"
            bucket, _, key = (
                urllib.parse.unquote(self.path.split("?")[0]).lstrip("/").partition("/")
            )
            self.owner.delete(bucket, key)
        status, reason, reply_headers, reply = self._forward(headers, body)
        if fault is Fault.LOST_RESPONSE:
            self._reset()
            return
        self._write_ended()
        self.send_response(status, reason)
        for key, value in reply_headers:
            if key.lower() not in _HOP_BY_HOP and key.lower() != "content-length":
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply)

    def _forward(
        self, headers: dict[str, str], body: bytes
    ) -> tuple[int, str, list[tuple[str, str]], bytes]:
        for fresh in (False, True):
            if self._upstream is None or fresh:
                self._upstream = http.client.HTTPConnection(
                    "127.0.0.1", self.owner.upstream_port, timeout=30
                )
            try:
                self._upstream.request(self.command, self.path, body=body or None, headers=headers)
                response = self._upstream.getresponse()
                reply = response.read()
            except (ConnectionError, http.client.HTTPException):
                if fresh:
                    raise
                continue
            return response.status, response.reason, response.getheaders(), reply
        raise AssertionError("unreachable")

    def _answer_error(self, status: int, code: str, message: str) -> None:
        xml = (
            f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
            f"<Message>{message}</Message><RequestId>fault-proxy</RequestId></Error>"
        ).encode()
        self._write_ended()
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(xml)))
        self.end_headers()
        self.wfile.write(xml)

    def _reset(self) -> None:
        self._write_ended()
        self.close_connection = True
        _reset(self.connection)
