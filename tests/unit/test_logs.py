"""Logs: stdlib loggers (grpc, botocore) come out in the same JSON shape."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import queue
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any, cast

import pytest
import structlog

from msgarchive_server.telemetry import logs
from msgarchive_server.telemetry.logs import configure_logging, flush_logs
from tests.polling import until


@pytest.fixture
def json_logs(
    capsys: pytest.CaptureFixture[str], restores_logging: None
) -> pytest.CaptureFixture[str]:
    """capsys, with logging reset afterwards (tests configure logging themselves)."""
    return capsys


def lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    flush_logs()  # records are written by a listener thread
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_stdlib_loggers_share_the_json_renderer(json_logs: pytest.CaptureFixture[str]) -> None:
    configure_logging("info", "json")
    structlog.contextvars.bind_contextvars(request_id="r-42")
    structlog.get_logger("msgarchive.test").info("from structlog", attempts=2)
    logging.getLogger("grpc._server").warning("from grpc")
    logging.getLogger("botocore.retryhandler").warning("from botocore")
    structlog.contextvars.clear_contextvars()
    got = lines(json_logs)
    assert [(g["logger"], g["event"], g["level"]) for g in got] == [
        ("msgarchive.test", "from structlog", "info"),
        ("grpc._server", "from grpc", "warning"),
        ("botocore.retryhandler", "from botocore", "warning"),
    ]
    assert all(g["request_id"] == "r-42" for g in got)  # merged into every line
    assert all("timestamp" in g for g in got)


def test_botocore_debug_is_held_back(json_logs: pytest.CaptureFixture[str]) -> None:
    configure_logging("debug", "json")
    logging.getLogger("botocore.endpoint").debug("Sending http request: <body bytes>")
    logging.getLogger("msgarchive.x").debug("ours at debug")
    got = lines(json_logs)
    assert [g["event"] for g in got] == ["ours at debug"]


def test_a_crash_line_carries_the_exception_type_and_traceback_without_its_message(
    json_logs: pytest.CaptureFixture[str],
) -> None:
    configure_logging("info", "json")
    address = "@".join(["jane.doe", "example.com"])  # built at run time: not in the source

    def view_jane() -> None:
        raise KeyError(address)  # an exception's message can hold an address

    try:
        view_jane()
    except KeyError:
        structlog.get_logger("msgarchive.rpc").exception("http view crashed")
    (line,) = lines(json_logs)
    assert line["event"] == "http view crashed"
    assert line["exception_type"] == "builtins.KeyError"
    assert "in view_jane" in str(line["traceback"])  # the frames, rendered where it was raised
    assert address not in json.dumps(line)


def test_lines_are_written_in_batches_every_one_in_order_and_all_at_the_stop(
    json_logs: pytest.CaptureFixture[str],
) -> None:
    """The writer thread takes what is queued in batches; nothing is lost or
    reordered, from four threads at once, and a stop writes out the rest."""
    import threading

    configure_logging("info", "json")

    def log_from(thread: int) -> None:
        log = structlog.get_logger("msgarchive.test")
        for n in range(500):
            log.info("line", thread=thread, n=n)

    writers = [threading.Thread(target=log_from, args=(t,)) for t in range(4)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    flush_logs()
    got = [line for line in lines(json_logs) if line["event"] == "line"]
    assert len(got) == 2000
    for number in range(4):
        assert [line["n"] for line in got if line["thread"] == number] == list(range(500))


def test_a_line_logged_after_the_writer_stopped_is_written_at_once(
    json_logs: pytest.CaptureFixture[str],
) -> None:
    """At shutdown the writer thread stops first: a line after it (the
    sidecar's "stopped") is written by the thread that logs it, not lost."""
    configure_logging("info", "json")
    log = structlog.get_logger("msgarchive.test")
    log.info("before the stop")
    flush_logs()
    log.info("after the stop", n=1)
    got = [json.loads(line) for line in json_logs.readouterr().out.splitlines()]
    assert [(g["event"], g["logger"], g["level"]) for g in got] == [
        ("before the stop", "msgarchive.test", "info"),
        ("after the stop", "msgarchive.test", "info"),
    ]


class _CountingRaw(io.RawIOBase):
    """What reaches the file descriptor: each write(2) apart."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.writes.append(bytes(data))
        return len(data)


def _unbuffered(raw: _CountingRaw) -> io.TextIOWrapper:
    """stdout as `python -u` / PYTHONUNBUFFERED makes it: text written through
    to the raw file, with no buffer between (typeshed wants a buffered one)."""
    return io.TextIOWrapper(cast(Any, raw), encoding="utf-8", write_through=True)


def test_a_batch_is_one_write_even_to_an_unbuffered_stdout() -> None:
    """With stdout unbuffered (PYTHONUNBUFFERED, as the image sets it) every
    `stream.write` is a write(2): the writer joins a batch's lines into one,
    and a stop that comes in the middle of a batch still writes it out."""
    raw = _CountingRaw()
    stdout = _unbuffered(raw)
    records: queue.SimpleQueue[Any] = queue.SimpleQueue()
    for n in range(200):
        records.put(f'{{"n": {n}}}')
    records.put(None)  # stop()'s sentinel, in the middle of the writer's first batch
    listener = logs._BatchingListener(records, logs._BatchWriter(stdout))
    listener.start()
    listener.stop()
    assert len(raw.writes) == 1
    assert b"".join(raw.writes).decode().splitlines() == [f'{{"n": {n}}}' for n in range(200)]


def test_a_long_batch_is_written_in_bounded_pieces_in_order() -> None:
    raw = _CountingRaw()
    records: queue.SimpleQueue[Any] = queue.SimpleQueue()
    line = "x" * 1000
    for _ in range(200):  # 200 KB: over the limit three times
        records.put(line)
    records.put(None)
    listener = logs._BatchingListener(records, logs._BatchWriter(_unbuffered(raw)))
    listener.start()
    listener.stop()
    assert [len(w) for w in raw.writes[:-1]] == [66 * 1001] * 3
    assert b"".join(raw.writes) == (line.encode() + b"\n") * 200


@pytest.fixture
def stalled_stdout(
    monkeypatch: pytest.MonkeyPatch, restores_logging: None
) -> Iterator[tuple[int, io.TextIOWrapper]]:
    """A pipe nobody reads yet (a log collector that stopped): its read end, and
    the unbuffered stream on its write end, for the test to make stdout (in
    its own body: pytest puts its capture back as the test starts)."""
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    with contextlib.suppress(BlockingIOError):  # full: the writer's first write blocks
        while True:
            os.write(write_end, b"\n" * 4096)
    os.set_blocking(write_end, True)
    stream = io.TextIOWrapper(io.FileIO(write_end, "w"), encoding="utf-8", write_through=True)
    monkeypatch.setattr(logs._BatchingListener, "max_queued", 100)
    monkeypatch.setattr(logs._BatchingListener, "stop_timeout", 0.5)
    try:
        yield read_end, stream
    finally:
        os.close(read_end)  # a writer still blocked gets EPIPE, and ends


def in_a_thread(call: Callable[[], object]) -> bool:
    """Whether `call` returned (within a deadline only a hang reaches)."""
    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    thread.join(60)
    return not thread.is_alive()


def test_while_stdout_takes_nothing_lines_past_the_bound_are_dropped_and_counted(
    stalled_stdout: tuple[int, io.TextIOWrapper], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Calls go on while stdout is stuck, and the lines waiting stay bounded;
    once it takes lines again, every line is either written or counted in a
    `log lines dropped` warning."""
    read_end, stream = stalled_stdout
    monkeypatch.setattr(sys, "stdout", stream)
    configure_logging("info", "json")
    log = structlog.get_logger("msgarchive.test")
    # The pipe is full: one batch is taken, at most 100 lines wait, the rest of
    # the 5,000 are dropped.
    assert in_a_thread(lambda: [log.info("line", n=n, pad="p" * 150) for n in range(5000)])
    listener = logs._listener
    assert listener is not None
    assert listener.records.qsize() <= 100
    assert listener.dropped > 0
    chunks: list[bytes] = []
    reader = threading.Thread(
        target=lambda: chunks.extend(iter(lambda: os.read(read_end, 65536), b""))
    )
    reader.start()
    flush_logs()
    stream.close()  # the write end: the reader sees the end
    reader.join(60)
    got = [json.loads(line) for line in b"".join(chunks).decode().splitlines() if line]
    written = [g["n"] for g in got if g["event"] == "line"]
    dropped = sum(g["lines"] for g in got if g["event"] == "log lines dropped")
    assert written == sorted(written)  # in order, with gaps where lines were dropped
    assert dropped > 0
    assert len(written) + dropped == 5000


def test_a_stop_while_stdout_takes_nothing_returns_and_later_lines_do_not_block(
    stalled_stdout: tuple[int, io.TextIOWrapper], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdout", stalled_stdout[1])
    configure_logging("info", "json")
    log = structlog.get_logger("msgarchive.test")
    assert in_a_thread(lambda: [log.info("line", n=n, pad="p" * 150) for n in range(2000)])
    assert in_a_thread(flush_logs)  # gives up after stop_timeout
    assert in_a_thread(lambda: log.info("after the stop"))  # dropped, not written


class _BrokenThenMended(io.StringIO):
    """A stdout whose writes fail (a closed pipe) until `mended`."""

    def __init__(self) -> None:
        super().__init__()
        self.mended = False
        self.failed = 0

    def write(self, text: str) -> int:
        if not self.mended:
            self.failed += 1
            raise BrokenPipeError(32, "Broken pipe")
        return super().write(text)


def test_lines_stdout_refuses_are_counted_and_said_once_on_stderr(
    monkeypatch: pytest.MonkeyPatch, restores_logging: None
) -> None:
    """A stdout whose reader is gone: every line is written or counted in the
    `log lines dropped` warning once stdout takes lines again, and stderr
    says so once, not once a batch."""
    stdout, stderr = _BrokenThenMended(), io.StringIO()
    monkeypatch.setattr(sys, "stdout", stdout)
    monkeypatch.setattr(sys, "stderr", stderr)
    monkeypatch.setattr(logs._BatchingListener, "pause", 0.001)
    configure_logging("info", "json")
    log = structlog.get_logger("msgarchive.test")
    for n in range(300):
        log.info("line", n=n)
        if n % 30 == 0:  # let batches go by, each of them refused
            listener = logs._listener
            assert listener is not None
            until(listener.records.empty)
    until(lambda: stdout.failed >= 3)
    stdout.mended = True
    for n in range(300, 310):
        log.info("line", n=n)
    flush_logs()
    got = [json.loads(line) for line in stdout.getvalue().splitlines()]
    written = [g["n"] for g in got if g["event"] == "line"]
    warnings = [g for g in got if g["event"] == "log lines dropped"]
    assert len(warnings) == 1
    assert warnings[0]["why"] == "stdout could not be written (BrokenPipeError)"
    assert len(written) + warnings[0]["lines"] == 310
    assert written[-10:] == list(range(300, 310))
    said = stderr.getvalue().splitlines()
    assert said == [
        "msgarchive: cannot write log lines to stdout (BrokenPipeError: [Errno 32] Broken "
        "pipe); they are dropped and counted until it takes them again"
    ]
