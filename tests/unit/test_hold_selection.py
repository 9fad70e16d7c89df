"""Which copies a legal hold selects: each field of the selection narrows it,
and only by equality (a hold on campaign c-1 holds none of c-10's copies)."""

from __future__ import annotations

import dataclasses

import pytest

from msgarchive.keys import archive_key
from msgarchive_server.domain.manifests.entries import ManifestEntry
from msgarchive_server.domain.manifests.holds import Selection

HASH = "b3e2048d6e5378173713705fde6a93da"


def entry(
    campaign_id: str = "c-1", channel: str = "sms", yyyymm: str = "202409", user_hash: str = HASH
) -> ManifestEntry:
    key = archive_key(channel, yyyymm, campaign_id, user_hash, "a" * 64, "acme/")
    return ManifestEntry(
        bucket="b", key=key, version_id="v1", size=1, e_tag="e", sha256="0" * 64,
        message_id="a" * 64, channel=channel, campaign_id=campaign_id, user_hash=user_hash,
        sent_at=1, object_lock_mode="", object_lock_retain_until_date=0, acknowledged_at=1,
    )  # fmt: skip


EVERY_FIELD = Selection("c-1", channel="sms", yyyymm="202409", user_hash=HASH)


def test_a_selection_of_every_field_holds_its_copy() -> None:
    assert EVERY_FIELD.matches(entry())
    assert Selection("c-1").matches(entry(channel="email", yyyymm="202512", user_hash="f" * 32))


@pytest.mark.parametrize(
    "other",
    [
        {"campaign_id": "c-10"},  # longer: not a prefix match
        {"campaign_id": "c-0"},  # before it
        {"campaign_id": "c-2"},  # after it
        {"channel": "email"},
        {"channel": "whatsapp"},  # after "sms"
        {"yyyymm": "202408"},
        {"yyyymm": "202410"},
        {"user_hash": "0" * 32},
        {"user_hash": "f" * 32},
    ],
)
def test_each_field_that_differs_leaves_the_copy_out(other: dict[str, str]) -> None:
    assert not EVERY_FIELD.matches(entry(**other))
    loose = dataclasses.replace(EVERY_FIELD, **{k: "" for k in other if k != "campaign_id"})
    if "campaign_id" not in other:
        assert loose.matches(entry(**other))  # the field left empty selects every value
