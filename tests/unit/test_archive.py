"""The pipeline and its retry policy, against a scripted in-memory store."""

from __future__ import annotations

import json
import time
import types

import pytest

from msgarchive_server.domain import archive as archive_module
from msgarchive_server.domain import retry as retry_module
from msgarchive_server.domain.archive import Archiver
from msgarchive_server.domain.errors import ArchiveFailed, InvalidMessage
from msgarchive_server.domain.payloads import compress, decompress
from msgarchive_server.domain.retry import RetryPolicy
from msgarchive_server.stores import ErrorKind, Retention, StoreError
from msgarchive_server.telemetry.metrics import Metrics
from tests import samples
from tests.unit.fakes import FakeStore, throttled, transient

FAST = RetryPolicy(max_retries=3, max_throttled=10, base_delay=0.001, max_delay=0.002)


def archiver(store: FakeStore, **kwargs: object) -> Archiver:
    return Archiver(store, retry=FAST, clock_ms=lambda: 1_700_000_000_123, **kwargs)  # type: ignore[arg-type]


def test_ack_describes_the_stored_copy() -> None:
    store = FakeStore()
    ack = archiver(store).archive(samples.sms_request())
    assert ack.key == samples.expected_key("sms")
    assert ack.message_id == samples.PHONE_MESSAGE_ID
    assert ack.sent_at_ms == 1_700_000_000_123
    assert ack.attempts == 1
    assert ack.etag
    assert ack.version_id == "v1"
    assert not ack.already_archived
    stored = store.objects[ack.key]
    assert ack.stored_bytes == len(stored)
    assert json.loads(decompress(stored)) == samples.expected_copy("sms", 1_700_000_000_123)


def test_transient_errors_are_retried_and_counted() -> None:
    store = FakeStore([transient(), transient("RequestTimeout")])
    ack = archiver(store).archive(samples.email_request())
    assert ack.attempts == 3
    assert ack.key in store.objects


def test_three_retries_then_failure_and_nothing_acked() -> None:
    store = FakeStore([transient() for _ in range(4)] + [])
    with pytest.raises(ArchiveFailed) as raised:
        archiver(store).archive(samples.sms_request())
    assert raised.value.attempts == 4
    assert raised.value.store_error == "InternalError"
    assert store.calls == 4
    assert store.objects == {}


def test_throttling_does_not_use_up_the_retries() -> None:
    store = FakeStore([throttled()] * 6 + [transient()] * 3)
    ack = archiver(store).archive(samples.sms_request())
    assert ack.attempts == 10


@pytest.mark.parametrize("kind", [ErrorKind.FATAL, ErrorKind.REJECTED])
def test_errors_retrying_cannot_cure_fail_at_once(kind: ErrorKind) -> None:
    store = FakeStore([StoreError("NoSuchBucket", kind)])
    with pytest.raises(ArchiveFailed) as raised:
        archiver(store).archive(samples.sms_request())
    assert raised.value.attempts == 1
    assert store.calls == 1


def test_no_retry_sleeps_past_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    slow = RetryPolicy(max_retries=3, base_delay=5.0, max_delay=5.0)
    store = FakeStore([transient()] * 4)
    pipeline = Archiver(store, retry=slow)
    slept: list[tuple[float, float]] = []  # (when, how long) of each backoff asked for
    real = retry_module._backoff

    def recorded(seconds: float) -> None:
        slept.append((time.monotonic(), seconds))
        real(seconds)

    monkeypatch.setattr(retry_module, "_backoff", recorded)
    deadline = time.monotonic() + 0.2
    with pytest.raises(ArchiveFailed) as raised:
        pipeline.archive(samples.sms_request(), deadline=deadline)
    # Every backoff taken ends before the deadline; one that could not was never begun.
    assert all(at + seconds < deadline for at, seconds in slept), slept
    assert raised.value.attempts == len(slept) + 1
    assert raised.value.attempts < 4


def test_invalid_request_writes_nothing() -> None:
    store = FakeStore()
    with pytest.raises(InvalidMessage) as raised:
        archiver(store).archive(samples.sms_request(batch_id="20241341"))
    assert [v.field for v in raised.value.violations] == ["batch_id"]
    assert store.calls == 0


def test_over_size_copy_is_refused_naming_the_channel() -> None:
    store = FakeStore()
    request = samples.sms_request()
    request.sms.body = "x" * 2000
    with pytest.raises(InvalidMessage) as raised:
        archiver(store, max_message_bytes=1000).archive(request)
    (violation,) = raised.value.violations
    assert violation.field == "sms"
    assert "over the limit of 1000" in violation.description
    assert store.calls == 0


def test_duplicate_archive_acks_the_existing_copy() -> None:
    store = FakeStore()
    first = archiver(store).archive(samples.push_request())
    later = Archiver(store, retry=FAST, clock_ms=lambda: 1_800_000_000_000)
    again = later.archive(samples.push_request())
    assert again.already_archived
    assert again.key == first.key
    assert again.sent_at_ms == first.sent_at_ms  # the stored copy's, not a new time
    assert again.stored_bytes == first.stored_bytes
    assert len(store.objects) == 1


def test_unsound_existing_copy_fails_closed() -> None:
    store = FakeStore()
    key = samples.expected_key("sms")
    store.objects[key] = compress(b'{"message_id":"someone-else","sent_at":1}')
    with pytest.raises(ArchiveFailed) as raised:
        archiver(store).archive(samples.sms_request())
    assert raised.value.store_error == "ExistingCopyUnreadable"
    store.objects[key] = b"not lz4 at all"
    with pytest.raises(ArchiveFailed):
        archiver(store).archive(samples.sms_request())


def test_the_ack_reports_the_stores_retention() -> None:
    store = FakeStore()
    store.retention = Retention("COMPLIANCE", 30)
    ack = archiver(store).archive(samples.sms_request())
    assert ack.retention_mode == "COMPLIANCE"
    assert ack.retain_until_ms == ack.sent_at_ms // 1000 * 1000 + 30 * 24 * 3600 * 1000
    unlocked = archiver(FakeStore()).archive(samples.sms_request())
    assert (unlocked.retention_mode, unlocked.retain_until_ms) == ("", 0)


def test_each_write_is_timed_and_moves_the_running_estimate(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Each store attempt reads the monotonic clock as it starts and as it ends.
    ticks = iter([100.0, 100.2, 200.0, 200.5, 300.0, 300.1])
    monkeypatch.setattr(
        archive_module, "time", types.SimpleNamespace(monotonic=lambda: next(ticks))
    )
    metrics = Metrics()
    archiver = Archiver(FakeStore([transient()]), retry=FAST, metrics=metrics, clock_ms=lambda: 1)
    archiver.archive(samples.sms_request())  # fails once (0.2 s), then stored (0.5 s)
    assert archiver.attempt_estimate == pytest.approx(0.005 + 0.25 * (0.5 - 0.005))
    archiver.archive(samples.email_request())  # 0.1 s
    assert archiver.attempt_estimate == pytest.approx(0.12875 + 0.25 * (0.1 - 0.12875))

    def seconds(result: str) -> float | None:
        name = "msgarchive_store_write_duration_seconds_sum"
        return metrics.registry.get_sample_value(name, {"result": result})

    assert seconds("transient") == pytest.approx(0.2)
    assert seconds("ok") == pytest.approx(0.6)


def test_a_copy_is_stamped_with_the_wall_clock_in_milliseconds() -> None:
    before = time.time_ns() // 1_000_000
    ack = Archiver(FakeStore()).archive(samples.sms_request())
    after = time.time_ns() // 1_000_000
    assert before <= ack.sent_at_ms <= after
