"""Hostile HTTP clients against --http-listen: idle and slow connections delay no
one, oversized heads are 431, bad framing is 400, and a stalled body is 408."""

from __future__ import annotations

import contextlib
import json
import socket
import statistics
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.sidecar import SidecarProcess
from tests.sockets import still_open

pytestmark = pytest.mark.e2e

VIEW = "/v1/archival/view"
WAIT = 60.0  # a socket timeout only a broken server reaches


def start(tmp_path: Path, timeout: float) -> SidecarProcess:
    return SidecarProcess(
        [
            "--listen=127.0.0.1:0",
            "--http-listen=127.0.0.1:0",
            f"--http-timeout={timeout}",
            f"--store={tmp_path / 'archive'}",
        ]
    ).start()


@pytest.fixture
def patient(tmp_path: Path) -> Iterator[SidecarProcess]:
    """A sidecar whose HTTP deadlines are far longer than any test step: whatever
    it answers while the hostile connections are open, it did not wait them out."""
    sidecar = start(tmp_path, timeout=600)
    try:
        yield sidecar
    finally:
        sidecar.stop()


@pytest.fixture
def strict(tmp_path: Path) -> Iterator[SidecarProcess]:
    sidecar = start(tmp_path / "strict", timeout=1)
    try:
        yield sidecar
    finally:
        sidecar.stop()


def http_port(sidecar: SidecarProcess) -> int:
    return int(sidecar.serving["http_port"])


def real_request(port: int) -> tuple[int, dict[str, object]]:
    """A view request (for a copy that does not exist): its status and envelope."""
    body = json.dumps({"user_id": "15555550100", "campaign_channel": "SMS",
                       "campaign_id": "c1", "sent_epoch_time": 1727000000,
                       "event_name": "SMS Sent"}).encode()  # fmt: skip
    request = urllib.request.Request(f"http://127.0.0.1:{port}{VIEW}", data=body, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=WAIT) as reply:  # noqa: S310 (http://)
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=WAIT)


def answer(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    chunks = []
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def status_of(data: bytes) -> int:
    return int(data.split(b" ", 2)[1])


def test_200_idle_and_50_slow_connections_delay_no_real_request(
    patient: SidecarProcess,
) -> None:
    port = http_port(patient)
    before = [time_request(port) for _ in range(5)]
    hostile = [connect(port) for _ in range(200)]  # idle: nothing sent
    for n in range(25):  # half a head
        sock = connect(port)
        sock.sendall(b"POST " + VIEW.encode() + b" HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * n)
        hostile.append(sock)
    for _ in range(25):  # a whole head, half a body
        sock = connect(port)
        sock.sendall(b"POST " + VIEW.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n"
                     b"\r\n{\"user_id\": ")  # fmt: skip
        hostile.append(sock)
    try:
        during = [time_request(port) for _ in range(20)]
        # Every real request was answered while all 250 were still open: none
        # waited for a hostile connection to time out (that takes 600 s here).
        assert all(still_open(sock) for sock in hostile)
    finally:
        for sock in hostile:
            sock.close()
    print(f"\nview latency: {statistics.median(before) * 1000:.1f} ms alone, "
          f"{statistics.median(during) * 1000:.1f} ms beside 250 idle and slow")  # fmt: skip


def test_1100_connections_held_open_do_not_lock_a_real_client_out(
    patient: SidecarProcess,
) -> None:
    """Past the 1,024 connections the listener keeps, each new one closes the
    one waiting longest for its request: connections held open with nothing
    or half a head (for up to 600 s here) cannot keep a real client out."""
    port = http_port(patient)
    hostile = []
    for n in range(1100):
        sock = connect(port)
        if n % 2:
            sock.sendall(b"POST " + VIEW.encode() + b" HTTP/1.1\r\nHost: x\r\nX-Slow: a")
        hostile.append(sock)
    try:
        for _ in range(5):
            time_request(port)  # answered: 404, the copy asked for is not there
        deadline = time.monotonic() + WAIT
        while sum(still_open(sock) for sock in hostile) > 1024:
            assert time.monotonic() < deadline, "over 1,024 connections kept open"
            time.sleep(0.05)
    finally:
        for sock in hostile:
            sock.close()


def time_request(port: int) -> float:
    started = time.perf_counter()
    status, body = real_request(port)
    assert (status, body["reason"]) == (404, "COPY_NOT_FOUND")
    return time.perf_counter() - started


@pytest.mark.parametrize(
    ("head", "says"),
    [
        (b"X-Big: " + b"a" * 900_000 + b"\r\n", b"too large"),  # one 900 KB header
        (b"X-A: b\r\n" * 10_000, b"too large"),  # 10,000 headers
        (b"".join(b"X-%d: b\r\n" % n for n in range(100)), b"more than 64 header fields"),
    ],
)
def test_oversized_heads_are_431_and_the_connection_closes(
    patient: SidecarProcess, head: bytes, says: bytes
) -> None:
    sock = connect(http_port(patient))
    with contextlib.suppress(ConnectionResetError, BrokenPipeError):
        sock.sendall(b"POST " + VIEW.encode() + b" HTTP/1.1\r\nHost: x\r\n" + head + b"\r\n")
    data = answer(sock)  # the server closes after the answer
    assert status_of(data) == 431
    assert says in data
    assert b'"reason": "INVALID_LOOKUP"' in data
    sock.close()


def test_a_64_mib_header_is_431_without_being_read_whole(patient: SidecarProcess) -> None:
    sock = connect(http_port(patient))
    sent = [0]

    def send() -> None:
        with contextlib.suppress(OSError):
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: ")
            chunk = b"a" * 65536
            for _ in range(1024):
                sock.sendall(chunk)
                sent[0] += len(chunk)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    data = answer(sock)
    sender.join(WAIT)
    assert status_of(data) == 431
    assert sent[0] < 64 * 1024 * 1024  # the server stopped reading and closed
    sock.close()


@pytest.mark.parametrize(
    "request_head",
    [
        b"POST /v1/archival/view HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        b"POST /v1/archival/view HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\n",
        b"POST /v1/archival/view HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n",
        b"NOT A REQUEST LINE\r\n\r\n",
    ],
)
def test_bad_framing_is_400_at_once_never_an_internal_error(
    patient: SidecarProcess, request_head: bytes
) -> None:
    sock = connect(http_port(patient))
    sock.sendall(request_head)
    data = answer(sock)  # at once: the patient sidecar's deadlines are 600 s
    assert status_of(data) == 400
    sock.close()
    assert not [line for line in patient.lines if "crash" in str(line.get("event"))]


def test_a_stalled_head_or_body_is_408_and_silence_is_closed(strict: SidecarProcess) -> None:
    port = http_port(strict)
    half_head, half_body, silent = connect(port), connect(port), connect(port)
    half_head.sendall(b"POST " + VIEW.encode() + b" HTTP/1.1\r\nHost: x\r\n")
    half_body.sendall(b"POST " + VIEW.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n"
                      b"\r\n{\"user")  # fmt: skip
    for sock in (half_head, half_body):
        data = answer(sock)
        assert status_of(data) == 408
        assert b'"reason": "INVALID_LOOKUP"' in data
    assert answer(silent) == b""  # nothing sent: closed without an answer
    assert real_request(port)[0] == 404  # and it serves on
    for line in strict.lines:
        assert "crash" not in str(line.get("event"))
        assert VIEW not in json.dumps(line) or line.get("event") == "rpc"
