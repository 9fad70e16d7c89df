"""Logging: structlog to stdout, JSON off a terminal, console on one.

Standard-library loggers (grpc, botocore) go through the same processors and
renderer, so every line has one shape. Log lines never carry message content:
callers log ids, codes and sizes only.

The sidecar's own lines never become stdlib `LogRecord`s: structlog renders
each in the thread that logs it and queues the finished line (an `rpc` line
took about 100 µs of CPU through `logging`'s records, handler and formatter,
and takes about 45 µs so). One writer thread writes the queued lines, and
formats the stdlib records queued beside them, in the order they were logged,
one write a batch. A stdout that takes nothing holds up only that thread: the
lines waiting are bounded (the rest dropped and counted), and a stop gives
up on it after a few seconds. A stdout that refuses writes (a broken pipe)
loses its batches, counted the same way and said once on stderr.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import logging.handlers
import os
import queue
import sys
import threading
import traceback
from collections.abc import Mapping
from typing import Any

import structlog

_NOISY_LOGGERS = ("botocore", "boto3", "urllib3", "s3transfer")
_drop_log = structlog.get_logger("msgarchive.logs")
_listener: _BatchingListener | None = None
# Set when the writer could not be stopped (stdout takes nothing): lines after
# that are dropped, not written by a thread that would then block too.
_stdout_blocked = False


class _LineLogger:
    """structlog's logger: queues the line its processors rendered for the
    writer thread (written at once, in this thread, when there is none: after
    `flush_logs`)."""

    __slots__ = ("name",)

    def __init__(self, name: str = "") -> None:
        self.name = name  # for structlog.stdlib.add_logger_name

    def msg(self, line: str) -> None:
        listener = _listener
        if listener is not None:
            listener.offer(line)
        elif not _stdout_blocked:
            sys.stdout.write(line + "\n")

    debug = info = warning = warn = error = critical = fatal = exception = msg


def _line_logger(*args: Any) -> _LineLogger:
    return _LineLogger(args[0] if args and isinstance(args[0], str) else "")


class _OrderedQueueHandler(logging.handlers.QueueHandler):
    """Queues stdlib records (grpc, botocore) as they are, beside structlog's
    lines, for the writer thread to format. Each takes the caller's context
    variables along, since the writer thread has none of its own."""

    def __init__(self, listener: _BatchingListener) -> None:
        super().__init__(listener.records)
        self.offer = listener.offer

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        record.msgarchive_context = structlog.contextvars.get_contextvars()
        return record

    def enqueue(self, record: logging.LogRecord) -> None:
        self.offer(record)


class _BatchWriter(logging.StreamHandler):  # type: ignore[type-arg]
    """A StreamHandler that writes a batch at once: `emit` and `write_line`
    only collect lines, and `flush` writes them in one `write` (the writer
    thread flushes once a batch, and whenever `full`: `limit` characters) and
    flushes the stream.

    logging's own handler writes and flushes each record, and even a plain
    `stream.write` a line would be a write(2) a line wherever stdout is
    unbuffered (`PYTHONUNBUFFERED`, as the image sets it): each one a system
    call, the GIL dropped and taken again. The write is made holding no lock
    of logging's, so that a stdout that blocks holds up only the writer
    thread; once `abandoned` (the writer could not be stopped), flushing does
    nothing, and logging's own shutdown does not wait for it."""

    limit = 1 << 16

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._pending: list[str] = []
        self._size = 0
        self._pending_lock = threading.Lock()
        self.abandoned = False
        self.failure = ""  # why the last write failed ("" once one succeeds)
        self.lost = 0  # lines of batches that failed, for the listener to count
        self._stderr = sys.stderr  # where a failure is told

    @property
    def full(self) -> bool:
        return self._size >= self.limit

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:  # logging's own policy: report, never raise
            self.handleError(record)
        else:
            self.write_line(line)

    def write_line(self, line: str) -> None:
        with self._pending_lock:
            self._pending.append(line)
            self._size += len(line) + 1

    def flush(self) -> None:
        if self.abandoned:
            return
        with self._pending_lock:
            lines = len(self._pending)
            text = "\n".join(self._pending) + "\n" if self._pending else ""
            self._pending.clear()
            self._size = 0
        if not text:  # nothing to write says nothing of whether stdout takes lines
            return
        try:
            self.stream.write(text)
            self.stream.flush()
        except Exception as err:  # a closed pipe, a full disk: the batch is lost
            self.lost += lines
            if not self.failure:  # said once until a write succeeds, not each batch
                self._say(
                    f"msgarchive: cannot write log lines to stdout ({type(err).__name__}: "
                    f"{err}); they are dropped and counted until it takes them again"
                )
            self.failure = type(err).__name__
        else:
            self.failure = ""

    def _say(self, text: str) -> None:
        with contextlib.suppress(Exception):  # stderr may be gone too
            self._stderr.write(text + "\n")
            self._stderr.flush()


class _BatchingListener(logging.handlers.QueueListener):
    """A QueueListener that writes what is queued in batches: after each batch
    it waits `pause` seconds before looking again, so that a busy sidecar wakes
    its writer thread (and hands it the GIL) a few dozen times a second rather
    than once a call. A line waits at most `pause` after the batch before it;
    `stop()` writes out everything queued.

    At most `max_queued` lines wait. While stdout takes nothing (a log
    collector that stopped reading the pipe), or takes lines slower than they
    come, calls go on, and lines past that are dropped and counted, not kept
    without bound; once the writer gets through again it says how many were
    lost, in a `log lines dropped` warning."""

    pause = 0.02
    max_queued = 10_000
    stop_timeout = 5.0

    def __init__(self, records: queue.SimpleQueue[Any], handler: logging.Handler) -> None:
        super().__init__(records, handler)
        self.records = records
        self._stopping = threading.Event()
        self._drops = threading.Lock()
        self.dropped = 0
        self._refused = ""  # why stdout refused lines, since the last warning

    def offer(self, item: str | logging.LogRecord) -> None:
        """Queue a rendered line or a stdlib record, unless `max_queued` wait."""
        if self.records.qsize() < self.max_queued:
            self.records.put(item)
            return
        with self._drops:
            self.dropped += 1

    def _monitor(self) -> None:
        records, output = self.records, self.handlers[0]
        assert isinstance(output, _BatchWriter)
        while True:
            stopped = self._take(records.get(), output)
            # The warning goes with the batch if the last write went through (a
            # stdout that was slow); after lines were refused, right after the
            # first write that goes through.
            stopped = self._say_dropped(output) or stopped
            output.flush()  # the batch, in one write
            if self._refused or output.lost:
                stopped = self._say_dropped(output) or stopped
                output.flush()
            if stopped:
                return
            self._stopping.wait(self.pause)

    def _say_dropped(self, output: _BatchWriter) -> bool:
        """Count the lines of batches stdout refused with those dropped at the
        bound; if the last write went through, hand `output` a warning of how
        many were lost. True if the stop's sentinel was taken with it."""
        if output.lost:
            self._refused = self._refused or output.failure
            with self._drops:
                self.dropped, output.lost = self.dropped + output.lost, 0
        if not self.dropped or output.failure:
            return False
        with self._drops:
            lost, self.dropped = self.dropped, 0
        why = "stdout took them slower than they came"
        if self._refused:
            why, self._refused = f"stdout could not be written ({self._refused})", ""
        _drop_log.warning("log lines dropped", lines=lost, why=why)
        with contextlib.suppress(queue.Empty):  # that line, and what came with it
            return self._take(self.records.get_nowait(), output)
        return False

    def _take(self, record: Any, output: _BatchWriter) -> bool:
        """Hand `record` and all else queued to `output`; True once that took
        QueueListener's sentinel (None: stop() was called)."""
        while record is not None:
            if isinstance(record, str):  # a line structlog rendered
                output.write_line(record)
            else:
                self.handle(record)
            if output.full:
                output.flush()
            try:
                record = self.records.get_nowait()
            except queue.Empty:
                return False
        return True

    def stop(self) -> None:
        """Write out what is queued and stop, within `stop_timeout` seconds:
        when stdout takes nothing, what it could not write is lost, and lines
        after this are dropped (the process can still exit)."""
        global _stdout_blocked
        self._stopping.set()  # no more pauses: the sentinel is reached at once
        self.enqueue_sentinel()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(self.stop_timeout)
            _stdout_blocked = thread.is_alive()
            output = self.handlers[0]
            assert isinstance(output, _BatchWriter)
            if _stdout_blocked:
                output.abandoned = True
            if (_stdout_blocked or output.failure) and output.stream is sys.stdout:
                # The interpreter flushes sys.stdout as it exits: a buffered one
                # would wait for the writer's lock forever, or fail again on a
                # broken pipe and make the exit status 120.
                sys.stdout = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115


def _merge_record_context(
    logger: object, method: str, event_dict: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    """merge_contextvars for stdlib records: the caller's context, carried along."""
    record = event_dict.get("_record")
    context: dict[str, Any] = getattr(record, "msgarchive_context", {})
    return {**context, **event_dict}


def exception_without_message(
    logger: object, method: str, event_dict: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    """`log.exception(...)`: the exception's type and traceback, rendered in the
    thread that raised it (the listener thread that writes the line has no
    exception of its own), and without the exception's message, which can
    carry an address or a body."""
    exc_info = event_dict.pop("exc_info", None)
    if not exc_info:
        return event_dict
    if isinstance(exc_info, BaseException):
        exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
    elif not isinstance(exc_info, tuple):
        exc_info = sys.exc_info()
    kind, _, trace = exc_info
    if kind is None:
        return event_dict
    event_dict["exception_type"] = f"{kind.__module__}.{kind.__qualname__}"
    event_dict["traceback"] = "".join(traceback.format_tb(trace))
    return event_dict


def flush_logs() -> None:
    """Write out every record queued so far (at shutdown)."""
    global _listener
    if _listener is not None:
        _listener.stop()
        _listener = None


def configure_logging(
    level: str = "info", log_format: str = "auto", fields: Mapping[str, Any] | None = None
) -> None:
    """Route structlog and stdlib logging to stdout in one format; `fields` go
    on every line (a --workers worker's index)."""
    as_json = log_format == "json" or (log_format == "auto" and not sys.stdout.isatty())
    constant = dict(fields or {})

    def add_fields(
        logger: object, method: str, event_dict: structlog.typing.EventDict
    ) -> structlog.typing.EventDict:
        return {**constant, **event_dict}

    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        add_fields,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if as_json
        else structlog.dev.ConsoleRenderer(colors=sys.stdout.isatty())
    )
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.StackInfoRenderer(),
            exception_without_message,
            renderer,
        ],
        logger_factory=_line_logger,
        # Calls below the level are no-ops, not a run through the processors.
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[_merge_record_context, *shared[1:]],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    # Request threads only enqueue lines and records; one writer thread writes
    # them (formatting the records), so logging costs a call no lock wait and
    # no I/O.
    output = _BatchWriter(sys.stdout)
    output.setFormatter(formatter)
    records: queue.SimpleQueue[Any] = queue.SimpleQueue()
    global _listener, _stdout_blocked
    if _listener is not None:
        _listener.stop()
    _stdout_blocked = False
    _listener = _BatchingListener(records, output)
    _listener.start()
    root = logging.getLogger()
    root.handlers[:] = [_OrderedQueueHandler(_listener)]
    root.setLevel(level.upper())
    # botocore logs request bodies at DEBUG: keep it at WARNING whatever the level.
    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


atexit.register(flush_logs)
