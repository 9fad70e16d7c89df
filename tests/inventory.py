"""An S3 Inventory report of a real bucket, built from its listing: SeaweedFS
makes none. The tests read it as Athena would read the real one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

SCHEMA = pa.schema(
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
    pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), path)


def publish(s3: S3Client, bucket: str, destination: str, data: Path) -> str:
    """Put the report `data` in `destination` as S3 delivers one, with its
    manifest.json; the manifest's s3:// URL."""
    folder = f"{bucket}/inventory/2026-12-01T00-00Z"
    data_key = f"{bucket}/inventory/data/{data.name}"
    s3.put_object(Bucket=destination, Key=data_key, Body=data.read_bytes())
    manifest = {
        "sourceBucket": bucket,
        "destinationBucket": f"arn:aws:s3:::{destination}",
        "version": "2016-11-30",
        "creationTimestamp": "1764547200000",
        "fileFormat": "Parquet",
        "fileSchema": "message s3.inventory { ... }",
        "files": [{"key": data_key, "size": data.stat().st_size, "MD5checksum": ""}],
    }
    s3.put_object(Bucket=destination, Key=f"{folder}/manifest.json", Body=json.dumps(manifest))
    return f"s3://{destination}/{folder}/manifest.json"
