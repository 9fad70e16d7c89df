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
    instant_ms,
    platform_names,
    recipient_hashes,
    recorded_filters,
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


def test_the_query_answers_a_copy_acknowledged_twice_once_and_holds_by_the_log() -> None:
    import duckdb
    import pyarrow as pa

    from msgarchive.keys import archive_key
    from msgarchive_server.domain.manifests import parquet
    from msgarchive_server.domain.search import CURRENT_HOLDS_SQL, _parameters

    person, other = user_hash("15555555555"), user_hash("15555550000")

    def row(n: int, hashed: str, acknowledged_at: int) -> dict[str, object]:
        message_id = f"{n:064x}"
        key = archive_key("sms", "202409", "c-1", hashed, message_id)
        return {
            "bucket": "b", "key": key, "version_id": "v", "size": 1, "e_tag": "e",
            "sha256": "0" * 64, "message_id": message_id, "channel": "sms", "campaign_id": "c-1",
            "user_hash": hashed, "sent_at": 1000 + n, "object_lock_mode": "",
            parquet.UNTIL: None, "acknowledged_at": acknowledged_at,
        }  # fmt: skip

    rows = [row(1, person, 5), row(1, person, 9), row(2, person, 6), row(3, other, 7)]
    db = duckdb.connect()
    db.register("manifests", pa.Table.from_pylist(rows, schema=parquet.SCHEMA))
    held = [(1, "hold_on", rows[2]["key"], "v"), (2, "hold_off", rows[2]["key"], "v"),
            (3, "hold_on", rows[0]["key"], "v")]  # fmt: skip
    db.execute("CREATE TABLE hold_copies (sequence BIGINT, action VARCHAR, key VARCHAR, "
               "version_id VARCHAR)")  # fmt: skip
    db.executemany("INSERT INTO hold_copies VALUES (?, ?, ?, ?)", held)
    db.execute(f"CREATE VIEW current_holds AS {CURRENT_HOLDS_SQL}")

    def keys(query: SearchQuery, cursor: tuple[int, str] | None = None) -> list[tuple[str, bool]]:
        found = db.execute(SEARCH_SQL, _parameters(query, cursor)).fetchall()
        return [(r[4], r[10]) for r in found]

    everyone = keys(SearchQuery())
    assert everyone == [(rows[0]["key"], True), (rows[2]["key"], False), (rows[3]["key"], False)]
    assert keys(SearchQuery(recipient="+1 555 555 5555")) == everyone[:2]
    assert keys(SearchQuery(held=True)) == everyone[:1]
    assert keys(SearchQuery(held=False)) == everyone[1:]
    assert keys(SearchQuery(), cursor=(1001, str(rows[0]["key"]))) == everyone[1:]


def test_recorded_filters_keep_every_filter_given_and_never_the_recipient_as_written() -> None:
    query = SearchQuery(
        recipient="Jane.Doe@Example.com", channel="email", campaign_id="c-1",
        sent_after_ms=5, message_id="m", held=False,
    )  # fmt: skip
    recorded = recorded_filters(query)
    assert recorded == {
        "campaign_id": "c-1", "channel": "email", "sent_after_ms": 5, "message_id": "m",
        "held": False, "recipient_user_hashes": [user_hash("jane.doe@example.com")],
    }  # fmt: skip
    assert "jane" not in repr(recorded).lower()
    assert recorded_filters(SearchQuery()) == {}
    assert recorded_filters(SearchQuery(held=True)) == {"held": True}


def test_an_instant_is_a_date_or_an_iso_time_in_utc_unless_it_says_otherwise() -> None:
    assert instant_ms("2026-11-01", "--since") == 1793491200000
    assert instant_ms("2026-11-01T01:00:00+01:00", "--since") == 1793491200000
    assert instant_ms("", "--since") == 0
    with pytest.raises(ValueError, match="--until 'soon'"):
        instant_ms("soon", "--until")


def test_all_reads_a_page_at_a_time_and_loses_no_copy_between_pages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from msgarchive_server.domain import search as search_module
    from msgarchive_server.domain.archive import Archiver
    from msgarchive_server.domain.search import Search
    from msgarchive_server.stores import StoreOptions, open_store
    from tests import samples

    (tmp_path / "archive").mkdir()
    store = open_store(str(tmp_path / "archive"), StoreOptions())
    archiver = Archiver(store)
    for n in range(7):
        archiver.archive(samples.sms_request(customer_identity=str(n), created_at_ms=n + 1))
    searcher = Search(store, tmp_path / "cache")
    whole = searcher.find(SearchQuery(), limit=100).items
    assert len(whole) == 7
    monkeypatch.setattr(search_module, "_ALL_PAGE", 2)
    assert list(searcher.all(SearchQuery())) == whole
    monkeypatch.setattr(search_module, "_ALL_PAGE", 7)  # a last page exactly full
    assert list(searcher.all(SearchQuery())) == whole
    searcher.close()
