"""An HTTP/1.1 server that hostile or slow clients cannot stall, for a WSGI app.

Connections live in one asyncio event loop, parsed by h11 (python-hyper's
sans-IO HTTP/1.1, the parser of httpx and uvicorn). A thread is taken only
once a request's head and body have both arrived whole: then the WSGI app runs
on one of `threads` workers, with the body in memory. So a connection that
sends nothing, half a head or half a body costs a little memory in the loop
and never a thread, and other callers are not delayed by it.

What a client gets, and when:

- the request head (request line and headers) must arrive within
  `head_timeout` seconds of the connection opening, or of the last answer on
  a kept-alive connection: a connection that sent nothing is closed without
  an answer, one that sent part of a head gets 408;
- at most `max_head_bytes` of head (431) and `max_headers` header fields
  (431); malformed framing (a bad or negative Content-Length, both
  Content-Length and chunked, a bad request line) is 400 at once;
- the body within `body_timeout` seconds of the head (408), at most
  `max_body_bytes` (413, answered as soon as Content-Length says so);
- the answer is written within `write_timeout` seconds, or the connection
  is dropped (a client that does not read);
- an app that answers a list or tuple has it sent whole; one that answers
  any other iterable (a generator reading a file) has it streamed, each
  chunk read on a worker thread, under the same write deadline;
- at most `max_connections` at once. A new connection past that closes the
  one that has waited longest for its request's head or body (no answer): a
  client holding connections open with nothing or half a request cannot lock
  others out, since its connections are always older than a real client's,
  which sends its request as it connects. Only when every connection has a
  request with the app or its answer on the way is the new one closed.

Every refusal closes the connection (after the answer, reading and dropping
what the client still sends for a moment, so that it sees the answer rather
than a reset). Refusals are logged in one line without the path.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import ssl
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import h11
import structlog

from msgarchive_server.addresses import Address

log = structlog.get_logger("msgarchive.http")

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
# status, headers, body -> the body of a refusal (the app's error envelope)
Refusal = Callable[[int, str], bytes]

_READ_CHUNK = 64 * 1024
# How long, and how much, of what a refused client still sends is read and dropped.
_LINGER_S = 1.0
_LINGER_BYTES = 256 * 1024
_REASONS = {
    400: b"Bad Request",
    408: b"Request Timeout",
    413: b"Content Too Large",
    431: b"Request Header Fields Too Large",
    500: b"Internal Server Error",
}


@dataclass(frozen=True, slots=True)
class Limits:
    head_timeout: float = 10.0
    body_timeout: float = 10.0
    write_timeout: float = 10.0
    max_head_bytes: int = 16 * 1024
    max_headers: int = 64
    max_body_bytes: int = 64 * 1024
    max_connections: int = 1024
    threads: int = 8


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class HttpServer:
    """`app` served on `address`, bound at construction; start() serves in a thread."""

    def __init__(
        self,
        address: Address,
        app: WsgiApp,
        refusal: Refusal,
        *,
        ssl_context: ssl.SSLContext | None = None,
        limits: Limits = Limits(),
        server_name: str = "msgarchive",
        refusal_type: str = "application/json; charset=utf-8",
    ) -> None:
        self.address = address
        self.app = app
        self.refusal = refusal
        self.refusal_type = refusal_type.encode()
        self.limits = limits
        self.server_name = server_name
        self.url_scheme = "https" if ssl_context is not None else "http"
        self._executor = ThreadPoolExecutor(max_workers=limits.threads, thread_name_prefix="http")
        self._loop = asyncio.new_event_loop()
        self._loop.set_exception_handler(_loop_exception)
        self._connections: dict[asyncio.Task[None], bool] = {}  # task -> busy with a request
        # The connections waiting for a request's head or body, longest first.
        self._waiting: OrderedDict[asyncio.Task[None], None] = OrderedDict()
        self._thread: threading.Thread | None = None
        # Bind now: a taken port fails the start, not later.
        handshake = limits.head_timeout if ssl_context is not None else None
        if address.unix:
            start = asyncio.start_unix_server(
                self._accept, path=address.path, ssl=ssl_context,
                ssl_handshake_timeout=handshake, limit=_READ_CHUNK,
            )  # fmt: skip
        else:
            start = asyncio.start_server(
                self._accept, host=address.host, port=address.port, ssl=ssl_context,
                ssl_handshake_timeout=handshake, limit=_READ_CHUNK,
            )  # fmt: skip
        self._server = self._loop.run_until_complete(start)
        bound = self._server.sockets[0].getsockname()
        self.port = int(bound[1]) if isinstance(bound, tuple) else 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop.run_forever, name="http", daemon=True)
        self._thread.start()

    def stop(self, timeout: float) -> None:
        """Stop taking connections, close idle ones, give requests in progress
        `timeout` seconds to be answered, then close the rest."""
        if self._thread is None:
            self._loop.close()
            return
        done = asyncio.run_coroutine_threadsafe(self._shutdown(timeout), self._loop)
        done.result(timeout + 30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()
        self._executor.shutdown(wait=True)

    async def _shutdown(self, timeout: float) -> None:
        self._server.close()
        for task, busy in list(self._connections.items()):
            if not busy:
                task.cancel()
        busy_tasks = [task for task, busy in self._connections.items() if busy]
        if busy_tasks:
            await asyncio.wait(busy_tasks, timeout=timeout)
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.wait(list(self._connections), timeout=5)
        await self._server.wait_closed()

    # --- one connection ---------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if len(self._connections) >= self.limits.max_connections:
            if not self._waiting:  # every connection is being answered
                log.warning("http connection refused", reason="max_connections")
                writer.close()
                return
            oldest, _ = self._waiting.popitem(last=False)
            oldest.cancel()
            log.warning("http connection closed for a new one", reason="max_connections")
        self._connections[task] = False
        try:
            await self._serve(task, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError, TimeoutError):
            pass  # the client went away, or would not read its answer
        except asyncio.CancelledError:
            pass  # the server is stopping, or a newer connection took this one's place
        finally:
            del self._connections[task]
            self._waiting.pop(task, None)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1)

    async def _serve(
        self, task: asyncio.Task[None], reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        limits = self.limits
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=limits.max_head_bytes)
        while True:
            self._waiting[task] = None  # the newest of those waiting
            try:
                request = await self._head(conn, reader)
                if request is None:
                    return  # closed, or silent past the deadline: no answer owed
                self._connections[task] = True
                body = await self._body(conn, reader, writer, request)
            except _Refused as refused:
                await self._refuse(conn, reader, writer, refused)
                return
            self._waiting.pop(task, None)
            environ = self._environ(request, body, writer)
            try:
                status, reason, headers, answer = await self._loop.run_in_executor(
                    self._executor, _run_app, self.app, environ
                )
            except Exception:
                log.exception("http app crashed")
                await self._refuse(conn, reader, writer, _Refused(500, "internal error"))
                return
            head_only = request.method == b"HEAD"
            response = h11.Response(status_code=status, headers=headers, reason=reason)
            await self._send(writer, conn, response)
            if isinstance(answer, bytes):
                if answer and not head_only:
                    await self._send(writer, conn, h11.Data(data=answer))
            else:
                await self._stream(writer, conn, answer, head_only)
            await self._send(writer, conn, h11.EndOfMessage())
            self._connections[task] = False
            if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                return  # "Connection: close", or HTTP/1.0
            conn.start_next_cycle()

    async def _head(self, conn: h11.Connection, reader: asyncio.StreamReader) -> h11.Request | None:
        try:
            async with asyncio.timeout(self.limits.head_timeout):
                event = await _next_event(conn, reader)
        except TimeoutError:
            if conn.trailing_data[0]:
                raise _Refused(408, "the request head did not arrive in time") from None
            return None
        except h11.RemoteProtocolError as err:
            raise _refused(err) from None
        if isinstance(event, h11.ConnectionClosed):
            return None
        assert isinstance(event, h11.Request)
        names = {name for name, _ in event.headers}
        if b"content-length" in names and b"transfer-encoding" in names:
            # RFC 9112 6.3: a server may refuse it, and it is how requests are smuggled.
            raise _Refused(400, "malformed request: both Content-Length and Transfer-Encoding")
        if len(event.headers) > self.limits.max_headers:
            raise _Refused(431, f"more than {self.limits.max_headers} header fields")
        return event

    async def _body(
        self,
        conn: h11.Connection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        request: h11.Request,
    ) -> bytes:
        limit = self.limits.max_body_bytes
        for name, value in request.headers:
            if name == b"content-length" and int(value) > limit:
                raise _Refused(413, f"the body is over {limit} bytes")
        if conn.they_are_waiting_for_100_continue:
            await self._send(writer, conn, h11.InformationalResponse(status_code=100, headers=[]))
        body = bytearray()
        try:
            async with asyncio.timeout(self.limits.body_timeout):
                while True:
                    event = await _next_event(conn, reader)
                    if isinstance(event, h11.EndOfMessage):
                        return bytes(body)
                    if isinstance(event, h11.Data):
                        body += event.data
                        if len(body) > limit:
                            raise _Refused(413, f"the body is over {limit} bytes")
        except TimeoutError:
            raise _Refused(408, "the request body did not arrive in time") from None
        except h11.RemoteProtocolError as err:
            raise _refused(err) from None

    async def _refuse(
        self,
        conn: h11.Connection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        refused: _Refused,
    ) -> None:
        log.info("http request refused", http_status=refused.status, detail=refused.message)
        body = self.refusal(refused.status, refused.message)
        headers = [
            (b"content-type", self.refusal_type),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        try:
            reason = _REASONS.get(refused.status, b"Error")
            response = h11.Response(status_code=refused.status, headers=headers, reason=reason)
            data = conn.send(response) or b""
            data += conn.send(h11.Data(data=body)) or b""
            data += conn.send(h11.EndOfMessage()) or b""
        except h11.LocalProtocolError:  # h11 will not say it (no head it could parse)
            reason = _REASONS.get(refused.status, b"Error")
            data = b"HTTP/1.1 %d %s\r\n" % (refused.status, reason)
            data += b"".join(b"%s: %s\r\n" % pair for pair in headers) + b"\r\n" + body
        writer.write(data)
        async with asyncio.timeout(self.limits.write_timeout):
            await writer.drain()
        # Read and drop what the client still sends for a moment: closing with
        # unread bytes would reset the connection before it reads the answer.
        with contextlib.suppress(Exception):
            if writer.can_write_eof():
                writer.write_eof()
            dropped = 0
            async with asyncio.timeout(_LINGER_S):
                while dropped < _LINGER_BYTES and (chunk := await reader.read(_READ_CHUNK)):
                    dropped += len(chunk)

    async def _stream(
        self,
        writer: asyncio.StreamWriter,
        conn: h11.Connection,
        chunks: Iterator[bytes],
        head_only: bool,
    ) -> None:
        """Send a streamed body, each chunk read on a worker thread (a file, say)."""
        try:
            while True:
                chunk = await self._loop.run_in_executor(self._executor, next, chunks, None)
                if chunk is None:
                    break
                if chunk and not head_only:
                    await self._send(writer, conn, h11.Data(data=chunk))
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                await self._loop.run_in_executor(self._executor, close)

    async def _send(self, writer: asyncio.StreamWriter, conn: h11.Connection, event: Any) -> None:
        data = conn.send(event)
        if data:
            writer.write(data)
            async with asyncio.timeout(self.limits.write_timeout):
                await writer.drain()

    def _environ(
        self, request: h11.Request, body: bytes, writer: asyncio.StreamWriter
    ) -> dict[str, Any]:
        path, _, query = request.target.partition(b"?")
        environ: dict[str, Any] = {
            "REQUEST_METHOD": request.method.decode("ascii"),
            "SCRIPT_NAME": "",
            "PATH_INFO": path.decode("latin-1"),
            "QUERY_STRING": query.decode("latin-1"),
            "SERVER_NAME": self.server_name,
            "SERVER_PORT": str(self.port),
            "SERVER_PROTOCOL": "HTTP/" + request.http_version.decode("ascii"),
            "REMOTE_ADDR": "",
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": self.url_scheme,
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": io.StringIO(),
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        peer = writer.get_extra_info("peername")
        if isinstance(peer, tuple):
            environ["REMOTE_ADDR"] = str(peer[0])
        if not any(name == b"transfer-encoding" for name, _ in request.headers):
            environ["CONTENT_LENGTH"] = str(len(body))
        for raw_name, raw_value in request.headers:
            name, value = raw_name.decode("latin-1"), raw_value.decode("latin-1")
            if name == "content-type":
                environ["CONTENT_TYPE"] = value
                continue
            if name == "content-length":
                continue
            key = "HTTP_" + name.upper().replace("-", "_")
            environ[key] = f"{environ[key]},{value}" if key in environ else value
        return environ


async def _next_event(conn: h11.Connection, reader: asyncio.StreamReader) -> Any:
    """The next h11 event, reading as needed; raises h11.RemoteProtocolError."""
    while True:
        event = conn.next_event()
        if event is not h11.NEED_DATA:
            return event
        conn.receive_data(await reader.read(_READ_CHUNK))


def _refused(err: h11.RemoteProtocolError) -> _Refused:
    status = err.error_status_hint if err.error_status_hint in (400, 431) else 400
    if status == 431:
        return _Refused(431, "the request head is too large")
    return _Refused(400, f"malformed request: {err}")


def _run_app(
    app: WsgiApp, environ: dict[str, Any]
) -> tuple[int, str, list[tuple[str, str]], bytes | Iterator[bytes]]:
    """Run the WSGI app on a worker thread: its status, reason, headers and body:
    whole when the app answered a list or tuple, else the iterator it gave,
    which the loop streams (the app sets Content-Length, or h11 chunks it)."""
    answered: list[Any] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        answered[:] = [status, headers]
        return lambda data: None

    chunks = app(environ, start_response)
    body: bytes | Iterator[bytes]
    if isinstance(chunks, list | tuple):
        body = b"".join(chunks)
    else:
        body = chunks if isinstance(chunks, Iterator) else iter(chunks)
    status, headers = answered
    code, _, reason = status.partition(" ")
    return int(code), reason, headers, body


def _loop_exception(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """What asyncio reports of connections (TLS handshakes that failed, clients
    gone): a debug line, not a traceback on the console."""
    error = context.get("exception")
    log.debug("http connection", detail=context.get("message"), error=repr(error))
