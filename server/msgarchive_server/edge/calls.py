"""The unit of work of one archive, shared by Archive and ArchiveStream.

`ArchiveCalls` admits a call under the in-flight bound, archives it into the
caller's account's store, and counts and logs how it ended. The unary RPC
refuses at once when the bound is full; a stream waits for a place instead
(gRPC flow control then holds its sender back). Either way the place is an
`Admission`, whose `run` does the work (so both paths count, log and answer
alike) and gives the place back; one that will not run is `release`d.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import grpc
import structlog

from msgarchive.v1 import archive_service_pb2 as pb
from msgarchive.validation import FieldViolation, violations
from msgarchive_server.domain.archive import Ack
from msgarchive_server.domain.errors import (
    ArchiveFailed,
    ArchiveUnavailable,
    DomainError,
    InternalError,
    InvalidMessage,
    Overloaded,
)
from msgarchive_server.edge.access import Access, is_local_peer
from msgarchive_server.edge.backpressure import InFlightLimit
from msgarchive_server.telemetry import tracing
from msgarchive_server.telemetry.metrics import Metrics

log = structlog.get_logger("msgarchive.archive")


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is archiving: the call's credentials, whether it is local, its deadline
    (a `time.monotonic()` instant, or None)."""

    authorization: str
    local: bool
    deadline: float | None


# gRPC reports "no deadline" as a deadline centuries away.
_NO_DEADLINE = 365 * 24 * 3600.0


def deadline_of(context: grpc.ServicerContext) -> float | None:
    """The caller's deadline as a `time.monotonic()` instant, or None."""
    remaining = context.time_remaining()
    if remaining is None or remaining > _NO_DEADLINE:
        return None
    return time.monotonic() + remaining


def authorization_of(context: grpc.ServicerContext) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == "authorization" and isinstance(value, str):
            return value
    return ""


def caller_of(context: grpc.ServicerContext) -> Caller:
    return Caller(authorization_of(context), is_local_peer(context.peer()), deadline_of(context))


class ArchiveCalls:
    def __init__(self, access: Access, metrics: Metrics, in_flight: InFlightLimit) -> None:
        self.access = access
        self.metrics = metrics
        self.in_flight = in_flight

    def admit(self) -> Admission:
        """An in-flight place now, or Overloaded (counted as rejected)."""
        if not self.in_flight.try_enter():
            self.metrics.rejected.inc()
            raise Overloaded(self.in_flight.limit)
        return Admission(self)

    def admit_within(self, timeout: float) -> Admission | None:
        """An in-flight place, waiting up to `timeout` seconds; None if none freed."""
        return Admission(self) if self.in_flight.enter(timeout) else None

    def _run(self, request: pb.ArchiveRequest, caller: Caller) -> Ack:
        channel = request.WhichOneof("message") or "none"
        self.metrics.in_flight.inc()
        started = time.perf_counter()
        try:
            ack = self._archive(request, caller)
        except DomainError as err:
            outcome = err.outcome
            self._count_failure(err)
            tracing.note({"msgarchive.channel": channel, "msgarchive.reason": err.reason_name})
            raise
        else:
            outcome = "already_archived" if ack.already_archived else "ok"
            tracing.note(
                {
                    "msgarchive.channel": channel,
                    "msgarchive.message_id": ack.message_id,
                    "msgarchive.attempts": ack.attempts,
                    "msgarchive.already_archived": ack.already_archived,
                }
            )
            return ack
        finally:
            self.metrics.in_flight.dec()
            self.metrics.archive_answered(channel, outcome, time.perf_counter() - started)

    def _archive(self, request: pb.ArchiveRequest, caller: Caller) -> Ack:
        try:
            tenant = self.access.archive_tenant(
                request.account_id, caller.authorization, caller.local
            )
            if tenant is None:
                raise InvalidMessage(
                    [
                        *violations(request),
                        FieldViolation("account_id", "is not a configured account"),
                    ]
                )
            return tenant.archiver.archive(request, caller.deadline)
        except DomainError:
            raise
        except Exception:
            log.exception("archive crashed")
            raise InternalError from None

    def _count_failure(self, err: DomainError) -> None:
        self.metrics.archive_failed(err.reason_name, err.metadata.get("store_error", "-"))
        fields: dict[str, object] = {"reason": err.reason_name}
        if isinstance(err, InvalidMessage):
            fields["invalid_fields"] = [v.field for v in err.violations]
        elif isinstance(err, ArchiveFailed | ArchiveUnavailable):
            fields.update(attempts=err.attempts, store_error=err.store_error)
        structlog.contextvars.bind_contextvars(**fields)
        if isinstance(err, ArchiveFailed):
            log.warning("failed to archive", store_error=err.store_error, attempts=err.attempts)


class Admission:
    """One archive's place in the in-flight bound, given back exactly once: by
    `run` when the archive is done, or by `release` when it will not run."""

    __slots__ = ("_calls", "_held")

    def __init__(self, calls: ArchiveCalls) -> None:
        self._calls = calls
        self._held = True

    def run(self, request: pb.ArchiveRequest, caller: Caller) -> Ack:
        """Archive the request. Returns the ack of a stored copy; raises a
        `DomainError` otherwise (`InternalError` for anything unexpected).
        Either way the outcome is counted in the metrics; a failure's fields
        are bound to the call's log context (an ack's are the edge's to log,
        as its log line needs them)."""
        try:
            return self._calls._run(request, caller)
        finally:
            self.release()

    def release(self) -> None:
        """Give the place back (once; later calls do nothing)."""
        if self._held:
            self._held = False
            self._calls.in_flight.leave()
