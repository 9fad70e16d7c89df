"""Every error the sidecar answers with, in one catalogue.

Each class names one `ErrorReason` (protos/msgarchive/v1/error_reason.proto)
and the canonical status code (`google.rpc.Code`) it is answered with, and
carries what the answer says: a message, `ErrorInfo` metadata, the bad fields
(`BadRequest`) and how long to wait (`RetryInfo`). The edges turn one into a
gRPC status (edge/status.py) by looking these up, never by testing types; the
domain raises them and knows nothing of gRPC. No error carries message content.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar

from google.rpc import code_pb2

from msgarchive.v1.error_reason_pb2 import ErrorReason
from msgarchive.validation import FieldViolation, summarize

# How long an overloaded sidecar asks callers to wait before retrying.
OVERLOAD_RETRY_S = 0.05
# How long a caller refused a stream is asked to wait: streams are long-lived.
STREAMS_RETRY_S = 1.0


class DomainError(Exception):
    """An answer other than success: status code, reason, and its details."""

    code: ClassVar[int]  # a google.rpc.Code value
    reason: ClassVar[ErrorReason.ValueType]
    # How an archive call that ended so is counted (the metrics' outcome label).
    outcome: ClassVar[str] = "error"

    def __init__(
        self,
        message: str,
        *,
        metadata: Mapping[str, str] | None = None,
        violations: Sequence[FieldViolation] = (),
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.metadata = dict(metadata or {})
        self.violations = list(violations)
        self.retry_after = retry_after

    @property
    def reason_name(self) -> str:
        """The `ErrorInfo.reason` string: the ErrorReason value's name."""
        return ErrorReason.Name(self.reason)


# --- archiving -----------------------------------------------------------------


class InvalidMessage(DomainError):
    """The archive request breaks the contract; nothing was written."""

    code = code_pb2.INVALID_ARGUMENT
    reason = ErrorReason.INVALID_MESSAGE
    outcome = "invalid"

    def __init__(self, violations: Sequence[FieldViolation]) -> None:
        super().__init__(f"invalid message: {summarize(violations)}", violations=violations)


class ArchiveFailed(DomainError):
    """The store did not confirm the copy after retries; the message must not be sent."""

    code = code_pb2.UNAVAILABLE
    reason = ErrorReason.FAILED_TO_ARCHIVE
    outcome = "failed"

    def __init__(self, store_error: str, attempts: int) -> None:
        super().__init__(
            f"the copy was not stored: {store_error} after {attempts} attempt(s); "
            "do not send the message",
            metadata={"attempts": str(attempts), "store_error": store_error},
        )
        self.store_error = store_error
        self.attempts = attempts


class ArchiveUnavailable(DomainError):
    """Archiving cannot work now (credentials, bucket); nothing was written."""

    code = code_pb2.FAILED_PRECONDITION
    reason = ErrorReason.ARCHIVE_UNAVAILABLE
    outcome = "unavailable"

    def __init__(self, store_error: str, attempts: int = 0) -> None:
        metadata = {"store_error": store_error}
        if attempts:
            metadata["attempts"] = str(attempts)
        super().__init__(
            f"archiving is unavailable ({store_error}): check the store's credentials "
            "and bucket; do not send the message",
            metadata=metadata,
        )
        self.store_error = store_error
        self.attempts = attempts


class JournalFull(DomainError):
    """The manifest journal's disk is full: no ack can be recorded; nothing was acked."""

    code = code_pb2.UNAVAILABLE
    reason = ErrorReason.JOURNAL_FULL
    outcome = "journal_full"

    def __init__(self, journal_error: str) -> None:
        super().__init__(
            f"the manifest journal's disk is full ({journal_error}): no ack can be "
            "recorded; do not send the message, retry once the journal has room",
            metadata={"journal_error": journal_error},
        )
        self.journal_error = journal_error


class DeadlineTooShort(DomainError):
    """The caller's deadline was nearer than one store attempt; none was made."""

    code = code_pb2.DEADLINE_EXCEEDED
    reason = ErrorReason.DEADLINE_TOO_SHORT
    outcome = "deadline"

    def __init__(self) -> None:
        super().__init__("the deadline left no time to store the copy; nothing was written")


class Overloaded(DomainError):
    """--max-in-flight archives (or --max-streams streams) are being served; this
    one was refused at once."""

    code = code_pb2.RESOURCE_EXHAUSTED
    reason = ErrorReason.OVERLOADED
    outcome = "overloaded"

    def __init__(self, limit: int, what: str = "archives are in flight") -> None:
        super().__init__(
            f"{limit} {what}, the most this sidecar takes: retry shortly",
            retry_after=OVERLOAD_RETRY_S,
        )

    @classmethod
    def streams(cls, limit: int, per_peer: bool) -> Overloaded:
        """A stream refused because `limit` streams are open (from this peer)."""
        refused = cls(limit, "streams are open" + (" from this peer" if per_peer else ""))
        refused.retry_after = STREAMS_RETRY_S
        return refused


class StreamIdle(DomainError):
    """A stream sent nothing for --stream-idle-timeout with nothing in flight: closed
    so that it gives its place back. Every message it sent was answered."""

    code = code_pb2.UNAVAILABLE
    reason = ErrorReason.STREAM_IDLE
    outcome = "idle"

    def __init__(self, seconds: float) -> None:
        super().__init__(
            f"the stream sent nothing for {seconds:g} s and was closed; every message it "
            "sent was answered: open a new stream to send more"
        )


class InternalError(DomainError):
    """An unexpected fault in the sidecar; an archive's copy may not be stored."""

    code = code_pb2.INTERNAL
    reason = ErrorReason.INTERNAL_ERROR
    outcome = "internal"

    def __init__(self, reading: bool = False) -> None:
        super().__init__(
            "internal error: the read failed; retrying may help"
            if reading
            else "internal error: the copy may not be stored; do not send the message"
        )


# --- who may call --------------------------------------------------------------


class CredentialsMissing(DomainError):
    """Credentials are missing, malformed or unknown. Never carries the key."""

    code = code_pb2.UNAUTHENTICATED
    reason = ErrorReason.CREDENTIALS_MISSING
    outcome = "denied"


class WrongAccount(DomainError):
    """The credentials are another account's, or the key is outside the caller's copies."""

    code = code_pb2.PERMISSION_DENIED
    reason = ErrorReason.WRONG_ACCOUNT
    outcome = "denied"


class RateLimited(DomainError):
    """Over the account's read rate limit."""

    code = code_pb2.RESOURCE_EXHAUSTED
    reason = ErrorReason.RATE_LIMITED

    def __init__(self, account: str, retry_after: float) -> None:
        super().__init__(
            f"over the read rate limit of account {account}", retry_after=max(retry_after, 0.001)
        )


# --- reading -------------------------------------------------------------------


class InvalidLookup(DomainError):
    """A lookup is malformed (the violations name the fields) or its event unsupported."""

    code = code_pb2.INVALID_ARGUMENT
    reason = ErrorReason.INVALID_LOOKUP

    def __init__(self, violations: Sequence[FieldViolation], message: str = "") -> None:
        super().__init__(
            message or f"invalid lookup: {summarize(violations)}", violations=violations
        )


class CopyNotFound(DomainError):
    """No copy matches."""

    code = code_pb2.NOT_FOUND
    reason = ErrorReason.COPY_NOT_FOUND

    def __init__(self) -> None:
        super().__init__("no archived copy matches")


class CopyDamaged(DomainError):
    """A stored copy is unreadable or not the copy its key names."""

    code = code_pb2.DATA_LOSS
    reason = ErrorReason.COPY_DAMAGED

    def __init__(self, key: str, why: str) -> None:
        super().__init__(f"the copy at {key} is damaged: {why}", metadata={"key": key})
        self.key = key


class StoreUnavailable(DomainError):
    """The store did not answer a read; safe to retry."""

    code = code_pb2.UNAVAILABLE
    reason = ErrorReason.STORE_UNAVAILABLE

    def __init__(self, store_error: str) -> None:
        super().__init__(
            f"the store did not answer: {store_error}", metadata={"store_error": store_error}
        )


def catalogue() -> list[type[DomainError]]:
    """Every concrete error class, one per ErrorReason."""
    found: list[type[DomainError]] = []
    pending = list(DomainError.__subclasses__())
    while pending:
        kind = pending.pop()
        found.append(kind)
        pending += kind.__subclasses__()
    return sorted(found, key=lambda kind: kind.reason)
