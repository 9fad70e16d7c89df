"""The manifests in a real SQL engine (DuckDB): copies per channel for a day, and the
reconciliation of deploy/sql/reconcile.sql giving what `verify` gives."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from msgarchive_server.domain.manifests.sealer import MANIFEST_ROOT
from tests.integration.conftest import PREFIX, Archive, bypass_delete

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


def inventory(s3: S3Client, bucket: str, path: Path) -> None:
    """An S3 Inventory report (Parquet, all versions, with ETag and Object Lock
    fields) of `bucket`, built from a real listing: SeaweedFS makes no inventory."""
    rows: list[dict[str, object]] = []
    listing = s3.get_paginator("list_object_versions").paginate(Bucket=bucket)
    for page in listing:
        for version in page.get("Versions", []):
            head = s3.head_object(Bucket=bucket, Key=version["Key"], VersionId=version["VersionId"])
            rows.append(
                {
                    "bucket": bucket,
                    "key": version["Key"],
                    "version_id": None if version["VersionId"] == "null" else version["VersionId"],
                    "is_latest": version["IsLatest"],
                    "is_delete_marker": False,
                    "size": version["Size"],
                    "last_modified_date": version["LastModified"],
                    "e_tag": version["ETag"].strip('"'),
                    "object_lock_mode": head.get("ObjectLockMode"),
                    "object_lock_retain_until_date": head.get("ObjectLockRetainUntilDate"),
                }
            )
        for marker in page.get("DeleteMarkers", []):
            rows.append(
                {
                    "bucket": bucket,
                    "key": marker["Key"],
                    "version_id": marker["VersionId"],
                    "is_latest": marker["IsLatest"],
                    "is_delete_marker": True,
                    "size": 0,
                    "last_modified_date": marker["LastModified"],
                    "e_tag": None,
                    "object_lock_mode": None,
                    "object_lock_retain_until_date": None,
                }
            )
    schema = pa.schema(
        [
            ("bucket", pa.string()),
            ("key", pa.string()),
            ("version_id", pa.string()),
            ("is_latest", pa.bool_()),
            ("is_delete_marker", pa.bool_()),
            ("size", pa.int64()),
            ("last_modified_date", pa.timestamp("ms", tz="UTC")),
            ("e_tag", pa.string()),
            ("object_lock_mode", pa.string()),
            ("object_lock_retain_until_date", pa.timestamp("ms", tz="UTC")),
        ]
    )
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)


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
