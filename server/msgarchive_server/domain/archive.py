"""The archive pipeline: validate, locate, render, compress, store, ack.

Plain Python with no gRPC in it: the servicer turns its results and errors
into responses and status codes. An `Ack` exists only for a copy the store
confirmed; every other outcome is an exception.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from msgarchive.keys import ArchiveLocation, location
from msgarchive.v1 import archive_service_pb2 as pb
from msgarchive.validation import FieldViolation, validated
from msgarchive_server.domain.circuit import StoreCircuit
from msgarchive_server.domain.errors import (
    ArchiveFailed,
    ArchiveUnavailable,
    InvalidMessage,
    JournalFull,
)
from msgarchive_server.domain.manifests.entries import ManifestEntry
from msgarchive_server.domain.manifests.journal import Journal, JournalOutOfSpace
from msgarchive_server.domain.payloads import compress, decompress, render
from msgarchive_server.domain.retry import (
    RetriesExhausted,
    RetryPolicy,
    opens_circuit,
    with_retries,
)
from msgarchive_server.stores import PutResult, Store, StoreError
from msgarchive_server.stores.base import DAY_MS
from msgarchive_server.telemetry import tracing
from msgarchive_server.telemetry.metrics import Metrics

log = structlog.get_logger("msgarchive.archive")


@dataclass(frozen=True, slots=True)
class Ack:
    """A stored, verified copy."""

    message_id: str
    bucket: str
    key: str
    sent_at_ms: int
    attempts: int
    etag: str
    version_id: str
    already_archived: bool
    stored_bytes: int
    # The store's retention for the copy: its mode, and a lower bound of the
    # date it is locked until ("" and 0 when the store keeps copies without one).
    retention_mode: str = ""
    retain_until_ms: int = 0


# The first guess of one store attempt's duration, before any is measured;
# and how much each new measurement moves the running estimate.
_FIRST_ESTIMATE = 0.005
_ESTIMATE_WEIGHT = 0.25


class Archiver:
    """Archives requests into one store; copies over `max_message_bytes` of
    JSON (the sidecar's --max-message-bytes; None: no limit) are refused."""

    def __init__(
        self,
        store: Store,
        *,
        max_message_bytes: int | None = None,
        retry: RetryPolicy | None = None,
        circuit: StoreCircuit | None = None,
        metrics: Metrics | None = None,
        journal: Journal | None = None,
        clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        self.store = store
        self.max_message_bytes = max_message_bytes
        self.retry = retry or RetryPolicy()
        self.circuit = circuit
        self.metrics = metrics
        self.journal = journal
        self._clock_ms = clock_ms
        # A running (exponentially weighted) mean of successful attempts.
        self.attempt_estimate = _FIRST_ESTIMATE

    def archive(self, request: pb.ArchiveRequest, deadline: float | None = None) -> Ack:
        """Store `request`'s copy and return the ack.

        `deadline` is a `time.monotonic()` instant past which no retry starts.
        Raises `InvalidMessage`, `ArchiveUnavailable`, `JournalFull`, `ArchiveFailed`
        or `DeadlineTooShort`.
        """
        # Validating and rendering take tens of microseconds: timed (when
        # tracing) as the call's attributes, not spans of their own (a span
        # costs more than they do).
        traced = tracing.enabled()
        started = time.perf_counter() if traced else 0.0
        message, found = validated(request)
        validated_at = time.perf_counter() if traced else 0.0
        if found or message is None:
            raise InvalidMessage(found)
        where = location(message, self.store.prefix)
        sent_at_ms = self._clock_ms()
        body = render(message, message_id=where.message_id, sent_at_ms=sent_at_ms)
        if traced:
            tracing.note(
                {
                    "msgarchive.message_id": where.message_id,
                    "msgarchive.json_bytes": len(body),
                    "msgarchive.validate_us": round((validated_at - started) * 1e6),
                    "msgarchive.render_us": round((time.perf_counter() - validated_at) * 1e6),
                }
            )
        if self.max_message_bytes is not None and len(body) > self.max_message_bytes:
            raise InvalidMessage(
                [
                    FieldViolation(
                        where.channel,
                        f"renders to {len(body)} bytes of JSON, over the limit of "
                        f"{self.max_message_bytes}",
                    )
                ]
            )
        if self.circuit is not None and self.circuit.is_open:
            raise ArchiveUnavailable(self.circuit.reason)
        if self.journal is not None and self.journal.full:
            # No ack could be recorded: refuse before writing to the store.
            raise JournalFull(self.journal.full_reason)
        blob = compress(body)
        attempt = itertools.count(1)
        try:
            result, attempts = with_retries(
                self.retry,
                deadline,
                lambda: self._timed_put(where.key, blob, next(attempt)),
                self.attempt_estimate,
            )
        except RetriesExhausted as err:
            if self.circuit is not None and opens_circuit(err, self.retry):
                self.circuit.trip(err.error)
                raise ArchiveUnavailable(err.error.code, err.attempts) from None
            raise ArchiveFailed(err.error.code, err.attempts) from None
        stored = blob
        if result.existing_copy is not None:
            # A copy was there first (a retried or duplicate archive): ack that
            # copy as it is, once it is shown to be this message's copy.
            stored = result.existing_copy
            sent_at_ms = _sent_at_of(stored, where.message_id, attempts)
        elif self.metrics is not None:
            self.metrics.copy_stored(where.channel, len(body), len(blob))
        retention = self.store.retention
        ack = Ack(
            retention_mode=retention.mode if retention else "",
            retain_until_ms=_retained_until(sent_at_ms, retention.days) if retention else 0,
            message_id=where.message_id,
            bucket=self.store.bucket,
            key=where.key,
            sent_at_ms=sent_at_ms,
            attempts=attempts,
            etag=result.etag,
            version_id=result.version_id,
            already_archived=result.already_existed,
            stored_bytes=len(stored),
        )
        if self.journal is not None:
            journaling = time.perf_counter() if traced else 0.0
            self._journal(ack, where, request.campaign_id, stored)
            if traced:
                took = round((time.perf_counter() - journaling) * 1e6)
                tracing.note({"msgarchive.journal_us": took})
        return ack

    def _journal(self, ack: Ack, where: ArchiveLocation, campaign_id: str, stored: bytes) -> None:
        """Record the ack in the manifest journal before it is given: an ack no
        manifest will list is not given (the copy stays; a retry acks it)."""
        entry = ManifestEntry(
            bucket=ack.bucket,
            key=ack.key,
            version_id=ack.version_id,
            size=len(stored),
            e_tag=ack.etag,
            sha256=hashlib.sha256(stored).hexdigest(),
            message_id=ack.message_id,
            channel=where.channel,
            campaign_id=campaign_id,
            user_hash=where.user_hash,
            sent_at=ack.sent_at_ms,
            object_lock_mode=ack.retention_mode,
            object_lock_retain_until_date=ack.retain_until_ms,
            acknowledged_at=self._clock_ms(),
        )
        assert self.journal is not None
        try:
            self.journal.append(entry)
        except JournalOutOfSpace as err:
            raise JournalFull(err.error) from None
        except OSError as err:
            log.error("manifest journal write failed", error=err.strerror or str(err))
            raise ArchiveFailed("JournalWriteFailed", ack.attempts) from None

    def _timed_put(self, key: str, blob: bytes, attempt: int) -> PutResult:
        with tracing.span(
            "store.put", {"msgarchive.attempt": attempt, "msgarchive.store.bytes": len(blob)}
        ) as put:
            started = time.monotonic()
            try:
                result = self.store.put(key, blob)
            except StoreError as err:
                self._count_attempt(err.kind.value, time.monotonic() - started)
                tracing.note(
                    {"msgarchive.store.result": err.kind.value, "msgarchive.store.error": err.code}
                )
                tracing.failed(put, err.code)
                raise
            took = time.monotonic() - started
            tracing.note(
                {
                    "msgarchive.store.result": "ok",
                    "msgarchive.already_archived": result.already_existed,
                }
            )
        self._count_attempt("ok", took)
        self.attempt_estimate += _ESTIMATE_WEIGHT * (took - self.attempt_estimate)
        return result

    def _count_attempt(self, result: str, seconds: float) -> None:
        if self.metrics is not None:
            self.metrics.store_attempt(result, seconds)


def _retained_until(sent_at_ms: int, days: int) -> int:
    """A lower bound of the date a store locks a copy until: it counts the period
    from the version's creation (after `sent_at`) and keeps whole seconds."""
    return sent_at_ms // 1000 * 1000 + days * DAY_MS


def _sent_at_of(copy: bytes, message_id: str, attempts: int) -> int:
    """The `sent_at` of an existing copy; ArchiveFailed if it is not a sound copy."""
    try:
        fields = json.loads(decompress(copy))
        sent_at = fields["sent_at"]
        ok = fields["message_id"] == message_id and isinstance(sent_at, int)
    except (ValueError, RuntimeError, KeyError, TypeError):
        ok = False
    if not ok:
        raise ArchiveFailed("ExistingCopyUnreadable", attempts)
    result: int = sent_at
    return result
