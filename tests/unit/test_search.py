"""Search's own rules: how a recipient is read, what a query may ask."""

from __future__ import annotations

from pathlib import Path

import pytest

from msgarchive.keys import user_hash
from msgarchive_server.domain.errors import InvalidLookup
from msgarchive_server.domain.search import (
    SEARCH_SQL,
    SearchQuery,
    check,
    platform_names,
    recipient_hashes,
)

ROOT = Path(__file__).resolve().parents[2]


def test_a_recipient_is_read_every_way_that_applies() -> None:
    # printf '%s' '15555555555' | md5sum, and the identity as written.
    assert recipient_hashes("+1 (555) 555-5555") == [
        user_hash("+1 (555) 555-5555"),
        "b3e2048d6e5378173713705fde6a93da",
    ]
    assert recipient_hashes(" Jane@Example.com ", "email") == [user_hash("jane@example.com")]
    assert recipient_hashes("dev-7") == [user_hash("dev-7")]  # an identity only
    assert recipient_hashes("dev-7", "push") == [user_hash("dev-7")]


@pytest.mark.parametrize(
    ("recipient", "channel", "says"),
    [
        ("", "", "recipient must be 1 to 256 characters"),
        ("x" * 257, "", "recipient must be 1 to 256 characters"),
        ("dev-7", "email", "recipient must be an email address"),
        ("dev-7", "whatsapp", "recipient must be a phone number"),
    ],
)
def test_a_recipient_no_channel_takes_is_refused(recipient: str, channel: str, says: str) -> None:
    with pytest.raises(InvalidLookup, match=says):
        recipient_hashes(recipient, channel)


def test_a_query_names_each_bad_field() -> None:
    with pytest.raises(InvalidLookup) as raised:
        check(
            SearchQuery(
                channel="fax",
                campaign_id="a b",
                message_id="ABC",
                platform="pager",
                sent_after_ms=2,
                sent_before_ms=1,
            )
        )
    fields = [v.field for v in raised.value.violations]
    assert fields == ["channel", "campaign_id", "message_id", "platform", "until"]
    check(SearchQuery(platform="IOS", sent_after_ms=1, sent_before_ms=2))  # fine
    assert platform_names() == ["ios", "android", "web", "email", "sms", "whatsapp"]


def test_the_shipped_sql_is_the_query_search_runs() -> None:
    assert (ROOT / "deploy" / "sql" / "search.sql").read_text() == SEARCH_SQL
    assert SEARCH_SQL.count("?") == 12
