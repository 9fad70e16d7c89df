"""One error catalogue: every reason the server sends, and the client's typed error for it.

The expectations below are written out from error_reason.proto's comments,
not taken from the code under test: each reason's status code and the client
class a sender catches.
"""

from __future__ import annotations

import grpc
import pytest

from msgarchive import errors
from msgarchive.v1 import archive_service_pb2 as pb
from msgarchive.v1.error_reason_pb2 import ErrorReason
from msgarchive.validation import FieldViolation
from msgarchive_server.domain.errors import (
    ArchiveFailed,
    ArchiveUnavailable,
    CopyDamaged,
    CopyNotFound,
    CredentialsMissing,
    DeadlineTooShort,
    DomainError,
    InternalError,
    InvalidLookup,
    InvalidMessage,
    JournalFull,
    Overloaded,
    RateLimited,
    StoreUnavailable,
    StreamIdle,
    WrongAccount,
    catalogue,
)
from msgarchive_server.edge.status import to_archive_error, to_status

S = grpc.StatusCode
# reason -> (status code, the client's typed error)
EXPECTED: dict[str, tuple[grpc.StatusCode, type[errors.MsgArchiveError]]] = {
    "INVALID_MESSAGE": (S.INVALID_ARGUMENT, errors.InvalidMessage),
    "FAILED_TO_ARCHIVE": (S.UNAVAILABLE, errors.ArchiveFailed),
    "ARCHIVE_UNAVAILABLE": (S.FAILED_PRECONDITION, errors.ArchiveUnavailable),
    "INTERNAL_ERROR": (S.INTERNAL, errors.InternalError),
    "DEADLINE_TOO_SHORT": (S.DEADLINE_EXCEEDED, errors.DeadlineTooShort),
    "INVALID_LOOKUP": (S.INVALID_ARGUMENT, errors.InvalidLookup),
    "COPY_NOT_FOUND": (S.NOT_FOUND, errors.CopyNotFound),
    "COPY_DAMAGED": (S.DATA_LOSS, errors.CopyDamaged),
    "CREDENTIALS_MISSING": (S.UNAUTHENTICATED, errors.CredentialsMissing),
    "WRONG_ACCOUNT": (S.PERMISSION_DENIED, errors.WrongAccount),
    "RATE_LIMITED": (S.RESOURCE_EXHAUSTED, errors.RateLimited),
    "STORE_UNAVAILABLE": (S.UNAVAILABLE, errors.StoreUnavailable),
    "OVERLOADED": (S.RESOURCE_EXHAUSTED, errors.Overloaded),
    "JOURNAL_FULL": (S.UNAVAILABLE, errors.JournalFull),
    "STREAM_IDLE": (S.UNAVAILABLE, errors.StreamIdle),
}

# One of each error the server raises.
SAMPLES: list[DomainError] = [
    InvalidMessage([FieldViolation("sms.to", "must be a phone number"), FieldViolation("x", "y")]),
    ArchiveFailed("SlowDown", 4),
    ArchiveUnavailable("InvalidAccessKeyId", 1),
    InternalError(),
    DeadlineTooShort(),
    InvalidLookup([FieldViolation("event_name", "is not a supported event")], "unsupported"),
    CopyNotFound(),
    CopyDamaged("sent_messages/Sms/k.json.lz4", "it is not valid JSON"),
    CredentialsMissing("unknown API key"),
    WrongAccount("the API key belongs to another account"),
    RateLimited("acme", 2.5),
    StoreUnavailable("InternalError"),
    Overloaded(48),
    JournalFull("No space left on device"),
    StreamIdle(60),
]


class FailedCall:
    """What a failed call looks like to the client: code, details, trailers."""

    def __init__(self, status: grpc.Status) -> None:
        self.status = status

    def code(self) -> grpc.StatusCode:
        return self.status.code

    def details(self) -> str:
        return self.status.details

    def trailing_metadata(self) -> object:
        return self.status.trailing_metadata


def test_every_reason_has_exactly_one_server_error_and_a_client_class() -> None:
    reasons = [value.name for value in ErrorReason.DESCRIPTOR.values if value.number != 0]
    assert sorted(kind.reason for kind in catalogue()) == sorted(
        ErrorReason.Value(name) for name in reasons
    )
    assert sorted(EXPECTED) == sorted(reasons) == sorted(errors.ERROR_CLASSES)
    assert sorted(type(sample).__name__ for sample in SAMPLES) == sorted(
        kind.__name__ for kind in catalogue()
    )


def test_the_server_and_the_client_name_each_reason_alike() -> None:
    for kind in catalogue():
        client = errors.ERROR_CLASSES[ErrorReason.Name(kind.reason)]
        assert kind.__name__ == client.__name__
    # Each reason's class is also what a sender catches by status.
    assert issubclass(errors.CopyNotFound, errors.NotFound)
    assert issubclass(errors.CopyDamaged, errors.DataLoss)
    assert issubclass(errors.CredentialsMissing, errors.Unauthenticated)
    assert issubclass(errors.WrongAccount, errors.PermissionDenied)
    assert issubclass(errors.DeadlineTooShort, errors.DeadlineExceeded)


def assert_is_the_client_error_of(got: errors.MsgArchiveError, error: DomainError) -> None:
    code, kind = EXPECTED[error.reason_name]
    assert type(got) is kind
    assert (got.code, got.reason, got.message) == (code, error.reason_name, error.message)
    assert got.metadata == error.metadata
    if isinstance(got, errors.InvalidArgument):
        assert got.field_violations == [(v.field, v.description) for v in error.violations]
    if isinstance(got, errors.ResourceExhausted):
        assert got.retry_delay == pytest.approx(error.retry_after)


@pytest.mark.parametrize("error", SAMPLES, ids=lambda e: e.reason_name)
def test_the_client_maps_each_status_to_its_typed_error(error: DomainError) -> None:
    status = to_status(error)
    assert status.code is EXPECTED[error.reason_name][0]
    assert_is_the_client_error_of(errors.from_rpc_error(FailedCall(status)), error)


@pytest.mark.parametrize("error", SAMPLES, ids=lambda e: e.reason_name)
def test_a_stream_message_error_maps_the_same(error: DomainError) -> None:
    answer = to_archive_error(error)
    assert answer.code == EXPECTED[error.reason_name][0].name
    wire = pb.ArchiveError.FromString(answer.SerializeToString())
    assert_is_the_client_error_of(errors.from_archive_error(wire), error)


def test_status_messages_say_what_happened() -> None:
    failed = errors.from_rpc_error(FailedCall(to_status(ArchiveFailed("SlowDown", 4))))
    assert isinstance(failed, errors.ArchiveFailed)
    assert failed.attempts == 4
    assert str(failed) == (
        "UNAVAILABLE FAILED_TO_ARCHIVE: the copy was not stored: SlowDown after 4 attempt(s); "
        "do not send the message"
    )
    invalid = errors.from_rpc_error(FailedCall(to_status(SAMPLES[0])))
    assert str(invalid) == (
        "INVALID_ARGUMENT INVALID_MESSAGE: invalid message: sms.to must be a phone number; x y"
    )


class BareCall:
    """A transport failure: no google.rpc details at all."""

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.UNAVAILABLE

    def details(self) -> str:
        return "failed to connect to all addresses"

    def trailing_metadata(self) -> object:
        return None


def test_transport_failure_is_still_typed() -> None:
    archiving = errors.from_rpc_error(BareCall(), archiving=True)
    assert type(archiving) is errors.ArchiveFailed  # the copy was not stored
    assert (archiving.reason, archiving.attempts, archiving.details) == ("", None, ())
    reading = errors.from_rpc_error(BareCall())
    assert type(reading) is errors.Unavailable  # a read: nothing was archived or not
    assert isinstance(archiving, errors.Unavailable)


def test_invalid_message_built_offline_matches_the_servers() -> None:
    found = [FieldViolation("sms.to", "must be a phone number"), FieldViolation("x", "y")]
    offline = errors.InvalidMessage.from_violations(found)
    served = errors.from_rpc_error(FailedCall(to_status(InvalidMessage(found))))
    assert (offline.code, offline.reason, offline.message, offline.field_violations) == (
        served.code,
        served.reason,
        served.message,
        served.field_violations,  # type: ignore[attr-defined]
    )


def test_channel_options_given_by_the_caller_win() -> None:
    from msgarchive.client import MAX_RECEIVE_BYTES, SERVICE_CONFIG, channel_options

    assert dict(channel_options()) == {
        "grpc.enable_retries": 1,
        "grpc.service_config": SERVICE_CONFIG,
        "grpc.max_receive_message_length": MAX_RECEIVE_BYTES,
    }
    options = channel_options([("grpc.enable_retries", 0), ("grpc.primary_user_agent", "x")])
    assert dict(options)["grpc.enable_retries"] == 0
    assert len(options) == 4


def test_what_each_refusal_tells_the_caller() -> None:
    # Written from error_reason.proto and the README's Errors table.
    assert ArchiveUnavailable("NoSuchBucket").metadata == {"store_error": "NoSuchBucket"}
    assert ArchiveUnavailable("AccessDenied", 4).metadata == {
        "store_error": "AccessDenied",
        "attempts": "4",
    }
    assert InternalError().message.endswith("the copy may not be stored; do not send the message")
    assert (
        InternalError(reading=True).message == "internal error: the read failed; retrying may help"
    )
    archives = Overloaded(48)
    assert archives.message.startswith("48 archives are in flight")
    assert archives.retry_after == pytest.approx(0.05)
    total, peer = Overloaded.streams(8, per_peer=False), Overloaded.streams(2, per_peer=True)
    assert total.message.startswith("8 streams are open, the most")
    assert peer.message.startswith("2 streams are open from this peer, the most")
    assert total.retry_after == peer.retry_after == pytest.approx(1.0)
    assert RateLimited("acme", 2.5).retry_after == pytest.approx(2.5)
    assert RateLimited("acme", 0.0).retry_after == pytest.approx(0.001)  # never "retry now"
