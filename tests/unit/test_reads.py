"""View, get and list against a scripted store; what a copy says."""

from __future__ import annotations

import base64
import calendar
import dataclasses
import datetime
import json

import pytest

from msgarchive.v1 import archive_service_pb2 as pb
from msgarchive_server.domain import describe
from msgarchive_server.domain.archive import Archiver
from msgarchive_server.domain.errors import (
    CopyDamaged,
    CopyNotFound,
    InvalidLookup,
    StoreUnavailable,
    WrongAccount,
)
from msgarchive_server.domain.payloads import compress
from msgarchive_server.domain.reads import (
    SUPPORTED_EVENTS,
    ListQuery,
    Reader,
    ViewQuery,
)
from msgarchive_server.stores import ErrorKind, ListPage, StoredObject, StoreError
from tests import samples
from tests.unit.fakes import FakeStore

T0 = calendar.timegm((2024, 9, 15, 12, 0, 0))  # epoch seconds


def archive_at(store: FakeStore, request: pb.ArchiveRequest, sent_at_s: float) -> str:
    """Archive `request` as if at `sent_at_s`; the store records the same time."""
    ms = int(sent_at_s * 1000)
    store.clock_ms = lambda: ms
    return Archiver(store, clock_ms=lambda: ms).archive(request).key


def sms(n: int, to: str = "+1 555 555 5555", batch: str = "20240915") -> pb.ArchiveRequest:
    request = samples.sms_request(created_at_ms=samples.CREATED_AT_MS + n, batch_id=batch)
    request.sms.to = to
    return request


def sms_view(sent: int, **overrides: object) -> ViewQuery:
    fields: dict[str, object] = {
        "user_id": "15555555555",
        "campaign_channel": "SMS",
        "campaign_id": "1722529032",
        "sent_epoch_time": sent,
        "event_name": "SMS Sent",
        "platform": "SMS",
    }
    fields.update(overrides)
    return ViewQuery(**fields)  # type: ignore[arg-type]


def test_view_finds_the_copy_nearest_the_send_time() -> None:
    store = FakeStore()
    archive_at(store, sms(1), T0 - 100)
    near = archive_at(store, sms(2), T0 + 7)
    archive_at(store, sms(3), T0 + 250)
    copy = Reader(store).view(sms_view(T0))
    assert copy.key == near
    assert copy.fields["sent_at"] == (T0 + 7) * 1000


def test_view_outside_the_tolerance_is_not_found() -> None:
    store = FakeStore()
    key = archive_at(store, sms(1), T0 + 301)
    with pytest.raises(CopyNotFound):
        Reader(store, tolerance_seconds=300).view(sms_view(T0))
    assert Reader(store, tolerance_seconds=302).view(sms_view(T0)).key == key


def test_view_judges_by_sent_at_not_by_the_store_clock() -> None:
    store = FakeStore()
    key = archive_at(store, sms(1), T0 + 5)
    store.stored_at[key] += 3_600_000  # the store's clock is an hour off
    assert Reader(store).view(sms_view(T0)).key == key


def test_view_looks_in_the_previous_month_near_its_start() -> None:
    store = FakeStore()
    october_first = calendar.timegm((2024, 10, 1, 0, 3, 0))
    key = archive_at(store, sms(1, batch="20240930"), october_first)
    assert "/Sms/202409/" in key
    assert Reader(store).view(sms_view(october_first + 4)).key == key


def test_a_copy_exactly_the_tolerance_away_is_found() -> None:
    store = FakeStore()
    key = archive_at(store, sms(1), T0 + 300)  # 300,000 ms off: within, not past
    assert Reader(store, tolerance_seconds=300).view(sms_view(T0)).key == key
    with pytest.raises(CopyNotFound):
        Reader(store, tolerance_seconds=299.999).view(sms_view(T0))


def test_a_batch_of_the_30th_sent_hours_into_the_next_month_is_found() -> None:
    """Past the tolerance (5 minutes) into the month: only the previous-month
    window (a day) makes the view look in September's folder."""
    store = FakeStore()
    two_hours_in = calendar.timegm((2024, 10, 1, 2, 0, 0))
    key = archive_at(store, sms(1, batch="20240930"), two_hours_in)
    assert "/Sms/202409/" in key
    assert Reader(store).view(sms_view(two_hours_in + 4)).key == key


def test_view_for_other_recipients_or_campaigns_finds_nothing() -> None:
    store = FakeStore()
    archive_at(store, sms(1), T0)
    with pytest.raises(CopyNotFound):
        Reader(store).view(sms_view(T0, user_id="+1 555 555 0000"))
    with pytest.raises(CopyNotFound):
        Reader(store).view(sms_view(T0, campaign_id="777"))


def test_unsupported_event_lists_the_supported_ones() -> None:
    with pytest.raises(InvalidLookup) as raised:
        Reader(FakeStore()).view(sms_view(T0, event_name="SMS Clicked"))
    message = str(raised.value)
    assert message.startswith("This event is unsupported to view message copy.")
    for event in SUPPORTED_EVENTS:
        assert f"'{event}'" in message
    assert [v.field for v in raised.value.violations] == ["event_name"]


@pytest.mark.parametrize(
    ("overrides", "fields"),
    [
        ({"campaign_channel": "EMAIL"}, ["campaign_channel"]),
        (
            {"event_name": "Notification Sent iOS", "platform": "ANDROID"},
            ["campaign_channel", "platform"],
        ),
        ({"user_id": "12"}, ["user_id"]),
        ({"campaign_id": "../x"}, ["campaign_id"]),
        ({"sent_epoch_time": 0}, ["sent_epoch_time"]),
    ],
)
def test_view_fields_must_agree(overrides: dict[str, object], fields: list[str]) -> None:
    with pytest.raises(InvalidLookup) as raised:
        Reader(FakeStore()).view(sms_view(T0, **overrides))
    assert [v.field for v in raised.value.violations] == fields


def test_push_view_by_device_identity_and_platform() -> None:
    store = FakeStore()
    request = samples.push_request(batch_id="20240915", device_identity="dev-9")
    key = archive_at(store, request, T0)
    query = ViewQuery(
        user_id="dev-9",
        campaign_channel="push",
        campaign_id="1722529032",
        sent_epoch_time=T0,
        event_name="Notification Sent iOS",
        platform="ios",
    )
    assert Reader(store).view(query).key == key


@pytest.mark.parametrize("android_nearer", [True, False])
def test_push_view_by_customer_identity_answers_only_the_asked_platform(
    android_nearer: bool,
) -> None:
    """A customer (no device identity) with an iOS and an Android device: both
    copies share one folder. Each platform's view answers its own copy, in
    either order of sending, and a platform with no copy is not found."""
    store = FakeStore()
    ios = samples.push_request(batch_id="20240915")
    android = samples.push_request(batch_id="20240915")
    android.push.platform = pb.PLATFORM_ANDROID
    android.push.to = "android-token"
    ios_at, android_at = (T0 - 60, T0 - 5) if android_nearer else (T0 - 5, T0 - 60)
    keys = {
        "IOS": archive_at(store, ios, ios_at),
        "ANDROID": archive_at(store, android, android_at),
    }
    assert keys["IOS"].rsplit("/", 2)[0] == keys["ANDROID"].rsplit("/", 2)[0]  # one folder
    events = {"IOS": "Notification Sent iOS", "ANDROID": "Notification Received Android"}
    for platform, event in events.items():
        query = ViewQuery(user_id="45142169", campaign_channel="push",
                          campaign_id="1722529032", sent_epoch_time=T0, event_name=event,
                          platform=platform.lower())  # fmt: skip
        copy = Reader(store).view(query)
        assert copy.key == keys[platform]
        assert copy.fields["platform"].upper() == platform
    web = ViewQuery(user_id="45142169", campaign_channel="push", campaign_id="1722529032",
                    sent_epoch_time=T0, event_name="Notification Received Web",
                    platform="web")  # fmt: skip
    with pytest.raises(CopyNotFound):
        Reader(store).view(web)


def test_get_by_key_and_by_parts() -> None:
    store = FakeStore()
    key = archive_at(store, sms(1), T0)
    reader = Reader(store)
    copy = reader.get(key)
    message_id = key.rsplit("/", 1)[1].removesuffix(".json.lz4")
    assert copy.fields["message_id"] == message_id
    by_parts = reader.get_by_parts("sms", "202409", "1722529032", "+1 (555) 555-5555", message_id)
    assert by_parts.key == key
    assert json.loads(copy.json_text) == copy.fields


def test_get_refuses_keys_outside_the_account_and_malformed_keys() -> None:
    reader = Reader(FakeStore())
    with pytest.raises(WrongAccount):
        reader.get("other-tenant/sent_messages/Sms/202409/1/aa/bb.json.lz4")
    with pytest.raises(InvalidLookup):
        reader.get("sent_messages/Sms/202409/1/aa/not-an-id.json.lz4")
    with pytest.raises(CopyNotFound):
        reader.get(samples.expected_key("sms"))


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"not lz4", "does not decompress"),
        (compress(b"{not json"), "not valid JSON"),
        (compress(b"[1,2]"), "not a JSON object"),
        (compress(b'{"message_id":"0000"}'), "does not match its key"),
    ],
)
def test_damaged_copies_are_data_loss(body: bytes, why: str) -> None:
    store = FakeStore()
    key = samples.expected_key("sms")
    store.objects[key] = body
    with pytest.raises(CopyDamaged) as raised:
        Reader(store).get(key)
    assert why in str(raised.value)
    assert raised.value.key == key


def fill(store: FakeStore, count: int) -> list[str]:
    return [archive_at(store, sms(n, to=f"1555000{n:04d}"), T0 + n) for n in range(count)]


def page_through(reader: Reader, query: ListQuery) -> list[list[str]]:
    pages, token = [], ""
    while True:
        result = reader.list(dataclasses.replace(query, page_token=token))
        pages.append([item.key for item in result.items])
        token = result.next_page_token
        if not token:
            return pages


def test_list_by_key_pages_through_everything_once() -> None:
    store = FakeStore()
    keys = fill(store, 25)
    pages = page_through(Reader(store), ListQuery("sms", "202409", "1722529032", page_size=10))
    assert [len(p) for p in pages] == [10, 10, 5]
    listed = [k for p in pages for k in p]
    assert listed == sorted(keys)


def test_list_newest_first_and_time_range() -> None:
    store = FakeStore()
    keys = fill(store, 12)
    query = ListQuery("sms", "202409", page_size=5, newest_first=True)
    listed = [k for p in page_through(Reader(store), query) for k in p]
    assert listed == list(reversed(keys))
    ranged = ListQuery(
        "sms", "202409", stored_after_ms=(T0 + 3) * 1000, stored_before_ms=(T0 + 6) * 1000
    )
    assert [i.key for i in Reader(store).list(ranged).items] == sorted(keys[3:6])


def test_list_of_one_recipient() -> None:
    store = FakeStore()
    keys = fill(store, 5)
    result = Reader(store).list(ListQuery("sms", "202409", "1722529032", recipient="15550000003"))
    assert [i.key for i in result.items] == [keys[3]]


def test_a_page_token_belongs_to_its_query() -> None:
    store = FakeStore()
    fill(store, 5)
    reader = Reader(store)
    token = reader.list(ListQuery("sms", "202409", page_size=2)).next_page_token
    assert token
    with pytest.raises(InvalidLookup) as raised:
        reader.list(ListQuery("sms", "202409", "1722529032", page_size=2, page_token=token))
    assert raised.value.violations[0].field == "page_token"
    with pytest.raises(InvalidLookup):
        reader.list(ListQuery("sms", "202409", page_token="garbage!"))


@pytest.mark.parametrize(
    ("query", "field"),
    [
        (ListQuery("", "202409"), "channel"),
        (ListQuery("sms", "202413"), "yyyymm"),
        (ListQuery("sms", "202409", recipient="155500000"), "recipient"),
        (ListQuery("sms", "202409", page_size=1001), "page_size"),
        (ListQuery("sms", "202409", stored_after_ms=5, stored_before_ms=5), "stored_before_ms"),
    ],
)
def test_bad_list_queries(query: ListQuery, field: str) -> None:
    with pytest.raises(InvalidLookup) as raised:
        Reader(FakeStore()).list(query)
    assert [v.field for v in raised.value.violations] == [field]


def copy_of(request: pb.ArchiveRequest) -> object:
    store = FakeStore()
    return Reader(store).get(archive_at(store, request, T0))


@pytest.mark.parametrize(
    ("payload", "title", "message", "urls"),
    [
        (
            {
                "notification": {
                    "title": "Sale",
                    "body": "20% off",
                    "image": "https://i.example/a.png",
                }
            },
            "Sale",
            "20% off",
            ["https://i.example/a.png"],
        ),
        (
            {"aps": {"alert": {"title": "Hi", "body": "There"}}, "url": "https://x.example/d"},
            "Hi",
            "There",
            ["https://x.example/d"],
        ),
        ({"aps": {"alert": "Plain alert"}}, "", "Plain alert", []),
        (
            {
                "title": "Web",
                "body": "push",
                "icon": "http://w.example/i",
                "x": ["https://w.example/i2"],
            },
            "Web",
            "push",
            ["http://w.example/i", "https://w.example/i2"],
        ),
    ],
)
def test_push_content_from_payload_shapes(
    payload: dict[str, object], title: str, message: str, urls: list[str]
) -> None:
    request = samples.push_request(batch_id="20240915")
    request.push.payload_json = json.dumps(payload)
    copy = copy_of(request)
    content = describe.content(copy)  # type: ignore[arg-type]
    assert (content["title"], content["message"], content["related_urls"]) == (title, message, urls)


def test_details_and_content_of_email_and_sms() -> None:
    email = copy_of(samples.email_request(batch_id="20240915"))
    details = describe.details(email)  # type: ignore[arg-type]
    assert details["channel"] == "email"
    assert details["message_to"] == "Jane.Doe@Example.com"
    assert (details["campaign_id"], details["user_id"]) == ("1722529032", "45142169")
    assert (details["journey_id"], details["journey_node_id"]) == ("2450", "1")
    sent = datetime.datetime.fromtimestamp(T0, datetime.UTC)
    assert details["sent_time"] == sent.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    assert describe.content(email)["subject"] == "20% off coupon inside!"  # type: ignore[arg-type]
    text = describe.content(copy_of(sms(1)))  # type: ignore[arg-type]
    assert text == {"message": "Hi there!"}


def test_newest_first_refuses_prefixes_too_big_to_sort(monkeypatch: pytest.MonkeyPatch) -> None:
    from msgarchive_server.domain import reads

    monkeypatch.setattr(reads, "MAX_SORTED", 4)
    store = FakeStore()
    fill(store, 5)
    with pytest.raises(InvalidLookup) as raised:
        Reader(store).list(ListQuery("sms", "202409", newest_first=True))
    assert raised.value.violations[0].field == "order"
    assert len(Reader(store).list(ListQuery("sms", "202409")).items) == 5  # by key: fine


class FailingStore(FakeStore):
    """A store that does not answer reads."""

    def get(self, key: str) -> StoredObject:
        raise StoreError("InternalError", ErrorKind.TRANSIENT)

    def list(self, prefix: str, start_after: str = "", limit: int = 1000) -> ListPage:
        raise StoreError("RequestTimeout", ErrorKind.TRANSIENT)


def test_a_store_that_does_not_answer_is_store_not_answering() -> None:
    key = samples.expected_key("sms")
    reader = Reader(FailingStore())
    with pytest.raises(StoreUnavailable) as raised:
        reader.get(key)
    assert raised.value.metadata == {"store_error": "InternalError"}
    with pytest.raises(StoreUnavailable):
        reader.view(sms_view(T0))
    with pytest.raises(StoreUnavailable):
        reader.list(ListQuery("sms", "202409"))


class UntouchableStore(FakeStore):
    """A store no crafted lookup may reach."""

    def get(self, key: str) -> StoredObject:
        raise AssertionError(f"the store was asked for {key!r}")

    def list(self, prefix: str, start_after: str = "", limit: int = 1000) -> ListPage:
        raise AssertionError(f"the store was listed at {prefix!r}")


MID = "a" * 64
HASH = "b" * 32


@pytest.mark.parametrize(
    "key",
    [
        f"sent_messages/Sms/a/../../{MID}.json.lz4",
        f"sent_messages/Sms/202409/../{HASH}/{MID}.json.lz4",
        f"sent_messages/Sms/202409/./{HASH}/{MID}.json.lz4",
        f"sent_messages/Sms/202409/c1/..\\{MID}.json.lz4",
        f"sent_messages/Sms/202409/c\0/{HASH}/{MID}.json.lz4",
        f"sent_messages/Sms/20240/c1/{HASH}/{MID}.json.lz4",
        f"sent_messages/Sms/202409/c1/{HASH[:31]}/{MID}.json.lz4",
        f"sent_messages/Sms/202409/{'c' * 10_000}/{HASH}/{MID}.json.lz4",
        f"sent_messages/Sms/202409/c1/{HASH}/../{MID}.json.lz4",
    ],
)
def test_a_key_off_the_layout_is_refused_before_any_store_is_asked(key: str) -> None:
    with pytest.raises(InvalidLookup) as raised:
        Reader(UntouchableStore()).get(key)
    assert raised.value.violations[0].field == "key"


@pytest.mark.parametrize("cursor", ["x", [], ["1", "k"], [1], [1.5, "k"], {"a": 1}, None, 7])
@pytest.mark.parametrize("newest_first", [True, False])
def test_a_tampered_page_token_is_refused_as_the_callers_error(
    cursor: object, newest_first: bool
) -> None:
    """A token is base64 JSON, so anyone can write one with this query's
    fingerprint: its cursor is checked before it is used."""
    store = FakeStore()
    fill(store, 5)
    reader = Reader(store)
    query = ListQuery("sms", "202409", page_size=2, newest_first=newest_first)
    token = reader.list(query).next_page_token
    fields = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    fields["c"] = cursor
    forged = base64.urlsafe_b64encode(json.dumps(fields).encode()).decode()
    with pytest.raises(InvalidLookup) as raised:
        reader.list(dataclasses.replace(query, page_token=forged))
    assert raised.value.violations[0].field == "page_token"


def test_a_listing_runs_across_the_stores_pages() -> None:
    """More copies than one store page (1,000) holds, some filtered out by time:
    every match is listed once, in key order, across pages and page tokens."""
    store = FakeStore()
    keys = fill(store, 1_150)
    reader = Reader(store)
    after = (T0 + 100) * 1000  # the first 100 were stored before: left out
    query = ListQuery("sms", "202409", page_size=1000, stored_after_ms=after)
    pages = page_through(reader, query)
    assert [len(page) for page in pages] == [1000, 50]
    assert [key for page in pages for key in page] == sorted(keys[100:])


def test_the_view_reads_the_nearest_copies_first() -> None:
    """25 copies of one recipient (more than the 20 a view reads): the one
    nearest the send time is found though 24 others are listed too."""
    store = FakeStore()
    keys = [archive_at(store, sms(n), T0 - 30 * n) for n in range(25)]  # every 30 s back
    # The newest is the nearest: read oldest- or farthest-first, it is not among the 20.
    assert Reader(store, tolerance_seconds=3600).view(sms_view(T0)).key == keys[0]


def test_a_batch_of_the_1st_sent_just_before_midnight_is_found() -> None:
    """A batch dated the 1st, sent in the last minutes of the month before: its
    key's month is the next one, which a view near the month's end looks in."""
    store = FakeStore()
    just_before = calendar.timegm((2024, 9, 30, 23, 58, 0))
    key = archive_at(store, sms(1, batch="20241001"), just_before)
    assert "/Sms/202410/" in key
    assert Reader(store).view(sms_view(just_before + 4)).key == key
