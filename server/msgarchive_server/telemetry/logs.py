"""Logging: structlog to stdout, JSON off a terminal, console on one.

Standard-library loggers (grpc, botocore) go through the same processors and
renderer, so every line has one shape. Log lines never carry message content:
callers log ids, codes and sizes only.
"""

from __future__ import annotations

import atexit
import logging
import logging.handlers
import queue
import sys
import threading
import traceback
from collections.abc import Mapping
from typing import Any

import structlog

_NOISY_LOGGERS = ("botocore", "boto3", "urllib3", "s3transfer")
_listener: logging.handlers.QueueListener | None = None  # a _BatchingListener


class _OrderedQueueHandler(logging.handlers.QueueHandler):
    """Hands records over as they are, for structlog's ProcessorFormatter to
    render in the listener. A stdlib record (grpc, botocore) takes the caller's
    context variables along, since the listener thread has none of its own."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        if not isinstance(record.msg, dict):
            record.msgarchive_context = structlog.contextvars.get_contextvars()
        return record


class _UnflushedStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A StreamHandler that leaves flushing to its listener, once a batch
    (logging's own flushes after every record: a write(2) a line)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.stream.write(self.format(record) + self.terminator)
        except Exception:  # logging's own policy: report, never raise
            self.handleError(record)


class _BatchingListener(logging.handlers.QueueListener):
    """A QueueListener that writes what is queued in batches: after each batch
    it waits `pause` seconds before looking again, so that a busy sidecar wakes
    its writer thread (and hands it the GIL) a few dozen times a second rather
    than once a call. A line waits at most `pause` after the batch before it;
    `stop()` writes out everything queued."""

    pause = 0.02

    def __init__(self, records: queue.SimpleQueue[Any], handler: logging.Handler) -> None:
        super().__init__(records, handler)
        self.records = records
        self._stopping = threading.Event()

    def _monitor(self) -> None:
        records = self.records
        while True:
            record = records.get()
            while True:
                if record is None:  # QueueListener's sentinel: stop() was called
                    return
                self.handle(record)
                try:
                    record = records.get_nowait()
                except queue.Empty:
                    break
            self.handlers[0].flush()
            self._stopping.wait(self.pause)

    def stop(self) -> None:
        self._stopping.set()  # no more pauses: the sentinel is reached at once
        super().stop()


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
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
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
    # Request threads only enqueue records; one listener thread formats and
    # writes them, so logging costs a call no lock wait and no I/O.
    output = _UnflushedStreamHandler(sys.stdout)
    output.setFormatter(formatter)
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    global _listener
    if _listener is not None:
        _listener.stop()
    _listener = _BatchingListener(records, output)
    _listener.start()
    root = logging.getLogger()
    root.handlers[:] = [_OrderedQueueHandler(records)]
    root.setLevel(level.upper())
    # botocore logs request bodies at DEBUG: keep it at WARNING whatever the level.
    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


atexit.register(flush_logs)
