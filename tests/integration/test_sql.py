"""The manifests in a real SQL engine (DuckDB): copies per channel for a day, the
reconciliation of deploy/sql/reconcile.sql giving what `verify` gives, and an
inventory's copies as the listing has them. Athena's table definitions
(deploy/sql/tables.sql) cannot run here: they are parsed as Athena's dialect
(sqlglot) and held to what msgarchive writes and what the queries read."""

from __future__ import annotations

import datetime
import re
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import pyarrow as pa
import pytest
import sqlglot

from msgarchive import channels
from msgarchive.keys import parse_key
from msgarchive_server.domain.manifests import parquet
from msgarchive_server.domain.manifests.sealer import MANIFEST_ROOT, hour_keys
from msgarchive_server.domain.search import INVENTORY_COPIES_SQL
from tests.integration.conftest import PREFIX, Archive, bypass_delete
from tests.inventory import SCHEMA as INVENTORY_SCHEMA
from tests.inventory import inventory

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

RECONCILE = (Path(__file__).resolve().parents[2] / "deploy" / "sql" / "reconcile.sql").read_text()

pytestmark = pytest.mark.integration


def download_manifests(s3: S3Client, bucket: str, into: Path) -> list[Path]:
    """The bucket's manifests, mirrored with their keys (as an engine would find them)."""
    paths = []
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=f"{PREFIX}{MANIFEST_ROOT}/"
    ):
        for item in page.get("Contents", []):
            if item["Key"].endswith("manifest.parquet"):
                path = into / item["Key"]
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read())
                paths.append(path)
    return paths


def test_a_day_of_manifests_counts_the_copies_per_channel(
    archive: Archive, s3: S3Client, tmp_path: Path
) -> None:
    download_manifests(s3, archive.bucket, tmp_path)
    day = archive.hours[0]
    pattern = tmp_path / f"{PREFIX}{MANIFEST_ROOT}/*/{day:%Y/%m/%d}/*/manifest.parquet"
    counts = (
        duckdb.connect()
        .execute(f"SELECT channel, count(*) FROM read_parquet('{pattern}') GROUP BY 1 ORDER BY 1")
        .fetchall()
    )
    archived = sorted(key.split("/")[2].lower() for key in archive.acked)
    assert counts == [(channel, 1) for channel in archived]


def test_the_reconciliation_query_finds_what_verify_finds(
    archive: Archive, s3: S3Client, tmp_path: Path
) -> None:
    bypass_delete(s3, archive.bucket, archive.acked[0])  # missing
    s3.put_object(Bucket=archive.bucket, Key=archive.acked[1], Body=b"over it")  # altered
    stray = f"{PREFIX}sent_messages/Sms/202609/c/{'0' * 32}/{'1' * 64}.json.lz4"
    s3.put_object(Bucket=archive.bucket, Key=stray, Body=b"slipped in")  # unlisted
    version = s3.head_object(Bucket=archive.bucket, Key=archive.acked[2])["VersionId"]
    s3.put_object_retention(  # under-locked
        Bucket=archive.bucket,
        Key=archive.acked[2],
        VersionId=version,
        Retention={
            "Mode": "GOVERNANCE",
            "RetainUntilDate": datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1),
        },
        BypassGovernanceRetention=True,
    )
    from_verify = {(f.kind, f.key) for f in archive.findings()}
    assert from_verify == {
        ("copy_missing", archive.acked[0]),
        ("copy_altered", archive.acked[1]),
        ("copy_unlisted", stray),
        ("copy_under_locked", archive.acked[2]),
    }

    download_manifests(s3, archive.bucket, tmp_path)
    inventory(s3, archive.bucket, tmp_path / "inventory.parquet")
    db = duckdb.connect()
    db.execute(
        f"CREATE VIEW inventory AS SELECT * FROM read_parquet('{tmp_path}/inventory.parquet')"
    )
    db.execute(
        "CREATE VIEW manifests AS SELECT * FROM "
        f"read_parquet('{tmp_path}/{PREFIX}{MANIFEST_ROOT}/**/manifest.parquet')"
    )
    from_sql = {(kind, key) for kind, key, _ in db.execute(RECONCILE).fetchall()}
    assert from_sql == from_verify


SQL = Path(__file__).resolve().parents[2] / "deploy" / "sql"
HIVE_TYPES = {"VARCHAR": pa.string(), "BIGINT": pa.int64(), "BOOLEAN": pa.bool_()}


UNLOAD = re.compile(r"UNLOAD \((?P<query>.*)\)\s*TO '(?P<to>[^']*)'", re.DOTALL)


def _statements() -> list[sqlglot.exp.Expr]:
    """Each statement of tables.sql, parsed as Athena's; of an UNLOAD (which
    sqlglot does not know), its query."""
    parsed = []
    for text in (SQL / "tables.sql").read_text().split(";\n"):
        unload = UNLOAD.search(text)
        parsed += sqlglot.parse(unload["query"] if unload else text, read="athena")
    return [s for s in parsed if s]


def _created(name: str) -> sqlglot.exp.Create:
    """The statement of tables.sql that creates `name`."""
    for statement in _statements():
        if isinstance(statement, sqlglot.exp.Create) and _name(statement) == name:
            return statement
    raise AssertionError(f"tables.sql defines no {name}")


def _name(statement: sqlglot.exp.Create) -> str:
    table = statement.find(sqlglot.exp.Table)
    return table.name if table is not None else ""


def _table(name: str) -> dict[str, str]:
    """The columns of the table tables.sql defines, with their types as Trino writes them."""
    schema = _created(name).this
    return {
        c.name: c.args["kind"].sql("trino")
        for c in schema.expressions
        if isinstance(c, sqlglot.exp.ColumnDef)
    }


def test_the_table_definitions_parse_and_match_what_msgarchive_writes() -> None:
    created = [_name(s) for s in _statements() if isinstance(s, sqlglot.exp.Create)]
    assert created == [
        "inventory", "manifests", "hold_records", "hold_copies", "current_holds"
    ]  # fmt: skip
    manifests = _table("manifests")
    assert list(manifests) == parquet.SCHEMA.names  # every column, in the writer's order
    for field in parquet.SCHEMA:
        declared = manifests[field.name]
        assert (
            declared == "TIMESTAMP"
            if pa.types.is_timestamp(field.type)
            else (HIVE_TYPES[declared] == field.type)
        ), field.name
    inventory_columns = _table("inventory")
    assert set(INVENTORY_SCHEMA.names) <= set(inventory_columns)  # what the queries read
    holds = _table("hold_records")
    assert holds["copies"] == "ARRAY(ROW(key VARCHAR, version_id VARCHAR))"


def test_the_list_of_manifest_files_names_every_part_and_no_head() -> None:
    (listing,) = [s for s in _statements() if isinstance(s, sqlglot.exp.Select)]
    (like,) = [f for f in listing.find_all(sqlglot.exp.RegexpLike)]
    pattern = re.compile(like.expression.name)
    hour = datetime.datetime(2026, 12, 1, 13, tzinfo=datetime.UTC)
    for part in (1, 2, 11):
        manifest, head = hour_keys("PREFIX", "pod-1", hour, part)
        assert pattern.search(manifest), manifest
        assert not pattern.search(head), head
    (unload,) = [m for m in UNLOAD.finditer((SQL / "tables.sql").read_text())]
    assert unload["to"] == _location("manifests")  # the symlink table reads what it writes


def _location(table: str) -> str:
    (location,) = _created(table).find_all(sqlglot.exp.LocationProperty)
    return str(location.this.name)


def test_the_current_holds_view_is_the_query_search_runs() -> None:
    view = _created("current_holds").expression
    query = sqlglot.parse_one((SQL / "current_holds.sql").read_text(), read="duckdb")
    assert view.sql("trino", comments=False) == query.sql("trino", comments=False)


def test_an_inventory_gives_the_copies_the_listing_gives(
    archive: Archive, s3: S3Client, tmp_path: Path
) -> None:
    inventory(s3, archive.bucket, tmp_path / "inventory.parquet")
    stray = f"{PREFIX}sent_messages/Fax/202609/c/{'0' * 32}/{'1' * 64}.json.lz4"  # no channel
    db = duckdb.connect()
    db.execute(
        f"CREATE VIEW inventory AS SELECT * FROM read_parquet('{tmp_path}/inventory.parquet')"
    )
    db.execute(f"SELECT * FROM ({INVENTORY_COPIES_SQL}) WHERE prefix = ?", [PREFIX])
    assert [column[0] for column in db.description or []] == ["prefix", *parquet.SCHEMA.names]
    names = ["key", "channel", "campaign_id", "user_hash", "message_id", "sent_at", "sha256"]
    db.execute(
        f"SELECT {', '.join(names)} FROM ({INVENTORY_COPIES_SQL}) WHERE prefix = ?", [PREFIX]
    )
    rows = [dict(zip(names, row, strict=True)) for row in db.fetchall()]
    found = {
        (r["key"], r["channel"], r["campaign_id"], r["user_hash"], r["message_id"]) for r in rows
    }
    expected = set()
    for key in archive.acked:
        parts = parse_key(key)
        assert parts is not None
        expected.add((key, parts.channel, parts.campaign_id, parts.user_hash, parts.message_id))
    assert found == expected
    assert stray not in {r[0] for r in found}
    listed = {o["Key"]: o for o in s3.list_objects_v2(Bucket=archive.bucket)["Contents"]}
    for row in rows:
        stored = listed[row["key"]]["LastModified"]
        assert row["sent_at"] == int(stored.timestamp() * 1000)  # the write time, to the ms
        assert row["sha256"] == ""


def test_the_inventory_query_knows_every_channel_the_registry_does() -> None:
    text = INVENTORY_COPIES_SQL
    whens = dict(re.findall(r"WHEN '(\w+)' THEN '(\w+)'", text))
    assert whens == {c.folder: c.name for c in channels.CHANNELS}
    (folders,) = re.findall(r"folder IN \(([^)]*)\)", text)
    assert {f.strip(" '") for f in folders.split(",")} == {c.folder for c in channels.CHANNELS}
