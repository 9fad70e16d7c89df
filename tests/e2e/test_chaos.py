"""Chaos soak: thousands of concurrent archives through a faulty store.

Every ack must stand for a stored copy that matches, byte for byte, what its
message's JSON must be; every failure must be a fail-closed status. The
expected copies are built here from the contract, independently of the
sidecar's code.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import grpc
import pytest

from msgarchive import ArchiveClient, MsgArchiveError
from msgarchive.v1 import archive_service_pb2 as pb
from msgarchive_server.domain.payloads import decompress
from tests.faults import Fault, FaultProxy
from tests.seaweed import SeaweedFS, keys_in
from tests.sidecar import SidecarProcess, s3_sidecar

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = pytest.mark.e2e

MESSAGES = 2000
CONCURRENCY = 16
# About 35% of write attempts fail outright, so with 3 retries some calls
# (about 1.5%) run out of attempts and must fail closed.
FAULT_RATES = {
    Fault.SLOWDOWN: 0.08,
    Fault.ERROR_500: 0.12,
    Fault.RESET: 0.07,
    Fault.CORRUPT: 0.07,
    Fault.LOST_RESPONSE: 0.05,
    Fault.ACCESS_DENIED: 0.04,
    Fault.DELAY: 0.02,
}
CHANNELS = ("push", "email", "sms", "whatsapp")
FOLDERS = {"push": "Push", "email": "Email", "sms": "Sms", "whatsapp": "WhatsApp"}


def message(n: int) -> pb.ArchiveRequest:
    """The n-th soak message: channels in turn, every one with its own id."""
    channel = CHANNELS[n % 4]
    context: dict[str, Any] = {
        "account_id": "acc-chaos",
        "batch_id": "20241130" if n % 2 else "20241201",
        "created_at_ms": 1_733_000_000_000 + n,
        "customer_identity": str(500_000 + n),
        "campaign_id": str(9000 + n % 7),
        "campaign_name": f"Soak campaign {n % 7}",
        "request_id": f"chaos-{n}",
    }
    if channel == "push":
        return pb.ArchiveRequest(
            **context,
            device_identity=f"device-{n}",
            push=pb.PushMessage(
                to=f"token-{n}",
                platform=pb.PLATFORM_ANDROID,
                payload_json=json.dumps(
                    {"title": f"Hello {n}", "badge": n % 9}, separators=(",", ":")
                ),
            ),
        )
    if channel == "email":
        return pb.ArchiveRequest(
            **context,
            email=pb.EmailMessage(
                to=f"user{n}@example.com",
                subject=f"Offer {n}",
                from_name="Shop",
                from_address="news@shop.example",
                html_body=f"<p>{n}</p>",
                plaintext_body=str(n),
            ),
        )
    phone = f"1555{n:07d}"
    body = {"to": phone, "body": f"Code {n}", "provider": "twilio"}
    if channel == "sms":
        return pb.ArchiveRequest(**context, sms=pb.SmsMessage(**body))
    return pb.ArchiveRequest(**context, whatsapp=pb.WhatsAppMessage(**body))


def expected(request: pb.ArchiveRequest, sent_at: int) -> tuple[str, bytes]:
    """The key and exact JSON bytes of a soak message's copy, from the contract."""
    channel = request.WhichOneof("message")
    assert channel is not None
    msg = getattr(request, channel)
    user = request.device_identity or request.customer_identity
    created = str(request.created_at_ms)
    fields: dict[str, Any] = {"version": 1}
    if channel == "push":
        parts = [request.account_id, request.campaign_id, request.batch_id, msg.to, created, user]
        hashed = user
        fields |= {"to": msg.to, "payload": json.loads(msg.payload_json), "platform": "Android"}
    elif channel == "email":
        parts = [request.account_id, request.campaign_id, user, msg.to, request.batch_id, created]
        hashed = msg.to
        fields |= {
            "to": msg.to,
            "subject": msg.subject,
            "from_name": msg.from_name,
            "from_address": msg.from_address,
            "html_body": msg.html_body,
            "plaintext_body": msg.plaintext_body,
            "headers": {},
        }
    else:
        parts = [request.account_id, user, request.batch_id, request.campaign_id, msg.to, created]
        hashed = msg.to
        fields |= {"to": msg.to, "body": msg.body, "provider": msg.provider}
    message_id = hashlib.sha256("-".join(parts).encode()).hexdigest()
    user_hash = hashlib.md5(hashed.encode(), usedforsecurity=False).hexdigest()
    fields |= {
        "sent_at": sent_at,
        "message_id": message_id,
        "campaign_id": int(request.campaign_id),
        "campaign_name": request.campaign_name,
        "user_id": int(user) if user.isdigit() else user,
    }
    key = (
        f"sent_messages/{FOLDERS[channel]}/{request.batch_id[:6]}/{request.campaign_id}/"
        f"{user_hash}/{message_id}.json.lz4"
    )
    return key, json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode()


@pytest.fixture
def faulty_sidecar(seaweed: SeaweedFS, bucket: str) -> Iterator[tuple[SidecarProcess, FaultProxy]]:
    proxy = FaultProxy(int(seaweed.endpoint.rsplit(":", 1)[1]), seed=20241122).start()
    proxy.delay = 0.2
    sidecar = s3_sidecar(bucket, proxy.endpoint, seaweed.env, "--probe-max-interval=0.5")
    try:
        yield sidecar, proxy
    finally:
        sidecar.kill()
        proxy.stop()


def test_chaos_soak_acks_only_stored_exact_copies(
    faulty_sidecar: tuple[SidecarProcess, FaultProxy], bucket: str, s3: S3Client
) -> None:
    sidecar, proxy = faulty_sidecar
    proxy.set_rates(FAULT_RATES)
    requests = [message(n) for n in range(MESSAGES)]

    def archive(request: pb.ArchiveRequest) -> pb.ArchiveResponse | MsgArchiveError:
        try:
            return client.archive(request)
        except MsgArchiveError as err:
            return err

    # No channel-level retries: every outcome below is the sidecar's own answer.
    with (
        ArchiveClient(sidecar.address, options=[("grpc.enable_retries", 0)]) as client,
        ThreadPoolExecutor(CONCURRENCY) as pool,
    ):
        outcomes = list(pool.map(archive, requests))

    acked = [
        (r, o) for r, o in zip(requests, outcomes, strict=True) if isinstance(o, pb.ArchiveResponse)
    ]
    failed = [o for o in outcomes if isinstance(o, MsgArchiveError)]
    failures = Counter(f"{e.code.name}/{e.reason or '-'}" for e in failed)
    retries = sum(ack.attempts - 1 for _, ack in acked)
    print(
        f"\nchaos soak: {MESSAGES} archives, {len(acked)} acked "
        f"({sum(a.already_archived for _, a in acked)} from a copy already stored), "
        f"{len(failed)} failed {dict(failures)}, {retries} store retries, "
        f"{proxy.writes} writes seen, faults injected "
        f"{ {f.value: n for f, n in proxy.applied.items()} }"
    )

    # The faults were real and frequent.
    assert sum(proxy.applied.values()) > MESSAGES * 0.15
    assert retries > MESSAGES * 0.1
    # Some calls ran out of retries, and every failure is a fail-closed status.
    assert failed
    allowed = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.FAILED_PRECONDITION}
    assert {e.code for e in failed} <= allowed
    # Zero acks without a copy: each acked copy is in the store, byte for byte.
    for request, ack in acked:
        key, body = expected(request, ack.sent_at_ms)
        assert ack.key == key
        blob = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert decompress(blob) == body, key
    # Nothing corrupt was ever stored: every object in the bucket is a sound copy.
    stored = keys_in(s3, bucket)
    assert {ack.key for _, ack in acked} <= set(stored)
    for key in set(stored) - {ack.key for _, ack in acked}:
        copy = json.loads(decompress(s3.get_object(Bucket=bucket, Key=key)["Body"].read()))
        assert key.endswith(f"/{copy['message_id']}.json.lz4")
