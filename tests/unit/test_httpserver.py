"""The HTTP server at its connection limit, over real loopback sockets."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from msgarchive_server import addresses
from msgarchive_server.edge.httpserver import HttpServer, Limits
from tests.polling import until
from tests.sockets import still_open

WAIT = 60.0  # a deadline only a broken server reaches
CAP = 4
REQUEST = b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n"
HALF_A_HEAD = b"GET /x HTTP/1.1\r\nHost: t\r\nX-Slow: a"


class App:
    """Answers 200 "ok"; holds each request while `held` is clear."""

    def __init__(self) -> None:
        self.held = threading.Event()
        self.held.set()
        self.inside = threading.Semaphore(0)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        self.inside.release()
        assert self.held.wait(WAIT)
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        return [b"ok"]


@pytest.fixture
def app() -> App:
    return App()


@pytest.fixture
def server(app: App) -> Iterator[HttpServer]:
    limits = Limits(head_timeout=600, body_timeout=600, max_connections=CAP, threads=CAP + 1)
    served = HttpServer(
        addresses.parse("127.0.0.1:0"), app, lambda status, message: message.encode(),
        limits=limits,
    )  # fmt: skip
    served.start()
    try:
        yield served
    finally:
        app.held.set()
        served.stop(5)


def connect(server: HttpServer, sends: bytes = b"") -> socket.socket:
    """A connection the server has taken in (and, with `sends`, read from)."""
    before = len(server._connections)
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=WAIT)
    until(lambda: len(server._connections) > before or len(server._connections) == CAP)
    if sends:
        sock.sendall(sends)
    return sock


def closed(sock: socket.socket) -> bool:
    """True once the server has closed this connection (without an answer)."""
    return not still_open(sock)


def answered(sock: socket.socket) -> bytes:
    sock.sendall(REQUEST)
    data = b""
    while b"\r\n\r\nok" not in data:
        chunk = sock.recv(4096)
        assert chunk, f"closed after {data!r}"
        data += chunk
    return data.split(b"\r\n", 1)[0]


def test_a_new_connection_past_the_limit_closes_the_one_waiting_longest(
    server: HttpServer,
) -> None:
    """Connections that sent nothing or half a head cannot lock a real client
    out: the oldest of them is closed for each new one."""
    silent = connect(server)
    slow = [connect(server, HALF_A_HEAD) for _ in range(CAP - 1)]
    real = connect(server)
    assert answered(real) == b"HTTP/1.1 200 OK"
    until(lambda: closed(silent))
    assert not any(closed(sock) for sock in slow)
    second = connect(server)
    assert answered(second) == b"HTTP/1.1 200 OK"
    # The real client's kept-alive connection waits for its next request now:
    # it is newer than the slow ones, so the oldest slow one went.
    until(lambda: closed(slow[0]))
    assert not any(closed(sock) for sock in [*slow[1:], real])
    for sock in [silent, *slow, real, second]:
        sock.close()


def test_past_the_limit_with_every_connection_answering_the_new_one_is_closed(
    server: HttpServer, app: App
) -> None:
    app.held.clear()
    busy = []
    for _ in range(CAP):
        sock = connect(server, REQUEST)
        assert app.inside.acquire(timeout=WAIT)  # its request is with the app
        busy.append(sock)
    late = socket.create_connection(("127.0.0.1", server.port), timeout=WAIT)
    until(lambda: closed(late))
    assert not any(closed(sock) for sock in busy)
    app.held.set()
    for sock in busy:
        data = b""
        while b"\r\n\r\nok" not in data:
            chunk = sock.recv(4096)
            assert chunk
            data += chunk
        assert data.startswith(b"HTTP/1.1 200 ")
        sock.close()
    late.close()
