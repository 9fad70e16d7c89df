"""The client turns a failed call into a typed error with its details unpacked."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import duration_pb2

from msgarchive import errors
from msgarchive.validation import FieldViolation
from msgarchive_server.archive import ArchiveFailed as PipelineFailed
from msgarchive_server.errors import failed_to_archive, invalid_message, make_status
from msgarchive_server.stores import ErrorKind, StoreError


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


def test_invalid_message_carries_field_violations() -> None:
    status = invalid_message([FieldViolation("sms.to", "must be a phone number")])
    error = errors.from_rpc_error(FailedCall(status))
    assert isinstance(error, errors.InvalidMessage)
    assert error.code is grpc.StatusCode.INVALID_ARGUMENT
    assert error.reason == "INVALID_MESSAGE"
    assert error.field_violations == [("sms.to", "must be a phone number")]
    assert str(error).startswith("INVALID_ARGUMENT INVALID_MESSAGE: invalid message: sms.to")


def test_failed_to_archive_carries_attempts_and_store_error() -> None:
    failure = PipelineFailed("sms", StoreError("SlowDown", ErrorKind.THROTTLED), 4)
    error = errors.from_rpc_error(FailedCall(failed_to_archive(failure)))
    assert isinstance(error, errors.ArchiveFailed)
    assert error.reason == "FAILED_TO_ARCHIVE"
    assert error.attempts == 4
    assert error.metadata["store_error"] == "SlowDown"


def test_retry_info_is_read() -> None:
    from google.rpc import code_pb2, error_details_pb2

    retry = error_details_pb2.RetryInfo(
        retry_delay=duration_pb2.Duration(seconds=2, nanos=500_000_000)
    )
    status = make_status(code_pb2.RESOURCE_EXHAUSTED, "slow down", "RATE_LIMITED", extra=[retry])
    error = errors.from_rpc_error(FailedCall(status))
    assert isinstance(error, errors.RateLimited)
    assert error.retry_delay == pytest.approx(2.5)


class BareCall:
    """A transport failure: no google.rpc details at all."""

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.UNAVAILABLE

    def details(self) -> str:
        return "failed to connect to all addresses"

    def trailing_metadata(self) -> object:
        return None


def test_transport_failure_is_still_typed() -> None:
    error = errors.from_rpc_error(BareCall())
    assert isinstance(error, errors.ArchiveFailed)
    assert error.reason == ""
    assert error.attempts is None
    assert error.details == ()


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
