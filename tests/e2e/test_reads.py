"""Reading copies back through the real sidecar, with two accounts on SeaweedFS.

Copies are archived across channels, months and accounts, then viewed, got,
listed and decoded; every error case; a damaged copy; one account's key
against the other's copies by every RPC; the rate limit.
"""

from __future__ import annotations

import calendar
import datetime
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import pytest

from msgarchive import (
    ArchiveClient,
    DataLoss,
    InvalidLookup,
    NotFound,
    PermissionDenied,
    RateLimited,
    Unauthenticated,
)
from msgarchive.v1 import archive_service_pb2 as pb
from msgarchive_server.domain.archive import Archiver
from msgarchive_server.domain.payloads import decompress
from tests import samples
from tests.accounts import KEYS, accounts_file, s3_stores
from tests.seaweed import SeaweedFS
from tests.sidecar import SidecarProcess, on_s3

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = pytest.mark.e2e

TODAY = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d")
BOUNDARY = calendar.timegm((2024, 10, 1, 0, 3, 0))  # 3 minutes into October
GLOBEX_PHONE = "+44 20 7946 0018"


@dataclass
class World:
    sidecar: SidecarProcess
    buckets: dict[str, str]
    s3: S3Client
    acks: dict[str, pb.ArchiveResponse] = field(default_factory=dict)

    def client(self, account: str | None = "acme", key: str | None = None) -> ArchiveClient:
        api_key = key if key is not None else (KEYS[account] if account else None)
        return ArchiveClient(self.sidecar.address, api_key=api_key, account_id=account)

    def stored_json(self, account: str, key: str) -> str:
        blob = self.s3.get_object(Bucket=self.buckets[account], Key=key)["Body"].read()
        return decompress(blob).decode()


def start_sidecar(seaweed: SeaweedFS, accounts: Path, *extra: str) -> SidecarProcess:
    return on_s3(seaweed.endpoint, seaweed.env, f"--accounts={accounts}", *extra)


def today(request: pb.ArchiveRequest, account: str) -> pb.ArchiveRequest:
    request.batch_id = TODAY
    request.account_id = account
    return request


@pytest.fixture(scope="module")
def world(seaweed: SeaweedFS, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    buckets = {"acme": seaweed.new_bucket(), "globex": seaweed.new_bucket()}
    accounts = accounts_file(tmp_path_factory.mktemp("reads") / "accounts.toml", s3_stores(buckets))
    sidecar = start_sidecar(seaweed, accounts)
    built = World(sidecar, buckets, seaweed.client())
    with ArchiveClient(sidecar.address) as client:  # loopback: archiving needs no key
        for channel, make in samples.REQUESTS.items():
            built.acks[channel] = client.archive(today(make(), "acme"))
        theirs = today(samples.sms_request(customer_identity="999"), "globex")
        theirs.sms.to = GLOBEX_PHONE  # a recipient acme has no copy for
        built.acks["globex-sms"] = client.archive(theirs)
        damaged = today(samples.sms_request(), "acme")
        damaged.sms.to = "+1 555 000 9999"  # a recipient of its own: views stay unambiguous
        built.acks["damaged"] = client.archive(damaged)
    # A copy archived at a month boundary, by the same pipeline with its clock set.
    boundary = samples.sms_request(batch_id="20240930", account_id="acme")
    store = seaweed.store(buckets["acme"])
    built.acks["boundary"] = pb.ArchiveResponse(
        key=Archiver(store, clock_ms=lambda: BOUNDARY * 1000).archive(boundary).key
    )
    try:
        yield built
    finally:
        sidecar.kill()


VIEWS = {
    "sms": ("+1 (555) 555-5555", "SMS", "SMS Sent", "SMS"),
    "whatsapp": ("15555555555", "WHATSAPP", "WhatsApp Sent", ""),
    "email": ("jane.doe@example.com", "EMAIL", "Email Sent", "EMAIL"),
    "push": ("45142169", "PUSH", "Notification Sent iOS", "IOS"),
}


def view_request(channel: str, sent: int, **overrides: object) -> pb.ViewMessageRequest:
    user_id, campaign_channel, event, platform = VIEWS[channel]
    fields: dict[str, object] = {
        "user_id": user_id,
        "campaign_channel": campaign_channel,
        "campaign_id": "1722529032",
        "sent_epoch_time": sent,
        "event_name": event,
        "platform": platform,
        "delivery_type": "ONE_TIME",
    }
    fields.update(overrides)
    return pb.ViewMessageRequest(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("channel", list(VIEWS))
def test_view_by_the_reference_fields_a_few_seconds_off(world: World, channel: str) -> None:
    ack = world.acks[channel]
    with world.client() as client:
        found = client.view_message(view_request(channel, ack.sent_at_ms // 1000 + 7))
    assert found.file_info.key == ack.key
    assert found.message_details.message_id == ack.message_id
    assert found.message_details.sent_at_ms == ack.sent_at_ms
    assert found.message_details.delivery_type == "ONE_TIME"
    assert found.archived_json == world.stored_json("acme", ack.key)
    if channel == "push":
        assert found.message_content.title == "Flat 20% off"
    if channel == "email":
        assert found.message_content.subject == "20% off coupon inside!"


def test_view_across_a_month_boundary(world: World) -> None:
    with world.client() as client:
        found = client.view_message(view_request("sms", BOUNDARY + 4))
    assert found.file_info.key == world.acks["boundary"].key
    assert "/Sms/202409/" in found.file_info.key


def test_get_by_key_and_by_parts(world: World) -> None:
    ack = world.acks["email"]
    with world.client() as client:
        by_key = client.get_archived_message(pb.GetArchivedMessageRequest(key=ack.key))
        parts = pb.MessageLocator(
            channel=pb.CHANNEL_EMAIL,
            yyyymm=TODAY[:6],
            campaign_id="1722529032",
            recipient="Jane.Doe@example.com",
            message_id=ack.message_id,
        )
        by_parts = client.get_archived_message(pb.GetArchivedMessageRequest(parts=parts))
    assert by_key == by_parts
    assert by_key.archived_json == world.stored_json("acme", ack.key)
    assert by_key.file_info.size_bytes == ack.stored_bytes


def test_list_pages_until_exhausted_with_nothing_missing_or_repeated(world: World) -> None:
    keys = set()
    with ArchiveClient(world.sidecar.address) as client:
        for n in range(23):
            request = today(samples.sms_request(campaign_id="list-me"), "acme")
            request.sms.to = f"1555123{n:04d}"
            keys.add(client.archive(request).key)
    query = pb.ListArchivedMessagesRequest(
        channel=pb.CHANNEL_SMS, yyyymm=TODAY[:6], campaign_id="list-me", page_size=5
    )
    listed: list[str] = []
    pages = 0
    with world.client() as client:
        while True:
            page = client.list_archived_messages(query)
            pages += 1
            listed += [m.key for m in page.messages]
            if not page.next_page_token:
                break
            query.page_token = page.next_page_token
        newest_first = pb.ListArchivedMessagesRequest(
            channel=pb.CHANNEL_SMS,
            yyyymm=TODAY[:6],
            campaign_id="list-me",
            page_size=7,
            order=pb.LIST_ORDER_NEWEST_FIRST,
        )
        newest = [m for m in client.iter_archived_messages(newest_first)]
    assert pages == 5
    assert len(listed) == len(set(listed)) == 23
    assert set(listed) == keys
    assert sorted(m.key for m in newest) == sorted(listed)
    stamps = [m.stored_at_ms for m in newest]
    assert stamps == sorted(stamps, reverse=True)


@pytest.mark.parametrize(
    ("overrides", "expect"),
    [
        ({"event_name": "SMS Clicked"}, "The supported events are ['Email Sent', 'SMS Sent'"),
        ({"campaign_channel": "EMAIL"}, "campaign_channel must be SMS"),
        ({"platform": "IOS"}, "platform must be SMS"),
    ],
)
def test_bad_views_are_invalid_argument(
    world: World, overrides: dict[str, object], expect: str
) -> None:
    with world.client() as client, pytest.raises(InvalidLookup) as raised:
        client.view_message(view_request("sms", int(time.time()), **overrides))
    assert raised.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert raised.value.reason == "INVALID_LOOKUP"
    assert expect in raised.value.message


def test_no_copy_is_not_found(world: World) -> None:
    with world.client() as client, pytest.raises(NotFound):
        client.view_message(view_request("sms", int(time.time()) - 86400 * 3))


def test_a_page_token_of_another_query_is_refused(world: World) -> None:
    with world.client() as client:
        page = client.list_archived_messages(
            pb.ListArchivedMessagesRequest(channel=pb.CHANNEL_SMS, yyyymm=TODAY[:6], page_size=1)
        )
        other = pb.ListArchivedMessagesRequest(
            channel=pb.CHANNEL_EMAIL, yyyymm=TODAY[:6], page_token=page.next_page_token
        )
        with pytest.raises(InvalidLookup) as raised:
            client.list_archived_messages(other)
    assert raised.value.field_violations[0][0] == "page_token"


@pytest.mark.parametrize(
    ("account", "key", "error"),
    [
        (None, None, Unauthenticated),  # no credentials
        ("acme", "ma_not_a_key", Unauthenticated),
        ("acme", KEYS["globex"], PermissionDenied),  # Basic acme:<globex's key>
    ],
)
def test_credentials_are_required_and_checked(
    world: World, account: str | None, key: str | None, error: type[Exception]
) -> None:
    with world.client(account, key) as client, pytest.raises(error):
        client.get_archived_message(pb.GetArchivedMessageRequest(key=world.acks["sms"].key))


def test_a_damaged_copy_is_data_loss(world: World) -> None:
    key = world.acks["damaged"].key
    world.s3.put_object(Bucket=world.buckets["acme"], Key=key, Body=b"\x04\x22\x4d\x18garbage")
    with world.client() as client, pytest.raises(DataLoss) as raised:
        client.get_archived_message(pb.GetArchivedMessageRequest(key=key))
    assert raised.value.reason == "COPY_DAMAGED"
    assert raised.value.metadata["key"] == key


def test_one_account_never_reads_another_accounts_copies(world: World) -> None:
    theirs = world.acks["globex-sms"]
    assert theirs.key.startswith("globex/sent_messages/")
    view = view_request("sms", theirs.sent_at_ms // 1000, user_id=GLOBEX_PHONE)
    parts = pb.MessageLocator(
        channel=pb.CHANNEL_SMS,
        yyyymm=TODAY[:6],
        campaign_id="1722529032",
        recipient=GLOBEX_PHONE,
        message_id=theirs.message_id,
    )
    everything = pb.ListArchivedMessagesRequest(channel=pb.CHANNEL_SMS, yyyymm=TODAY[:6])
    with world.client("acme") as acme:
        with pytest.raises(NotFound):  # acme's view looks in acme's store only
            acme.view_message(view)
        with pytest.raises(PermissionDenied):
            acme.get_archived_message(pb.GetArchivedMessageRequest(key=theirs.key))
        with pytest.raises(NotFound):
            acme.get_archived_message(pb.GetArchivedMessageRequest(parts=parts))
        listed = [m.key for m in acme.iter_archived_messages(everything)]
        with pytest.raises(PermissionDenied):
            acme.archive(today(samples.sms_request(), "globex"))
    assert listed
    assert not any(key.startswith("globex/") for key in listed)
    with world.client("globex") as globex:  # the owner reads it every way
        assert globex.view_message(view).file_info.key == theirs.key
        got = globex.get_archived_message(pb.GetArchivedMessageRequest(parts=parts))
        assert got.file_info.key == theirs.key
        assert theirs.key in [m.key for m in globex.iter_archived_messages(everything)]


def test_every_read_is_audited_without_content(world: World) -> None:
    key = world.acks["sms"].key

    def audits() -> list[dict[str, Any]]:
        return [
            line
            for line in list(world.sidecar.lines)
            if line.get("audit") and line.get("method", "").endswith("GetArchivedMessage")
        ]

    # This read's own line, by its request id: the sidecar's log thread writes
    # lines in batches, so an earlier test's may still be on their way.
    request_id = f"audit-{time.monotonic_ns()}"
    with world.client() as client:
        client.get_archived_message(
            pb.GetArchivedMessageRequest(key=key), metadata=(("x-request-id", request_id),)
        )
    deadline = time.monotonic() + 30
    while not (mine := [a for a in audits() if a.get("request_id") == request_id]):
        assert time.monotonic() < deadline, "no audit line for the read"
        time.sleep(0.05)
    (line,) = mine
    assert (line["account"], line["code"], line["key"]) == ("acme", "OK", key)
    for line in audits():
        text = json.dumps(line)
        assert "Hi there" not in text
        assert KEYS["acme"] not in text


def test_cat_prints_the_archived_json(world: World, seaweed: SeaweedFS, tmp_path: Path) -> None:
    ack = world.acks["email"]
    command = [sys.executable, "-m", "msgarchive_server", "cat"]
    from_s3 = subprocess.run(
        [
            *command,
            f"s3://{world.buckets['acme']}/{ack.key}",
            "--s3-endpoint-url",
            seaweed.endpoint,
        ],
        capture_output=True,
        text=True,
        env={**seaweed.env, "PATH": "/usr/bin:/bin"},
        timeout=60,
        check=True,
    )
    expected = world.stored_json("acme", ack.key) + "\n"
    assert from_s3.stdout == expected
    local = tmp_path / "copy.json.lz4"
    local.write_bytes(world.s3.get_object(Bucket=world.buckets["acme"], Key=ack.key)["Body"].read())
    from_file = subprocess.run([*command, str(local)], capture_output=True, text=True, check=True)
    assert from_file.stdout == expected


def test_view_and_get_commands(world: World) -> None:
    ack = world.acks["sms"]
    base = [
        sys.executable, "-m", "msgarchive_server", "view", "--address", world.sidecar.address,
        "--account", "acme", "--api-key", KEYS["acme"],
    ]  # fmt: skip
    done = subprocess.run(
        [*base, "--user-id", "+15555555555", "--channel", "SMS", "--campaign-id", "1722529032",
         "--sent-at", str(ack.sent_at_ms // 1000), "--event", "SMS Sent"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert json.loads(done.stdout)["file_info"]["key"] == ack.key
    got = subprocess.run(
        [sys.executable, "-m", "msgarchive_server", "get", "--address", world.sidecar.address,
         "--key", ack.key],
        capture_output=True, text=True, timeout=60, check=False,
        env={"MSGARCHIVE_API_KEY": KEYS["acme"], "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout)["message_details"]["message_id"] == ack.message_id


def test_the_rate_limit_trips_and_recovers(seaweed: SeaweedFS, tmp_path: Path) -> None:
    buckets = {"acme": seaweed.new_bucket(), "globex": seaweed.new_bucket()}
    sidecar = start_sidecar(
        seaweed,
        accounts_file(tmp_path / "accounts.toml", s3_stores(buckets)),
        "--read-rate-limit=30",
    )
    query = pb.ListArchivedMessagesRequest(channel=pb.CHANNEL_SMS, yyyymm=TODAY[:6])
    try:
        with ArchiveClient(sidecar.address, api_key=KEYS["acme"]) as client:
            for _ in range(30):
                client.list_archived_messages(query)
            with pytest.raises(RateLimited) as raised:
                client.list_archived_messages(query)
            delay = raised.value.retry_delay
            assert delay is not None
            assert 0 < delay <= 2.0
            with ArchiveClient(sidecar.address, api_key=KEYS["globex"]) as other:
                other.list_archived_messages(query)  # per account
            # Once the delay has passed, the account is served again (polled
            # with a generous deadline: the refill is by the clock).
            deadline = time.monotonic() + delay + 60
            while True:
                try:
                    client.list_archived_messages(query)
                    break
                except RateLimited as again:
                    assert time.monotonic() < deadline, "never served again"
                    time.sleep(again.retry_delay or delay)
    finally:
        sidecar.kill()
